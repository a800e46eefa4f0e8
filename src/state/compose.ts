/**
 * Log entries of the rule-set store and their composition: an agent at version V gets one patch
 * V → current, composed from the consecutive patches of the log. A patch alone cannot say whether
 * an upserted container was new or changed, so each entry also lists what it added; with that the
 * composition is exact: it removes only what existed at V and adds only what did not.
 */
import { c2cKey, compareC2C, diffTags } from '../model/ruleset.js';
import type { C2CAllow, CellContainer, CellRuleSet, EgressRule, RuleSetPatch } from '../model/types.js';

export interface LogEntry {
  patch: RuleSetPatch;
  /** Handles of upserted containers that were absent before. */
  addedHandles: string[];
  /** asgSets keys upserted that were absent before. */
  addedSets: string[];
}

/**
 * JSON text of each container of a (sorted, never mutated) container list, by list identity: the
 * store serialises a computed rule set's containers once for its hash and body, and the diff
 * against it on the next write reuses those texts instead of serialising every container again.
 */
const textsByList = new WeakMap<readonly CellContainer[], string[]>();

export function containerTexts(list: readonly CellContainer[]): string[] {
  let texts = textsByList.get(list);
  if (texts === undefined) {
    texts = list.map((c) => JSON.stringify(c));
    textsByList.set(list, texts);
  }
  return texts;
}

function byHandle(a: CellContainer, b: CellContainer): number {
  return a.handle < b.handle ? -1 : a.handle > b.handle ? 1 : 0;
}

/**
 * The patch turning `prev` into `next`, as `diffRuleSets` of the model defines it, computed for the
 * store's hot path: containers compare by their JSON text (both sides are built in the same key
 * order; a spurious difference only causes a harmless upsert), asgSets by key alone (the key is the
 * content hash of the rules), c2c by identity. Inputs must be sorted (`sortRuleSet`), as computed
 * and stored rule sets are.
 */
export function diffSortedRuleSets(prev: CellRuleSet, next: CellRuleSet): RuleSetPatch {
  const before = new Map<string, string>();
  const prevTexts = containerTexts(prev.containers);
  prev.containers.forEach((c, i) => {
    before.set(c.handle, prevTexts[i]!);
  });
  const nextTexts = containerTexts(next.containers);
  const nextHandles = new Set<string>();
  const upsert: CellContainer[] = [];
  next.containers.forEach((c, i) => {
    nextHandles.add(c.handle);
    if (before.get(c.handle) !== nextTexts[i]) upsert.push(c);
  });
  upsert.sort(byHandle);
  const remove = [...before.keys()].filter((h) => !nextHandles.has(h)).sort();
  const setsUpsert: Record<string, EgressRule[]> = {};
  for (const k of Object.keys(next.asgSets).sort())
    if (!(k in prev.asgSets)) setsUpsert[k] = next.asgSets[k]!;
  const setsRemove = Object.keys(prev.asgSets)
    .filter((k) => !(k in next.asgSets))
    .sort();
  let add: C2CAllow[] = [];
  let removeC2C: C2CAllow[] = [];
  // Most writes leave the c2c entries as they were (a container or an ASG changed): two sorted
  // lists equal entry by entry need no keys built
  if (!sameC2C(prev.c2c, next.c2c)) {
    const prevC2C = new Set(prev.c2c.map(c2cKey));
    const nextC2C = new Set(next.c2c.map(c2cKey));
    add = next.c2c.filter((e) => !prevC2C.has(c2cKey(e))).sort(compareC2C);
    removeC2C = prev.c2c.filter((e) => !nextC2C.has(c2cKey(e))).sort(compareC2C);
  }
  const patch: RuleSetPatch = {
    cellId: next.cellId,
    from: prev.version,
    to: next.version,
    containers: { upsert, remove },
    asgSets: { upsert: setsUpsert, remove: setsRemove },
    c2c: { add, remove: removeC2C },
  };
  if (JSON.stringify(prev.config) !== JSON.stringify(next.config)) patch.config = next.config;
  const tags = diffTags(prev.tags, next.tags);
  if (tags) patch.tags = tags;
  return patch;
}

/** Equal lists, entry by entry (field by field): the same set when both are sorted. */
function sameC2C(a: readonly C2CAllow[], b: readonly C2CAllow[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.srcTag !== y.srcTag ||
      x.dstIp !== y.dstIp ||
      x.protocol !== y.protocol ||
      x.ports.start !== y.ports.start ||
      x.ports.end !== y.ports.end
    )
      return false;
  }
  return true;
}

/** The log entry turning `prev` into `next` (versions taken from them). */
export function makeLogEntry(prev: CellRuleSet, next: CellRuleSet): LogEntry {
  const patch = diffSortedRuleSets(prev, next);
  const had = new Set(prev.containers.map((c) => c.handle));
  return {
    patch,
    addedHandles: patch.containers.upsert.filter((c) => !had.has(c.handle)).map((c) => c.handle),
    addedSets: Object.keys(patch.asgSets.upsert),
  };
}

type Op<T> = { kind: 'set'; value: T } | { kind: 'remove' };

/**
 * One patch equivalent to applying `entries` in order (they must chain: each `from` is the previous
 * `to`). Returns null when they do not chain.
 */
export function composeEntries(entries: readonly LogEntry[]): RuleSetPatch | null {
  if (entries.length === 0) return null;
  for (let i = 1; i < entries.length; i++) {
    if (entries[i]!.patch.from !== entries[i - 1]!.patch.to) return null;
    if (entries[i]!.patch.cellId !== entries[0]!.patch.cellId) return null;
  }
  if (entries.length === 1) return entries[0]!.patch;

  // For each key: whether it existed at the start (decided by its first op) and its last op.
  const containers = new Map<string, { existed: boolean; last: Op<CellContainer> }>();
  const sets = new Map<string, { existed: boolean; last: Op<EgressRule[]> }>();
  const c2c = new Map<string, { existed: boolean; present: boolean; value: C2CAllow }>();
  let config: RuleSetPatch['config'];
  // Tags: the last op per app wins. Removing an app the base lacks is a no-op for a map, so (unlike
  // containers) whether it existed at the start need not be known.
  const tags = new Map<string, number | null>();

  for (const { patch, addedHandles, addedSets } of entries) {
    const added = new Set(addedHandles);
    for (const h of patch.containers.remove) {
      const s = containers.get(h);
      if (s) s.last = { kind: 'remove' };
      else containers.set(h, { existed: true, last: { kind: 'remove' } });
    }
    for (const c of patch.containers.upsert) {
      const s = containers.get(c.handle);
      if (s) s.last = { kind: 'set', value: c };
      else containers.set(c.handle, { existed: !added.has(c.handle), last: { kind: 'set', value: c } });
    }
    const addedS = new Set(addedSets);
    for (const k of patch.asgSets.remove) {
      const s = sets.get(k);
      if (s) s.last = { kind: 'remove' };
      else sets.set(k, { existed: true, last: { kind: 'remove' } });
    }
    for (const [k, v] of Object.entries(patch.asgSets.upsert)) {
      const s = sets.get(k);
      if (s) s.last = { kind: 'set', value: v };
      else sets.set(k, { existed: !addedS.has(k), last: { kind: 'set', value: v } });
    }
    for (const e of patch.c2c.remove) {
      const k = c2cKey(e);
      const s = c2c.get(k);
      if (s) s.present = false;
      else c2c.set(k, { existed: true, present: false, value: e });
    }
    for (const e of patch.c2c.add) {
      const k = c2cKey(e);
      const s = c2c.get(k);
      if (s) s.present = true;
      else c2c.set(k, { existed: false, present: true, value: e });
    }
    if (patch.config) config = patch.config;
    for (const app of patch.tags?.remove ?? []) tags.set(app, null);
    for (const [app, tag] of Object.entries(patch.tags?.upsert ?? {})) tags.set(app, tag);
  }

  const first = entries[0]!.patch;
  const last = entries.at(-1)!.patch;
  const out: RuleSetPatch = {
    cellId: first.cellId,
    from: first.from,
    to: last.to,
    containers: { upsert: [], remove: [] },
    asgSets: { upsert: {}, remove: [] },
    c2c: { add: [], remove: [] },
  };
  for (const [h, s] of [...containers.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (s.last.kind === 'set') out.containers.upsert.push(s.last.value);
    else if (s.existed) out.containers.remove.push(h);
  }
  for (const [k, s] of [...sets.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (s.last.kind === 'set') out.asgSets.upsert[k] = s.last.value;
    else if (s.existed) out.asgSets.remove.push(k);
  }
  const add: C2CAllow[] = [];
  const remove: C2CAllow[] = [];
  for (const s of c2c.values()) {
    if (s.present && !s.existed) add.push(s.value);
    else if (!s.present && s.existed) remove.push(s.value);
  }
  out.c2c.add = add.sort(compareC2C);
  out.c2c.remove = remove.sort(compareC2C);
  if (config) out.config = config;
  if (tags.size > 0) {
    const upsert: Record<string, number> = {};
    const removeTags: string[] = [];
    for (const app of [...tags.keys()].sort()) {
      const tag = tags.get(app)!;
      if (tag === null) removeTags.push(app);
      else upsert[app] = tag;
    }
    out.tags = { upsert, remove: removeTags };
  }
  return out;
}
