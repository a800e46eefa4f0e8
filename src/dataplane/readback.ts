/**
 * Read-back: `nft -j list table inet <t>` parsed into the same TableState shape the renderer
 * builds, so the two can be diffed (drift detection, and the CNI path that edits the live table
 * from a process without in-memory state). Pure parsing; see apply.ts for the I/O.
 *
 * Longer than ~400 lines: parses nft's JSON listing of every object kind of cfnet's table back into
 * the desired-state model.
 */
import { CfnetError } from '../lib/errors.js';
import { cidrToRange, ipToBigInt } from '../model/ip.js';
import { emptyState, type TableState } from './desired.js';
import { type Atom, type AtomKind, type Element, elementId, ipv4Text, SET_BY_NAME } from './elements.js';
import { type ChainSpec, STATIC_CHAIN_NAMES, staticChains } from './layout.js';

export class NftParseError extends CfnetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('CFNET_NFT_PARSE', message, context);
  }
}

/**
 * The kernel's table in canonical form: what `nft -j list table` says, without handles, keys
 * sorted. A rule's canonical text is its JSON (expressions and comment) as the kernel reports it,
 * so two rules compare equal exactly when the kernel holds the same rule.
 */
export interface KernelCanon {
  /** Table flags (`dormant` switches every chain of the table off). */
  tableFlags: string;
  /** Chain name -> base-chain header (`type/hook/prio/policy`, '' for a regular chain). */
  headers: Map<string, string>;
  /** Chain name -> canonical text of each rule, in order. */
  rules: Map<string, string[]>;
  /** Set/map name -> canonical declaration (type, flags, policy, … without elements). */
  setDecls: Map<string, string>;
  /** Objects of other kinds in the table (counters, quotas, flowtables, …): `kind name`. */
  foreign: string[];
}

export interface KernelState extends TableState {
  exists: boolean;
  canon: KernelCanon;
  /** Static chains found (name -> rule count and last-rule marker). */
  staticChains: Map<string, ChainSpec>;
  /** Named sets/maps in the table that cfnet does not define. */
  unknownSets: string[];
  /** Elements that could not be parsed (set name, JSON). Counted as drift. */
  unparsed: { set: string; json: string }[];
}

type Json = unknown;

export function emptyCanon(): KernelCanon {
  return { tableFlags: '', headers: new Map(), rules: new Map(), setDecls: new Map(), foreign: [] };
}

function obj(v: Json): Record<string, Json> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, Json>) : null;
}

/** JSON with object keys sorted (the canonical text of a rule or declaration). */
export function canonicalText(v: Json): string {
  if (Array.isArray(v)) return `[${v.map(canonicalText).join(',')}]`;
  const o = obj(v);
  if (o) {
    const keys = Object.keys(o).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalText(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** A rule's canonical text: its expressions and comment (no handle, position or table). */
export function canonicalRule(rule: Record<string, Json>): string {
  return canonicalText({ expr: rule.expr ?? [], comment: rule.comment ?? null });
}

/** A base chain's header as the kernel reports it (`filter/forward/0/accept`), '' otherwise. */
export function chainHeaderOf(chain: Record<string, Json>): string {
  if (chain.hook === undefined) return '';
  return [chain.type, chain.hook, chain.prio, chain.policy ?? 'accept'].map(String).join('/');
}

/** A set/map declaration without its elements and identity (what `set … { … }` declares). */
export function setDeclOf(set: Record<string, Json>): string {
  const { family: _f, table: _t, name: _n, handle: _h, elem: _e, ...decl } = set;
  return canonicalText(decl);
}

const KNOWN_OBJECTS = new Set(['metainfo', 'table', 'chain', 'rule', 'set', 'map', 'element']);

/** An IPv4 interval as nft JSON writes it: `"a"`, `{prefix: {addr, len}}` or `{range: [a, b]}`. */
function ipRangeOf(v: Json): [string, string] | null {
  if (typeof v === 'string') {
    const ip = ipv4Text(v);
    return ip === null ? null : [ip, ip];
  }
  const o = obj(v);
  if (!o) return null;
  const p = obj(o.prefix);
  if (p && ipv4Text(p.addr) !== null && typeof p.len === 'number' && Number.isInteger(p.len)) {
    if (p.len < 0 || p.len > 32) return null;
    const r = cidrToRange(`${p.addr}/${p.len}`);
    return [r.start, r.end];
  }
  if (Array.isArray(o.range) && o.range.length === 2) {
    const a = ipv4Text(o.range[0]);
    const b = ipv4Text(o.range[1]);
    return a === null || b === null || ipToBigInt(a) > ipToBigInt(b) ? null : [a, b];
  }
  return null;
}

function portRangeOf(v: Json): [number, number] | null {
  if (typeof v === 'number') return [v, v];
  const o = obj(v);
  if (o && Array.isArray(o.range) && typeof o.range[0] === 'number' && typeof o.range[1] === 'number') {
    return [o.range[0], o.range[1]];
  }
  return null;
}

function atomOf(kind: AtomKind, v: Json): Atom | null {
  switch (kind) {
    case 'ip': {
      const ip = ipv4Text(v);
      return ip === null ? null : { k: 'ip', v: ip };
    }
    case 'ipr': {
      const r = ipRangeOf(v);
      return r ? { k: 'ipr', s: r[0], e: r[1] } : null;
    }
    case 'port':
      return typeof v === 'number' ? { k: 'port', v } : null;
    case 'portr': {
      const r = portRangeOf(v);
      return r ? { k: 'portr', s: r[0], e: r[1] } : null;
    }
    case 'proto':
      return v === 'tcp' || v === 'udp' ? { k: 'proto', v } : v === 6 ? { k: 'proto', v: 'tcp' } : null;
    case 'mark':
      return typeof v === 'number' ? { k: 'mark', v } : null;
    case 'verdict': {
      const o = obj(v);
      if (!o) return null;
      for (const verb of ['jump', 'goto'] as const) {
        const t = obj(o[verb]);
        if (t && typeof t.target === 'string') return { k: 'verdict', v: verb, target: t.target };
      }
      return null;
    }
  }
}

function atomsOf(kinds: AtomKind[], v: Json): Atom[] | null {
  let parts: Json[];
  if (kinds.length === 1) parts = [v];
  else {
    const c = obj(v)?.concat;
    if (!Array.isArray(c) || c.length !== kinds.length) return null;
    parts = c;
  }
  const out: Atom[] = [];
  for (let i = 0; i < kinds.length; i++) {
    const a = atomOf(kinds[i]!, parts[i]);
    if (!a) return null;
    out.push(a);
  }
  return out;
}

/** Parses one JSON set element of a known set into an Element, or null. */
function elementOf(set: string, raw: Json): Element | null {
  const def = SET_BY_NAME.get(set);
  if (!def) return null;
  let keyJson: Json = raw;
  let valueJson: Json;
  if (def.valueKinds) {
    if (!Array.isArray(raw) || raw.length !== 2) return null;
    keyJson = raw[0];
    valueJson = raw[1];
  }
  let comment: string | undefined;
  const wrapped = obj(obj(keyJson)?.elem);
  if (wrapped) {
    if (typeof wrapped.comment === 'string') comment = wrapped.comment;
    keyJson = wrapped.val;
  }
  const key = atomsOf(def.keyKinds, keyJson);
  if (!key) return null;
  const e: Element = { key };
  if (def.valueKinds) {
    const value = atomsOf(def.valueKinds, valueJson);
    if (!value) return null;
    e.value = value;
  }
  if (def.comments) e.comment = comment ?? '';
  return e;
}

/** Parses the JSON of `nft -j list table inet <table>` (or of a whole ruleset) for one table. */
export function parseKernelState(json: string | Json, table: string): KernelState {
  let doc: Json = json;
  if (typeof json === 'string') {
    try {
      doc = JSON.parse(json);
    } catch (err) {
      throw new NftParseError(`nft JSON output is not JSON: ${(err as Error).message}`, { table });
    }
  }
  const items = obj(doc)?.nftables;
  if (!Array.isArray(items)) throw new NftParseError('nft JSON output has no "nftables" array', { table });
  const base = emptyState();
  const canon: KernelCanon = {
    tableFlags: '',
    headers: new Map(),
    rules: new Map(),
    setDecls: new Map(),
    foreign: [],
  };
  const state: KernelState = {
    ...base,
    exists: false,
    canon,
    staticChains: new Map(),
    unknownSets: [],
    unparsed: [],
  };
  for (const s of [...state.sets.keys()]) state.sets.delete(s);
  const chainNames: string[] = [];
  const rules = new Map<string, { count: number; last?: string }>();
  const statics = new Set<string>(STATIC_CHAIN_NAMES);
  for (const item of items) {
    const o = obj(item);
    if (!o) continue;
    const t = obj(o.table);
    if (t && t.family === 'inet' && t.name === table) {
      state.exists = true;
      if (t.flags !== undefined) canon.tableFlags = canonicalText(t.flags);
    }
    for (const [kind, v] of Object.entries(o)) {
      const x = obj(v);
      if (!KNOWN_OBJECTS.has(kind) && x && x.family === 'inet' && x.table === table) {
        canon.foreign.push(`${kind} ${String(x.name ?? '')}`);
      }
    }
    const set = obj(o.set) ?? obj(o.map);
    if (set && set.family === 'inet' && set.table === table && typeof set.name === 'string') {
      canon.setDecls.set(set.name, setDeclOf(set));
      if (!SET_BY_NAME.has(set.name)) {
        state.unknownSets.push(set.name);
        continue;
      }
      const m = new Map<string, Element>();
      state.sets.set(set.name, m);
      // a meter's elements are the kernel's state (desired states never hold any)
      if (SET_BY_NAME.get(set.name)!.kernelOwned) continue;
      for (const raw of Array.isArray(set.elem) ? set.elem : []) {
        const e = elementOf(set.name, raw);
        if (e) m.set(elementId(e), e);
        else state.unparsed.push({ set: set.name, json: JSON.stringify(raw) });
      }
    }
    const chain = obj(o.chain);
    if (chain && chain.family === 'inet' && chain.table === table && typeof chain.name === 'string') {
      chainNames.push(chain.name);
      canon.headers.set(chain.name, chainHeaderOf(chain));
      if (!canon.rules.has(chain.name)) canon.rules.set(chain.name, []);
      if (!rules.has(chain.name)) rules.set(chain.name, { count: 0 });
    }
    const rule = obj(o.rule);
    if (rule && rule.family === 'inet' && rule.table === table && typeof rule.chain === 'string') {
      const r = rules.get(rule.chain) ?? { count: 0 };
      r.count++;
      r.last = typeof rule.comment === 'string' ? rule.comment : '';
      rules.set(rule.chain, r);
      const list = canon.rules.get(rule.chain) ?? [];
      list.push(canonicalRule(rule));
      canon.rules.set(rule.chain, list);
    }
  }
  for (const name of chainNames) {
    const r = rules.get(name) ?? { count: 0 };
    const spec: ChainSpec = { name, rules: new Array<string>(r.count).fill(''), marker: r.last ?? '' };
    if (statics.has(name)) state.staticChains.set(name, spec);
    else state.chains.set(name, spec);
  }
  return state;
}

/**
 * The canonical form of what cfnet renders, learned from nft itself (canon.ts probes each distinct
 * chain content once): rule texts by chain content marker, and the declarations of the sets.
 */
export interface ExpectedCanon {
  rulesOf(marker: string): readonly string[] | undefined;
  setDecls: ReadonlyMap<string, string> | null;
}

const PRIORITIES: Record<string, number> = {
  raw: -300,
  mangle: -150,
  dstnat: -100,
  filter: 0,
  security: 50,
  srcnat: 100,
};

/** `type filter hook forward priority filter; policy accept;` -> `filter/forward/0/accept`. */
export function expectedHeader(hook: string | undefined): string {
  if (!hook) return '';
  const m = /type (\w+) hook (\w+) priority ([\w-]+);(?: policy (\w+);)?/.exec(hook);
  if (!m) return hook;
  const prio = PRIORITIES[m[3]!] ?? Number(m[3]);
  return [m[1], m[2], prio, m[4] ?? 'accept'].join('/');
}

/** One rule position where the kernel differs from the rendered chain. */
export interface RuleDifference {
  chain: string;
  /** 0-based position. */
  index: number;
  kind: 'changed' | 'missing' | 'extra';
}

export interface DriftReport {
  /** True when the kernel table differs from the expectation in any way. */
  drift: boolean;
  tableMissing: boolean;
  /** The table carries flags (e.g. `dormant`: every chain switched off). */
  tableFlags: boolean;
  /** Sets/maps declared otherwise (type, flags, policy, …). */
  changedSetDecls: string[];
  /** Objects cfnet never creates (counters, quotas, flowtables, …) in its table. */
  foreignObjects: string[];
  /** Base chains whose type, hook, priority or policy differ. */
  changedHeaders: string[];
  /** Rules differing from the rendered ones, position by position (canonical comparison). */
  changedRules: RuleDifference[];
  missingSets: string[];
  missingElements: { set: string; element: string }[];
  extraElements: { set: string; element: string }[];
  missingChains: string[];
  extraChains: string[];
  /** Chains present with other content (rule count or content marker differ). */
  changedChains: string[];
  unknownSets: string[];
  unparsed: { set: string; json: string }[];
}

/**
 * Compares the kernel's table with the expected state and `statics` (the static chains of the
 * table's filter mode; a static chain of the other mode is extra): sets and their
 * declarations, elements, chains, base-chain headers, every rule in order (canonically, where
 * `canon` knows the chain's content; else by rule count and content marker), table flags and
 * foreign objects. Any difference is drift.
 */
export function compareStates(
  expected: TableState,
  kernel: KernelState,
  canon?: ExpectedCanon,
  statics: readonly ChainSpec[] = staticChains(),
): DriftReport {
  const r: DriftReport = {
    drift: false,
    tableMissing: !kernel.exists,
    tableFlags: kernel.exists && kernel.canon.tableFlags !== '',
    changedSetDecls: [],
    foreignObjects: [...kernel.canon.foreign],
    changedHeaders: [],
    changedRules: [],
    missingSets: [],
    missingElements: [],
    extraElements: [],
    missingChains: [],
    extraChains: [],
    changedChains: [],
    unknownSets: [...kernel.unknownSets],
    unparsed: [...kernel.unparsed],
  };
  if (kernel.exists) {
    for (const [set, want] of expected.sets) {
      const have = kernel.sets.get(set);
      if (!have) {
        r.missingSets.push(set);
        continue;
      }
      for (const id of want.keys()) if (!have.has(id)) r.missingElements.push({ set, element: id });
      for (const id of have.keys()) if (!want.has(id)) r.extraElements.push({ set, element: id });
      const decl = canon?.setDecls?.get(set);
      const got = kernel.canon.setDecls.get(set);
      if (decl !== undefined && got !== undefined && decl !== got) r.changedSetDecls.push(set);
    }
    const cmp = (want: ChainSpec, have: ChainSpec | undefined) => {
      if (!have) {
        r.missingChains.push(want.name);
        return;
      }
      if ((kernel.canon.headers.get(want.name) ?? '') !== expectedHeader(want.hook)) {
        r.changedHeaders.push(want.name);
      }
      const wantRules = canon?.rulesOf(want.marker);
      if (!wantRules) {
        if (have.marker !== want.marker || have.rules.length !== want.rules.length) {
          r.changedChains.push(want.name);
        }
        return;
      }
      const haveRules = kernel.canon.rules.get(want.name) ?? [];
      const before = r.changedRules.length;
      for (let i = 0; i < Math.max(wantRules.length, haveRules.length); i++) {
        const kind =
          i >= haveRules.length
            ? 'missing'
            : i >= wantRules.length
              ? 'extra'
              : wantRules[i] !== haveRules[i]
                ? 'changed'
                : null;
        if (kind) r.changedRules.push({ chain: want.name, index: i, kind });
      }
      if (r.changedRules.length > before) r.changedChains.push(want.name);
    };
    for (const c of statics) cmp(c, kernel.staticChains.get(c.name));
    for (const c of expected.chains.values()) cmp(c, kernel.chains.get(c.name));
    for (const name of kernel.chains.keys()) if (!expected.chains.has(name)) r.extraChains.push(name);
    // a static chain of the other filter mode (the mode changed, or someone added it)
    const wanted = new Set(statics.map((c) => c.name));
    for (const name of kernel.staticChains.keys()) if (!wanted.has(name)) r.extraChains.push(name);
  }
  r.drift =
    r.tableMissing ||
    r.tableFlags ||
    r.changedSetDecls.length +
      r.foreignObjects.length +
      r.changedHeaders.length +
      r.missingSets.length +
      r.missingElements.length +
      r.extraElements.length +
      r.missingChains.length +
      r.extraChains.length +
      r.changedChains.length +
      r.unknownSets.length +
      r.unparsed.length >
      0;
  return r;
}
