/**
 * `GET /v1/cells/{cell}/rules?since=V&wait=S`: the long-poll of a cell's rule set.
 *
 * 200 `{kind: 'patch', patch}` (V → current, when the store's log covers V) or
 * `{kind: 'snapshot', ruleSet}` (V = 0, unknown, too old or ahead of the store); 304 with no body
 * when nothing changed within S seconds. Both carry `x-cfnet-version` (HEADERS.version): the current
 * version, 0 when nothing is stored for the cell.
 *
 * Validation depth, chosen for speed: a snapshot can be ~1 MB (the foundation's source tag table
 * alone is ~0.9 MB on a large foundation), and the agent already checks every item of the rule set
 * it is about to enforce (src/dataplane/admit.ts, per container, refusing what it cannot enforce)
 * and `applyPatch` checks a patch's versions against what it holds. So these schemas check the
 * *shape* only — the kind, the version numbers, and that each collection is an array or object —
 * in constant time, without walking or copying the rule set (a deep zod parse of a 1 MB rule set
 * would cost tens of milliseconds and a second copy per poll).
 */
import { z } from 'zod';
import type { CellRuleSet, RuleSetPatch } from '../model/types.js';

export const RulesQuery = z.object({
  since: z.coerce.number().int().nonnegative().default(0),
  wait: z.coerce.number().nonnegative().default(0),
});
export type RulesQuery = z.infer<typeof RulesQuery>;

/** The query string of a poll (`?since=V&wait=S`). */
export function rulesQueryString(q: RulesQuery): string {
  return `?since=${q.since}&wait=${q.wait}`;
}

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isVersion = (v: unknown): boolean => Number.isSafeInteger(v) && (v as number) >= 0;

/** Shape of a CellRuleSet: cell id, version, and each collection of the right kind. O(1). */
export function isRuleSetShape(v: unknown): v is CellRuleSet {
  return (
    isObject(v) &&
    typeof v.cellId === 'string' &&
    isVersion(v.version) &&
    Array.isArray(v.containers) &&
    isObject(v.asgSets) &&
    Array.isArray(v.c2c) &&
    isObject(v.config) &&
    (v.tags === undefined || isObject(v.tags))
  );
}

/** Shape of a RuleSetPatch: cell id, from/to, and the upsert/remove halves of each part. O(1). */
export function isPatchShape(v: unknown): v is RuleSetPatch {
  if (!isObject(v) || typeof v.cellId !== 'string' || !isVersion(v.from) || !isVersion(v.to)) return false;
  const { containers, asgSets, c2c, config, tags } = v;
  return (
    isObject(containers) &&
    Array.isArray(containers.upsert) &&
    Array.isArray(containers.remove) &&
    isObject(asgSets) &&
    isObject(asgSets.upsert) &&
    Array.isArray(asgSets.remove) &&
    isObject(c2c) &&
    Array.isArray(c2c.add) &&
    Array.isArray(c2c.remove) &&
    (config === undefined || isObject(config)) &&
    (tags === undefined || (isObject(tags) && isObject(tags.upsert) && Array.isArray(tags.remove)))
  );
}

export const RuleSetShape = z.custom<CellRuleSet>(isRuleSetShape, { message: 'expected a cell rule set' });
export const PatchShape = z.custom<RuleSetPatch>(isPatchShape, { message: 'expected a rule-set patch' });

/** The 200 answer: a change (the 304 answer has no body). */
export const RulesChangeAnswer = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('patch'), patch: PatchShape }),
  z.object({ kind: z.literal('snapshot'), ruleSet: RuleSetShape }),
]);
export type RulesChangeAnswer = z.infer<typeof RulesChangeAnswer>;

/** The version an `x-cfnet-version` header names (0 when absent or not a number). */
export function versionOfHeader(value: unknown): number {
  const v = Number(Array.isArray(value) ? value[0] : (value ?? 0));
  return Number.isFinite(v) ? v : 0;
}
