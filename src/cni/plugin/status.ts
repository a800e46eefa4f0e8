/** STATUS (SPEC 1.1.0): ready when the subnet is readable and has a free address. */
import type { NetConfig } from '../config.js';
import { CNI_ERR, CniError, toCniError } from '../errors.js';
import { capacity, inSubnet, readSubnet } from '../ipam.js';
import { Datastore } from '../store.js';

export async function cmdStatus(cfg: NetConfig): Promise<void> {
  let subnet: Awaited<ReturnType<typeof readSubnet>>;
  try {
    subnet = await readSubnet(cfg);
  } catch (err) {
    const e = toCniError(err);
    throw new CniError(CNI_ERR.NOT_AVAILABLE, `not ready: ${e.message}`, '', { cause: e.cniCode });
  }
  let used = 0;
  try {
    const data = await new Datastore(cfg.datastore).read();
    for (const e of Object.values(data)) if (e && typeof e.ip === 'string' && inSubnet(subnet, e.ip)) used++;
  } catch (err) {
    throw new CniError(CNI_ERR.NOT_AVAILABLE, `not ready: ${toCniError(err).message}`);
  }
  if (used >= capacity(subnet)) {
    throw new CniError(
      CNI_ERR.NOT_AVAILABLE,
      `not ready: no free address in ${subnet.subnet} (${used} in use)`,
    );
  }
}
