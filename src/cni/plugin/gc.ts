/**
 * GC (SPEC 1.1.0): every attachment of this network not in cni.dev/valid-attachments is detached;
 * then leftovers with no record (host veths named by our scheme, table entries) are removed.
 */
import type { Logger } from '../../lib/log.js';
import { recordContainerId, recordIfname } from '../attachment.js';
import { type Attachment, type NetConfig, parseValidAttachments } from '../config.js';
import { CNI_ERR, CniError } from '../errors.js';
import { ON_DEMAND } from '../ip-pool.js';
import { deleteHostIf, listHostIfs } from '../link.js';
import { HOST_IF, hostIfName } from '../names.js';
import { Datastore } from '../store.js';
import { detach } from './del.js';
import type { CniDeps } from './deps.js';
import { ctrAddrs, nameOrNull, notify } from './shared.js';

export async function cmdGc(cfg: NetConfig, deps: CniDeps, log: Logger): Promise<void> {
  const valid: Attachment[] | null = parseValidAttachments(cfg.raw);
  if (valid === null) {
    throw new CniError(
      CNI_ERR.INVALID_CONFIG,
      'GC needs cni.dev/valid-attachments (a list, possibly empty)',
      '',
      {
        field: 'cni.dev/valid-attachments',
      },
    );
  }
  const pair = (h: string, i: string) => `${h}\u0000${i}`;
  const validPairs = new Set(valid.map((a) => pair(a.containerID, a.ifname)));
  const validHandles = new Set(valid.map((a) => a.containerID));
  const validNames = new Set<string>();
  for (const a of valid) {
    const n = nameOrNull({ containerId: a.containerID, ifname: a.ifname });
    if (n !== null) validNames.add(n);
  }
  const store = new Datastore(cfg.datastore, { logger: log });
  const dp = deps.dataplane(cfg);
  const data = await store.read();
  const problems: string[] = [];
  for (const [key, entry] of Object.entries(data)) {
    const rec = entry?.cfnet;
    if (rec && rec.network !== cfg.name) continue; // another network's attachment
    const containerId = recordContainerId(key, entry);
    if (validPairs.has(pair(containerId, recordIfname(entry)))) continue;
    if (!rec && validHandles.has(containerId)) continue; // Silk's records do not say which interface
    const out = await detach(store, dp, key, entry, log, deps.ipBatches ?? ON_DEMAND);
    problems.push(...out.problems);
    if (out.problems.length === 0) {
      log.info({ handle: key, ip: entry.ip }, 'GC removed a stale attachment');
      await notify(
        deps,
        cfg,
        {
          type: 'del',
          handle: key,
          containerId,
          ifname: recordIfname(entry),
          ip: entry.ip,
          network: cfg.name,
          at: new Date().toISOString(),
        },
        log,
      );
    }
  }
  // leftovers with no datastore entry: host veths named by our scheme, and rule-set members
  const remaining = await store.read();
  const keep = new Set<string>([...validNames, ...Object.keys(remaining)]);
  const keepIfs = new Set<string>([...keep].map(hostIfName));
  for (const e of Object.values(remaining)) if (e?.cfnet?.hostIface) keepIfs.add(e.cfnet.hostIface);
  for (const ifn of await listHostIfs(HOST_IF)) {
    if (keepIfs.has(ifn)) continue;
    await deleteHostIf(ifn).catch((e) => problems.push(`veth ${ifn}: ${String(e)}`));
  }
  const table = await dp.readBack();
  for (const [ip, handle] of ctrAddrs(table)) {
    if (handle === '' || keep.has(handle)) continue;
    await dp.removeAttachment({ handle, ip }).catch((e) => problems.push(`rules of ${handle}: ${String(e)}`));
  }
  if (problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `GC incomplete: ${problems.join('; ')}`);
  }
}
