/**
 * Indexed, immutable views of the two global inputs: security groups (ASGs) and c2c policies.
 * Built once per version (on the leader when a poll changes them, on a worker when the stored
 * version moves) and shared by every computation of that version.
 */
import { canonicalJson, normalizeRules, shortHash } from '../model/canonical.js';
import { sortTags } from '../model/ruleset.js';
import type { C2CPolicy, EgressRule, SecurityGroup, Workload } from '../model/types.js';
import type { EgressSnapshot } from './records.js';

export type Lifecycle = 'running' | 'staging';

export function lifecycleOf(workload: Workload): Lifecycle {
  return workload === 'staging' ? 'staging' : 'running';
}

interface AsgCore {
  groups: readonly SecurityGroup[];
  hash: string;
  globalRunning: readonly SecurityGroup[];
  globalStaging: readonly SecurityGroup[];
  running: Map<string, SecurityGroup[]>;
  staging: Map<string, SecurityGroup[]>;
  memoRunning: Map<string, EgressSnapshot>;
  memoStaging: Map<string, EgressSnapshot>;
  byGuid: Map<string, SecurityGroup>;
}

function buildCore(groups: readonly SecurityGroup[]): AsgCore {
  const sorted = [...groups].sort((a, b) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0));
  const core: AsgCore = {
    groups: sorted,
    hash: shortHash(canonicalJson(sorted.map(groupKey))),
    globalRunning: sorted.filter((g) => g.runningDefault),
    globalStaging: sorted.filter((g) => g.stagingDefault),
    running: new Map(),
    staging: new Map(),
    memoRunning: new Map(),
    memoStaging: new Map(),
    byGuid: new Map(),
  };
  for (const g of sorted) {
    core.byGuid.set(g.guid, g);
    for (const s of new Set(g.runningSpaces)) push(core.running, s, g);
    for (const s of new Set(g.stagingSpaces)) push(core.staging, s, g);
  }
  return core;
}

/**
 * Security groups in effect, with `stateAt`: the (controller) time from which the CAPI state is
 * known to be this one (the start of the listing, advanced by every later check that confirmed
 * nothing changed).
 */
export class AsgIndex {
  readonly stateAt: number;
  private readonly core: AsgCore;

  constructor(groups: readonly SecurityGroup[] | AsgCore, stateAt: number) {
    this.core = Array.isArray(groups) ? buildCore(groups as readonly SecurityGroup[]) : (groups as AsgCore);
    this.stateAt = stateAt;
  }

  /** The same groups (indexes and memo shared) known to be current at a later time. */
  withStateAt(stateAt: number): AsgIndex {
    return new AsgIndex(this.core, stateAt);
  }

  get groups(): readonly SecurityGroup[] {
    return this.core.groups;
  }

  /** Content hash of the groups (order-free): equal listings → equal hash. */
  get hash(): string {
    return this.core.hash;
  }

  get globalRunning(): readonly SecurityGroup[] {
    return this.core.globalRunning;
  }

  get globalStaging(): readonly SecurityGroup[] {
    return this.core.globalStaging;
  }

  group(guid: string): SecurityGroup | undefined {
    return this.core.byGuid.get(guid);
  }

  /** Groups bound to the space for the lifecycle (globally enabled ones not included). */
  spaceGroups(spaceGuid: string, lifecycle: Lifecycle): readonly SecurityGroup[] {
    return (lifecycle === 'running' ? this.core.running : this.core.staging).get(spaceGuid) ?? [];
  }

  /**
   * The egress rules a container of the space gets for the lifecycle: the globally enabled groups
   * plus the space's groups, normalised; memoised per (space, lifecycle).
   */
  effective(spaceGuid: string, lifecycle: Lifecycle): EgressSnapshot {
    // one memo per lifecycle, keyed by the space alone: no key string built per container
    const memo = lifecycle === 'running' ? this.core.memoRunning : this.core.memoStaging;
    let hit = memo.get(spaceGuid);
    if (!hit) {
      const rules: EgressRule[] = [];
      for (const g of lifecycle === 'running' ? this.globalRunning : this.globalStaging)
        rules.push(...g.rules);
      if (spaceGuid !== '') {
        for (const g of this.spaceGroups(spaceGuid, lifecycle)) {
          if (!(lifecycle === 'running' ? g.runningDefault : g.stagingDefault)) rules.push(...g.rules);
        }
      }
      const normal = normalizeRules(rules);
      hit = { hash: shortHash(canonicalJson(normal)), rules: normal };
      memo.set(spaceGuid, hit);
    }
    return hit;
  }
}

function push<K, V>(m: Map<K, V[]>, k: K, v: V): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/** Canonical content of a group for change detection (name excluded: it shapes no rule). */
export function groupKey(g: SecurityGroup): unknown {
  return {
    guid: g.guid,
    rules: normalizeRules(g.rules),
    runningDefault: g.runningDefault,
    stagingDefault: g.stagingDefault,
    runningSpaces: [...new Set(g.runningSpaces)].sort(),
    stagingSpaces: [...new Set(g.stagingSpaces)].sort(),
  };
}

/** c2c policies indexed by destination and source app, plus every app's tag. */
export class PolicyIndex {
  readonly policies: readonly C2CPolicy[];
  readonly hash: string;
  private readonly byDest = new Map<string, C2CPolicy[]>();
  private readonly bySource = new Map<string, C2CPolicy[]>();
  private readonly tags = new Map<string, number>();
  private readonly keys: Set<string>;

  constructor(policies: readonly C2CPolicy[]) {
    const keyed = new Map<string, C2CPolicy>();
    for (const p of policies) keyed.set(policyKey(p), p);
    const sortedKeys = [...keyed.keys()].sort();
    this.keys = new Set(sortedKeys);
    this.policies = sortedKeys.map((k) => keyed.get(k)!);
    for (const p of this.policies) {
      push(this.byDest, p.destination.appGuid, p);
      push(this.bySource, p.source.appGuid, p);
      // One tag per app; should the server ever disagree with itself, the smallest wins (stable).
      for (const [app, tag] of [
        [p.source.appGuid, p.source.tag],
        [p.destination.appGuid, p.destination.tag],
      ] as const) {
        const have = this.tags.get(app);
        if (have === undefined || tag < have) this.tags.set(app, tag);
      }
    }
    this.hash = shortHash(sortedKeys.join('\n'));
  }

  static readonly EMPTY = new PolicyIndex([]);

  /** Policies whose destination is the app. */
  to(appGuid: string): readonly C2CPolicy[] {
    return this.byDest.get(appGuid) ?? [];
  }

  /** Policies whose source is the app. */
  from(appGuid: string): readonly C2CPolicy[] {
    return this.bySource.get(appGuid) ?? [];
  }

  tagOf(appGuid: string): number | null {
    return this.tags.get(appGuid) ?? null;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  private sourceTable: Record<string, number> | undefined | null = null;

  /**
   * Tags of the apps that are the source of some policy (app → tag), sorted; undefined when none.
   * What every cell's agent needs to tag a new container at CNI ADD: a destination-only app's
   * packets match no c2c entry, so its tag is of no use at the source. Built once per index and
   * shared by every cell's rule set.
   */
  sourceTags(): Record<string, number> | undefined {
    if (this.sourceTable === null) {
      const table: Record<string, number> = {};
      for (const app of this.bySource.keys()) table[app] = this.tags.get(app)!;
      this.sourceTable = sortTags(table);
    }
    return this.sourceTable;
  }

  /** True when the app is the source of some policy (its tag is in every cell's tag table). */
  isSource(appGuid: string): boolean {
    return this.bySource.has(appGuid);
  }

  private sourceTagMap: Map<string, number> | null = null;

  /**
   * The app's tag when it is the source of some policy, else null: `isSource` and `tagOf` in one
   * lookup (rule computation asks it for every container of every cell).
   */
  sourceTagOf(appGuid: string): number | null {
    if (this.sourceTagMap === null) {
      this.sourceTagMap = new Map();
      for (const app of this.bySource.keys()) this.sourceTagMap.set(app, this.tags.get(app)!);
    }
    return this.sourceTagMap.get(appGuid) ?? null;
  }

  tagEntries(): IterableIterator<[string, number]> {
    return this.tags.entries();
  }
}

/** Identity of a policy, tags included (a tag change is a different policy). */
export function policyKey(p: C2CPolicy): string {
  const d = p.destination;
  return `${p.source.appGuid}|${p.source.tag}|${d.appGuid}|${d.tag}|${d.protocol}|${d.ports.start}-${d.ports.end}`;
}
