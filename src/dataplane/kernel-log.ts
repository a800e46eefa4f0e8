/**
 * Parses the kernel log lines cfnet's log chains produce (desired.ts `logPrefix`: `OK_<handle>`,
 * `DENY_<handle>`, `DENY_C2C_<handle>`, `OK_C2C_<handle>`, `DENY_ORL_<handle>` (a new connection over
 * the outbound connection limit, refused or, in dry run, only logged), then the kernel's `IN=… OUT=… SRC=… DST=…` packet
 * fields) into what Silk's iptables-logger reports of a packet. Pure: the agent's audit log
 * (src/agent/audit-log.ts) feeds it lines from /dev/kmsg or a syslog file.
 *
 * Accepted line shapes, the packet text being the same in all three:
 *  - /dev/kmsg records:      `4,1234,56789012,-;DENY_<handle> IN=… `
 *  - syslog (kern.log):      `2026-12-07T06:32:18.123+00:00 cell kernel: [5678.9] DENY_<handle> IN=…`
 *  - dmesg:                  `[ 5678.901234] DENY_<handle> IN=…`
 * A line is cfnet's only when one of the four prefixes, a handle and ` IN=` start a word: any
 * other kernel message (or another tool's log prefix) is not parsed.
 */

/**
 * The log prefixes cfnet writes: Silk's, except that an allowed c2c connection is `OK_C2C_<destination
 * handle>` (Silk: `OK_<tag>_<destination app>`; the mark carries the tag). The longer forms are tried
 * first.
 */
export type AuditPrefixKind = 'OK_' | 'OK_C2C_' | 'DENY_' | 'DENY_C2C_' | 'DENY_ORL_';

/** One packet as Silk's iptables-logger reports it (its `packet` object, same keys and order). */
export interface AuditPacket {
  /** `ingress` for c2c (OK_C2C_, DENY_C2C_: keyed by the destination), `egress` for the others. */
  direction: 'ingress' | 'egress';
  allowed: boolean;
  src_ip: string;
  dst_ip: string;
  /** 0 when the protocol has no ports (ICMP). */
  src_port: number;
  dst_port: number;
  /** As the kernel prints it: TCP, UDP, ICMP, or the protocol number. */
  protocol: string;
  /** The packet mark as printed (`0x2`), '' when the packet had none. */
  mark: string;
  icmp_type: number;
  icmp_code: number;
}

export interface KernelLogEntry {
  kind: AuditPrefixKind;
  /** The handle as the prefix carries it (cut to the prefix's length limit for very long handles). */
  handle: string;
  packet: AuditPacket;
}

// The handle class is the dataplane's handle rule (identifiers.ts) without its length bound: a
// prefix may cut a handle, never lengthen it.
const PREFIX = /(?:^|[\s;\]])(OK_C2C|OK|DENY_C2C|DENY_ORL|DENY)_([A-Za-z0-9][A-Za-z0-9_.:-]*) IN=/;

/** Cheap test before the regular expression: most kernel lines are not packet logs. */
export function mayBeAuditLine(line: string): boolean {
  return line.includes(' IN=') && (line.includes('OK_') || line.includes('DENY_'));
}

function int(text: string | undefined): number {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return 0;
  return Number(text);
}

/** The entry of one kernel log line, null when the line is not one of cfnet's packet logs. */
export function parseKernelLogLine(line: string): KernelLogEntry | null {
  if (!mayBeAuditLine(line)) return null;
  const nl = line.indexOf('\n');
  const text = nl >= 0 ? line.slice(0, nl) : line; // a kmsg record's dictionary lines follow
  const m = PREFIX.exec(text);
  if (!m) return null;
  const kind = `${m[1]}_` as AuditPrefixKind;
  const fields = new Map<string, string>();
  // the first value of a key wins: UDP repeats LEN=, ICMP repeats ID= (Silk's parser does the same)
  for (const word of text.slice(m.index + m[0].length - 3).split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq <= 0) continue;
    const key = word.slice(0, eq);
    if (!fields.has(key)) fields.set(key, word.slice(eq + 1));
  }
  const src = fields.get('SRC');
  const dst = fields.get('DST');
  if (!src || !dst) return null;
  return {
    kind,
    handle: m[2]!,
    packet: {
      direction: kind === 'DENY_C2C_' || kind === 'OK_C2C_' ? 'ingress' : 'egress',
      allowed: kind === 'OK_' || kind === 'OK_C2C_',
      src_ip: src,
      dst_ip: dst,
      src_port: int(fields.get('SPT')),
      dst_port: int(fields.get('DPT')),
      protocol: fields.get('PROTO') ?? '',
      mark: fields.get('MARK') ?? '',
      icmp_type: int(fields.get('TYPE')),
      icmp_code: int(fields.get('CODE')),
    },
  };
}
