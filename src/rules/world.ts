/**
 * The leader's in-memory model of the platform: desired LRPs, instances, tasks, egress snapshots,
 * security groups, policies and the agents' inventories, with the indexes span needs (containers by
 * cell, cells by app, cells by space). Every mutation re-joins only the containers it touches,
 * records which cells changed (with the triggering event) and which Redis entries must be written;
 * `takeChanges()` hands that over to the Redis writer and the reconcile queue.
 *
 * Longer than ~400 lines: the in-memory world and its incremental joins: every mutation must keep
 * the same indexes and change records consistent.
 */
import { type NameData, NameDirectory } from '../model/names.js';
import type { C2CPolicy, EgressRule, SecurityGroup } from '../model/types.js';
import { AsgIndex, PolicyIndex } from './indexes.js';
import {
  type ContainerRecord,
  type DesiredInfo,
  type EgressSnapshot,
  type InstanceInfo,
  type InventoryEntry,
  recordOfInstance,
  recordOfTask,
  type TaskInfo,
} from './records.js';
import { asgChangeSpan, policyChangeSpan, type SpanLookups } from './span.js';
import type { WorldView } from './view.js';

/** Why a cell is reconciled: kind of source, its id, and when the controller saw it (ms). */
export interface Trigger {
  kind: 'lrp' | 'desired' | 'task' | 'asg' | 'policy' | 'inventory' | 'resync' | 'replay';
  id: string;
  at: number;
}

/** What changed since the last `takeChanges()`. */
export interface WorldChanges {
  /** Touched cells with (up to a few of) their triggers, oldest first. */
  cells: Map<string, Trigger[]>;
  /** Container records to write (null = delete), by cell and handle. */
  records: Map<string, Map<string, ContainerRecord | null>>;
  /** Egress snapshots to write (null = delete). */
  snapshots: Map<string, readonly EgressRule[] | null>;
  asg?: AsgIndex;
  /** The ASG state in effect was confirmed current at this time (stateAt moved, groups did not). */
  asgStateAt?: number;
  policies?: PolicyIndex;
  /** New org/space/app names (display only: they touch no cell). */
  names?: NameDirectory;
}

const MAX_TRIGGERS_PER_CELL = 5;

interface Ident {
  app: string;
  space: string;
}

interface StoredRecord {
  rec: ContainerRecord;
  json: string;
}

function emptyChanges(): WorldChanges {
  return { cells: new Map(), records: new Map(), snapshots: new Map() };
}

function count(index: Map<string, Map<string, number>>, key: string, cell: string, delta: number): void {
  if (key === '') return;
  let m = index.get(key);
  if (!m) {
    if (delta <= 0) return;
    m = new Map();
    index.set(key, m);
  }
  const n = (m.get(cell) ?? 0) + delta;
  if (n > 0) m.set(cell, n);
  else {
    m.delete(cell);
    if (m.size === 0) index.delete(key);
  }
}

/** A full BBS listing as the informer converts it. */
export interface BbsListing {
  desired: Array<{ info: DesiredInfo; snapshot: EgressSnapshot }>;
  instances: InstanceInfo[];
  tasks: Array<{ info: TaskInfo; snapshot: EgressSnapshot }>;
}

export class World implements WorldView, SpanLookups {
  private readonly desired = new Map<string, DesiredInfo & { retired?: boolean }>();
  private readonly instances = new Map<string, InstanceInfo>();
  private readonly byProcess = new Map<string, Set<string>>();
  private readonly tasks = new Map<string, TaskInfo>();
  private readonly snaps = new Map<string, { rules: EgressRule[]; refs: number }>();
  private asg: AsgIndex | null = null;
  private pol: PolicyIndex = PolicyIndex.EMPTY;
  private nameDir: NameDirectory = NameDirectory.EMPTY;
  private readonly inv = new Map<string, Map<string, InventoryEntry>>();
  private readonly recs = new Map<string, Map<string, StoredRecord>>();
  private readonly recCell = new Map<string, string>();
  private readonly ident = new Map<string, Map<string, Ident>>();
  private readonly appCells = new Map<string, Map<string, number>>();
  private readonly spaceCells = new Map<string, Map<string, number>>();
  /** Desired LRPs / tasks desired since the ASG listing in effect (they may switch to CAPI state). */
  private readonly recentDesired = new Set<string>();
  /** Cells BBS lists as present (they get a rule set even without containers). */
  private readonly known = new Set<string>();
  private pending: WorldChanges = emptyChanges();

  // ---- WorldView ----

  cellRecords(cellId: string): Iterable<ContainerRecord> {
    const m = this.recs.get(cellId);
    return m ? [...m.values()].map((s) => s.rec) : [];
  }

  cellInventory(cellId: string): Iterable<InventoryEntry> {
    return this.inv.get(cellId)?.values() ?? [];
  }

  snapshotRules(hash: string): readonly EgressRule[] | undefined {
    return this.snaps.get(hash)?.rules;
  }

  asgs(): AsgIndex | null {
    return this.asg;
  }

  policies(): PolicyIndex {
    return this.pol;
  }

  // ---- SpanLookups ----

  cellsOfSpace(spaceGuid: string): Iterable<string> {
    return this.spaceCells.get(spaceGuid)?.keys() ?? [];
  }

  cellsOfApp(appGuid: string): Iterable<string> {
    return this.appCells.get(appGuid)?.keys() ?? [];
  }

  allCells(): Iterable<string> {
    return new Set([...this.recs.keys(), ...this.inv.keys(), ...this.known]);
  }

  /** Cells BBS reports present (`/v1/cells/list.r1`): new ones are touched (they need a rule set). */
  setKnownCells(cells: Iterable<string>, trigger: Trigger): void {
    const next = new Set(cells);
    for (const c of next) {
      if (!this.known.has(c)) {
        this.known.add(c);
        this.markCell(c, trigger);
      }
    }
    for (const c of [...this.known]) if (!next.has(c)) this.known.delete(c);
  }

  // ---- inspection ----

  get counts(): { desired: number; instances: number; tasks: number; snapshots: number; cells: number } {
    return {
      desired: this.desired.size,
      instances: this.instances.size,
      tasks: this.tasks.size,
      snapshots: this.snaps.size,
      cells: this.recs.size,
    };
  }

  desiredInfo(processGuid: string): DesiredInfo | undefined {
    return this.desired.get(processGuid);
  }

  instance(handle: string): InstanceInfo | undefined {
    return this.instances.get(handle);
  }

  task(guid: string): TaskInfo | undefined {
    return this.tasks.get(guid);
  }

  /** Every stored record (for a full resync to Redis). */
  *allRecords(): IterableIterator<[string, ContainerRecord]> {
    for (const [cell, m] of this.recs) for (const s of m.values()) yield [cell, s.rec];
  }

  *allSnapshots(): IterableIterator<[string, readonly EgressRule[]]> {
    for (const [hash, s] of this.snaps) yield [hash, s.rules];
  }

  processGuids(): IterableIterator<string> {
    return this.desired.keys();
  }

  handles(): IterableIterator<string> {
    return this.instances.keys();
  }

  taskGuids(): IterableIterator<string> {
    return this.tasks.keys();
  }

  // ---- changes ----

  takeChanges(): WorldChanges {
    const out = this.pending;
    this.pending = emptyChanges();
    return out;
  }

  hasChanges(): boolean {
    const p = this.pending;
    return (
      p.cells.size > 0 ||
      p.records.size > 0 ||
      p.snapshots.size > 0 ||
      !!p.asg ||
      p.asgStateAt !== undefined ||
      !!p.policies ||
      !!p.names
    );
  }

  /** Mark cells touched by something outside the world (replay, resync). */
  touch(cells: Iterable<string>, trigger: Trigger): void {
    for (const c of cells) this.markCell(c, trigger);
  }

  private markCell(cell: string, trigger: Trigger): void {
    const list = this.pending.cells.get(cell);
    if (!list) this.pending.cells.set(cell, [trigger]);
    else if (list.length < MAX_TRIGGERS_PER_CELL) list.push(trigger);
  }

  // ---- snapshots (ref-counted by desired LRPs and tasks) ----

  private ref(s: EgressSnapshot): void {
    const have = this.snaps.get(s.hash);
    if (have) have.refs++;
    else {
      this.snaps.set(s.hash, { rules: s.rules, refs: 1 });
      this.pending.snapshots.set(s.hash, s.rules);
    }
  }

  private unref(hash: string): void {
    const have = this.snaps.get(hash);
    if (!have) return;
    if (--have.refs <= 0) {
      this.snaps.delete(hash);
      this.pending.snapshots.set(hash, null);
    }
  }

  // ---- records and identity indexes ----

  private setRecord(cell: string, handle: string, rec: ContainerRecord | null, trigger: Trigger): void {
    let m = this.recs.get(cell);
    const prev = m?.get(handle);
    if (rec === null) {
      if (!prev) return;
      m!.delete(handle);
      if (m!.size === 0) this.recs.delete(cell);
      if (this.recCell.get(handle) === cell) this.recCell.delete(handle);
    } else {
      const json = JSON.stringify(rec);
      if (prev && prev.json === json) return;
      if (!m) {
        m = new Map();
        this.recs.set(cell, m);
      }
      m.set(handle, { rec, json });
      this.recCell.set(handle, cell);
    }
    let dirty = this.pending.records.get(cell);
    if (!dirty) {
      dirty = new Map();
      this.pending.records.set(cell, dirty);
    }
    dirty.set(handle, rec);
    this.markCell(cell, trigger);
    this.updateIdent(cell, handle);
  }

  private updateIdent(cell: string, handle: string): void {
    const rec = this.recs.get(cell)?.get(handle)?.rec;
    let next: Ident | null = null;
    if (rec) next = rec.active ? { app: rec.appGuid, space: rec.spaceGuid } : null;
    else {
      const e = this.inv.get(cell)?.get(handle);
      if (e) next = { app: e.appGuid, space: e.spaceGuid };
    }
    let m = this.ident.get(cell);
    const prev = m?.get(handle) ?? null;
    if (prev?.app === next?.app && prev?.space === next?.space) return;
    if (prev) {
      count(this.appCells, prev.app, cell, -1);
      count(this.spaceCells, prev.space, cell, -1);
      m!.delete(handle);
      if (m!.size === 0) this.ident.delete(cell);
    }
    if (next) {
      if (!m || !this.ident.has(cell)) {
        m = new Map();
        this.ident.set(cell, m);
      }
      m.set(handle, next);
      count(this.appCells, next.app, cell, 1);
      count(this.spaceCells, next.space, cell, 1);
    }
  }

  private placeRecord(
    handle: string,
    cell: string | null,
    rec: ContainerRecord | null,
    trigger: Trigger,
  ): void {
    const before = this.recCell.get(handle);
    if (before !== undefined && before !== cell) this.setRecord(before, handle, null, trigger);
    if (cell !== null && rec !== null) this.setRecord(cell, handle, rec, trigger);
  }

  private rejoinInstance(handle: string, trigger: Trigger): void {
    const i = this.instances.get(handle);
    if (!i) {
      this.placeRecord(handle, null, null, trigger);
      return;
    }
    this.placeRecord(handle, i.cellId, recordOfInstance(i, this.desired.get(i.processGuid)), trigger);
  }

  // ---- desired LRPs ----

  /** A desired LRP was created or changed (event or listing). */
  upsertDesired(info: DesiredInfo, snapshot: EgressSnapshot, trigger: Trigger): void {
    const prev = this.desired.get(info.processGuid);
    if (
      prev &&
      !prev.retired &&
      prev.snapshot === info.snapshot &&
      prev.appGuid === info.appGuid &&
      prev.spaceGuid === info.spaceGuid &&
      prev.orgGuid === info.orgGuid &&
      prev.workload === info.workload
    ) {
      return; // nothing rules depend on changed (instances, routes, annotation, …)
    }
    this.ref(snapshot);
    if (prev) this.unref(prev.snapshot);
    const next = { ...info };
    if (prev && prev.snapshot === info.snapshot) next.desiredAt = prev.desiredAt;
    this.desired.set(info.processGuid, next);
    if (!prev || prev.snapshot !== info.snapshot) this.recentDesired.add(`lrp:${info.processGuid}`);
    for (const h of this.byProcess.get(info.processGuid) ?? []) this.rejoinInstance(h, trigger);
  }

  /**
   * A desired LRP was removed. Its remaining instances keep its identity until they are removed
   * themselves (their rules must not change while they stop).
   */
  removeDesired(processGuid: string, _trigger: Trigger): void {
    const prev = this.desired.get(processGuid);
    if (!prev) return;
    if ((this.byProcess.get(processGuid)?.size ?? 0) > 0) {
      prev.retired = true;
      return;
    }
    this.desired.delete(processGuid);
    this.unref(prev.snapshot);
    this.recentDesired.delete(`lrp:${processGuid}`);
  }

  // ---- instances ----

  upsertInstance(i: InstanceInfo, trigger: Trigger): void {
    const prev = this.instances.get(i.handle);
    if (prev && prev.processGuid !== i.processGuid) this.detach(prev);
    this.instances.set(i.handle, i);
    let set = this.byProcess.get(i.processGuid);
    if (!set) {
      set = new Set();
      this.byProcess.set(i.processGuid, set);
    }
    set.add(i.handle);
    this.rejoinInstance(i.handle, trigger);
  }

  removeInstance(handle: string, trigger: Trigger): void {
    const prev = this.instances.get(handle);
    if (!prev) return;
    this.instances.delete(handle);
    this.detach(prev);
    this.rejoinInstance(handle, trigger);
  }

  private detach(i: InstanceInfo): void {
    const set = this.byProcess.get(i.processGuid);
    if (!set) return;
    set.delete(i.handle);
    if (set.size > 0) return;
    this.byProcess.delete(i.processGuid);
    const d = this.desired.get(i.processGuid);
    if (d?.retired) {
      this.desired.delete(i.processGuid);
      this.unref(d.snapshot);
      this.recentDesired.delete(`lrp:${i.processGuid}`);
    }
  }

  // ---- tasks ----

  upsertTask(t: TaskInfo, snapshot: EgressSnapshot, trigger: Trigger): void {
    const prev = this.tasks.get(t.handle);
    this.ref(snapshot);
    if (prev) this.unref(prev.snapshot);
    const next = { ...t };
    if (prev && prev.snapshot === t.snapshot) next.desiredAt = prev.desiredAt;
    this.tasks.set(t.handle, next);
    if (!prev || prev.snapshot !== t.snapshot) this.recentDesired.add(`task:${t.handle}`);
    this.placeRecord(t.handle, next.cellId, recordOfTask(next), trigger);
  }

  removeTask(guid: string, trigger: Trigger): void {
    const prev = this.tasks.get(guid);
    if (!prev) return;
    this.tasks.delete(guid);
    this.unref(prev.snapshot);
    this.recentDesired.delete(`task:${guid}`);
    this.placeRecord(guid, null, null, trigger);
  }

  // ---- listings (re-list after a reconnect: only real differences count) ----

  /**
   * Replace everything BBS-derived with a listing. Items the world already has unchanged cause no
   * change; missing ones are removed. `listedAt` is the desire time given to desired LRPs and tasks
   * the world did not know (0 on the first listing: they were desired at an unknown earlier time).
   */
  replaceBbs(listing: BbsListing, trigger: Trigger): void {
    for (const _ of this.replaceSteps(listing, trigger, Number.POSITIVE_INFINITY)) {
      // one step: nothing to wait for
    }
  }

  /**
   * `replaceBbs` in event-loop turns of `perTurn` items: the first listing of a large foundation
   * (250,000 containers) takes seconds of CPU, and one synchronous block that long would starve the
   * leadership lease renewal and the agent API. Every record is consistent between turns; the
   * removals come after all upserts.
   */
  async replaceBbsInTurns(listing: BbsListing, trigger: Trigger, perTurn = 5_000): Promise<void> {
    for (const _ of this.replaceSteps(listing, trigger, perTurn)) {
      await new Promise((r) => setImmediate(r));
    }
  }

  private *replaceSteps(listing: BbsListing, trigger: Trigger, perTurn: number): Generator<void> {
    let n = 0;
    const tick = () => ++n % perTurn === 0;
    for (const d of listing.desired) {
      this.upsertDesired(d.info, d.snapshot, trigger);
      if (tick()) yield;
    }
    for (const i of listing.instances) {
      this.upsertInstance(i, trigger);
      if (tick()) yield;
    }
    for (const t of listing.tasks) {
      this.upsertTask(t.info, t.snapshot, trigger);
      if (tick()) yield;
    }
    const dGuids = new Set(listing.desired.map((d) => d.info.processGuid));
    const handles = new Set(listing.instances.map((i) => i.handle));
    const tGuids = new Set(listing.tasks.map((t) => t.info.handle));
    for (const h of [...this.instances.keys()]) {
      if (!handles.has(h)) this.removeInstance(h, trigger);
      if (tick()) yield;
    }
    for (const g of [...this.tasks.keys()]) if (!tGuids.has(g)) this.removeTask(g, trigger);
    for (const pg of [...this.desired.keys()]) if (!dGuids.has(pg)) this.removeDesired(pg, trigger);
  }

  // ---- agent inventory (indexes only: the API enqueues the cell itself) ----

  setInventory(cellId: string, entries: readonly InventoryEntry[]): void {
    const prev = this.inv.get(cellId) ?? new Map<string, InventoryEntry>();
    const next = new Map(entries.map((e) => [e.handle, e]));
    if (next.size > 0) this.inv.set(cellId, next);
    else this.inv.delete(cellId);
    for (const h of new Set([...prev.keys(), ...next.keys()])) this.updateIdent(cellId, h);
  }

  // ---- security groups and policies ----

  /**
   * A successful security-group listing started at `stateAt`. When its content is the one in
   * effect it only confirms it (`confirmAsgs`). Otherwise touched: the span of the group diff, plus
   * the cells of containers desired after the previous state time (they switch from their BBS
   * snapshot to the CAPI state). Returns whether the groups changed.
   */
  setAsgs(groups: readonly SecurityGroup[], stateAt: number, trigger: Trigger): boolean {
    const next = new AsgIndex(groups, stateAt);
    const prev = this.asg;
    if (prev && prev.hash === next.hash) {
      this.confirmAsgs(stateAt, trigger);
      return false;
    }
    const cells = asgChangeSpan(prev, next, this);
    if (prev) for (const c of this.flipCells(prev.stateAt, stateAt)) cells.add(c);
    this.forgetDesiredUpTo(stateAt);
    this.asg = next;
    this.pending.asg = next;
    this.pending.asgStateAt = undefined;
    for (const c of cells) this.markCell(c, trigger);
    return true;
  }

  /**
   * A check at `at` showed the groups in effect are still current (e.g. `asg_latest_update` did
   * not move). Containers desired between the previous state time and `at` switch from their
   * snapshot to the CAPI state: their cells are touched. Returns the number of touched cells.
   *
   * The new state time is always written, even when no cell is touched: workers decide between
   * snapshot and CAPI state with the stored state time, and a container desired before `at` but
   * placed on a cell only after this check (its instance comes later, or its event was still
   * queued) is never switched again by a later check (it is no longer "recent"). Keeping the
   * stored time equal to this one makes workers decide as the leader does.
   */
  confirmAsgs(at: number, trigger: Trigger): number {
    const prev = this.asg;
    if (!prev || at <= prev.stateAt) return 0;
    const cells = this.flipCells(prev.stateAt, at);
    this.forgetDesiredUpTo(at);
    this.asg = prev.withStateAt(at);
    if (this.pending.asg) this.pending.asg = this.asg;
    else this.pending.asgStateAt = at;
    for (const c of cells) this.markCell(c, trigger);
    return cells.size;
  }

  private desiredAtOf(key: string): number | undefined {
    const sep = key.indexOf(':');
    const id = key.slice(sep + 1);
    return key.startsWith('lrp:') ? this.desired.get(id)?.desiredAt : this.tasks.get(id)?.desiredAt;
  }

  /** Entries desired at or before `at` use the CAPI state from now on: no longer "recent". */
  private forgetDesiredUpTo(at: number): void {
    for (const key of [...this.recentDesired]) {
      const d = this.desiredAtOf(key);
      if (d === undefined || d <= at) this.recentDesired.delete(key);
    }
  }

  /** Cells of containers desired in (from, to]: their egress source switches at `to`. */
  private flipCells(from: number, to: number): Set<string> {
    const cells = new Set<string>();
    for (const key of this.recentDesired) {
      const sep = key.indexOf(':');
      const kind = key.slice(0, sep);
      const id = key.slice(sep + 1);
      const desiredAt = kind === 'lrp' ? this.desired.get(id)?.desiredAt : this.tasks.get(id)?.desiredAt;
      if (desiredAt === undefined || desiredAt <= from || desiredAt > to) continue;
      if (kind === 'task') {
        const c = this.recCell.get(id);
        if (c) cells.add(c);
      } else {
        for (const h of this.byProcess.get(id) ?? []) {
          const c = this.recCell.get(h);
          if (c) cells.add(c);
        }
      }
    }
    return cells;
  }

  /** Org, space and app names as CAPI last listed them. */
  names(): NameDirectory {
    return this.nameDir;
  }

  /** A names listing; returns whether it differs from the one in effect. No cell is touched. */
  setNames(data: NameData): boolean {
    const next = new NameDirectory(data);
    if (next.hash === this.nameDir.hash) return false;
    this.nameDir = next;
    this.pending.names = next;
    return true;
  }

  /** A policy listing; nothing changes when it equals the one in effect. */
  setPolicies(policies: readonly C2CPolicy[], trigger: Trigger): boolean {
    const next = new PolicyIndex(policies);
    const prev = this.pol;
    if (prev.hash === next.hash) return false;
    const cells = policyChangeSpan(prev, next, this);
    this.pol = next;
    this.pending.policies = next;
    for (const c of cells) this.markCell(c, trigger);
    return true;
  }
}
