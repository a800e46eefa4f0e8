/**
 * One audit line in Silk's iptables-logger format: the parsed kernel line (dataplane/kernel-log.ts)
 * enriched with the container it is about, taken from the rule set the agent enforces, written
 * as lager writes it. Pure.
 *
 * Silk's shape, kept key for key so operators' parsers keep working:
 *   {"timestamp":…, "level":"info", "source":"cfnetworking.iptables",
 *    "message":"cfnetworking.iptables.<egress|ingress>-<allowed|denied>",
 *    "data":{"packet":{…}, "source"|"destination":{container_id, app_guid, space_guid,
 *            organization_guid, host_ip, host_guid}}}
 * Egress lines carry the source container, c2c (ingress) lines the destination container, as in
 * Silk. cfnet adds, on ingress lines, the `source` it knows: the local container when the source
 * is on this cell, else the source app from the packet's c2c tag (the mark, via the rule set's
 * tag table). An address the rule set does not hold (a container deleted since) gives the handle
 * the kernel line names and empty GUIDs, as Silk gives empty fields.
 */
import type { AuditPacket, KernelLogEntry } from '../dataplane/kernel-log.js';
import type { CellContainer, CellRuleSet } from '../model/types.js';

export const AUDIT_SOURCE = 'cfnetworking.iptables';

/** Silk's `logging.format.timestamp`: lager's RFC 3339 form, or its older epoch-seconds form. */
export const AUDIT_TIMESTAMP_FORMATS = ['rfc3339', 'deprecated'] as const;
export type AuditTimestampFormat = (typeof AUDIT_TIMESTAMP_FORMATS)[number];

/** A container as Silk's lines describe it (field names and order are Silk's). */
export interface AuditContainer {
  container_id: string;
  app_guid: string;
  space_guid: string;
  organization_guid: string;
  host_ip: string;
  host_guid: string;
}

/** The cell this agent runs on: Silk's host_ip (BOSH spec.ip) and host_guid (BOSH spec.id). */
export interface AuditHost {
  ip: string;
  guid: string;
}

/** Who is who on this cell, by address and by c2c tag. */
export interface AuditDirectory {
  byIp(ip: string): CellContainer | undefined;
  /** The app whose c2c tag is `tag` (16 bits), undefined when no app of the tag table has it. */
  appOfTag(tag: number): string | undefined;
}

const EMPTY: AuditDirectory = { byIp: () => undefined, appOfTag: () => undefined };

/** The directory of a rule set (its containers, CNI-time ones included, and its tag table). */
export function directoryOf(rs: CellRuleSet | null, tags?: Record<string, number>): AuditDirectory {
  if (!rs) return EMPTY;
  const byIp = new Map<string, CellContainer>();
  for (const c of rs.containers) byIp.set(c.ip, c);
  let byTag: Map<number, string> | null = null; // built on the first c2c line only
  const table = tags ?? rs.tags ?? {};
  return {
    byIp: (ip) => byIp.get(ip),
    appOfTag: (tag) => {
      if (!byTag) {
        byTag = new Map();
        for (const [app, t] of Object.entries(table)) byTag.set(t, app);
      }
      return byTag.get(tag);
    },
  };
}

function described(c: CellContainer, host: AuditHost): AuditContainer {
  return {
    container_id: c.handle,
    app_guid: c.appGuid,
    space_guid: c.spaceGuid,
    organization_guid: c.orgGuid,
    host_ip: host.ip,
    host_guid: host.guid,
  };
}

function unknown(handle: string, host: AuditHost, appGuid = ''): AuditContainer {
  return {
    container_id: handle,
    app_guid: appGuid,
    space_guid: '',
    organization_guid: '',
    host_ip: host.ip,
    host_guid: host.guid,
  };
}

/** The c2c tag a mark carries (its low 16 bits; the high half is cfnet's own bits), or null. */
function tagOfMark(mark: string): number | null {
  if (!/^0x[0-9a-fA-F]{1,8}$/.test(mark)) return null;
  const tag = Number.parseInt(mark.slice(2), 16) & 0xffff;
  return tag === 0 ? null : tag;
}

export interface AuditRecord {
  message: string;
  data: { destination?: AuditContainer; packet: AuditPacket; source?: AuditContainer };
}

/** The enriched record of one kernel line. */
export function auditRecord(entry: KernelLogEntry, dir: AuditDirectory, host: AuditHost): AuditRecord {
  const p = entry.packet;
  const message = `${AUDIT_SOURCE}.${p.direction}-${p.allowed ? 'allowed' : 'denied'}`;
  // the container the prefix names: the source of egress, the destination of c2c
  const keyIp = p.direction === 'ingress' ? p.dst_ip : p.src_ip;
  const found = dir.byIp(keyIp);
  // an address reused since the packet was logged names another container: the prefix decides
  const keyed = found?.handle.startsWith(entry.handle) ? described(found, host) : unknown(entry.handle, host);
  if (p.direction === 'egress') return { message, data: { packet: p, source: keyed } };
  const data: AuditRecord['data'] = { destination: keyed, packet: p };
  const local = dir.byIp(p.src_ip);
  if (local) {
    data.source = described(local, host);
  } else {
    const tag = tagOfMark(p.mark);
    const app = tag === null ? undefined : dir.appOfTag(tag);
    if (app !== undefined) data.source = { ...unknown('', host, app), host_ip: '', host_guid: '' };
  }
  return { message, data };
}

/** Lager's RFC 3339 time: UTC, always nine fraction digits. */
function rfc3339(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000000Z');
}

/** Lager's older time: seconds since the epoch with nine fraction digits, as a string. */
function epoch(ms: number): string {
  const whole = Math.floor(ms / 1000);
  return `${whole}.${String(Math.round((ms - whole * 1000) * 1e6)).padStart(9, '0')}`;
}

/** The JSON line (without newline) lager would write for `rec` at `ms`. */
export function formatAuditLine(rec: AuditRecord, format: AuditTimestampFormat, ms: number): string {
  if (format === 'deprecated') {
    return JSON.stringify({
      timestamp: epoch(ms),
      source: AUDIT_SOURCE,
      message: rec.message,
      log_level: 1,
      data: rec.data,
    });
  }
  return JSON.stringify({
    timestamp: rfc3339(ms),
    level: 'info',
    source: AUDIT_SOURCE,
    message: rec.message,
    data: rec.data,
  });
}
