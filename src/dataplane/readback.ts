/**
 * Read-back: `nft -j list table inet <t>` parsed into the same TableState shape the renderer
 * builds, so the two can be diffed (drift detection, and the CNI path that edits the live table
 * from a process without in-memory state). Pure parsing; see apply.ts for the I/O.
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

export interface KernelState extends TableState {
  exists: boolean;
  /** Static chains found (name -> rule count and last-rule marker). */
  staticChains: Map<string, ChainSpec>;
  /** Named sets/maps in the table that cfnet does not define. */
  unknownSets: string[];
  /** Elements that could not be parsed (set name, JSON). Counted as drift. */
  unparsed: { set: string; json: string }[];
}

type Json = unknown;

function obj(v: Json): Record<string, Json> | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, Json>) : null;
}

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
  const state: KernelState = {
    ...base,
    exists: false,
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
    if (t && t.family === 'inet' && t.name === table) state.exists = true;
    const set = obj(o.set) ?? obj(o.map);
    if (set && set.family === 'inet' && set.table === table && typeof set.name === 'string') {
      if (!SET_BY_NAME.has(set.name)) {
        state.unknownSets.push(set.name);
        continue;
      }
      const m = new Map<string, Element>();
      state.sets.set(set.name, m);
      for (const raw of Array.isArray(set.elem) ? set.elem : []) {
        const e = elementOf(set.name, raw);
        if (e) m.set(elementId(e), e);
        else state.unparsed.push({ set: set.name, json: JSON.stringify(raw) });
      }
    }
    const chain = obj(o.chain);
    if (chain && chain.family === 'inet' && chain.table === table && typeof chain.name === 'string') {
      chainNames.push(chain.name);
      if (!rules.has(chain.name)) rules.set(chain.name, { count: 0 });
    }
    const rule = obj(o.rule);
    if (rule && rule.family === 'inet' && rule.table === table && typeof rule.chain === 'string') {
      const r = rules.get(rule.chain) ?? { count: 0 };
      r.count++;
      r.last = typeof rule.comment === 'string' ? rule.comment : '';
      rules.set(rule.chain, r);
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

export interface DriftReport {
  /** True when the kernel table differs from the expectation in any way. */
  drift: boolean;
  tableMissing: boolean;
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

/** Compares the kernel's table with the expected state (static chains included). */
export function compareStates(expected: TableState, kernel: KernelState): DriftReport {
  const r: DriftReport = {
    drift: false,
    tableMissing: !kernel.exists,
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
    }
    const cmp = (want: ChainSpec, have: ChainSpec | undefined) => {
      if (!have) r.missingChains.push(want.name);
      else if (have.marker !== want.marker || have.rules.length !== want.rules.length) {
        r.changedChains.push(want.name);
      }
    };
    for (const c of staticChains()) cmp(c, kernel.staticChains.get(c.name));
    for (const c of expected.chains.values()) cmp(c, kernel.chains.get(c.name));
    for (const name of kernel.chains.keys()) if (!expected.chains.has(name)) r.extraChains.push(name);
  }
  r.drift =
    r.tableMissing ||
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
