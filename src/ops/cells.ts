/**
 * Per-cell convergence for operators (states and lag as src/state/convergence.ts defines them) of
 * every cell the controller knows, from stored rule sets, the world, agent inventories, leases and
 * the reconcile queue, and the leader's publish state.
 */

import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { pendingByCell, type ReconcileJobData } from '../controller/reconcile/queue.js';
import { type CellConvergence, readConvergence } from '../state/convergence.js';
import type { Keys } from '../state/keys.js';

export {
  byLag,
  CELL_STATE_NAMES,
  CELL_STATES,
  type CellConvergence,
  type CellState,
  stateCounts,
} from '../state/convergence.js';

/**
 * Convergence of every known cell, sorted by cell id; with the reconcile queue, cells with a job
 * waiting or running are `pending`.
 */
export async function cellConvergence(
  redis: Redis,
  keys: Keys,
  opts: { now?: number; queue?: Queue<ReconcileJobData> } = {},
): Promise<CellConvergence[]> {
  const [cells, pending] = await Promise.all([
    knownCells(redis, keys),
    opts.queue ? pendingByCell(opts.queue) : undefined,
  ]);
  const all = [...new Set([...cells, ...(pending?.keys() ?? [])])].sort();
  return readConvergence(redis, keys, all, {
    now: opts.now ?? Date.now(),
    ...(pending ? { pending } : {}),
  });
}

/**
 * Convergence of one cell, as `cellConvergence` classifies it; null when no source knows the cell
 * (no rule set, world record, inventory, lease or reconcile job).
 */
export async function oneCellConvergence(
  redis: Redis,
  keys: Keys,
  cellId: string,
  opts: { now?: number; queue?: Queue<ReconcileJobData> } = {},
): Promise<CellConvergence | null> {
  const [cells, pending] = await Promise.all([
    knownCells(redis, keys),
    opts.queue ? pendingByCell(opts.queue) : undefined,
  ]);
  if (!cells.includes(cellId) && !pending?.has(cellId)) return null;
  const [c] = await readConvergence(redis, keys, [cellId], {
    now: opts.now ?? Date.now(),
    ...(pending ? { pending } : {}),
  });
  return c ?? null;
}

/** Cells with a stored rule set, world records, an agent inventory or a lease, sorted. */
async function knownCells(redis: Redis, keys: Keys): Promise<string[]> {
  const [rs, world, inv, leased] = await Promise.all([
    redis.smembers(keys.ruleSetCells),
    redis.smembers(keys.worldCells),
    redis.smembers(keys.inventoryCells),
    redis.hkeys(keys.leases),
  ]);
  return [...new Set([...rs, ...world, ...inv, ...leased])].sort();
}

/** The leader's publish state (see Keys.publishState): why no rule set is being published. */
export interface PublishState {
  leader: string;
  state: 'waiting' | 'publishing';
  /** Sources the leader waits for (never listed since the state was lost). */
  missing: string[];
  since: number;
}

export async function publishState(redis: Redis, keys: Keys): Promise<PublishState | null> {
  const h = await redis.hgetall(keys.publishState);
  if (!h.state) return null;
  return {
    leader: h.leader ?? '',
    state: h.state === 'waiting' ? 'waiting' : 'publishing',
    missing: h.missing ? h.missing.split(',') : [],
    since: Number(h.since ?? 0),
  };
}

/** One line for operators when rule sets are not being published, else null. */
export function publishWarning(p: PublishState | null, now: number): string | null {
  if (p?.state !== 'waiting') return null;
  return `rule sets are NOT being published: leader ${p.leader} waits for ${p.missing.join(', ')} (not listed since the controller's state was lost) for ${Math.round((now - p.since) / 1000)} s; agents keep enforcing what they have`;
}
