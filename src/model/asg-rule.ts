/**
 * ASG (egress) rules from each place CF writes them, parsed into `EgressRule`:
 *
 * - CAPI v2/v3 rule JSON (`parseCapiRule`), with CAPI v3 `SecurityGroupRuleValidator` semantics:
 *   what CAPI v3 stores we accept, what it rejects we reject. Notably v3 *ignores* `type`/`code` on
 *   non-ICMP rules and `ports` on ICMP rules (they are stored but meaningless), while `ports` on
 *   `all` is rejected. `null` for an optional key means "absent" (as in v3).
 * - The policy server's internal `security_groups` rules (`parsePolicyServerRules`): a JSON string
 *   whose rules always carry all 7 keys; `ports:""` on non-tcp/udp rules is the Go zero value and is
 *   ignored, as are `type:0,code:0` on non-ICMP rules.
 * - BBS `SecurityGroupRule` as protobufjs produces it (`parseBbsRule`).
 * - Garden `NetOutRule` JSON, as in CNI `runtimeConfig.netOutRules` (`parseGardenNetOutRule`).
 *
 * All parsers are pure and throw `ValidationError` whose `field` is a path such as
 * `rules[2].ports` (list parsers) or `ports` (single rule, no `path` option).
 *
 * Longer than ~400 lines: three input formats (CAPI, BBS, Garden) parsed into one rule type, each
 * with its documented defaults and errors.
 */
import { ValidationError } from '../lib/errors.js';
import { allAddresses, bigIntToIp, mergeRanges, parseDestinations, parseIp, rangeToString } from './ip.js';
import { mergePortRanges, parsePortRangeObject, parsePorts } from './ports.js';
import type { EgressRule, IcmpMatch, IpFamily, IpRange, PortRange, Protocol } from './types.js';

export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'icmp', 'icmpv6', 'all'];
const CAPI_RULE_KEYS = ['protocol', 'destination', 'ports', 'type', 'code', 'log', 'description'] as const;

export interface RuleParseOptions {
  /** Path of the rule in the document, used as prefix of error fields (e.g. `rules[2]`). */
  path?: string;
  /** Accept keys CAPI v3 would reject with "unknown field(s)". Default false. */
  allowUnknownKeys?: boolean;
}

export interface RuleListOptions extends RuleParseOptions {
  /**
   * When set, an invalid rule is skipped and reported here instead of failing the whole list
   * (for consumers that must keep enforcing the valid rest).
   */
  onInvalid?: (err: ValidationError, index: number) => void;
}

/** `path.key`, or `key` at the top level. */
export function fieldPath(path: string | undefined, key: string): string {
  if (!path) return key;
  return key.startsWith('[') ? `${path}${key}` : `${path}.${key}`;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function absent(v: unknown): boolean {
  return v === undefined || v === null;
}

function parseProtocol(value: unknown, field: string): Protocol {
  if (absent(value)) throw new ValidationError(field, value, 'protocol is required');
  if (typeof value !== 'string' || !(PROTOCOLS as readonly string[]).includes(value)) {
    throw new ValidationError(field, value, `protocol must be one of ${PROTOCOLS.join(', ')}`);
  }
  return value as Protocol;
}

function parseIcmpValue(value: unknown, field: string, name: 'type' | 'code', protocol: string): number {
  if (absent(value)) throw new ValidationError(field, value, `${name} is required for protocol ${protocol}`);
  if (typeof value !== 'number' || !Number.isInteger(value) || value < -1 || value > 255) {
    throw new ValidationError(field, value, `${name} must be an integer between -1 and 255 (inclusive)`);
  }
  return value;
}

function parseLog(value: unknown, field: string): boolean {
  if (absent(value)) return false;
  if (typeof value !== 'boolean') throw new ValidationError(field, value, 'log must be a boolean');
  return value;
}

/** icmp needs IPv4 destinations, icmpv6 IPv6. */
function checkIcmpFamily(protocol: Protocol, destinations: IpRange[], field: string): void {
  const want: IpFamily | null = protocol === 'icmp' ? 4 : protocol === 'icmpv6' ? 6 : null;
  if (want === null) return;
  const bad = destinations.find((d) => d.family !== want);
  if (bad) {
    throw new ValidationError(
      field,
      rangeToString(bad),
      `${protocol} destinations must be IPv${want} addresses`,
    );
  }
}

function makeRule(
  protocol: Protocol,
  destinations: IpRange[],
  ports: PortRange[],
  icmp: IcmpMatch | undefined,
  log: boolean,
): EgressRule {
  const rule: EgressRule = { protocol, destinations, ports, log };
  if (icmp) rule.icmp = icmp;
  return rule;
}

/** One CAPI v2/v3 rule object (`{protocol, destination, ports?, type?, code?, log?, description?}`). */
export function parseCapiRule(obj: unknown, opts: RuleParseOptions = {}): EgressRule {
  const { path } = opts;
  const f = (k: string) => fieldPath(path, k);
  if (!isPlainObject(obj)) throw new ValidationError(path || 'rule', obj, 'a rule must be an object');

  if (!opts.allowUnknownKeys) {
    const unknown = Object.keys(obj).filter((k) => !(CAPI_RULE_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      throw new ValidationError(
        f(unknown[0]!),
        obj[unknown[0]!],
        `unknown field(s): ${JSON.stringify(unknown)}`,
      );
    }
  }

  const protocol = parseProtocol(obj.protocol, f('protocol'));

  if (absent(obj.destination))
    throw new ValidationError(f('destination'), obj.destination, 'destination is required');
  const destinations = parseDestinations(obj.destination as string, f('destination'));

  if (!absent(obj.description) && typeof obj.description !== 'string') {
    throw new ValidationError(f('description'), obj.description, 'description must be a string');
  }
  const log = parseLog(obj.log, f('log'));

  let ports: PortRange[] = [];
  let icmp: IcmpMatch | undefined;
  switch (protocol) {
    case 'tcp':
    case 'udp':
      if (absent(obj.ports)) {
        throw new ValidationError(f('ports'), obj.ports, 'ports are required for protocols tcp and udp');
      }
      ports = parsePorts(obj.ports as string, f('ports'));
      break;
    case 'icmp':
    case 'icmpv6':
      icmp = {
        type: parseIcmpValue(obj.type, f('type'), 'type', protocol),
        code: parseIcmpValue(obj.code, f('code'), 'code', protocol),
      };
      break;
    case 'all':
      if (!absent(obj.ports)) {
        throw new ValidationError(f('ports'), obj.ports, 'ports are not allowed for protocol all');
      }
      break;
  }
  checkIcmpFamily(protocol, destinations, f('destination'));
  return makeRule(protocol, destinations, ports, icmp, log);
}

function parseList<T>(
  list: unknown,
  opts: RuleListOptions,
  defaultPath: string,
  one: (item: unknown, o: RuleParseOptions) => T,
): T[] {
  const base = opts.path ?? defaultPath;
  if (!Array.isArray(list)) throw new ValidationError(base, list, 'rules must be an array');
  const out: T[] = [];
  list.forEach((item, i) => {
    try {
      out.push(one(item, { ...opts, path: `${base}[${i}]` }));
    } catch (err) {
      if (err instanceof ValidationError && opts.onInvalid) opts.onInvalid(err, i);
      else throw err;
    }
  });
  return out;
}

/** A CAPI rules array; one EgressRule per input rule, in input order. Errors name `rules[i].…`. */
export function parseCapiRules(list: unknown, opts: RuleListOptions = {}): EgressRule[] {
  return parseList(list, opts, 'rules', parseCapiRule);
}

/** One rule as the policy server returns it (all 7 keys present; Go zero values ignored). */
export function parsePolicyServerRule(obj: unknown, opts: RuleParseOptions = {}): EgressRule {
  if (!isPlainObject(obj)) return parseCapiRule(obj, opts);
  const copy: Record<string, unknown> = { ...obj };
  const protocol = copy.protocol;
  if (protocol !== 'tcp' && protocol !== 'udp' && copy.ports === '') delete copy.ports;
  if (protocol !== 'icmp' && protocol !== 'icmpv6') {
    delete copy.type;
    delete copy.code;
  }
  return parseCapiRule(copy, { allowUnknownKeys: true, ...opts });
}

/**
 * The policy server's `rules` field: a JSON-encoded string of a rules array. `"null"` and `""`
 * (a Go nil slice / an empty column) mean no rules.
 */
export function parsePolicyServerRules(json: unknown, opts: RuleListOptions = {}): EgressRule[] {
  const base = opts.path ?? 'rules';
  if (typeof json !== 'string') throw new ValidationError(base, json, 'rules must be a JSON-encoded string');
  if (json.trim() === '') return [];
  let decoded: unknown;
  try {
    decoded = JSON.parse(json);
  } catch (err) {
    const preview = json.length > 80 ? `${json.slice(0, 80)}…` : json;
    throw new ValidationError(base, preview, `rules is not valid JSON (${(err as Error).message})`);
  }
  if (decoded === null) return [];
  return parseList(decoded, opts, 'rules', parsePolicyServerRule);
}

/** BBS `SecurityGroupRule` as protobufjs decodes it (camelCase; snake_case keys also accepted). */
export interface BbsSecurityGroupRule {
  protocol?: string | null;
  destinations?: string[] | null;
  ports?: number[] | null;
  portRange?: { start?: number | null; end?: number | null } | null;
  port_range?: { start?: number | null; end?: number | null } | null;
  icmpInfo?: { type?: number | null; code?: number | null } | null;
  icmp_info?: { type?: number | null; code?: number | null } | null;
  log?: boolean | null;
  annotations?: string[] | null;
}

/**
 * One BBS SecurityGroupRule. Each `destinations` item may itself be comma-separated. tcp/udp need
 * exactly one of `ports` (non-empty) or `port_range` (1..65535, start <= end); `icmp_info` is required
 * for icmp and forbidden for tcp/udp/all. Tolerated CC gap: icmpv6 without `icmp_info` means any
 * type and code. An empty `ports` array counts as absent (proto3 has no empty vs missing).
 */
export function parseBbsRule(rule: unknown, opts: Pick<RuleParseOptions, 'path'> = {}): EgressRule {
  const { path } = opts;
  const f = (k: string) => fieldPath(path, k);
  if (!isPlainObject(rule)) throw new ValidationError(path || 'rule', rule, 'a rule must be an object');
  const r = rule as BbsSecurityGroupRule & Record<string, unknown>;
  const protocol = parseProtocol(r.protocol, f('protocol'));

  if (!Array.isArray(r.destinations) || r.destinations.length === 0) {
    throw new ValidationError(f('destinations'), r.destinations, 'at least one destination is required');
  }
  const ranges: IpRange[] = [];
  r.destinations.forEach((d, i) => {
    ranges.push(...parseDestinations(d, f(`destinations[${i}]`), { maxItems: Number.POSITIVE_INFINITY }));
  });
  const destinations = mergeRanges(ranges);

  const portsKey = 'ports';
  // Name fields as the input spells them; protobufjs camelCase unless only snake_case is present.
  const rangeKey = absent(r.portRange) && !absent(r.port_range) ? 'port_range' : 'portRange';
  const icmpKey = absent(r.icmpInfo) && !absent(r.icmp_info) ? 'icmp_info' : 'icmpInfo';
  const rawPorts = r.ports;
  const rawRange = r.portRange ?? r.port_range;
  const rawIcmp = r.icmpInfo ?? r.icmp_info;
  const hasPorts = Array.isArray(rawPorts) ? rawPorts.length > 0 : !absent(rawPorts);
  const hasRange = !absent(rawRange);
  const hasIcmp = !absent(rawIcmp);

  let ports: PortRange[] = [];
  let icmp: IcmpMatch | undefined;
  if (protocol === 'tcp' || protocol === 'udp') {
    if (hasPorts && hasRange) {
      throw new ValidationError(f(portsKey), rawPorts, 'ports and port_range are mutually exclusive');
    }
    if (!hasPorts && !hasRange) {
      throw new ValidationError(
        f(portsKey),
        rawPorts,
        `ports or port_range is required for protocol ${protocol}`,
      );
    }
    if (hasIcmp)
      throw new ValidationError(f(icmpKey), rawIcmp, `icmp_info is not allowed for protocol ${protocol}`);
    if (hasRange) {
      ports = [parsePortRangeObject(rawRange, f(rangeKey), 1)];
    } else {
      if (!Array.isArray(rawPorts))
        throw new ValidationError(f(portsKey), rawPorts, 'ports must be an array');
      ports = mergePortRanges(
        rawPorts.map((p, i) => {
          if (typeof p !== 'number' || !Number.isInteger(p) || p < 1 || p > 65535) {
            throw new ValidationError(f(`${portsKey}[${i}]`), p, 'port must be an integer 1..65535');
          }
          return { start: p, end: p };
        }),
      );
    }
  } else {
    if (hasPorts)
      throw new ValidationError(f(portsKey), rawPorts, `ports are not allowed for protocol ${protocol}`);
    if (hasRange)
      throw new ValidationError(f(rangeKey), rawRange, `port_range is not allowed for protocol ${protocol}`);
    if (protocol === 'all') {
      if (hasIcmp)
        throw new ValidationError(f(icmpKey), rawIcmp, 'icmp_info is not allowed for protocol all');
    } else if (!hasIcmp) {
      if (protocol === 'icmp')
        throw new ValidationError(f(icmpKey), rawIcmp, 'icmp_info is required for protocol icmp');
      icmp = { type: -1, code: -1 };
    } else {
      if (!isPlainObject(rawIcmp))
        throw new ValidationError(f(icmpKey), rawIcmp, 'icmp_info must be an object');
      // proto3: an unset int32 decodes as 0.
      icmp = {
        type: parseIcmpValue(rawIcmp.type ?? 0, f(`${icmpKey}.type`), 'type', protocol),
        code: parseIcmpValue(rawIcmp.code ?? 0, f(`${icmpKey}.code`), 'code', protocol),
      };
    }
  }
  checkIcmpFamily(protocol, destinations, f('destinations'));
  return makeRule(protocol, destinations, ports, icmp, parseLog(r.log, f('log')));
}

/** A list of BBS rules (e.g. `DesiredLRP.egress_rules`). Errors name `egress_rules[i].…`. */
export function parseBbsRules(list: unknown, opts: RuleListOptions = {}): EgressRule[] {
  return parseList(list, opts, 'egress_rules', (item, o) => parseBbsRule(item, o));
}

const GARDEN_PROTOCOLS: Record<number, Protocol> = { 0: 'all', 1: 'tcp', 2: 'udp', 3: 'icmp', 4: 'icmpv6' };

/**
 * A Garden `NetOutRule` (JSON, every key omitempty):
 * `{"protocol":0 all|1 tcp|2 udp|3 icmp|4 icmpv6, "networks":[{"start","end"}],
 *   "ports":[{"start","end"}], "icmps":{"type","code"}, "log":bool}`.
 * - protocol missing = 0 = all; 4 (icmpv6) follows Garden's iota order after icmp.
 * - networks missing/empty = all addresses: 0.0.0.0/0 and ::/0, or only the protocol's family for
 *   icmp (IPv4) / icmpv6 (IPv6). Each network needs start and end of one family, start <= end.
 * - ports missing/empty = all ports (0-65535) for tcp/udp; a missing start or end is 0 (omitempty).
 *   Ports on icmp/all are rejected (Silk's converter drops such rules instead of guessing).
 * - icmps missing = any type and code; `type` missing = 0 (omitempty); `code` missing = any code.
 *   Diego converts CAPI's -1 ("any") to uint8 255, so 255 here means any (as iptables' type 255).
 *   `icmps` on a non-ICMP rule is ignored, as Garden documents.
 * Note: Silk's static-ASG converter instead skips rules without networks, tcp/udp rules without
 * ports and ICMP rules without a code; we follow Garden's documented defaults.
 */
export function parseGardenNetOutRule(obj: unknown, opts: Pick<RuleParseOptions, 'path'> = {}): EgressRule {
  const { path } = opts;
  const f = (k: string) => fieldPath(path, k);
  if (!isPlainObject(obj)) throw new ValidationError(path || 'rule', obj, 'a rule must be an object');

  const rawProto = obj.protocol ?? 0;
  if (typeof rawProto !== 'number' || !(rawProto in GARDEN_PROTOCOLS)) {
    throw new ValidationError(
      f('protocol'),
      obj.protocol,
      'protocol must be 0 (all), 1 (tcp), 2 (udp), 3 (icmp) or 4 (icmpv6)',
    );
  }
  const protocol = GARDEN_PROTOCOLS[rawProto]!;

  let destinations: IpRange[];
  const networks = obj.networks;
  if (absent(networks) || (Array.isArray(networks) && networks.length === 0)) {
    if (protocol === 'icmp') destinations = [allAddresses(4)];
    else if (protocol === 'icmpv6') destinations = [allAddresses(6)];
    else destinations = [allAddresses(4), allAddresses(6)];
  } else {
    if (!Array.isArray(networks))
      throw new ValidationError(f('networks'), networks, 'networks must be an array');
    destinations = mergeRanges(
      networks.map((n, i) => {
        const nf = f(`networks[${i}]`);
        if (!isPlainObject(n)) throw new ValidationError(nf, n, 'a network must be an object {start, end}');
        if (typeof n.start !== 'string' || n.start === '')
          throw new ValidationError(`${nf}.start`, n.start, 'start is required');
        if (typeof n.end !== 'string' || n.end === '')
          throw new ValidationError(`${nf}.end`, n.end, 'end is required');
        const s = parseIp(n.start, `${nf}.start`);
        const e = parseIp(n.end, `${nf}.end`);
        if (s.family !== e.family)
          throw new ValidationError(nf, n, 'start and end are of different IP families');
        if (s.value > e.value) throw new ValidationError(nf, n, 'start of the range is greater than its end');
        return { family: s.family, start: bigIntToIp(s.value, s.family), end: bigIntToIp(e.value, e.family) };
      }),
    );
  }

  const rawPorts = obj.ports;
  const hasPorts = Array.isArray(rawPorts) ? rawPorts.length > 0 : !absent(rawPorts);
  let ports: PortRange[] = [];
  let icmp: IcmpMatch | undefined;
  if (protocol === 'tcp' || protocol === 'udp') {
    if (!hasPorts) ports = [{ start: 0, end: 65535 }];
    else {
      if (!Array.isArray(rawPorts)) throw new ValidationError(f('ports'), rawPorts, 'ports must be an array');
      ports = mergePortRanges(
        rawPorts.map((p, i) => {
          const pf = f(`ports[${i}]`);
          if (!isPlainObject(p))
            throw new ValidationError(pf, p, 'a port range must be an object {start, end}');
          return parsePortRangeObject({ start: p.start ?? 0, end: p.end ?? 0 }, pf, 0);
        }),
      );
    }
  } else {
    if (hasPorts)
      throw new ValidationError(f('ports'), rawPorts, `ports are not allowed for protocol ${protocol}`);
    if (protocol === 'icmp' || protocol === 'icmpv6') {
      const icmps = obj.icmps;
      if (absent(icmps)) icmp = { type: -1, code: -1 };
      else {
        if (!isPlainObject(icmps))
          throw new ValidationError(f('icmps'), icmps, 'icmps must be an object {type, code}');
        icmp = {
          type: gardenIcmpValue(icmps.type ?? 0, f('icmps.type'), 'type'),
          code: absent(icmps.code) ? -1 : gardenIcmpValue(icmps.code, f('icmps.code'), 'code'),
        };
      }
    }
  }
  checkIcmpFamily(protocol, destinations, f('networks'));
  return makeRule(protocol, destinations, ports, icmp, parseLog(obj.log, f('log')));
}

/** A list of Garden NetOutRules (CNI `runtimeConfig.netOutRules`). */
export function parseGardenNetOutRules(list: unknown, opts: RuleListOptions = {}): EgressRule[] {
  return parseList(list, opts, 'netOutRules', (item, o) => parseGardenNetOutRule(item, o));
}

function gardenIcmpValue(value: unknown, field: string, name: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 255) {
    throw new ValidationError(field, value, `${name} must be an integer 0..255`);
  }
  return value === 255 ? -1 : value;
}
