/** CHECK (SPEC 1.1.0): the attachment's interfaces, addresses, routes and rules are all in place. */
import { type AttachmentId, findAttachment } from '../attachment.js';
import type { NetConfig } from '../config.js';
import type { CheckedEnv } from '../env.js';
import { CNI_ERR, CniError } from '../errors.js';
import { showLinks, showRoutes } from '../link.js';
import { GATEWAY, hostIfName } from '../names.js';
import { Datastore } from '../store.js';
import type { CniDeps } from './deps.js';
import { ctrAddrs } from './shared.js';

export async function cmdCheck(env: CheckedEnv, cfg: NetConfig, deps: CniDeps): Promise<void> {
  const id: AttachmentId = { containerId: env.containerId!, ifname: env.ifname! };
  const netns = env.netns!;
  const ifname = id.ifname;
  const found = findAttachment(await new Datastore(cfg.datastore).read(), id);
  if (!found) {
    throw new CniError(
      CNI_ERR.UNKNOWN_CONTAINER,
      `container ${id.containerId} is not attached on ${ifname}`,
      '',
      { handle: id.containerId, ifname },
    );
  }
  const { key: handle, entry } = found;
  const problems: string[] = [];
  const rec = entry.cfnet;
  const hostIf = rec?.hostIface ?? hostIfName(handle);
  const [ctr, host, ctrRoutes, hostRoutes, table] = await Promise.all([
    showLinks(ifname, netns),
    showLinks(hostIf),
    showRoutes(netns),
    showRoutes(undefined, [`${entry.ip}/32`]),
    deps.dataplane(cfg).readBack(),
  ]);
  const c = ctr[0];
  if (!c) problems.push(`interface ${ifname} missing in ${netns}`);
  else {
    if (!c.flags?.includes('UP')) problems.push(`${ifname} is down`);
    if (!c.addr_info?.some((a) => a.family === 'inet' && a.local === entry.ip && a.prefixlen === 32)) {
      problems.push(`${ifname} lacks ${entry.ip}/32`);
    }
    if (rec && c.mtu !== rec.mtu) problems.push(`${ifname} MTU ${c.mtu}, expected ${rec.mtu}`);
  }
  if (!ctrRoutes.some((r) => r.dst === 'default' && r.gateway === GATEWAY && r.dev === ifname)) {
    problems.push(`no default route via ${GATEWAY} on ${ifname}`);
  }
  const h = host[0];
  if (!h) problems.push(`host interface ${hostIf} missing`);
  else if (!h.flags?.includes('UP')) problems.push(`host interface ${hostIf} is down`);
  if (!hostRoutes.some((r) => r.dev === hostIf)) problems.push(`no host route ${entry.ip}/32 via ${hostIf}`);
  if (ctrAddrs(table).get(entry.ip) !== handle) problems.push(`no nft rules for ${entry.ip} (${handle})`);
  if (cfg.prevResult) {
    const p = cfg.prevResult;
    const idx = (p.interfaces ?? []).findIndex((i) => i.name === ifname && i.sandbox === netns);
    if (idx < 0) problems.push(`prevResult has no interface ${ifname} in ${netns}`);
    if (!(p.ips ?? []).some((x) => x.address === `${entry.ip}/32`))
      problems.push(`prevResult lacks ${entry.ip}/32`);
  }
  if (problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `CHECK failed for ${handle}: ${problems.join('; ')}`, '', {
      handle,
    });
  }
}
