/**
 * CellRuleSet -> the desired content of cfnet's table: elements per named set/map and the dynamic
 * chains (one per distinct ASG rule set, plus per-container log chains when logging needs them).
 * Pure; validates every value that reaches nft text and throws ValidationError naming the field.
 *
 * Longer than ~400 lines: renders every object kind of cfnet's table (sets, maps, chains, elements)
 * from a rule set.
 */
import { ValidationError } from '../lib/errors.js';
import { checkContainerIp, checkHandle, checkPort, checkTag } from '../model/identifiers.js';
import { allAddresses, cidrToRange, ipToBigInt, mergeRanges, parseIp, rangeToString } from '../model/ip.js';
import { mergePortRanges, parsePortRangeObject } from '../model/ports.js';
import type {
  C2CAllow,
  CellConfig,
  CellContainer,
  CellRuleSet,
  EgressRule,
  IpRange,
  PortRange,
} from '../model/types.js';
import { outboundConnectionsOf } from '../model/types.js';
import { c2cBlockSet, portBlocks } from './c2c-blocks.js';
import { type Atom, atomId, type Element, elementId, SET_DEFS } from './elements.js';
import { asgChainName, type ChainSpec, type LogKind, logChainName, REJECT, withMarker } from './layout.js';

/** Desired (or read-back) table content, comparable with diffState / detectDrift. */
export interface TableState {
  /** set/map name -> element id -> element. Every known set is present (possibly empty). */
  sets: Map<string, Map<string, Element>>;
  /** dynamic chains by name (static chains are not part of the state: they never change). */
  chains: Map<string, ChainSpec>;
}

export function emptyState(): TableState {
  const sets = new Map<string, Map<string, Element>>();
  for (const d of SET_DEFS) sets.set(d.name, new Map());
  return { sets, chains: new Map() };
}

export function addElement(state: TableState, set: string, e: Element): void {
  let m = state.sets.get(set);
  if (!m) {
    m = new Map();
    state.sets.set(set, m);
  }
  m.set(elementId(e), e);
}

// ---------------------------------------------------------------- validation helpers

// Handles, ports, tags and container addresses: src/model/identifiers (shared with the controller's
// ingest, the agent API and the agent). A handle reaches element comments and log prefixes.
export { checkHandle } from '../model/identifiers.js';

function int(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(field, v, `must be an integer in ${min}..${max}`);
  }
  return v;
}

/** Canonical text of an IPv4 address (container addresses and nft elements are IPv4 only). */
const ipv4 = checkContainerIp;

/** Family of an address (validated by src/model/ip): IPv6 entries are skipped, not rendered. */
function familyOf(field: string, text: unknown): 4 | 6 {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'not an IP address');
  return parseIp(text, field).family;
}

/** IPv4 ranges of a list, merged (IPv6 entries are validated and skipped: containers are IPv4). */
function v4Ranges(field: string, list: IpRange[] | undefined): IpRange[] {
  if (!Array.isArray(list)) throw new ValidationError(field, list, 'not a list of ranges');
  const out: IpRange[] = [];
  list.forEach((r, i) => {
    const f = `${field}[${i}]`;
    if (!r || typeof r !== 'object') throw new ValidationError(f, r, 'not an IP range');
    if (r.family !== 4 && r.family !== 6)
      throw new ValidationError(`${f}.family`, r.family, 'must be 4 or 6');
    if (r.family === 6) {
      if (familyOf(`${f}.start`, r.start) !== 6 || familyOf(`${f}.end`, r.end) !== 6) {
        throw new ValidationError(f, r, 'not an IPv6 range');
      }
      return;
    }
    const start = ipv4(`${f}.start`, r.start);
    const end = ipv4(`${f}.end`, r.end);
    if (ipToBigInt(start) > ipToBigInt(end)) throw new ValidationError(f, r, 'start > end');
    out.push({ family: 4, start, end });
  });
  return mergeRanges(out);
}

function portRanges(field: string, list: PortRange[], min: number): PortRange[] {
  return mergePortRanges(list.map((p, i) => parsePortRangeObject(p, `${field}[${i}]`, min)));
}

// ---------------------------------------------------------------- ASG rules

const EVERYWHERE = allAddresses(4);

/**
 * `<prefix> X` for one value, `<prefix> { a, b }` for several single values. Only single values go
 * into an anonymous set: a set holding ranges is an interval set, and nft 1.0.6 dumps the elements
 * of every interval set in the table on each transaction, which made every incremental change pay
 * for the size of the ASGs.
 */
function matchers(prefix: string, singles: string[], ranges: string[]): string[] {
  const out: string[] = [];
  if (singles.length === 1) out.push(`${prefix} ${singles[0]}`);
  else if (singles.length > 1) out.push(`${prefix} { ${singles.join(', ')} }`);
  for (const r of ranges) out.push(`${prefix} ${r}`);
  return out;
}

function destinationMatchers(dests: IpRange[]): string[] {
  if (dests.length === 1 && dests[0]!.start === EVERYWHERE.start && dests[0]!.end === EVERYWHERE.end) {
    return [''];
  }
  const singles = dests.filter((d) => d.start === d.end).map((d) => d.start);
  const blocks = dests.filter((d) => d.start !== d.end).map(rangeToString);
  return matchers('ip daddr', singles, blocks);
}

function portMatchers(proto: 'tcp' | 'udp', ports: PortRange[]): string[] {
  const singles = ports.filter((p) => p.start === p.end).map((p) => String(p.start));
  const ranges = ports.filter((p) => p.start !== p.end).map((p) => `${p.start}-${p.end}`);
  return matchers(`${proto} dport`, singles, ranges);
}

/**
 * The nft rules of one ASG rule: one per destination matcher x port matcher (single values share an
 * anonymous hash set, each range or CIDR is its own rule). Empty when the rule cannot match an IPv4
 * container (IPv6-only destinations, icmpv6) or matches nothing (tcp/udp without ports, as Silk
 * drops those).
 */
export function asgRuleLines(field: string, rule: EgressRule, logged: boolean): string[] {
  if (!rule || typeof rule !== 'object') throw new ValidationError(field, rule, 'not an egress rule');
  const dests = v4Ranges(`${field}.destinations`, rule.destinations);
  let protoMatchers: string[];
  switch (rule.protocol) {
    case 'tcp':
    case 'udp': {
      if (!Array.isArray(rule.ports)) throw new ValidationError(`${field}.ports`, rule.ports, 'not a list');
      protoMatchers = portMatchers(rule.protocol, portRanges(`${field}.ports`, rule.ports, 0));
      break;
    }
    case 'icmp': {
      const icmp = rule.icmp ?? { type: -1, code: -1 };
      const type = int(`${field}.icmp.type`, icmp.type, -1, 255);
      const code = int(`${field}.icmp.code`, icmp.code, -1, 255);
      if (type === -1) protoMatchers = ['meta l4proto icmp'];
      else protoMatchers = [code === -1 ? `icmp type ${type}` : `icmp type ${type} icmp code ${code}`];
      break;
    }
    case 'icmpv6':
      return [];
    case 'all':
      protoMatchers = [''];
      break;
    default:
      throw new ValidationError(`${field}.protocol`, rule.protocol, 'must be tcp, udp, icmp, icmpv6 or all');
  }
  if (dests.length === 0) return [];
  const verdict = logged ? 'ip saddr vmap @log_ok' : 'accept';
  const out: string[] = [];
  for (const d of destinationMatchers(dests)) {
    for (const p of protoMatchers) out.push([d, p, verdict].filter((x) => x !== '').join(' '));
  }
  return out;
}

/** The shared chain of one ASG rule set. */
export function asgChain(hash: string, rules: EgressRule[], config: CellConfig, field: string): ChainSpec {
  if (!Array.isArray(rules)) throw new ValidationError(field, rules, 'not a list of egress rules');
  const body: string[] = [];
  const seen = new Set<string>();
  rules.forEach((r, i) => {
    for (const line of asgRuleLines(`${field}[${i}]`, r, config.logging.asg || r?.log === true)) {
      if (seen.has(line)) continue;
      seen.add(line);
      body.push(line);
    }
  });
  // an explicit `return` ends every ASG chain (back to ctr_out, whose next rule denies)
  body.push('return');
  return withMarker(asgChainName(hash), body);
}

/**
 * asgChain is pure and the costliest part of desiredState (every apply renders the whole cell); a
 * cell's ASG sets rarely change, so the chains of recently seen sets are reused. The key holds
 * everything the chain depends on. Only valid rule lists are stored (asgChain throws otherwise).
 */
const asgMemo = new Map<string, ChainSpec>();
const ASG_MEMO_MAX = 256;

/**
 * The same rule list object coming back (rule sets are patched, not rebuilt) is first checked
 * against the values asgChain read from it the last time, walked without building anything: the
 * JSON key below cost ~0.5 ms a render for a cell's 15 ASG sets. Every value asgChain reads is
 * compared, so a list mutated in place misses and is rendered (and validated) again.
 */
interface AsgFacts {
  hash: string;
  logAll: boolean;
  facts: unknown[];
  chain: ChainSpec;
}
const asgByList = new WeakMap<object, AsgFacts>();

const HOLE = Symbol('hole');

/** Calls `visit` with every value of `rules` that asgChain reads, in order; stops on false. */
function walkAsgFacts(rules: EgressRule[], visit: (v: unknown) => boolean): boolean {
  if (!visit(rules.length)) return false;
  for (let i = 0; i < rules.length; i++) {
    // a hole (forEach skips it) is not an undefined rule (which asgChain rejects)
    const r = i in rules ? rules[i] : HOLE;
    if (!r || typeof r !== 'object') {
      if (!visit(r)) return false;
      continue;
    }
    const icmp = r.icmp as unknown as { type?: unknown; code?: unknown } | null | undefined;
    if (!visit(r.protocol) || !visit(r.log) || !visit(icmp === undefined || icmp === null)) return false;
    if (icmp !== undefined && icmp !== null && (!visit(icmp.type) || !visit(icmp.code))) return false;
    if (!walkList(r.destinations, ['family', 'start', 'end'], visit)) return false;
    if (!walkList(r.ports, ['start', 'end'], visit)) return false;
  }
  return true;
}

function walkList(list: unknown, fields: string[], visit: (v: unknown) => boolean): boolean {
  if (!Array.isArray(list)) return visit(list === undefined ? 'undefined' : typeof list) && visit(list);
  if (!visit(list.length)) return false;
  for (let i = 0; i < list.length; i++) {
    const x: unknown = i in list ? list[i] : HOLE;
    if (!x || typeof x !== 'object' || Array.isArray(x)) {
      if (!visit(x)) return false;
      continue;
    }
    for (const f of fields) if (!visit((x as Record<string, unknown>)[f])) return false;
  }
  return true;
}

export function asgChainMemo(
  hash: string,
  rules: EgressRule[],
  config: CellConfig,
  field: string,
): ChainSpec {
  const logAll = config.logging.asg;
  const known = Array.isArray(rules) ? asgByList.get(rules) : undefined;
  if (known && known.hash === hash && known.logAll === logAll) {
    let i = 0;
    const f = known.facts;
    if (walkAsgFacts(rules, (v) => i < f.length && f[i++] === v) && i === f.length) return known.chain;
  }
  const facts: unknown[] = [];
  if (Array.isArray(rules)) walkAsgFacts(rules, (v) => facts.push(v) > 0);
  // JSON writes a hole as null, like an undefined or null rule: a sparse list is not memoised
  if (facts.includes(HOLE)) return asgChain(hash, rules, config, field);
  let key: string;
  try {
    key = `${hash}\n${logAll}\n${JSON.stringify(rules)}`;
  } catch {
    return asgChain(hash, rules, config, field); // not JSON (never from the wire): no memo
  }
  let chain = asgMemo.get(key);
  if (chain) {
    asgMemo.delete(key); // most recently used last
    asgMemo.set(key, chain);
  } else {
    chain = asgChain(hash, rules, config, field);
    if (asgMemo.size >= ASG_MEMO_MAX) asgMemo.delete(asgMemo.keys().next().value!);
    asgMemo.set(key, chain);
  }
  asgByList.set(rules, { hash, logAll, facts, chain });
  return chain;
}

// ---------------------------------------------------------------- per-container parts

/** Silk's log prefixes, kept below 64 bytes (handles are validated ASCII). */
export function logPrefix(
  kind: 'OK_' | 'OK_C2C_' | 'DENY_' | 'DENY_C2C_' | 'DENY_ORL_',
  handle: string,
): string {
  return `${kind}${handle}`.slice(0, 62);
}

function logChain(kind: LogKind, c: CellContainer, config: CellConfig): ChainSpec {
  const denied = config.logging.deniedPerSec;
  const udp = config.logging.acceptedUdpPerSec;
  const name = logChainName(kind, c.ip);
  const orl = outboundConnectionsOf(config);
  switch (kind) {
    case 'orl': {
      // Silk's hashlimit (mode dstip,dstport, one table per container, entries expiring once their
      // bucket would be full again): one bucket per container . destination . port in the meter
      const expire = Math.ceil(orl.burst / orl.ratePerSec);
      const meter = `update @orl_meter { ip saddr . ip daddr . tcp dport timeout ${expire}s limit rate over ${orl.ratePerSec}/second burst ${orl.burst} packets }`;
      return withMarker(name, [
        orl.logging || orl.dryRun ? `${meter} ip saddr vmap @orl_cut` : `${meter} ${REJECT[0]}`,
      ]);
    }
    case 'lorl':
      return withMarker(name, [
        `limit rate ${denied}/second burst ${denied} packets log prefix "${logPrefix('DENY_ORL_', c.handle)} "`,
        // dry run: logged, then back to ctr_out, which decides as without the limit
        ...(orl.dryRun ? [] : [REJECT[0]]),
      ]);
    case 'lok':
      return withMarker(name, [
        `meta l4proto != udp ct state new,invalid,untracked log prefix "${logPrefix('OK_', c.handle)} "`,
        `meta l4proto udp limit rate ${udp}/second burst ${udp} packets log prefix "${logPrefix('OK_', c.handle)} "`,
        'accept',
      ]);
    case 'ldeny':
      return withMarker(name, [
        `limit rate ${denied}/second burst ${denied} packets log prefix "${logPrefix('DENY_', c.handle)} "`,
        ...REJECT,
      ]);
    case 'lc2cok':
      // c2c connections a policy allows, logged on the destination's cell like Silk's OK_<tag>_<app>
      return withMarker(name, [
        `meta l4proto != udp ct state new,invalid,untracked log prefix "${logPrefix('OK_C2C_', c.handle)} "`,
        `meta l4proto udp limit rate ${udp}/second burst ${udp} packets log prefix "${logPrefix('OK_C2C_', c.handle)} "`,
        'accept',
      ]);
    case 'lc2c':
      return withMarker(name, [
        `limit rate ${denied}/second burst ${denied} packets log prefix "${logPrefix('DENY_C2C_', c.handle)} "`,
        ...REJECT,
      ]);
  }
}

/** The overlay network as an IPv4 range (host bits allowed, as CAPI-style CIDRs). */
function overlayRange(config: CellConfig): IpRange {
  const field = 'config.overlayNetwork';
  const text = config.overlayNetwork;
  if (typeof text !== 'string') throw new ValidationError(field, text, 'not a CIDR');
  const range = cidrToRange(text, field);
  if (range.family !== 4) throw new ValidationError(field, text, 'not an IPv4 CIDR');
  return range;
}

export function validateConfig(config: CellConfig): CellConfig {
  if (!config || typeof config !== 'object') throw new ValidationError('config', config, 'missing');
  overlayRange(config);
  const lg = config.logging;
  if (!lg || typeof lg !== 'object') throw new ValidationError('config.logging', lg, 'missing');
  if (typeof lg.asg !== 'boolean') throw new ValidationError('config.logging.asg', lg.asg, 'not a boolean');
  if (typeof lg.c2c !== 'boolean') throw new ValidationError('config.logging.c2c', lg.c2c, 'not a boolean');
  int('config.logging.deniedPerSec', lg.deniedPerSec, 1, 1_000_000);
  int('config.logging.acceptedUdpPerSec', lg.acceptedUdpPerSec, 1, 1_000_000);
  if (config.outboundConnections !== undefined) {
    const o = config.outboundConnections;
    const f = 'config.outboundConnections';
    if (!o || typeof o !== 'object') throw new ValidationError(f, o, 'not an object');
    for (const k of ['limit', 'logging', 'dryRun'] as const) {
      if (typeof o[k] !== 'boolean') throw new ValidationError(`${f}.${k}`, o[k], 'not a boolean');
    }
    int(`${f}.burst`, o.burst, 1, 1_000_000);
    int(`${f}.ratePerSec`, o.ratePerSec, 1, 1_000_000);
  }
  const open = config.disableContainerNetworkPolicy;
  if (open !== undefined && typeof open !== 'boolean') {
    throw new ValidationError('config.disableContainerNetworkPolicy', open, 'not a boolean');
  }
  return config;
}

/** Validates one container's own fields (not its ASG reference). */
export function validateContainer(field: string, c: CellContainer): void {
  if (!c || typeof c !== 'object') throw new ValidationError(field, c, 'not a container');
  checkHandle(`${field}.handle`, c.handle);
  ipv4(`${field}.ip`, c.ip);
  if (c.workload !== 'app' && c.workload !== 'task' && c.workload !== 'staging') {
    throw new ValidationError(`${field}.workload`, c.workload, 'must be app, task or staging');
  }
  if (c.tag !== null) checkTag(`${field}.tag`, c.tag);
  if (typeof c.egress !== 'string') throw new ValidationError(`${field}.egress`, c.egress, 'not a string');
  if (!Array.isArray(c.netIn)) throw new ValidationError(`${field}.netIn`, c.netIn, 'not a list');
  c.netIn.forEach((m, i) => {
    checkPort(`${field}.netIn[${i}].hostPort`, m?.hostPort);
    checkPort(`${field}.netIn[${i}].containerPort`, m?.containerPort);
  });
}

/**
 * Adds one container's elements and chains (ASG chain included) to `state`. `rules` is the
 * container's egress rule list (asgSets[c.egress]). `configKey` (JSON of `config`, computed once
 * per rule set by desiredState) enables the per-container memo below.
 */
export function addContainerTo(
  state: TableState,
  c: CellContainer,
  rules: EgressRule[],
  config: CellConfig,
  field: string,
  asgField: string,
  configKey?: string,
): void {
  const part =
    configKey === undefined
      ? containerPart(c, rules, config, field)
      : containerPartMemo(c, rules, config, field, configKey);
  const asg = asgChainName(c.egress);
  if (!state.chains.has(asg)) state.chains.set(asg, asgChainMemo(c.egress, rules, config, asgField));
  for (const [set, id, e] of part.elements) {
    let m = state.sets.get(set);
    if (!m) {
      m = new Map();
      state.sets.set(set, m);
    }
    m.set(id, e);
  }
  for (const chain of part.chains) state.chains.set(chain.name, chain);
}

/** What one container contributes besides its ASG chain: elements (with their ids) and log chains. */
interface ContainerPart {
  elements: Array<[set: string, id: string, element: Element]>;
  chains: ChainSpec[];
}

function containerPart(
  c: CellContainer,
  rules: EgressRule[],
  config: CellConfig,
  field: string,
): ContainerPart {
  validateContainer(field, c);
  const part: ContainerPart = { elements: [], chains: [] };
  const add = (set: string, e: Element) => part.elements.push([set, elementId(e), e]);
  const ip: Atom = { k: 'ip', v: ipv4(`${field}.ip`, c.ip) };
  add('ctr_addrs', { key: [ip], comment: c.handle });
  add(c.workload === 'staging' ? 'ctr_staging' : 'ctr_running', { key: [ip] });
  add('ctr_asg', { key: [ip], value: [{ k: 'verdict', v: 'jump', target: asgChainName(c.egress) }] });
  if (c.tag !== null) add('ctr_tag', { key: [ip], value: [{ k: 'mark', v: c.tag }] });
  for (const m of c.netIn) {
    add('netin_dnat', {
      key: [{ k: 'port', v: m.hostPort }],
      value: [ip, { k: 'port', v: m.containerPort }],
    });
  }
  const orl = outboundConnectionsOf(config);
  const metered = orl.limit || orl.dryRun;
  const logs: [LogKind, string, boolean, 'jump' | 'goto'][] = [
    ['lok', 'log_ok', config.logging.asg || hasLoggedRule(rules), 'goto'],
    ['ldeny', 'log_deny', config.logging.asg, 'goto'],
    ['lc2c', 'log_c2c', config.logging.c2c, 'goto'],
    // jump: a connection under the limit goes on through ctr_out
    ['orl', 'ctr_orl', metered, 'jump'],
    ['lorl', 'orl_cut', metered && (orl.logging || orl.dryRun), 'goto'],
    // Silk's iptables_logging (on vxlan-policy-agent) logs the c2c connections policies allow
    ['lc2cok', 'log_c2c_ok', config.logging.asg, 'goto'],
  ];
  for (const [kind, set, on, verdict] of logs) {
    if (!on) continue;
    const chain = logChain(kind, c, config);
    part.chains.push(chain);
    add(set, { key: [ip], value: [{ k: 'verdict', v: verdict, target: chain.name }] });
  }
  return part;
}

const hasLoggedRule = (rules: EgressRule[]) => Array.isArray(rules) && rules.some((r) => r?.log === true);

/**
 * Every apply renders the whole cell, yet between two rule sets most containers do not change
 * (applyPatch keeps unchanged container objects), so a container's part is reused when the same
 * object comes back with the same content. Why the content is compared and not only the object:
 * a caller may mutate a rule set in place and apply it again; the fields a part depends on are
 * compared by value, one by one (the config as its JSON, taken once per rule set; a JSON key per
 * container was most of the memo's own cost), so a reused part is always
 * the one containerPart would build now. Weak keys: parts go with their rule sets.
 */
interface MemoEntry {
  part: ContainerPart;
  /** The container's own fields as they were (compared by value, without building a key). */
  ip: unknown;
  handle: unknown;
  workload: unknown;
  egress: unknown;
  tag: unknown;
  /** NetIn mappings flattened: host port, container port, … */
  netIn: unknown[];
  /** Whether its ASG rules log (a log chain depends on it). */
  logged: boolean;
  /** The config's JSON (compared apart: concatenating it per container made garbage). */
  configKey: string;
}
const partMemo = new WeakMap<CellContainer, MemoEntry>();

function flatNetIn(c: CellContainer): unknown[] {
  const out: unknown[] = [];
  for (const m of c.netIn) out.push(m?.hostPort, m?.containerPort);
  return out;
}

function sameContainer(m: MemoEntry, c: CellContainer, logged: boolean, configKey: string): boolean {
  if (m.ip !== c.ip || m.handle !== c.handle || m.workload !== c.workload || m.egress !== c.egress)
    return false;
  if (m.tag !== c.tag || m.logged !== logged || m.configKey !== configKey) return false;
  const n = c.netIn;
  if (!Array.isArray(n) || n.length * 2 !== m.netIn.length) return false;
  for (let i = 0; i < n.length; i++) {
    if (n[i]?.hostPort !== m.netIn[2 * i] || n[i]?.containerPort !== m.netIn[2 * i + 1]) return false;
  }
  return true;
}

function containerPartMemo(
  c: CellContainer,
  rules: EgressRule[],
  config: CellConfig,
  field: string,
  configKey: string,
): ContainerPart {
  if (!c || typeof c !== 'object' || !Array.isArray(c.netIn)) return containerPart(c, rules, config, field);
  const logged = hasLoggedRule(rules);
  const hit = partMemo.get(c);
  if (hit && sameContainer(hit, c, logged, configKey)) return hit.part;
  const part = containerPart(c, rules, config, field);
  const { ip, handle, workload, egress, tag } = c;
  partMemo.set(c, { part, ip, handle, workload, egress, tag, netIn: flatNetIn(c), logged, configKey });
  return part;
}

/** Cell-wide elements from the config (overlay, deny networks, DNS, host services). */
export function addConfigTo(state: TableState, config: CellConfig): void {
  validateConfig(config);
  const ov = overlayRange(config);
  addElement(state, 'overlay_net', { key: [{ k: 'ipr', s: ov.start, e: ov.end }] });
  if (config.disableContainerNetworkPolicy === true) {
    addElement(state, 'c2c_open', { key: [{ k: 'ipr', s: ov.start, e: ov.end }] });
  }
  const dn = config.denyNetworks;
  if (!dn || typeof dn !== 'object') throw new ValidationError('config.denyNetworks', dn, 'missing');
  for (const kind of ['always', 'running', 'staging'] as const) {
    for (const r of v4Ranges(`config.denyNetworks.${kind}`, dn[kind])) {
      addElement(state, `deny_${kind}`, { key: [{ k: 'ipr', s: r.start, e: r.end }] });
    }
  }
  if (!Array.isArray(config.dnsServers)) {
    throw new ValidationError('config.dnsServers', config.dnsServers, 'not a list');
  }
  config.dnsServers.forEach((s, i) => {
    if (familyOf(`config.dnsServers[${i}]`, s) === 6) return;
    addElement(state, 'dns_servers', { key: [{ k: 'ip', v: ipv4(`config.dnsServers[${i}]`, s) }] });
  });
  for (const [set, list, f] of [
    ['host_tcp', config.hostTcpServices, 'config.hostTcpServices'],
    ['host_udp', config.hostUdpServices, 'config.hostUdpServices'],
  ] as const) {
    if (!Array.isArray(list)) throw new ValidationError(f, list, 'not a list');
    list.forEach((s, i) => {
      if (familyOf(`${f}[${i}].ip`, s?.ip) === 6) return;
      addElement(state, set, {
        key: [
          { k: 'ip', v: ipv4(`${f}[${i}].ip`, s?.ip) },
          { k: 'port', v: checkPort(`${f}[${i}].port`, s?.port) },
        ],
      });
    });
  }
}

/** One c2c entry as validated: its group (tag, destination, protocol) and its port range. */
interface C2CEntry {
  /** The raw values it was validated from (a memo hit compares them by value). */
  srcTag: unknown;
  dstIp: unknown;
  protocol: unknown;
  start: unknown;
  end: unknown;
  /** `<tag id> . <ip> . <proto>`: the group key. */
  group: string;
  /** `<tag id> . <ip> . `: the head of its block elements' ids (c2c_tcp, c2c_tcp_4, …). */
  head: string;
  tag: number;
  ip: string;
  proto: 'tcp' | 'udp';
  ports: PortRange;
  /** Its elements when it is alone in its group (built on first use): [set, id, element]. */
  alone?: Array<[string, string, Element]>;
}

/**
 * Every apply renders the cell's whole c2c list (750 entries in the bench's cell), and validating
 * an entry (address parsing above all) was most of that cost; entries that come back unchanged
 * (the same objects: rule sets are patched, not rebuilt) reuse their validated form. The raw
 * fields are compared by value, so an entry mutated in place is validated again.
 */
const c2cEntryMemo = new WeakMap<object, C2CEntry>();

function c2cEntry(a: C2CAllow, f: string): C2CEntry {
  if (!a || typeof a !== 'object') throw new ValidationError(f, a, 'not a c2c entry');
  const p = a.ports as unknown;
  const hit = c2cEntryMemo.get(a);
  if (
    hit &&
    hit.srcTag === a.srcTag &&
    hit.dstIp === a.dstIp &&
    hit.protocol === a.protocol &&
    typeof p === 'object' &&
    p !== null &&
    !Array.isArray(p) &&
    hit.start === (p as PortRange).start &&
    hit.end === (p as PortRange).end
  ) {
    return hit;
  }
  const tag = checkTag(`${f}.srcTag`, a.srcTag);
  const ip = ipv4(`${f}.dstIp`, a.dstIp);
  if (a.protocol !== 'tcp' && a.protocol !== 'udp') {
    throw new ValidationError(`${f}.protocol`, a.protocol, 'must be tcp or udp');
  }
  const ports = parsePortRangeObject(p, `${f}.ports`, 1);
  const head = `${atomId({ k: 'mark', v: tag })} . ${ip} . `;
  const entry: C2CEntry = {
    srcTag: a.srcTag,
    dstIp: a.dstIp,
    protocol: a.protocol,
    start: ports.start,
    end: ports.end,
    group: `${head}${a.protocol}`,
    head,
    tag,
    ip,
    proto: a.protocol,
    ports,
  };
  c2cEntryMemo.set(a, entry);
  return entry;
}

/**
 * c2c allow entries, port ranges merged per (tag, destination, protocol); each range is written as
 * aligned power-of-two blocks to the hash sets c2c_<proto>[_<size>] (c2c-blocks.ts: cheap updates,
 * few elements), or, when that would take more than C2C_BLOCK_BUDGET blocks, as one element of the
 * interval set c2c_range. A block element's id is built as one string (`head` + first port, the
 * same text elementId gives) and its key shares the group's atoms: ~1,300 elements a bench cell.
 */
export function addC2CTo(state: TableState, rs: Pick<CellRuleSet, 'c2c'>): void {
  if (!Array.isArray(rs.c2c)) throw new ValidationError('c2c', rs.c2c, 'not a list');
  const groups = new Map<string, { first: C2CEntry; ports: PortRange[] }>();
  const list = rs.c2c;
  for (let i = 0; i < list.length; i++) {
    const e = c2cEntry(list[i]!, `c2c[${i}]`);
    const g = groups.get(e.group);
    if (g) g.ports.push(e.ports);
    else groups.set(e.group, { first: e, ports: [e.ports] });
  }
  for (const { first, ports } of groups.values()) {
    // an entry alone in its group (the common case) keeps its elements: the next render reuses
    // them, ids included, so the diff compares the same strings
    let elems = ports.length === 1 ? first.alone : undefined;
    if (!elems) {
      elems = c2cElements(first, ports);
      if (ports.length === 1) first.alone = elems;
    }
    for (const [set, id, e] of elems) {
      let m = state.sets.get(set);
      if (!m) {
        m = new Map();
        state.sets.set(set, m);
      }
      m.set(id, e);
    }
  }
}

function c2cElements(g: C2CEntry, ports: PortRange[]): Array<[string, string, Element]> {
  const tag: Atom = { k: 'mark', v: g.tag };
  const ip: Atom = { k: 'ip', v: g.ip };
  const out: Array<[string, string, Element]> = [];
  for (const p of ports.length === 1 ? ports : mergePortRanges(ports)) {
    const blocks = portBlocks(p);
    if (blocks) {
      for (const b of blocks) {
        out.push([
          c2cBlockSet(g.proto, b.size),
          `${g.head}${b.start}`,
          { key: [tag, ip, { k: 'port', v: b.start }] },
        ]);
      }
    } else {
      const e: Element = { key: [tag, ip, { k: 'proto', v: g.proto }, { k: 'portr', s: p.start, e: p.end }] };
      out.push(['c2c_range', elementId(e), e]);
    }
  }
  return out;
}

/** The whole desired state of a rule set. Throws ValidationError on any invalid value. */
export function desiredState(rs: CellRuleSet): TableState {
  if (!rs || typeof rs !== 'object') throw new ValidationError('ruleSet', rs, 'missing');
  const state = emptyState();
  addConfigTo(state, rs.config);
  const configKey = JSON.stringify(rs.config); // valid (addConfigTo checked it), so JSON
  if (!Array.isArray(rs.containers)) throw new ValidationError('containers', rs.containers, 'not a list');
  const asgSets = rs.asgSets ?? {};
  const seenIp = new Map<string, string>();
  const seenHandle = new Set<string>();
  const seenPort = new Map<number, string>();
  rs.containers.forEach((c, i) => {
    const field = `containers[${i}]`;
    validateContainer(field, c);
    if (seenIp.has(c.ip))
      throw new ValidationError(`${field}.ip`, c.ip, `duplicate address (${seenIp.get(c.ip)})`);
    if (seenHandle.has(c.handle)) throw new ValidationError(`${field}.handle`, c.handle, 'duplicate handle');
    seenIp.set(c.ip, c.handle);
    seenHandle.add(c.handle);
    for (const m of c.netIn) {
      const other = seenPort.get(m.hostPort);
      if (other !== undefined) {
        throw new ValidationError(`${field}.netIn`, m.hostPort, `host port already mapped for ${other}`);
      }
      seenPort.set(m.hostPort, c.handle);
    }
    if (!Object.hasOwn(asgSets, c.egress)) {
      throw new ValidationError(`${field}.egress`, c.egress, 'no such entry in asgSets');
    }
    addContainerTo(
      state,
      c,
      asgSets[c.egress]!,
      rs.config,
      field,
      `asgSets[${JSON.stringify(c.egress)}]`,
      configKey,
    );
  });
  addC2CTo(state, rs);
  return state;
}
