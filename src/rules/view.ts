/**
 * What a rule-set computation reads. Implemented by the leader's in-memory `World` (every cell) and
 * by `CellSlice` (one cell as a worker loads it from Redis), so `computeCellRuleSet` is a pure
 * function over either.
 */
import type { EgressRule } from '../model/types.js';
import type { AsgIndex, PolicyIndex } from './indexes.js';
import type { ContainerRecord, InventoryEntry } from './records.js';

export interface WorldView {
  /** Containers BBS places on the cell (active or not). */
  cellRecords(cellId: string): Iterable<ContainerRecord>;
  /** What the cell's agent last reported. */
  cellInventory(cellId: string): Iterable<InventoryEntry>;
  /** Rules of an egress snapshot by hash (undefined if not known). */
  snapshotRules(hash: string): readonly EgressRule[] | undefined;
  /** Security groups; null until the first successful listing. */
  asgs(): AsgIndex | null;
  policies(): PolicyIndex;
}

/** A WorldView over plain collections (a worker's slice of one cell, or a test fixture). */
export class StaticView implements WorldView {
  constructor(
    protected readonly records: Map<string, readonly ContainerRecord[]>,
    protected readonly inventory: Map<string, readonly InventoryEntry[]>,
    protected readonly snapshots: Map<string, readonly EgressRule[]>,
    protected readonly asg: AsgIndex | null,
    protected readonly pol: PolicyIndex,
  ) {}

  cellRecords(cellId: string): Iterable<ContainerRecord> {
    return this.records.get(cellId) ?? [];
  }

  cellInventory(cellId: string): Iterable<InventoryEntry> {
    return this.inventory.get(cellId) ?? [];
  }

  snapshotRules(hash: string): readonly EgressRule[] | undefined {
    return this.snapshots.get(hash);
  }

  asgs(): AsgIndex | null {
    return this.asg;
  }

  policies(): PolicyIndex {
    return this.pol;
  }
}
