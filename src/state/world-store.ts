/**
 * The world in Redis (layout in ../keys.ts). The leader writes it, fenced: every write is a Lua
 * script that first checks the leadership lease still holds the leader's fencing value, so a
 * deposed leader (paused, partitioned) cannot overwrite its successor's world. Agent inventories are
 * written by whichever replica serves the agent (the agent owns its cell's inventory). Workers read
 * one cell's slice in one MULTI (records, inventory, rule-set meta, ASG and policy versions) and
 * keep ASGs, policies and egress snapshots cached in memory by content hash.
 *
 * Longer than ~400 lines: one Redis contract: fenced world writes, the full resync and the
 * one-MULTI cell slice a worker reads share the key layout and their caches.
 */
import type { Redis } from 'ioredis';
import type { C2CPolicy, EgressRule, SecurityGroup } from '../model/types.js';
import { AsgIndex, PolicyIndex } from '../rules/indexes.js';
import type { ContainerRecord, InventoryEntry } from '../rules/records.js';
import { StaticView, type WorldView } from '../rules/view.js';
import type { World, WorldChanges } from '../rules/world.js';
import { FencedOffError, WorldNotReadyError } from './errors.js';
import type { Keys } from './keys.js';
import { defineStateScripts } from './scripts.js';
import { TickBatcher } from './tick-batch.js';

interface FencedRedis extends Redis {
  cfnetFenced(numKeys: number, ...args: string[]): Promise<number>;
}

/** Op codes of the fenced write script, lua/world-fenced.lua (4 arguments each: code, key index, field, value). */
type OpCode = 'hset' | 'hdel' | 'hincr' | 'del' | 'sadd' | 'srem' | 'set' | 'settime';

/** A batch of writes to run under the fence. */
class OpBatch {
  readonly keys: string[] = [];
  private readonly keyIndex = new Map<string, number>();
  readonly args: string[] = [];

  get size(): number {
    return this.args.length / 4;
  }

  add(op: OpCode, key: string, field = '', value = ''): void {
    let i = this.keyIndex.get(key);
    if (i === undefined) {
      this.keys.push(key);
      i = this.keys.length + 1; // KEYS[1] is the lease key
      this.keyIndex.set(key, i);
    }
    this.args.push(op, String(i), field, value);
  }
}

/** The `data` field of `ns:w:asg` (the state time is the separate `stateAt` field). */
export type AsgData = SecurityGroup[];

const MAX_OPS_PER_SCRIPT = 2_000;

/** A LRU-ish bounded map (insertion order; re-set on hit). */
class BoundedCache<V> {
  private readonly m = new Map<string, V>();
  constructor(private readonly max: number) {}
  get(k: string): V | undefined {
    const v = this.m.get(k);
    if (v !== undefined) {
      this.m.delete(k);
      this.m.set(k, v);
    }
    return v;
  }
  set(k: string, v: V): void {
    this.m.delete(k);
    this.m.set(k, v);
    if (this.m.size > this.max) this.m.delete(this.m.keys().next().value as string);
  }
}

/** One cell as a worker read it. */
export interface CellSlice {
  view: WorldView;
  /** Stored rule-set version and content hash at the time of the read (0/'' when none). */
  storedVersion: number;
  storedHash: string;
  /** Highest version an agent held that the store had lost (0 = none); see RuleSetStore. */
  storedFloor: number;
  /** When (Redis clock, ms) an agent was last seen ahead of the store (0 = never). */
  storedFloorAt: number;
  /** The world was written in full by the leader now in office (false between leaders). */
  worldCurrent: boolean;
  /** When (Redis clock, ms) the world was last written in full. */
  worldWrittenAt: number;
  asgVersion: number;
  policyVersion: number;
}

/** The raw reads of one cell (one MULTI serves every cell asked for in the same loop turn). */
interface RawSlice {
  ready: boolean;
  /** Written in full by the leader now in office. */
  current: boolean;
  /** When it was last written in full (Redis clock, ms; 0 = unknown). */
  writtenAt: number;
  ruleSet: Array<string | null>;
  records: Record<string, string>;
  inventory: Record<string, string>;
  asg: Array<string | null>;
  policies: Array<string | null>;
}

export class WorldStore {
  private readonly redis: FencedRedis;
  private readonly snapshotCache = new BoundedCache<readonly EgressRule[]>(20_000);
  // Keyed by content hash, not by the `version` counter: the counter restarts after a FLUSHALL (or
  // a failover to an empty Redis), and a worker must never take old groups for new ones.
  private asgCache: { hash: string | null; index: AsgIndex | null } = { hash: null, index: null };
  private polCache: { hash: string | null; index: PolicyIndex } = { hash: null, index: PolicyIndex.EMPTY };
  /**
   * Loads in flight by content hash: the jobs a worker runs at once all miss the cache when the
   * groups or policies change, and each would otherwise parse and index the whole document (the
   * large foundation's policies take ~0.5 s) — one load serves them all.
   */
  private readonly asgLoads = new SingleFlight();
  private readonly policyLoads = new SingleFlight();
  private readonly slices = new TickBatcher<string, RawSlice>((cells) => this.readSlices(cells), 64);

  constructor(
    redis: Redis,
    readonly keys: Keys,
  ) {
    this.redis = redis as FencedRedis;
    defineStateScripts(this.redis);
  }

  // ---------------------------------------------------------------- leader: fenced writes

  private async run(batches: OpBatch[], fence: string): Promise<void> {
    for (const b of batches) {
      if (b.size === 0) continue;
      const ok = await this.redis.cfnetFenced(
        b.keys.length + 1,
        this.keys.leader,
        ...b.keys,
        fence,
        ...b.args,
      );
      if (Number(ok) !== 1) throw new FencedOffError({ fence });
    }
  }

  /** Batches in the safe order: snapshot additions, everything else, snapshot deletions. */
  private static chunk(ops: Array<[OpCode, string, string?, string?]>): OpBatch[] {
    const out: OpBatch[] = [];
    let cur = new OpBatch();
    for (const [op, key, f, v] of ops) {
      if (cur.size >= MAX_OPS_PER_SCRIPT) {
        out.push(cur);
        cur = new OpBatch();
      }
      cur.add(op, key, f, v);
    }
    out.push(cur);
    return out;
  }

  private globalOps(
    changes: Pick<WorldChanges, 'asg' | 'asgStateAt' | 'policies' | 'names'>,
  ): Array<[OpCode, string, string?, string?]> {
    const ops: Array<[OpCode, string, string?, string?]> = [];
    if (changes.asg) {
      const data: AsgData = [...changes.asg.groups];
      ops.push(['hset', this.keys.asg, 'data', JSON.stringify(data)]);
      ops.push(['hset', this.keys.asg, 'hash', changes.asg.hash]);
      ops.push(['hset', this.keys.asg, 'stateAt', String(changes.asg.stateAt)]);
      ops.push(['hincr', this.keys.asg, 'version']);
    } else if (changes.asgStateAt !== undefined) {
      ops.push(['hset', this.keys.asg, 'stateAt', String(changes.asgStateAt)]);
    }
    if (changes.policies) {
      ops.push(['hset', this.keys.policies, 'data', JSON.stringify(changes.policies.policies)]);
      ops.push(['hset', this.keys.policies, 'hash', changes.policies.hash]);
      ops.push(['hincr', this.keys.policies, 'version']);
    }
    if (changes.names) {
      ops.push(['hset', this.keys.names, 'data', JSON.stringify(changes.names.data)]);
      ops.push(['hset', this.keys.names, 'hash', changes.names.hash]);
    }
    return ops;
  }

  /** Write what the world changed (fenced). `cellHasRecords` says whether a cell still has records. */
  async write(
    changes: WorldChanges,
    fence: string,
    cellHasRecords: (cell: string) => boolean,
  ): Promise<void> {
    const adds: Array<[OpCode, string, string?, string?]> = [];
    const dels: Array<[OpCode, string, string?, string?]> = [];
    for (const [hash, rules] of changes.snapshots) {
      if (rules) adds.push(['hset', this.keys.snapshots, hash, JSON.stringify(rules)]);
      else dels.push(['hdel', this.keys.snapshots, hash]);
    }
    const main: Array<[OpCode, string, string?, string?]> = this.globalOps(changes);
    for (const [cell, recs] of changes.records) {
      const key = this.keys.cellWorld(cell);
      for (const [handle, rec] of recs) {
        if (rec) main.push(['hset', key, handle, JSON.stringify(rec)]);
        else main.push(['hdel', key, handle]);
      }
      main.push(
        cellHasRecords(cell) ? ['sadd', this.keys.worldCells, cell] : ['srem', this.keys.worldCells, cell],
      );
    }
    await this.run([...WorldStore.chunk(adds), ...WorldStore.chunk(main), ...WorldStore.chunk(dels)], fence);
  }

  /**
   * Make Redis hold exactly the world (after the leader's first full listing): write what differs,
   * delete what the world does not have, then mark the world ready. Returns every cell anything is
   * known about (world, previous world, stored rule sets, inventories): the caller reconciles them.
   */
  async resync(world: World, fence: string): Promise<Set<string>> {
    const r = this.redis;
    const adds: Array<[OpCode, string, string?, string?]> = [];
    const main: Array<[OpCode, string, string?, string?]> = [];
    const dels: Array<[OpCode, string, string?, string?]> = [];

    const storedSnaps = new Set(await hkeysAll(r, this.keys.snapshots));
    const wantSnaps = new Map(world.allSnapshots());
    for (const [h, rules] of wantSnaps)
      if (!storedSnaps.has(h)) adds.push(['hset', this.keys.snapshots, h, JSON.stringify(rules)]);
    for (const h of storedSnaps) if (!wantSnaps.has(h)) dels.push(['hdel', this.keys.snapshots, h]);

    const [[asgHash, asgStateAt], polHash, namesHash] = await Promise.all([
      r.hmget(this.keys.asg, 'hash', 'stateAt'),
      r.hget(this.keys.policies, 'hash'),
      r.hget(this.keys.names, 'hash'),
    ]);
    const asg = world.asgs();
    main.push(
      ...this.globalOps({
        ...(asg && asg.hash !== asgHash ? { asg } : {}),
        ...(asg && asg.hash === asgHash && String(asg.stateAt) !== asgStateAt
          ? { asgStateAt: asg.stateAt }
          : {}),
        ...(world.policies().hash !== polHash ? { policies: world.policies() } : {}),
        // an empty directory (no CAPI, or not listed yet) keeps the stored names
        ...(world.names().size > 0 && world.names().hash !== namesHash ? { names: world.names() } : {}),
      }),
    );

    const want = new Map<string, Map<string, string>>();
    for (const [cell, rec] of world.allRecords()) {
      let m = want.get(cell);
      if (!m) {
        m = new Map();
        want.set(cell, m);
      }
      m.set(rec.handle, JSON.stringify(rec));
    }
    const storedCells = await r.smembers(this.keys.worldCells);
    const allCells = new Set([...want.keys(), ...storedCells]);
    const cellList = [...allCells];
    for (let i = 0; i < cellList.length; i += 200) {
      const part = cellList.slice(i, i + 200);
      const pipe = r.pipeline();
      for (const c of part) pipe.hgetall(this.keys.cellWorld(c));
      const res = (await pipe.exec()) ?? [];
      part.forEach((cell, j) => {
        const stored = (res[j]?.[1] ?? {}) as Record<string, string>;
        const w = want.get(cell) ?? new Map<string, string>();
        const key = this.keys.cellWorld(cell);
        for (const [h, json] of w) if (stored[h] !== json) main.push(['hset', key, h, json]);
        for (const h of Object.keys(stored)) if (!w.has(h)) main.push(['hdel', key, h]);
        main.push(w.size > 0 ? ['sadd', this.keys.worldCells, cell] : ['srem', this.keys.worldCells, cell]);
      });
    }
    main.push(['set', this.keys.ready, '', fence]);
    // when (Redis clock) the world was last written in full: a cell whose agent is ahead of the
    // store may be recomputed only from a world written after that was seen (RuleSetStore floor)
    main.push(['settime', this.keys.readyAt, '', '']);
    await this.run([...WorldStore.chunk(adds), ...WorldStore.chunk(main), ...WorldStore.chunk(dels)], fence);

    const [rsCells, invCells] = await Promise.all([
      r.smembers(this.keys.ruleSetCells),
      r.smembers(this.keys.inventoryCells),
    ]);
    return new Set([...allCells, ...rsCells, ...invCells]);
  }

  /** Is the world complete (written by a leader's full resync since Redis last lost it)? */
  async isReady(): Promise<boolean> {
    return (await this.redis.exists(this.keys.ready)) === 1;
  }

  // ---------------------------------------------------------------- agent inventories

  /**
   * Replace a cell's inventory; returns true when it changed (then the cell must be reconciled) and
   * tells the leader on the inventory channel.
   */
  async setInventory(cellId: string, entries: readonly InventoryEntry[]): Promise<boolean> {
    const key = this.keys.inventory(cellId);
    const stored = await this.redis.hgetall(key);
    const next = new Map(entries.map((e) => [e.handle, JSON.stringify(e)]));
    const multi = this.redis.multi();
    let changed = false;
    for (const [h, json] of next) {
      if (stored[h] !== json) {
        multi.hset(key, h, json);
        changed = true;
      }
    }
    for (const h of Object.keys(stored)) {
      if (!next.has(h)) {
        multi.hdel(key, h);
        changed = true;
      }
    }
    if (!changed) return false;
    if (next.size > 0) multi.sadd(this.keys.inventoryCells, cellId);
    else multi.srem(this.keys.inventoryCells, cellId);
    multi.publish(this.keys.inventoryChannel, cellId);
    await multi.exec();
    return true;
  }

  async inventory(cellId: string): Promise<InventoryEntry[]> {
    const h = await this.redis.hgetall(this.keys.inventory(cellId));
    return Object.values(h).map((v) => JSON.parse(v) as InventoryEntry);
  }

  async inventoryCells(): Promise<string[]> {
    return this.redis.smembers(this.keys.inventoryCells);
  }

  async worldCells(): Promise<string[]> {
    return this.redis.smembers(this.keys.worldCells);
  }

  // ---------------------------------------------------------------- workers: one cell's slice

  /** The groups whose content hash is `hash` (null: none stored), at `stateAt`. */
  private async asgIndex(hash: string | null, stateAt: number): Promise<AsgIndex | null> {
    if (hash === null) return null;
    if (this.asgCache.hash !== hash) {
      await this.asgLoads.once(hash, async () => {
        // hash and data are written together; if the leader wrote newer groups since our MULTI we
        // get those (the leader enqueued this cell for them anyway)
        const [h, data] = await this.redis.hmget(this.keys.asg, 'hash', 'data');
        const index = data ? new AsgIndex(JSON.parse(data) as AsgData, 0) : null;
        this.asgCache = { hash: h ?? null, index };
      });
    }
    return this.asgCache.index ? this.asgCache.index.withStateAt(stateAt) : null;
  }

  private async policyIndex(hash: string | null): Promise<PolicyIndex> {
    if (hash === null) return PolicyIndex.EMPTY;
    if (this.polCache.hash !== hash) {
      await this.policyLoads.once(hash, async () => {
        const [h, data] = await this.redis.hmget(this.keys.policies, 'hash', 'data');
        const index = data ? new PolicyIndex(JSON.parse(data) as C2CPolicy[]) : PolicyIndex.EMPTY;
        this.polCache = { hash: h ?? null, index };
      });
    }
    return this.polCache.index;
  }

  /** Read one cell's slice. Throws WorldNotReadyError when the world is not complete. */
  /**
   * The slices of several cells in one MULTI: the global parts (ready flag, ASG and policy
   * versions) once, then each cell's rule-set meta, records and inventory. One transaction, so
   * every cell sees the same consistent state, as when it was read alone.
   */
  private async readSlices(cells: string[]): Promise<Array<RawSlice | Error>> {
    const multi = this.redis
      .multi()
      .get(this.keys.ready)
      .hmget(this.keys.asg, 'version', 'stateAt', 'hash')
      .hmget(this.keys.policies, 'version', 'hash')
      .get(this.keys.leader)
      .get(this.keys.readyAt);
    for (const c of cells) {
      multi
        .hmget(this.keys.ruleSet(c), 'version', 'hash', 'floor', 'floorAt')
        .hgetall(this.keys.cellWorld(c))
        .hgetall(this.keys.inventory(c));
    }
    const res = await multi.exec();
    if (!res) return cells.map((cellId) => new WorldNotReadyError({ cellId, reason: 'transaction aborted' }));
    for (const [err] of res.slice(0, 5)) if (err) throw err;
    const readyFence = res[0]![1] as string | null;
    const ready = readyFence !== null;
    const asg = res[1]![1] as Array<string | null>;
    const policies = res[2]![1] as Array<string | null>;
    const leader = res[3]![1] as string | null;
    const writtenAt = Number(res[4]![1] ?? 0);
    // written in full by the leader in office (not one from before a failover or a loss)
    // (`w:ready` holds the leadership value — fence and instance — of the leader that wrote it)
    const current = ready && leader !== null && leader === readyFence;
    return cells.map((_, i) => {
      const part = res.slice(5 + 3 * i, 8 + 3 * i);
      for (const [err] of part) if (err) return err;
      return {
        ready,
        current,
        writtenAt,
        asg,
        policies,
        ruleSet: part[0]![1] as Array<string | null>,
        records: part[1]![1] as Record<string, string>,
        inventory: part[2]![1] as Record<string, string>,
      };
    });
  }

  async loadCell(cellId: string): Promise<CellSlice> {
    const raw = await this.slices.call(cellId);
    if (!raw.ready) throw new WorldNotReadyError({ cellId });
    const [sv, sh, sf, sfa] = raw.ruleSet;
    const records = Object.values(raw.records).map((j) => JSON.parse(j) as ContainerRecord);
    const inventory = Object.values(raw.inventory).map((j) => JSON.parse(j) as InventoryEntry);
    const [av, as, ah] = raw.asg;
    const asgVersion = Number(av ?? 0);
    const asgStateAt = Number(as ?? 0);
    const [pv, ph] = raw.policies;
    const policyVersion = Number(pv ?? 0);

    const snapshots = new Map<string, readonly EgressRule[]>();
    const missing: string[] = [];
    for (const rec of records) {
      if (rec.snapshot === null || snapshots.has(rec.snapshot)) continue;
      const hit = this.snapshotCache.get(rec.snapshot);
      if (hit) snapshots.set(rec.snapshot, hit);
      else if (!missing.includes(rec.snapshot)) missing.push(rec.snapshot);
    }
    const [asg, pol, fetched] = await Promise.all([
      this.asgIndex(ah ?? null, asgStateAt),
      this.policyIndex(ph ?? null),
      missing.length > 0
        ? this.redis.hmget(this.keys.snapshots, ...missing)
        : Promise.resolve([] as Array<string | null>),
    ]);
    missing.forEach((h, i) => {
      const json = fetched[i];
      if (json) {
        const rules = JSON.parse(json) as EgressRule[];
        this.snapshotCache.set(h, rules);
        snapshots.set(h, rules);
      }
    });
    return {
      view: new StaticView(new Map([[cellId, records]]), new Map([[cellId, inventory]]), snapshots, asg, pol),
      storedVersion: Number(sv ?? 0),
      storedHash: sh ?? '',
      storedFloor: Number(sf ?? 0),
      storedFloorAt: Number(sfa ?? 0),
      worldCurrent: raw.current,
      worldWrittenAt: raw.writtenAt,
      asgVersion,
      policyVersion,
    };
  }
}

async function hkeysAll(r: Redis, key: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, items] = await r.hscan(key, cursor, 'COUNT', 5000);
    cursor = next;
    for (let i = 0; i < items.length; i += 2) out.push(items[i]!);
  } while (cursor !== '0');
  return out;
}

/** Runs one load per key at a time: callers asking for a key already loading wait for that load. */
class SingleFlight {
  private current: { key: string; done: Promise<void> } | null = null;

  once(key: string, load: () => Promise<void>): Promise<void> {
    if (this.current?.key === key) return this.current.done;
    const done = load().finally(() => {
      if (this.current?.done === done) this.current = null;
    });
    this.current = { key, done };
    return done;
  }
}
