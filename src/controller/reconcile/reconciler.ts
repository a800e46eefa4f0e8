/**
 * Level-based, idempotent reconcile of one cell: read the cell's slice of the world (with the stored
 * rule set's version, in one MULTI), compute, compare with the stored content hash, and write only
 * if it changed, as a compare-and-set on the version that was read. A refused write (another worker
 * wrote first) or a dangling snapshot (the world moved under the read) makes it start over from a
 * fresh read; after a few rounds the error goes to BullMQ, which retries the job with backoff.
 */
import type { CellConfig, CellRuleSet } from '../../model/types.js';
import { type ComputeOptions, computeCellRuleSet } from '../../rules/compute.js';
import { MissingSnapshotError } from '../../rules/errors.js';
import { StaleWriteError, WorldNotReadyError } from '../../state/errors.js';
import { EncodedRuleSet, type RuleSetStore } from '../../state/ruleset-store.js';
import type { WorldStore } from '../../state/world-store.js';

/** WorldNotReadyError reason: an agent is ahead of a world not rewritten since (see once()). */
export const AGENT_AHEAD = 'agent ahead of a world not rewritten since';

export type ReconcileResult =
  | { outcome: 'unchanged'; version: number; containers: number }
  | { outcome: 'written'; version: number; previous: number; containers: number; publishedAt: number };

/** Read-compute-write rounds before a reconcile gives up (each lost only to a concurrent write). */
export const DEFAULT_MAX_ROUNDS = 4;

export interface ReconcilerOptions {
  config: CellConfig;
  compute?: ComputeOptions;
  /** Per-cell conflicts resolved while computing (reported as rejections). */
  onConflict?: ComputeOptions['onConflict'];
  /**
   * Rounds of read-compute-write before giving up.
   * @defaultValue {@link DEFAULT_MAX_ROUNDS}
   */
  maxRounds?: number;
}

export interface ReconcileHooks {
  /** Called between computing and writing (tests use it to make a worker stale). */
  beforeWrite?: (cellId: string, next: CellRuleSet) => Promise<void>;
}

export class Reconciler {
  /** Last rule set this process wrote or read per cell (saves reading the stored snapshot back). */
  private readonly lastStored = new Map<string, CellRuleSet>();

  constructor(
    private readonly world: WorldStore,
    private readonly store: RuleSetStore,
    private readonly opts: ReconcilerOptions,
  ) {}

  async reconcile(cellId: string, hooks: ReconcileHooks = {}): Promise<ReconcileResult> {
    const rounds = this.opts.maxRounds ?? DEFAULT_MAX_ROUNDS;
    for (let round = 1; ; round++) {
      try {
        return await this.once(cellId, hooks);
      } catch (err) {
        const retry = err instanceof StaleWriteError || err instanceof MissingSnapshotError;
        if (!retry || round >= rounds) throw err;
        this.lastStored.delete(cellId);
      }
    }
  }

  private async once(cellId: string, hooks: ReconcileHooks): Promise<ReconcileResult> {
    const slice = await this.world.loadCell(cellId);
    const agentAhead = slice.storedFloor > 0 && slice.storedFloor >= slice.storedVersion;
    if (agentAhead && !(slice.worldCurrent && slice.worldWrittenAt > slice.storedFloorAt)) {
      // An agent holds a version the store lost (a Redis failover or loss): what it enforces may
      // come from world writes that were lost with it. Only a world the leader in office rewrote
      // in full after that was seen may replace it; until then the agent keeps what it has. The
      // worker asks the leader for that rewrite, which enqueues every cell again.
      throw new WorldNotReadyError({ cellId, reason: AGENT_AHEAD });
    }
    const compute = this.opts.onConflict
      ? { ...this.opts.compute, onConflict: this.opts.onConflict }
      : this.opts.compute;
    const next = computeCellRuleSet(slice.view, cellId, this.opts.config, compute);
    const encoded = new EncodedRuleSet(next);
    const hash = encoded.hash;
    // Equal content is not rewritten — unless an agent holds a version above the stored one (the
    // store lost writes, e.g. in a Redis failover): then the same content is written again with a
    // version above the agent's, so that no agent ever sees its version go backwards.
    if (hash === slice.storedHash && slice.storedVersion > 0 && !agentAhead) {
      return { outcome: 'unchanged', version: slice.storedVersion, containers: next.containers.length };
    }
    let prev: CellRuleSet | null = null;
    if (slice.storedVersion > 0) {
      const cached = this.lastStored.get(cellId);
      prev = cached && cached.version === slice.storedVersion ? cached : await this.store.get(cellId);
      // The store moved since the world was read: this computation may be stale. Start over.
      if (!prev || prev.version !== slice.storedVersion) {
        throw new StaleWriteError(cellId, slice.storedVersion, prev?.version ?? 0);
      }
    }
    if (hooks.beforeWrite) await hooks.beforeWrite(cellId, next);
    const version = await this.store.write(next, prev, encoded);
    const publishedAt = Date.now();
    this.lastStored.set(cellId, { ...next, version });
    if (this.lastStored.size > 10_000) this.lastStored.delete(this.lastStored.keys().next().value as string);
    return {
      outcome: 'written',
      version,
      previous: prev?.version ?? 0,
      containers: next.containers.length,
      publishedAt,
    };
  }
}
