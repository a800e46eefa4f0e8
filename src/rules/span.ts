/**
 * Span: which cells a change touches (docs/architecture.md, "Span"). Pure functions over before/after indexes
 * and two lookups the world answers from its indexes (no scans):
 * - an ASG change touches the cells running containers of the spaces whose effective rules may
 *   differ (old and new bindings; only the bindings that changed when the rules did not); a change
 *   to (or of) a globally enabled group touches every cell;
 * - a policy change (policies are compared with their tags) touches the cells running the
 *   destination app of every added or removed policy, and the cells running every app whose tag
 *   changed (their containers' `tag`); a change to the source tag table (an app became or stopped
 *   being a policy source, or a source's tag changed) touches every cell, as every cell carries it.
 * BBS changes need no function here: the world re-joins the touched containers and a cell is touched
 * exactly when one of its container records changed (both cells when a container moves).
 */
import { canonicalJson } from '../model/canonical.js';
import { diffTags } from '../model/ruleset.js';
import type { SecurityGroup } from '../model/types.js';
import { type AsgIndex, groupKey, type PolicyIndex, policyKey } from './indexes.js';

export interface SpanLookups {
  cellsOfSpace(spaceGuid: string): Iterable<string>;
  cellsOfApp(appGuid: string): Iterable<string>;
  allCells(): Iterable<string>;
}

export interface AsgDiff {
  /** Some change needs every cell (a global group changed, or the first listing). */
  all: boolean;
  spaces: Set<string>;
  changedGroups: string[];
}

function symmetricDiff(a: readonly string[], b: readonly string[]): string[] {
  const sa = new Set(a);
  const sb = new Set(b);
  return [...sa].filter((x) => !sb.has(x)).concat([...sb].filter((x) => !sa.has(x)));
}

/** Which spaces (or all) see different effective rules between two listings. */
export function diffAsgs(before: AsgIndex | null, after: AsgIndex): AsgDiff {
  const diff: AsgDiff = { all: before === null, spaces: new Set(), changedGroups: [] };
  if (before === null) {
    diff.changedGroups = after.groups.map((g) => g.guid);
    return diff;
  }
  const guids = new Set([...before.groups.map((g) => g.guid), ...after.groups.map((g) => g.guid)]);
  for (const guid of [...guids].sort()) {
    const o = before.group(guid);
    const n = after.group(guid);
    if (o && n && canonicalJson(groupKey(o)) === canonicalJson(groupKey(n))) continue;
    diff.changedGroups.push(guid);
    const global = (g: SecurityGroup | undefined) =>
      g !== undefined && (g.runningDefault || g.stagingDefault);
    if (o && n) {
      if (o.runningDefault !== n.runningDefault || o.stagingDefault !== n.stagingDefault) {
        diff.all = true;
        continue;
      }
      const rulesChanged =
        canonicalJson(groupKey({ ...o, runningSpaces: [], stagingSpaces: [] })) !==
        canonicalJson(groupKey({ ...n, runningSpaces: [], stagingSpaces: [] }));
      if (rulesChanged) {
        if (global(o)) diff.all = true;
        for (const s of [...o.runningSpaces, ...o.stagingSpaces, ...n.runningSpaces, ...n.stagingSpaces]) {
          diff.spaces.add(s);
        }
      } else {
        for (const s of symmetricDiff(o.runningSpaces, n.runningSpaces)) diff.spaces.add(s);
        for (const s of symmetricDiff(o.stagingSpaces, n.stagingSpaces)) diff.spaces.add(s);
      }
      continue;
    }
    const g = (o ?? n)!;
    if (global(g)) diff.all = true;
    for (const s of [...g.runningSpaces, ...g.stagingSpaces]) diff.spaces.add(s);
  }
  return diff;
}

/** Cells touched by an ASG change. */
export function asgChangeSpan(before: AsgIndex | null, after: AsgIndex, lookups: SpanLookups): Set<string> {
  const diff = diffAsgs(before, after);
  if (diff.all) return new Set(lookups.allCells());
  const cells = new Set<string>();
  for (const s of diff.spaces) for (const c of lookups.cellsOfSpace(s)) cells.add(c);
  return cells;
}

export interface PolicyDiff {
  /** Destination apps of added or removed policies. */
  destinations: Set<string>;
  /** Apps whose tag appeared, disappeared or changed. */
  retagged: Set<string>;
  added: number;
  removed: number;
}

export function diffPolicies(before: PolicyIndex, after: PolicyIndex): PolicyDiff {
  const diff: PolicyDiff = { destinations: new Set(), retagged: new Set(), added: 0, removed: 0 };
  for (const p of after.policies) {
    if (!before.has(policyKey(p))) {
      diff.added++;
      diff.destinations.add(p.destination.appGuid);
    }
  }
  for (const p of before.policies) {
    if (!after.has(policyKey(p))) {
      diff.removed++;
      diff.destinations.add(p.destination.appGuid);
    }
  }
  for (const [app, tag] of after.tagEntries()) if (before.tagOf(app) !== tag) diff.retagged.add(app);
  for (const [app] of before.tagEntries()) if (after.tagOf(app) === null) diff.retagged.add(app);
  return diff;
}

/** True when an app became or stopped being a policy source, or a source's tag changed. */
export function sourceTagsChanged(before: PolicyIndex, after: PolicyIndex): boolean {
  return diffTags(before.sourceTags(), after.sourceTags()) !== undefined;
}

/** Cells touched by a policy change. */
export function policyChangeSpan(before: PolicyIndex, after: PolicyIndex, lookups: SpanLookups): Set<string> {
  const diff = diffPolicies(before, after);
  const cells = new Set<string>();
  for (const app of new Set([...diff.destinations, ...diff.retagged])) {
    for (const c of lookups.cellsOfApp(app)) cells.add(c);
  }
  // Every cell carries the source tag table (compute.ts): a change to it touches them all. The
  // cells whose c2c entries or container tags change come first (insertion order is queue order),
  // so the policy itself is enforced before the rest of the foundation gets the new table.
  if (sourceTagsChanged(before, after)) for (const c of lookups.allCells()) cells.add(c);
  return cells;
}
