/** Helpers more than one operation uses: telling the agent, attachment names, the table's addresses. */
import { atomId } from '../../dataplane/elements.js';
import type { Logger } from '../../lib/log.js';
import { type CniEvent, postEvent } from '../agent-client.js';
import { type AttachmentId, attachmentName } from '../attachment.js';
import type { NetConfig } from '../config.js';
import type { CniDeps, TableView } from './deps.js';

export const SILENT: Logger = {
  level: 'silent',
  fatal: () => undefined,
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  trace: () => undefined,
  silent: () => undefined,
  child: () => SILENT,
} as unknown as Logger;

/** Tells the agent (best effort): failures are logged, never fatal; the agent catches up. */
export async function notify(deps: CniDeps, cfg: NetConfig, event: CniEvent, log: Logger): Promise<void> {
  try {
    if (deps.notify) {
      await deps.notify(event, cfg);
      return;
    }
    if (cfg.agentSocket === null) return;
    const r = await postEvent(cfg.agentSocket, event, cfg.agentTimeoutMs);
    if (!r.ok)
      log.info({ agentSocket: cfg.agentSocket, error: r.error }, 'agent not told (it will catch up)');
  } catch (err) {
    log.info({ error: String(err) }, 'agent notification failed (it will catch up)');
  }
}

/** The attachment's name, or null for an interface name no ADD could have attached (nothing to DEL). */
export function nameOrNull(id: AttachmentId): string | null {
  try {
    return attachmentName(id.containerId, id.ifname);
  } catch {
    return null;
  }
}

/** Container address -> handle (the element comment) of the table's `ctr_addrs` set. */
export function ctrAddrs(view: TableView): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of view.sets.get('ctr_addrs')?.values() ?? []) {
    const a = e.key[0];
    if (a?.k === 'ip') out.set(atomId(a), e.comment ?? '');
  }
  return out;
}
