/**
 * Rendering of nft scripts: a full atomic replace of cfnet's table, and incremental updates
 * (element add/delete, per-ASG and per-container chain create/flush/delete) computed as the
 * difference of two table states. Pure functions.
 */
import type { CellRuleSet } from '../model/types.js';
import { desiredState, type TableState } from './desired.js';
import { type Atom, type Element, elementKeyText, elementText, SET_DEFS, setDecl } from './elements.js';
import type { FilterMode } from './host-filter.js';
import { type ChainSpec, checkTable, DEFAULT_TABLE, staticChains } from './layout.js';

export interface RenderOptions {
  /** nft table (family inet) cfnet owns; default `cfnet`. No other table is ever touched. */
  table?: string;
  /** The static chains of this filter mode (host-filter.ts); default the self-contained one. */
  filterMode?: FilterMode;
}

const CHUNK = 2000;

function tableOf(opts: RenderOptions | undefined): string {
  return checkTable(opts?.table ?? DEFAULT_TABLE);
}

function chainBlock(c: ChainSpec): string[] {
  const out = [`  chain ${c.name} {`];
  if (c.hook) out.push(`    ${c.hook}`);
  for (const r of c.rules) out.push(`    ${r}`);
  out.push('  }');
  return out;
}

function elementLines(verb: 'add' | 'delete', table: string, set: string, texts: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < texts.length; i += CHUNK) {
    out.push(`${verb} element inet ${table} ${set} { ${texts.slice(i, i + CHUNK).join(', ')} }`);
  }
  return out;
}

function sortedChains(state: TableState, keep: (c: ChainSpec) => boolean = () => true): ChainSpec[] {
  const out: ChainSpec[] = [];
  for (const c of state.chains.values()) if (keep(c)) out.push(c);
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function sortedEntries(
  m: Map<string, Element> | undefined,
  keep: (id: string) => boolean = () => true,
): [string, Element][] {
  if (!m) return [];
  const out: [string, Element][] = [];
  for (const entry of m) if (keep(entry[0])) out.push(entry);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function sortedElements(m: Map<string, Element> | undefined): Element[] {
  return sortedEntries(m).map(([, e]) => e);
}

/** Ids of `from` that `other` lacks, sorted (the default sort: by UTF-16 code units, as `<`). */
function missingIds(from: Map<string, Element>, other: Map<string, Element>): string[] {
  const out: string[] = [];
  for (const id of from.keys()) if (!other.has(id)) out.push(id);
  return out.sort();
}

/**
 * The nft text of elements by id. An element with plain atoms only (addresses, ports, protocols,
 * marks; no value, no comment, no range) is written as its id: for such atoms atomText is atomId,
 * and a c2c churn writes ~2,000 of them.
 */
function texts(ids: string[], m: Map<string, Element>, text: (e: Element) => string): string[] {
  const out = new Array<string>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const e = m.get(ids[i]!)!;
    out[i] = e.value === undefined && e.comment === undefined && e.key.every(plainAtom) ? ids[i]! : text(e);
  }
  return out;
}

const plainAtom = (a: Atom): boolean => a.k === 'ip' || a.k === 'port' || a.k === 'proto' || a.k === 'mark';

/** A script that atomically replaces the whole table with `state`. */
export function renderStateFull(state: TableState, opts?: RenderOptions): string {
  const t = tableOf(opts);
  const lines = [`table inet ${t} {}`, `delete table inet ${t}`, `table inet ${t} {`];
  for (const d of SET_DEFS) lines.push(`  ${setDecl(d)}`);
  for (const c of sortedChains(state)) lines.push(...chainBlock(c));
  for (const c of staticChains(opts?.filterMode)) lines.push(...chainBlock(c));
  lines.push('}');
  for (const d of SET_DEFS) {
    const elems = sortedElements(state.sets.get(d.name));
    if (elems.length > 0) lines.push(...elementLines('add', t, d.name, elems.map(elementText)));
  }
  return `${lines.join('\n')}\n`;
}

/** Full replace of cfnet's table by the rule set `rs` (one `nft -f` transaction). */
export function renderFull(rs: CellRuleSet, opts?: RenderOptions): string {
  return renderStateFull(desiredState(rs), opts);
}

export interface DiffSummary {
  elementsAdded: number;
  elementsDeleted: number;
  chainsAdded: number;
  chainsRewritten: number;
  chainsDeleted: number;
}

export interface StateDiff {
  script: string;
  summary: DiffSummary;
}

function chainDiffers(a: ChainSpec, b: ChainSpec): boolean {
  return a.marker !== b.marker || a.rules.length !== b.rules.length;
}

/**
 * Incremental script turning `prev` into `next`. Deletes only elements and chains present in
 * `prev`, adds only what `next` has and `prev` lacks. Empty script when nothing changes.
 * Order: create/rewrite chains, delete elements, add elements, delete chains (a chain is deleted
 * only after the map elements jumping to it).
 */
export function diffStates(prev: TableState, next: TableState, opts?: RenderOptions): StateDiff {
  const t = tableOf(opts);
  const lines: string[] = [];
  const summary: DiffSummary = {
    elementsAdded: 0,
    elementsDeleted: 0,
    chainsAdded: 0,
    chainsRewritten: 0,
    chainsDeleted: 0,
  };
  for (const c of sortedChains(next, (c) => {
    const p = prev.chains.get(c.name);
    return !p || chainDiffers(p, c);
  })) {
    if (prev.chains.has(c.name)) summary.chainsRewritten++;
    else {
      summary.chainsAdded++;
      // `add chain` is a no-op if another writer created it meanwhile; the flush keeps it exact
      lines.push(`add chain inet ${t} ${c.name}`);
    }
    lines.push(`flush chain inet ${t} ${c.name}`);
    for (const r of c.rules) lines.push(`add rule inet ${t} ${c.name} ${r}`);
  }
  const adds: string[] = [];
  const none = new Map<string, Element>();
  for (const d of SET_DEFS) {
    const before = prev.sets.get(d.name) ?? none;
    const after = next.sets.get(d.name) ?? none;
    const del = missingIds(before, after);
    const add = missingIds(after, before);
    summary.elementsDeleted += del.length;
    summary.elementsAdded += add.length;
    lines.push(...elementLines('delete', t, d.name, texts(del, before, elementKeyText)));
    adds.push(...elementLines('add', t, d.name, texts(add, after, elementText)));
  }
  lines.push(...adds);
  for (const c of sortedChains(prev, (c) => !next.chains.has(c.name))) {
    summary.chainsDeleted++;
    lines.push(`delete chain inet ${t} ${c.name}`);
  }
  return { script: lines.length > 0 ? `${lines.join('\n')}\n` : '', summary };
}

/** Incremental update from rule set `prev` to `next` (element and chain changes only). */
export function renderUpdate(prev: CellRuleSet, next: CellRuleSet, opts?: RenderOptions): string {
  return diffStates(desiredState(prev), desiredState(next), opts).script;
}
