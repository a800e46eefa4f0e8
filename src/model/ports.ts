/**
 * Port lists as CF writes them, turned into sorted, merged `PortRange`s.
 *
 * CAPI's rule `ports` string (`TransportRuleValidator.validate_port`, used by v2 and v3):
 * - only digits, ASCII whitespace, `-` and `,`;
 * - either one range `a-b` with a < b (`"80-80"` is rejected), or a comma list of single ports;
 *   the two forms do not mix (`"80,4000-5000"` is rejected);
 * - whitespace around numbers, commas and `-` is accepted (`" 80 , 443 "`, `"4000 - 5000"`);
 * - ports are 1..65535;
 * - like Ruby's `String#split`, trailing empty items are dropped, so CAPI accepts (and stores)
 *   `"80,"`; we accept it too. Empty items elsewhere (`"80,,443"`, `",80"`) are rejected.
 */
import { ValidationError } from '../lib/errors.js';
import type { PortRange } from './types.js';

export const MIN_PORT = 1;
export const MAX_PORT = 65535;

const WS = '[ \\t\\r\\n\\f\\v]';
const ALLOWED_CHARS = /^[0-9 \t\r\n\f\v,-]*$/;
const RANGE = new RegExp(`^${WS}*(\\d+)${WS}*-${WS}*(\\d+)${WS}*$`);
const SINGLE = new RegExp(`^${WS}*(\\d+)${WS}*$`);

function checkPort(n: number, field: string, text: unknown, min = MIN_PORT): void {
  if (!Number.isInteger(n) || n < min || n > MAX_PORT) {
    throw new ValidationError(field, text, `port ${n} is out of range ${min}..${MAX_PORT}`);
  }
}

/** Parse a CAPI `ports` string. Throws ValidationError naming `field`. */
export function parsePorts(text: string, field = 'ports'): PortRange[] {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string');
  if (!ALLOWED_CHARS.test(text)) {
    throw new ValidationError(field, text, 'ports may contain only digits, ",", "-" and whitespace');
  }
  const range = RANGE.exec(text);
  if (range) {
    const start = Number(range[1]);
    const end = Number(range[2]);
    checkPort(start, field, text);
    checkPort(end, field, text);
    if (start >= end)
      throw new ValidationError(field, text, 'start of a port range must be lower than its end');
    return [{ start, end }];
  }
  const items = text.split(',');
  while (items.length > 0 && items[items.length - 1] === '') items.pop();
  if (items.length === 0) throw new ValidationError(field, text, 'no ports given');
  const ranges: PortRange[] = [];
  for (const item of items) {
    const m = SINGLE.exec(item);
    if (!m) {
      throw new ValidationError(
        field,
        text,
        'must be a single port, a comma-separated list of ports, or one range "start-end"',
      );
    }
    const p = Number(m[1]);
    checkPort(p, field, text);
    ranges.push({ start: p, end: p });
  }
  return mergePortRanges(ranges);
}

/**
 * Validate a `{start, end}` object (policy server, BBS `port_range`, Garden). start <= end.
 * `min` is 1 for CF sources; Garden allows 0.
 */
export function parsePortRangeObject(value: unknown, field = 'ports', min = MIN_PORT): PortRange {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ValidationError(field, value, 'must be an object {start, end}');
  }
  const { start, end } = value as { start?: unknown; end?: unknown };
  for (const [name, v] of [
    ['start', start],
    ['end', end],
  ] as const) {
    if (typeof v !== 'number' || !Number.isInteger(v)) {
      throw new ValidationError(`${field}.${name}`, v, 'must be an integer');
    }
    checkPort(v, `${field}.${name}`, v, min);
  }
  if ((start as number) > (end as number)) {
    throw new ValidationError(field, value, 'start of a port range must not be greater than its end');
  }
  return { start: start as number, end: end as number };
}

/** Sort and merge ranges that overlap or touch. Returns new objects. */
export function mergePortRanges(ranges: readonly PortRange[]): PortRange[] {
  const sorted = ranges
    .map((r) => ({ start: r.start, end: r.end }))
    .sort((a, b) => a.start - b.start || a.end - b.end);
  const out: PortRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end + 1) {
      if (r.end > last.end) last.end = r.end;
    } else {
      out.push(r);
    }
  }
  return out;
}

export function portInRanges(port: number, ranges: readonly PortRange[]): boolean {
  return ranges.some((r) => port >= r.start && port <= r.end);
}

/** `80,443,4000-5000` */
export function portRangesToString(ranges: readonly PortRange[]): string {
  return ranges.map((r) => (r.start === r.end ? String(r.start) : `${r.start}-${r.end}`)).join(',');
}
