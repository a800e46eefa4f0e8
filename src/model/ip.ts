/**
 * IP addresses, CIDRs and ranges as CF writes them in ASG destinations, turned into sorted, merged
 * `IpRange`s (inclusive, canonical text). Pure functions; all arithmetic in BigInt.
 *
 * Accepted syntax (CAPI v3 `SecurityGroupRuleValidator` / `RuleValidator` semantics):
 * - IPv4: dotted quad of decimal octets 0..255. A leading zero in an octet ("10.01.0.1") is
 *   rejected, as CAPI v3 does (it would be octal to some parsers).
 * - IPv6: RFC 4291 text, `::` at most once, optional trailing dotted IPv4; no zone (`%eth0`).
 *   Canonical output is RFC 5952 (lower case, longest zero run compressed), always in hex groups
 *   (an IPv4-mapped address prints as `::ffff:a00:1`).
 * - CIDR `addr/len`: len 0..32 (v4) or 0..128 (v6). Host bits may be set ("10.0.0.1/24"): CAPI
 *   accepts that, and so do we; the CIDR means its whole network (10.0.0.0-10.0.0.255).
 * - Range `a-b`: two plain addresses of the same family, a <= b (a == b allowed); no CIDR inside.
 * - Destination list: items separated by `,`, no whitespace anywhere, no empty item.
 *
 * Longer than ~400 lines: the one IP arithmetic module (parsing, CIDRs, ranges, merging, IPv4
 * numbers), kept whole so nothing else writes its own.
 */
import { ValidationError } from '../lib/errors.js';
import { validationReason } from './errors.js';
import type { IpFamily, IpRange } from './types.js';

export interface ParsedIp {
  family: IpFamily;
  value: bigint;
  /** Canonical text of the address. */
  text: string;
}

export interface ParsedCidr {
  family: IpFamily;
  /** Canonical network address (host bits cleared). */
  network: string;
  prefix: number;
}

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;
const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

export function familyMax(family: IpFamily): bigint {
  return family === 4 ? V4_MAX : V6_MAX;
}

/** Every address of a family as one range (0.0.0.0/0 or ::/0). */
export function allAddresses(family: IpFamily): IpRange {
  return { family, start: bigIntToIp(0n, family), end: bigIntToIp(familyMax(family), family) };
}

// Bounded memo of text → numeric value: rule sets re-parse the same few thousand addresses often.
const cache = new Map<string, ParsedIp>();
const CACHE_LIMIT = 50_000;

function parseV4(text: string): bigint | string {
  const parts = text.split('.');
  if (parts.length !== 4) return 'not a dotted-quad IPv4 address';
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return 'not a dotted-quad IPv4 address';
    if (part.length > 1 && part.startsWith('0')) return 'leading zeros in IPv4 octets are not allowed';
    const n = Number(part);
    if (n > 255) return 'IPv4 octet out of range 0..255';
    value = (value << 8n) | BigInt(n);
  }
  return value;
}

function parseV6(text: string): bigint | string {
  if (text.includes('%')) return 'IPv6 zone identifiers are not allowed';
  const halves = text.split('::');
  if (halves.length > 2) return '"::" may appear only once';
  const groups: number[][] = [];
  for (let h = 0; h < halves.length; h++) {
    const half = halves[h]!;
    const out: number[] = [];
    const items = half === '' ? [] : half.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      const lastOfAddress = h === halves.length - 1 && i === items.length - 1;
      if (lastOfAddress && item.includes('.')) {
        const v4 = parseV4(item);
        if (typeof v4 === 'string') return `embedded IPv4 part: ${v4}`;
        out.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return 'not a valid IPv6 address';
      out.push(Number.parseInt(item, 16));
    }
    groups.push(out);
  }
  let all: number[];
  if (groups.length === 1) {
    all = groups[0]!;
    if (all.length !== 8) return 'an IPv6 address needs 8 groups or "::"';
  } else {
    const count = groups[0]!.length + groups[1]!.length;
    if (count > 7) return 'too many groups around "::"';
    all = [...groups[0]!, ...new Array<number>(8 - count).fill(0), ...groups[1]!];
  }
  let value = 0n;
  for (const g of all) value = (value << 16n) | BigInt(g);
  return value;
}

/** Parse one plain address (no prefix, no range). Throws ValidationError naming `field`. */
export function parseIp(text: string, field = 'ip'): ParsedIp {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string');
  const hit = cache.get(text);
  if (hit) return hit;
  let result: bigint | string;
  let family: IpFamily;
  if (text.includes(':')) {
    family = 6;
    result = parseV6(text);
  } else if (text.includes('.')) {
    family = 4;
    result = parseV4(text);
  } else {
    throw new ValidationError(field, text, 'not an IP address');
  }
  if (typeof result === 'string') throw new ValidationError(field, text, result);
  const parsed: ParsedIp = Object.freeze({ family, value: result, text: bigIntToIp(result, family) });
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(text, parsed);
  return parsed;
}

/**
 * The value of `text` when it is an IPv4 address exactly as `parseIp` would print it (dotted quad,
 * octets 0..255, no leading zeros), else -1: the same acceptance as `parseIp` for IPv4, without
 * BigInt, the memo or intermediate strings. Rule computation checks and orders every container
 * address of a cell on every reconcile; at 250,000 addresses the memo cannot hold them all and the
 * BigInt path cost ~3 µs each.
 */
export function canonicalIpv4Value(text: string): number {
  const n = text.length;
  if (n < 7 || n > 15) return -1;
  let dots = 0;
  let octet = 0;
  let digits = 0;
  let value = 0;
  for (let i = 0; i <= n; i++) {
    const c = i === n ? 46 : text.charCodeAt(i);
    if (c === 46) {
      // '.' (or the end): close the octet
      if (digits === 0 || octet > 255) return -1;
      if (i < n && ++dots > 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return -1; // a leading zero
      if (++digits > 3) return -1;
      octet = octet * 10 + (c - 48);
    } else {
      return -1;
    }
  }
  return dots === 3 ? value : -1;
}

/** True when `text` is an IPv4 address in the canonical form (see {@link canonicalIpv4Value}). */
export function isCanonicalIpv4(text: string): boolean {
  return canonicalIpv4Value(text) >= 0;
}

export function isIp(text: string): boolean {
  try {
    parseIp(text);
    return true;
  } catch {
    return false;
  }
}

export function ipFamily(ip: string): IpFamily {
  return parseIp(ip).family;
}

export function ipToBigInt(ip: string): bigint {
  return parseIp(ip).value;
}

/** Canonical text of an address: dotted quad, or RFC 5952 IPv6. */
export function bigIntToIp(value: bigint, family: IpFamily): string {
  if (value < 0n || value > familyMax(family)) {
    throw new RangeError(`value ${value} is not an IPv${family} address`);
  }
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) groups.push(Number((value >> s) & 0xffffn));
  // Longest run of >= 2 zero groups (first one on a tie) becomes "::".
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Canonical text of any valid address text. */
export function canonicalIp(text: string, field = 'ip'): string {
  const { family, value } = parseIp(text, field);
  return bigIntToIp(value, family);
}

/** Parse `addr/len`; host bits are allowed and cleared. A bare address is rejected. */
export function parseCidr(text: string, field = 'cidr'): ParsedCidr {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string');
  const parts = text.split('/');
  if (parts.length !== 2) throw new ValidationError(field, text, 'not a CIDR (expected address/prefix)');
  const [addr, len] = parts as [string, string];
  let ip: ParsedIp;
  try {
    ip = parseIp(addr, field);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(field, text, validationReason(err));
    throw err;
  }
  if (!/^\d{1,3}$/.test(len))
    throw new ValidationError(field, text, 'prefix length must be a decimal number');
  const prefix = Number(len);
  const bits = BITS[ip.family];
  if (prefix > bits) {
    throw new ValidationError(field, text, `prefix length ${prefix} exceeds ${bits} for IPv${ip.family}`);
  }
  const hostBits = BigInt(bits - prefix);
  const network = (ip.value >> hostBits) << hostBits;
  return { family: ip.family, network: bigIntToIp(network, ip.family), prefix };
}

/** The inclusive range a CIDR covers (host bits ignored: "10.0.0.1/24" → 10.0.0.0-10.0.0.255). */
export function cidrToRange(cidr: string, field = 'cidr'): IpRange {
  const { family, network, prefix } = parseCidr(cidr, field);
  const start = ipToBigInt(network);
  const size = 1n << BigInt(BITS[family] - prefix);
  return { family, start: network, end: bigIntToIp(start + size - 1n, family) };
}

/** Canonical `network/prefix` text of a CIDR. */
export function canonicalCidr(cidr: string, field = 'cidr'): string {
  const { network, prefix } = parseCidr(cidr, field);
  return `${network}/${prefix}`;
}

/** Parse `a-b` (plain addresses, same family, a <= b). */
export function parseIpRange(text: string, field = 'range'): IpRange {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string');
  const parts = text.split('-');
  if (parts.length !== 2) throw new ValidationError(field, text, 'a range must be exactly "start-end"');
  if (parts.some((p) => p.includes('/'))) {
    throw new ValidationError(field, text, 'a CIDR is not allowed inside a range');
  }
  const ends: ParsedIp[] = [];
  for (const p of parts) {
    try {
      ends.push(parseIp(p, field));
    } catch (err) {
      if (err instanceof ValidationError)
        throw new ValidationError(field, text, `range endpoint: ${validationReason(err)}`);
      throw err;
    }
  }
  const [a, b] = ends as [ParsedIp, ParsedIp];
  if (a.family !== b.family)
    throw new ValidationError(field, text, 'range endpoints are of different IP families');
  if (a.value > b.value) throw new ValidationError(field, text, 'start of the range is greater than its end');
  return { family: a.family, start: bigIntToIp(a.value, a.family), end: bigIntToIp(b.value, b.family) };
}

/** One destination item: an address, a CIDR or a range. */
export function parseDestinationItem(text: string, field = 'destination'): IpRange {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string');
  if (text === '') throw new ValidationError(field, text, 'empty destination');
  if (/\s/.test(text)) throw new ValidationError(field, text, 'destination must not contain whitespace');
  if (text.includes('-')) return parseIpRange(text, field);
  if (text.includes('/')) return cidrToRange(text, field);
  const ip = parseIp(text, field);
  const canon = bigIntToIp(ip.value, ip.family);
  return { family: ip.family, start: canon, end: canon };
}

export interface DestinationOptions {
  /** Allow a comma-separated list (CAPI `enable_comma_delimited_destinations`). Default true. */
  allowList?: boolean;
  /** Most items a list may hold (CAPI v3 caps at 6000). Default 6000. */
  maxItems?: number;
}

/**
 * Parse a destination string (possibly a comma-separated list) into sorted, merged ranges.
 * Errors name `field` and the offending item.
 */
export function parseDestinations(
  text: string,
  field = 'destination',
  opts: DestinationOptions = {},
): IpRange[] {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string');
  if (text === '') throw new ValidationError(field, text, 'destination must not be empty');
  if (/\s/.test(text)) throw new ValidationError(field, text, 'destination must not contain whitespace');
  const items = text.split(',');
  if (items.length > 1 && opts.allowList === false) {
    throw new ValidationError(field, text, 'comma-separated destinations are not enabled');
  }
  const max = opts.maxItems ?? 6000;
  if (items.length > max) {
    throw new ValidationError(
      field,
      `${items.length} items`,
      `a destination list may hold at most ${max} items`,
    );
  }
  const ranges: IpRange[] = [];
  for (const item of items) {
    if (item === '') throw new ValidationError(field, text, 'empty item in destination list');
    ranges.push(parseDestinationItem(item, field));
  }
  return mergeRanges(ranges);
}

interface NumRange {
  family: IpFamily;
  start: bigint;
  end: bigint;
  startText: string;
  endText: string;
}

function toNum(r: IpRange): NumRange {
  const s = parseIp(r.start);
  const e = parseIp(r.end);
  return { family: s.family, start: s.value, end: e.value, startText: s.text, endText: e.text };
}

/** Order: IPv4 before IPv6, then by start, then by end. */
export function compareIpRanges(a: IpRange, b: IpRange): number {
  if (a.family !== b.family) return a.family - b.family;
  const x = toNum(a);
  const y = toNum(b);
  if (x.start !== y.start) return x.start < y.start ? -1 : 1;
  if (x.end !== y.end) return x.end < y.end ? -1 : 1;
  return 0;
}

/** Sort and merge ranges that overlap or touch (same family only). Returns new canonical ranges. */
export function mergeRanges(ranges: readonly IpRange[]): IpRange[] {
  const nums = ranges.map(toNum);
  nums.sort((a, b) =>
    a.family !== b.family ? a.family - b.family : a.start < b.start ? -1 : a.start > b.start ? 1 : 0,
  );
  const out: NumRange[] = [];
  for (const r of nums) {
    const last = out[out.length - 1];
    if (last && last.family === r.family && r.start <= last.end + 1n) {
      if (r.end > last.end) {
        last.end = r.end;
        last.endText = r.endText;
      }
    } else {
      out.push({ ...r });
    }
  }
  // Every merged bound is some input bound, so its canonical text is already known.
  return out.map((r) => ({ family: r.family, start: r.startText, end: r.endText }));
}

/** Minimal list of CIDRs whose union is exactly `range`. */
export function rangeToCidrs(range: IpRange): string[] {
  const { family, start, end } = toNum(range);
  if (start > end) throw new RangeError(`range ${range.start}-${range.end} is reversed`);
  const bits = BITS[family];
  const out: string[] = [];
  let cur = start;
  while (cur <= end) {
    // Largest aligned block starting at cur ...
    let size = cur === 0n ? bits : 0;
    if (cur !== 0n) while (size < bits && ((cur >> BigInt(size)) & 1n) === 0n) size++;
    // ... that does not pass the end.
    while (size > 0 && cur + (1n << BigInt(size)) - 1n > end) size--;
    out.push(`${bigIntToIp(cur, family)}/${bits - size}`);
    cur += 1n << BigInt(size);
  }
  return out;
}

/** `a`, `a/len` when the range is exactly one CIDR, otherwise `a-b`. */
export function rangeToString(range: IpRange): string {
  if (range.start === range.end) return range.start;
  const cidrs = rangeToCidrs(range);
  return cidrs.length === 1 ? cidrs[0]! : `${range.start}-${range.end}`;
}

export function ipInRange(ip: string, range: IpRange): boolean {
  const p = parseIp(ip);
  if (p.family !== range.family) return false;
  const r = toNum(range);
  return p.value >= r.start && p.value <= r.end;
}

export function rangesOverlap(a: IpRange, b: IpRange): boolean {
  if (a.family !== b.family) return false;
  const x = toNum(a);
  const y = toNum(b);
  return x.start <= y.end && y.start <= x.end;
}

/** True when every address of `inner` is in `outer`. */
export function rangeContains(outer: IpRange, inner: IpRange): boolean {
  if (outer.family !== inner.family) return false;
  const o = toNum(outer);
  const i = toNum(inner);
  return o.start <= i.start && i.end <= o.end;
}

/** Number of addresses in a range. */
export function rangeSize(range: IpRange): bigint {
  const r = toNum(range);
  return r.end - r.start + 1n;
}

/**
 * IPv4 as an unsigned 32-bit number, for subnet arithmetic on the data path (IPAM, overlay
 * leases, simulated address pools) where BigInt would be wasteful. No validation: callers pass
 * addresses they have validated (or generated); a malformed one gives NaN.
 */
export function ipv4ToInt(ip: string): number {
  const p = ip.split('.');
  if (p.length !== 4) return Number.NaN;
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

/** Dotted-quad text of an unsigned 32-bit number (the inverse of `ipv4ToInt`). */
export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
