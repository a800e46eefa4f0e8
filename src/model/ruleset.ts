/**
 * Cell rule sets: canonical ordering, diff and patch. A patch carries only what changed, so bytes
 * on the wire grow with the change, not with the rule set. Invariant (property-tested):
 * `applyPatch(a, diffRuleSets(a, b))` deep-equals `sortRuleSet(b)`.
 *
 * Collections are sets: containers keyed by handle, asgSets by hash, c2c entries by their content
 * (duplicates collapse in `sortRuleSet`).
 */
import { canonicalJson } from './canonical.js';
import { RuleSetPatchError } from './errors.js';
import { canonicalIpv4Value, parseIp } from './ip.js';
import {
  type C2CAllow,
  type CellConfig,
  type CellContainer,
  type CellRuleSet,
  DEFAULT_CELL_CONFIG,
  type EgressRule,
  type RuleSetPatch,
} from './types.js';

function cloneConfig(config: CellConfig): CellConfig {
  return structuredClone(config);
}

/** Version 0, no containers, no rules. */
export function emptyRuleSet(cellId: string, config: CellConfig = DEFAULT_CELL_CONFIG): CellRuleSet {
  return { cellId, version: 0, containers: [], asgSets: {}, c2c: [], config: cloneConfig(config) };
}

function cmp(a: string | number, b: string | number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** An address's place in the c2c order: family, then numeric value (unparseable text last). */
function ipOrder(ip: string): [number, number | bigint] {
  // IPv4 without BigInt: every container address is one, and a sort asks for each many times
  const v4 = canonicalIpv4Value(ip);
  if (v4 >= 0) return [4, v4];
  try {
    const p = parseIp(ip);
    return [p.family, p.value];
  } catch {
    return [99, 0n];
  }
}

export function compareC2C(a: C2CAllow, b: C2CAllow): number {
  if (a.srcTag !== b.srcTag) return a.srcTag - b.srcTag;
  if (a.dstIp !== b.dstIp) {
    const [fa, va] = ipOrder(a.dstIp);
    const [fb, vb] = ipOrder(b.dstIp);
    if (fa !== fb) return fa - fb;
    if (va !== vb) return va < vb ? -1 : 1;
    return cmp(a.dstIp, b.dstIp);
  }
  return cmp(a.protocol, b.protocol) || a.ports.start - b.ports.start || a.ports.end - b.ports.end;
}

/** Identity of a c2c entry (entries are a set). */
export function c2cKey(e: C2CAllow): string {
  return `${e.srcTag}|${e.dstIp}|${e.protocol}|${e.ports.start}-${e.ports.end}`;
}

function sortContainer(c: CellContainer): CellContainer {
  return {
    ...c,
    netIn: [...c.netIn].sort((x, y) => x.hostPort - y.hostPort || x.containerPort - y.containerPort),
  };
}

function sortedRecord<T>(rec: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(rec).sort()) out[k] = rec[k]!;
  return out;
}

/** An entry with its address's order computed once (a sort compares each entry many times). */
interface OrderedC2C {
  e: C2CAllow;
  family: number;
  value: number | bigint;
}

function compareOrdered(x: OrderedC2C, y: OrderedC2C): number {
  const a = x.e;
  const b = y.e;
  if (a.srcTag !== b.srcTag) return a.srcTag - b.srcTag;
  if (a.dstIp !== b.dstIp) {
    if (x.family !== y.family) return x.family - y.family;
    if (x.value !== y.value) return x.value < y.value ? -1 : 1;
    return cmp(a.dstIp, b.dstIp);
  }
  return cmp(a.protocol, b.protocol) || a.ports.start - b.ports.start || a.ports.end - b.ports.end;
}

/** Sorted by `compareC2C`, duplicates (equal under it: the same `c2cKey`) collapsed. */
function dedupeC2C(list: readonly C2CAllow[]): C2CAllow[] {
  const ordered = list.map((e): OrderedC2C => {
    const [family, value] = ipOrder(e.dstIp);
    return { e, family, value };
  });
  ordered.sort(compareOrdered);
  const out: C2CAllow[] = [];
  for (let i = 0; i < ordered.length; i++) {
    if (i > 0 && compareOrdered(ordered[i - 1]!, ordered[i]!) === 0) continue;
    out.push(ordered[i]!.e);
  }
  return out;
}

/**
 * Tag tables this module sorted. Tables are never mutated, and every cell's rule set carries the
 * same one: sorting it again per cell would cost 2,500 copies of a table of tens of thousands of
 * apps, and would defeat the store's per-table text cache.
 */
const sortedTables = new WeakSet<object>();

/** The tag table sorted by app, or undefined when empty (absent and empty are the same table). */
export function sortTags(
  tags: Readonly<Record<string, number>> | undefined,
): Record<string, number> | undefined {
  if (tags === undefined) return undefined;
  if (sortedTables.has(tags)) return tags as Record<string, number>;
  const keys = Object.keys(tags);
  if (keys.length === 0) return undefined;
  // a table read back from JSON is in order already: mark it rather than copy it
  let ordered = true;
  for (let i = 1; i < keys.length && ordered; i++) ordered = keys[i - 1]! < keys[i]!;
  if (ordered) {
    sortedTables.add(tags);
    return tags as Record<string, number>;
  }
  const out: Record<string, number> = {};
  for (const k of keys.sort()) out[k] = tags[k]!;
  sortedTables.add(out);
  return out;
}

/**
 * Diffs already made, by table pair. Tables are immutable and shared: every cell's rule set holds
 * the same table object per policy state (compute) or per stored table (the store's read cache), so
 * a foundation-wide recompute diffs the same pair once per cell — 2,500 walks of ~20k apps each
 * without this (measured: about half the time of a full recompute of the large foundation).
 */
const diffedTags = new WeakMap<object, WeakMap<object, RuleSetPatch['tags'] | null>>();

/** The changes turning tag table `prev` into `next`, or undefined when they are equal. */
export function diffTags(
  prev: Readonly<Record<string, number>> | undefined,
  next: Readonly<Record<string, number>> | undefined,
): RuleSetPatch['tags'] {
  if (prev === next) return undefined;
  if (prev === undefined || next === undefined) return diffTagTables(prev, next);
  let byNext = diffedTags.get(prev);
  if (byNext === undefined) {
    byNext = new WeakMap();
    diffedTags.set(prev, byNext);
  }
  const known = byNext.get(next);
  if (known !== undefined) return known ?? undefined;
  const diff = diffTagTables(prev, next);
  byNext.set(next, diff ?? null);
  return diff;
}

function diffTagTables(
  prev: Readonly<Record<string, number>> | undefined,
  next: Readonly<Record<string, number>> | undefined,
): RuleSetPatch['tags'] {
  const a = prev ?? {};
  const b = next ?? {};
  const upsert: Record<string, number> = {};
  let changed = false;
  const keys = Object.keys(b);
  for (const k of sortedTables.has(b) ? keys : keys.sort()) {
    if (a[k] !== b[k]) {
      upsert[k] = b[k]!;
      changed = true;
    }
  }
  const remove = Object.keys(a)
    .filter((k) => !Object.hasOwn(b, k))
    .sort();
  if (!changed && remove.length === 0) return undefined;
  return { upsert, remove };
}

/** `tags` with a tag patch applied (removing an app that is not there is a no-op). */
export function patchTags(
  tags: Readonly<Record<string, number>> | undefined,
  change: RuleSetPatch['tags'],
): Record<string, number> | undefined {
  if (change === undefined) return sortTags(tags);
  const out: Record<string, number> = { ...tags };
  for (const k of change.remove) delete out[k];
  for (const [k, v] of Object.entries(change.upsert)) out[k] = v;
  return sortTags(out);
}

/**
 * Canonical order: containers by handle (netIn by host port), asgSets keys sorted, c2c by
 * (srcTag, dstIp numerically, protocol, ports) without duplicates. Returns a new object; rule
 * lists and config are shared with the input, not copied.
 */
export function sortRuleSet(rs: CellRuleSet): CellRuleSet {
  return {
    cellId: rs.cellId,
    version: rs.version,
    containers: rs.containers.map(sortContainer).sort((a, b) => cmp(a.handle, b.handle)),
    asgSets: sortedRecord(rs.asgSets),
    c2c: dedupeC2C(rs.c2c),
    config: rs.config,
    ...withTags(sortTags(rs.tags)),
  };
}

/** `{ tags }` when there are any, else nothing: the key is left out for an empty table. */
export function withTags(tags: Record<string, number> | undefined): { tags?: Record<string, number> } {
  return tags === undefined ? {} : { tags };
}

/**
 * What turns `prev` into `next`: containers upserted when new or changed (any field) and removed by
 * handle; asgSets upserted when new or changed and removed when `next` no longer has them; c2c
 * entries added/removed; `config` only when it changed. `from`/`to` are the two versions.
 */
export function diffRuleSets(prev: CellRuleSet, next: CellRuleSet): RuleSetPatch {
  const prevContainers = new Map(prev.containers.map((c) => [c.handle, canonicalJson(sortContainer(c))]));
  const nextHandles = new Set<string>();
  const upsert: CellContainer[] = [];
  for (const c of [...next.containers].sort((a, b) => cmp(a.handle, b.handle))) {
    nextHandles.add(c.handle);
    const sorted = sortContainer(c);
    if (prevContainers.get(c.handle) !== canonicalJson(sorted)) upsert.push(sorted);
  }
  const removeContainers = [...prevContainers.keys()].filter((h) => !nextHandles.has(h)).sort();

  const asgUpsert: Record<string, EgressRule[]> = {};
  for (const key of Object.keys(next.asgSets).sort()) {
    const before = prev.asgSets[key];
    const after = next.asgSets[key]!;
    if (before === undefined || canonicalJson(before) !== canonicalJson(after)) asgUpsert[key] = after;
  }
  const asgRemove = Object.keys(prev.asgSets)
    .filter((k) => !(k in next.asgSets))
    .sort();

  const prevC2C = new Set(prev.c2c.map(c2cKey));
  const nextC2C = new Set(next.c2c.map(c2cKey));
  const add = dedupeC2C(next.c2c.filter((e) => !prevC2C.has(c2cKey(e))));
  const remove = dedupeC2C(prev.c2c.filter((e) => !nextC2C.has(c2cKey(e))));

  const patch: RuleSetPatch = {
    cellId: next.cellId,
    from: prev.version,
    to: next.version,
    containers: { upsert, remove: removeContainers },
    asgSets: { upsert: asgUpsert, remove: asgRemove },
    c2c: { add, remove },
  };
  if (canonicalJson(prev.config) !== canonicalJson(next.config)) patch.config = next.config;
  const tags = diffTags(prev.tags, next.tags);
  if (tags) patch.tags = tags;
  return patch;
}

/** True when the patch changes nothing but the version. */
export function isEmptyPatch(patch: RuleSetPatch): boolean {
  return (
    patch.containers.upsert.length === 0 &&
    patch.containers.remove.length === 0 &&
    Object.keys(patch.asgSets.upsert).length === 0 &&
    patch.asgSets.remove.length === 0 &&
    patch.c2c.add.length === 0 &&
    patch.c2c.remove.length === 0 &&
    patch.config === undefined &&
    (patch.tags === undefined ||
      (Object.keys(patch.tags.upsert).length === 0 && patch.tags.remove.length === 0))
  );
}

/** Equal content, versions ignored. */
export function ruleSetsEqual(a: CellRuleSet, b: CellRuleSet): boolean {
  return (
    canonicalJson({ ...sortRuleSet(a), version: 0 }) === canonicalJson({ ...sortRuleSet(b), version: 0 })
  );
}

/**
 * Apply a patch to the rule set it was computed from. Throws RuleSetPatchError when the cell or
 * the base version differ (`patch.from !== base.version`), or when the result would leave a
 * container pointing at an asgSet that is not there (an asgSet may only be removed once no
 * container references it; `egress: ''` means "no asg set" and is not checked). Does not modify `base`; the result is sorted (`sortRuleSet`).
 */
export function applyPatch(base: CellRuleSet, patch: RuleSetPatch): CellRuleSet {
  if (patch.cellId !== base.cellId) {
    throw new RuleSetPatchError(
      'CFNET_PATCH_CELL_MISMATCH',
      `patch for cell ${patch.cellId} cannot apply to cell ${base.cellId}`,
      { cellId: base.cellId, patchCellId: patch.cellId },
    );
  }
  if (patch.from !== base.version) {
    throw new RuleSetPatchError(
      'CFNET_PATCH_VERSION_MISMATCH',
      `patch ${patch.from}→${patch.to} does not apply to version ${base.version} of cell ${base.cellId}`,
      { cellId: base.cellId, from: patch.from, to: patch.to, version: base.version },
    );
  }
  const containers = new Map(base.containers.map((c) => [c.handle, c]));
  for (const h of patch.containers.remove) containers.delete(h);
  for (const c of patch.containers.upsert) containers.set(c.handle, c);

  const asgSets: Record<string, EgressRule[]> = { ...base.asgSets };
  for (const k of patch.asgSets.remove) delete asgSets[k];
  for (const [k, v] of Object.entries(patch.asgSets.upsert)) asgSets[k] = v;

  const removedSets = new Set(patch.asgSets.remove.filter((k) => !(k in asgSets)));
  const upserted = new Set(patch.containers.upsert.map((c) => c.handle));
  for (const c of containers.values()) {
    if (c.egress === '') continue; // no egress rules at all
    if ((upserted.has(c.handle) || removedSets.has(c.egress)) && !(c.egress in asgSets)) {
      throw new RuleSetPatchError(
        'CFNET_PATCH_DANGLING_ASG_SET',
        `container ${c.handle} on cell ${base.cellId} references asg set ${c.egress}, which the patch leaves absent`,
        { cellId: base.cellId, handle: c.handle, egress: c.egress, from: patch.from, to: patch.to },
      );
    }
  }

  // most patches remove no c2c entry (a container or an ASG changed): no key per kept entry then
  let c2c: C2CAllow[];
  if (patch.c2c.remove.length === 0) c2c = base.c2c.concat(patch.c2c.add);
  else {
    const removeC2C = new Set(patch.c2c.remove.map(c2cKey));
    c2c = base.c2c.filter((e) => !removeC2C.has(c2cKey(e))).concat(patch.c2c.add);
  }

  return sortRuleSet({
    cellId: base.cellId,
    version: patch.to,
    containers: [...containers.values()],
    asgSets,
    c2c,
    config: patch.config ?? base.config,
    ...withTags(patchTags(base.tags, patch.tags)),
  });
}
