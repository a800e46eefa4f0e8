/**
 * DEL: rules (by the record: address, host ports, ASG set), veth and record removed; each step
 * tolerates "already gone"; the address is released only once the rules are gone.
 */
import type { AttachmentRef } from '../../dataplane/apply.js';
import type { Logger } from '../../lib/log.js';
import { type AttachmentId, DEFAULT_IFNAME, findAttachment, recordIfname } from '../attachment.js';
import type { NetConfig } from '../config.js';
import type { CheckedEnv } from '../env.js';
import { CNI_ERR, CniError } from '../errors.js';
import { type IpBatchSource, ON_DEMAND } from '../ip-pool.js';
import { deleteHostIf, deleteSourceRule } from '../link.js';
import { hostIfName } from '../names.js';
import { Datastore, type StoreEntry } from '../store.js';
import type { CniDeps, ContainerDataplane } from './deps.js';
import { nameOrNull, notify } from './shared.js';

export interface DelOutcome {
  ip: string;
  problems: string[];
  /** ms from the start of detach to: veth gone, rules gone, record gone. */
  steps: Record<string, number>;
}

/**
 * Removes one attachment (record key `key`, its record if any); tolerant of anything already gone.
 * Its rules go by the record (address, host ports, ASG set), so they go even when the table lost
 * its ctr_addrs element or comment; without a record, by the handle in the table.
 */
export async function detach(
  store: Datastore,
  dp: ContainerDataplane,
  key: string,
  entry: StoreEntry | undefined,
  log: Logger,
  batches: IpBatchSource,
): Promise<DelOutcome> {
  const hostIf = entry?.cfnet?.hostIface ?? hostIfName(key);
  const problems: string[] = [];
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  const mark = (k: string) => {
    steps[k] = Math.round((performance.now() - t0) * 10) / 10;
  };
  const ref: AttachmentRef = {
    handle: key,
    ip: typeof entry?.ip === 'string' ? entry.ip : null,
    ...(entry?.cfnet?.hostPorts ? { hostPorts: entry.cfnet.hostPorts } : {}),
    ...(entry?.cfnet?.egress ? { egress: entry.cfnet.egress } : {}),
  };
  await Promise.all([
    deleteHostIf(hostIf, batches.host())
      .catch((e) => problems.push(`veth ${hostIf}: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => mark('veth')),
    dp
      .removeAttachment(ref)
      .then((r) => {
        if (r.foreignOwner !== undefined) {
          log.warn(
            { handle: key, ip: ref.ip, owner: r.foreignOwner },
            "the table gives this attachment's address to another handle: its elements were left alone",
          );
        }
      })
      .catch((e) => problems.push(`rules: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => mark('rules')),
  ]);
  const netns = entry?.cfnet?.netns;
  if (entry?.cfnet && entry.cfnet.ifname !== DEFAULT_IFNAME && netns && ref.ip) {
    await deleteSourceRule(netns, ref.ip);
  }
  if (problems.length === 0) {
    await store.update((tx) => {
      if (tx.data[key]) {
        delete tx.data[key];
        tx.changed = true;
      }
    });
    mark('released');
  } else {
    log.warn({ handle: key, problems }, 'detach incomplete; the address stays reserved until a DEL succeeds');
  }
  return { ip: entry?.ip ?? '', problems, steps };
}

export async function cmdDel(env: CheckedEnv, cfg: NetConfig, deps: CniDeps, log: Logger): Promise<void> {
  const id: AttachmentId = { containerId: env.containerId!, ifname: env.ifname! };
  const name = nameOrNull(id);
  if (name === null) return;
  const t0 = performance.now();
  const store = new Datastore(cfg.datastore, { logger: log });
  const data = await store.read();
  const found = findAttachment(data, id);
  const readMs = Math.round((performance.now() - t0) * 10) / 10;
  if (!found && data[name]) {
    // a record from before attachments were keyed by interface holds this name for another one
    log.info(
      { recorded: recordIfname(data[name]!) },
      'DEL for an interface this container does not have: nothing to do',
    );
    return;
  }
  const key = found?.key ?? name;
  const entry = found?.entry;
  const out = await detach(store, deps.dataplane(cfg), key, entry, log, deps.ipBatches ?? ON_DEMAND);
  if (out.problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `DEL of ${key} incomplete: ${out.problems.join('; ')}`, '', {
      handle: key,
    });
  }
  log.info(
    { ip: out.ip || null, readMs, steps: out.steps, ms: Math.round((performance.now() - t0) * 10) / 10 },
    entry ? 'container detached' : 'DEL of an unknown container: nothing left behind',
  );
  if (entry) {
    await notify(
      deps,
      cfg,
      {
        type: 'del',
        handle: key,
        containerId: id.containerId,
        ifname: id.ifname,
        ip: out.ip,
        network: cfg.name,
        at: new Date().toISOString(),
      },
      log,
    );
  }
}
