/**
 * The BullMQ `reconcile` queue (docs/controller.md, "Queue and workers"). Jobs carry keys, not payloads: the
 * job for cell X says "recompute X" plus the trigger timestamps (for latency metrics). Jobs are
 * deduplicated per cell with `deduplication: {id: cellId, keepLastIfActive: true}`: while a job of
 * the cell waits, new requests are absorbed by it; while one is active, at most one follow-up is
 * kept (with the latest data), so a storm of events becomes at most two jobs per cell. The queue's
 * `prefix` is the installation namespace (a Redis Cluster hash tag, e.g. `{cfnet}`).
 */
import { type JobsOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AsgIndex, PolicyIndex } from '../../rules/indexes.js';
import type { Trigger } from '../../rules/world.js';
import type { PendingJob } from '../../state/convergence.js';

export const RECONCILE_QUEUE = 'reconcile';
export const RECONCILE_JOB = 'reconcile';

export interface ReconcileJobData {
  cellId: string;
  triggers: Trigger[];
}

/** Attempts per reconcile job (`jobAttempts`). */
export const DEFAULT_JOB_ATTEMPTS = 5;
/** First retry delay (ms), doubling per attempt (`jobBackoffMs`). */
export const DEFAULT_JOB_BACKOFF_MS = 500;
/** Completed jobs kept in Redis, for an hour at most (`keepCompletedJobs`). */
export const DEFAULT_KEEP_COMPLETED = { count: 1000, age: 3600 } as const;
/** Failed jobs kept in Redis, for a week at most (`keepFailedJobs`). */
export const DEFAULT_KEEP_FAILED = { count: 5000, age: 7 * 24 * 3600 } as const;

export interface ReconcileQueueOptions {
  /** BullMQ prefix = Redis namespace (e.g. `{cfnet}`). */
  prefix: string;
  /**
   * Attempts per job, with exponential backoff from `backoffMs`.
   * @defaultValue {@link DEFAULT_JOB_ATTEMPTS}
   */
  attempts?: number;
  /** @defaultValue {@link DEFAULT_JOB_BACKOFF_MS} */
  backoffMs?: number;
  /**
   * Completed / failed jobs kept (count and age in s).
   * @defaultValue {@link DEFAULT_KEEP_COMPLETED} / {@link DEFAULT_KEEP_FAILED}
   */
  keepCompleted?: { count: number; age: number };
  keepFailed?: { count: number; age: number };
  /**
   * Called after every enqueue with the job ids BullMQ returned and, for world changes, the
   * security groups and policies written with them (operator journal).
   */
  onEnqueued?: (
    jobs: Array<{ cellId: string; triggers: Trigger[]; jobId: string }>,
    written: WrittenState,
  ) => void;
}

/**
 * The security groups and policies a world write carried, handed to the journal with the jobs it
 * caused. Taken from the change itself, never from the live world: by the time the enqueue
 * returns the next change may already be in the world, and an entry must describe its own write.
 */
export interface WrittenState {
  asg?: AsgIndex;
  policies?: PolicyIndex;
}

export function jobOptions(cellId: string, o: ReconcileQueueOptions): JobsOptions {
  return {
    deduplication: { id: cellId, keepLastIfActive: true },
    attempts: o.attempts ?? DEFAULT_JOB_ATTEMPTS,
    backoff: { type: 'exponential', delay: o.backoffMs ?? DEFAULT_JOB_BACKOFF_MS },
    removeOnComplete: o.keepCompleted ?? { ...DEFAULT_KEEP_COMPLETED },
    removeOnFail: o.keepFailed ?? { ...DEFAULT_KEEP_FAILED },
  };
}

/** How many triggers a job carries at most (the oldest ones: they bound the latency). */
export const MAX_TRIGGERS = 5;

const UNFINISHED = ['waiting', 'prioritized', 'delayed', 'active'] as const;

/**
 * The oldest unfinished job of each cell: what makes a cell `pending` (src/state/convergence.ts).
 * Jobs are deduplicated per cell, so this is at most two jobs per cell.
 */
export async function pendingByCell(queue: Queue<ReconcileJobData>): Promise<Map<string, PendingJob>> {
  const out = new Map<string, PendingJob>();
  for (const state of UNFINISHED) {
    for (const j of await queue.getJobs([state], 0, -1, true)) {
      const cell = j?.data?.cellId;
      if (!cell) continue;
      const prev = out.get(cell);
      if (!prev || j.timestamp < prev.createdAt) out.set(cell, { state, createdAt: j.timestamp });
    }
  }
  return out;
}

export class ReconcileQueue {
  readonly queue: Queue<ReconcileJobData>;

  constructor(
    connection: Redis,
    private readonly opts: ReconcileQueueOptions,
  ) {
    this.queue = new Queue<ReconcileJobData>(RECONCILE_QUEUE, { connection, prefix: opts.prefix });
  }

  /** Enqueue one job per cell (deduplicated by BullMQ). */
  async enqueue(cells: Iterable<[string, readonly Trigger[]]>, written: WrittenState = {}): Promise<number> {
    const jobs = [...cells].map(([cellId, triggers]) => ({
      name: RECONCILE_JOB,
      data: { cellId, triggers: triggers.slice(0, MAX_TRIGGERS) },
      opts: jobOptions(cellId, this.opts),
    }));
    const ids: string[] = [];
    for (let i = 0; i < jobs.length; i += 500) {
      for (const j of await this.queue.addBulk(jobs.slice(i, i + 500))) ids.push(j.id ?? '');
    }
    this.opts.onEnqueued?.(
      jobs.map((j, i) => ({ cellId: j.data.cellId, triggers: j.data.triggers, jobId: ids[i]! })),
      written,
    );
    return jobs.length;
  }

  /** Enqueue the given cells with one trigger. */
  async enqueueCells(cells: Iterable<string>, trigger: Trigger, written: WrittenState = {}): Promise<number> {
    return this.enqueue(
      [...cells].map((c) => [c, [trigger]] as [string, Trigger[]]),
      written,
    );
  }

  async counts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed', 'completed');
  }

  /** Age in ms of the oldest job not yet started (waiting, prioritized or delayed), 0 if none. */
  async oldestPendingAgeMs(now = Date.now()): Promise<number> {
    const jobs = await this.queue.getJobs(['waiting', 'prioritized', 'delayed'], 0, 0, true);
    let oldest = now;
    for (const j of jobs) if (j.timestamp < oldest) oldest = j.timestamp;
    return now - oldest;
  }

  /** The oldest unfinished job of each cell (see `pendingByCell`). */
  pendingByCell(): Promise<Map<string, PendingJob>> {
    return pendingByCell(this.queue);
  }

  async close(): Promise<void> {
    await this.queue.close();
  }
}
