/**
 * The world as the controller's leader last wrote it into Redis (layout in state/keys.ts),
 * read in one go by an operator tool: per-cell container records, agent inventories, egress
 * snapshots, security groups and policies. It answers the span lookups the controller answers from
 * its in-memory indexes (cells of an app, cells of a space, all cells), with the same rule for a
 * container's identity (an active BBS record, else the agent's inventory entry), and is a
 * `WorldView`, so `computeCellRuleSet` can recompute any cell from it.
 */
import type { Redis } from 'ioredis';
import { CfnetError, errorMessage } from '../lib/errors.js';
import { type NameData, NameDirectory } from '../model/names.js';
import type { C2CPolicy, EgressRule, Workload } from '../model/types.js';
import { AsgIndex, PolicyIndex } from '../rules/indexes.js';
import type { ContainerRecord, InventoryEntry } from '../rules/records.js';
import type { SpanLookups } from '../rules/span.js';
import { StaticView } from '../rules/view.js';
import type { Keys } from '../state/keys.js';
import type { AsgData } from '../state/world-store.js';

/** A record of the world that is not valid JSON: named by key and field, so it can be found. */
export class CorruptRecordError extends CfnetError {
  constructor(key: string, field: string, reason: string) {
    super('CFNET_CORRUPT_RECORD', `unreadable world record ${key} ${field}: ${reason}`, { key, field });
  }
}

function parseRecord<T>(text: string, key: string, field: string): T {
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new CorruptRecordError(key, field, errorMessage(err));
  }
}

/** One container as span and explain see it. */
export interface WorldContainer {
  cellId: string;
  handle: string;
  ip: string;
  appGuid: string;
  spaceGuid: string;
  workload: Workload;
  /** From a BBS record (true) or only from the agent's inventory (false). */
  fromBbs: boolean;
}

export class RedisWorld extends StaticView implements SpanLookups {
  private readonly appCells = new Map<string, Set<string>>();
  private readonly spaceCells = new Map<string, Set<string>>();
  private readonly containers: WorldContainer[] = [];

  constructor(
    readonly ready: boolean,
    readonly leader: string | null,
    records: Map<string, ContainerRecord[]>,
    inventory: Map<string, InventoryEntry[]>,
    snapshots: Map<string, readonly EgressRule[]>,
    asg: AsgIndex | null,
    pol: PolicyIndex,
    /** Cells known only from rule sets, leases or status reports. */
    private readonly otherCells: ReadonlySet<string>,
    /** Org, space and app names as the leader last listed them from CAPI (empty without CAPI). */
    readonly names: NameDirectory = NameDirectory.EMPTY,
  ) {
    super(records, inventory, snapshots, asg, pol);
    for (const cell of new Set([...records.keys(), ...inventory.keys()])) {
      const recs = new Map((records.get(cell) ?? []).map((r) => [r.handle, r]));
      const inv = new Map((inventory.get(cell) ?? []).map((e) => [e.handle, e]));
      for (const h of new Set([...recs.keys(), ...inv.keys()])) {
        const r = recs.get(h);
        const e = inv.get(h);
        // The controller's identity rule (World.updateIdent): an active record, else inventory.
        const id = r ? (r.active ? r : null) : (e ?? null);
        if (!id) continue;
        this.containers.push({
          cellId: cell,
          handle: h,
          ip: r?.ip || e?.ip || '',
          appGuid: id.appGuid,
          spaceGuid: id.spaceGuid,
          workload: id.workload,
          fromBbs: !!r,
        });
        if (id.appGuid) add(this.appCells, id.appGuid, cell);
        if (id.spaceGuid) add(this.spaceCells, id.spaceGuid, cell);
      }
    }
  }

  // ---- SpanLookups ----
  cellsOfApp(appGuid: string): Iterable<string> {
    return [...(this.appCells.get(appGuid) ?? [])].sort();
  }
  cellsOfSpace(spaceGuid: string): Iterable<string> {
    return [...(this.spaceCells.get(spaceGuid) ?? [])].sort();
  }
  allCells(): Iterable<string> {
    return [...new Set([...this.records.keys(), ...this.inventory.keys(), ...this.otherCells])].sort();
  }

  // ---- inspection ----
  /** Containers (with an identity) of an app, or all of them. */
  containersOf(appGuid?: string): WorldContainer[] {
    return appGuid === undefined
      ? [...this.containers]
      : this.containers.filter((c) => c.appGuid === appGuid);
  }
  apps(): string[] {
    return [...this.appCells.keys()].sort();
  }
  spaces(): string[] {
    return [...this.spaceCells.keys()].sort();
  }
  /** Does the world know this app guid (a container of it, or a policy naming it)? */
  knowsApp(guid: string): boolean {
    const pol = this.policies();
    return this.appCells.has(guid) || pol.from(guid).length > 0 || pol.to(guid).length > 0;
  }
}

function add(m: Map<string, Set<string>>, k: string, v: string): void {
  let s = m.get(k);
  if (!s) {
    s = new Set();
    m.set(k, s);
  }
  s.add(v);
}

async function hashesOf(redis: Redis, keys: string[]): Promise<Array<Record<string, string>>> {
  const out: Array<Record<string, string>> = [];
  for (let i = 0; i < keys.length; i += 200) {
    const pipe = redis.pipeline();
    for (const k of keys.slice(i, i + 200)) pipe.hgetall(k);
    for (const [err, v] of (await pipe.exec()) ?? []) {
      if (err) throw err;
      out.push((v ?? {}) as Record<string, string>);
    }
  }
  return out;
}

/** Only the org/space/app names of a namespace (one read; empty when the leader has none). */
export async function loadNames(redis: Redis, keys: Keys): Promise<NameDirectory> {
  const data = await redis.hget(keys.names, 'data');
  return data ? new NameDirectory(parseRecord<NameData>(data, keys.names, 'data')) : NameDirectory.EMPTY;
}

/** The security groups as the leader last wrote them (null when none were listed yet). */
export async function loadAsgIndex(redis: Redis, keys: Keys): Promise<AsgIndex | null> {
  return asgIndexOf(keys, await redis.hmget(keys.asg, 'data', 'stateAt'));
}

function asgIndexOf(keys: Keys, [data, stateAt]: Array<string | null>): AsgIndex | null {
  return data ? new AsgIndex(parseRecord<AsgData>(data, keys.asg, 'data'), Number(stateAt ?? 0)) : null;
}

/** Read the whole world of a namespace. */
export async function loadRedisWorld(redis: Redis, keys: Keys): Promise<RedisWorld> {
  const [ready, leader, worldCells, invCells, rsCells, leaseCells, snaps, asg, pol, names] =
    await Promise.all([
      redis.exists(keys.ready),
      redis.get(keys.leader),
      redis.smembers(keys.worldCells),
      redis.smembers(keys.inventoryCells),
      redis.smembers(keys.ruleSetCells),
      redis.hkeys(keys.leases).catch(() => [] as string[]),
      redis.hgetall(keys.snapshots),
      redis.hmget(keys.asg, 'data', 'stateAt'),
      redis.hget(keys.policies, 'data'),
      redis.hget(keys.names, 'data'),
    ]);
  const records = new Map<string, ContainerRecord[]>();
  const recHashes = await hashesOf(
    redis,
    worldCells.map((c) => keys.cellWorld(c)),
  );
  worldCells.forEach((c, i) => {
    const key = keys.cellWorld(c);
    const list = Object.entries(recHashes[i]!).map(([h, j]) => parseRecord<ContainerRecord>(j, key, h));
    if (list.length > 0) records.set(c, list);
  });
  const inventory = new Map<string, InventoryEntry[]>();
  const invHashes = await hashesOf(
    redis,
    invCells.map((c) => keys.inventory(c)),
  );
  invCells.forEach((c, i) => {
    const key = keys.inventory(c);
    const list = Object.entries(invHashes[i]!).map(([h, j]) => parseRecord<InventoryEntry>(j, key, h));
    if (list.length > 0) inventory.set(c, list);
  });
  const snapshots = new Map<string, readonly EgressRule[]>();
  for (const [h, j] of Object.entries(snaps))
    snapshots.set(h, parseRecord<EgressRule[]>(j, keys.snapshots, h));
  const asgIndex = asgIndexOf(keys, asg);
  const polIndex = pol
    ? new PolicyIndex(parseRecord<C2CPolicy[]>(pol, keys.policies, 'data'))
    : PolicyIndex.EMPTY;
  return new RedisWorld(
    ready === 1,
    leader,
    records,
    inventory,
    snapshots,
    asgIndex,
    polIndex,
    new Set([...rsCells, ...leaseCells]),
    names ? new NameDirectory(parseRecord<NameData>(names, keys.names, 'data')) : NameDirectory.EMPTY,
  );
}
