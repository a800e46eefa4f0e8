/**
 * BullMQ workers of the `reconcile` queue (every replica runs them, `concurrency` jobs at a time).
 * A job is "recompute cell X": the worker runs the level-based reconciler and records metrics:
 * reconcile duration, outcome counts and, for every trigger of a job that published a new version,
 * the latency from the event to the publication.
 */
import { type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { DEFAULT_LEASE_MS } from '../../lib/leader.js';
import { defaultLogger, type Logger } from '../../lib/log.js';
import {
  counter,
  DURATION_BUCKETS,
  type Histogram,
  histogram,
  LATENCY_BUCKETS,
  METRICS,
  type Registry,
} from '../../lib/metrics.js';
import type { Trigger } from '../../rules/world.js';
import { WorldNotReadyError } from '../../state/errors.js';
import { RECONCILE_QUEUE, type ReconcileJobData } from './queue.js';
import { AGENT_AHEAD, type ReconcileResult, type Reconciler } from './reconciler.js';

/**
 * Reconcile jobs run at once by one replica (`workerConcurrency`). 8: one change to 2,500 cells
 * reached the last agent in 4.1-5.6 s with 4 and 3.5-3.7 s with 8 on a 2-core VM, more jobs in
 * flight sharing each batched Redis read and write; 16-64 gave no further gain beyond the runs'
 * spread, nor did 16 for a full recompute of large cells (docs/benchmarks.md, 2026-12-08).
 */
export const DEFAULT_WORKER_CONCURRENCY = 8;

/** The job lock never goes below this (ms), whatever the leadership lease. */
export const MIN_JOB_LOCK_MS = 5000;

/** Times a job may stall before it fails (a reconcile is idempotent, so a re-run is harmless). */
export const DEFAULT_MAX_STALLED_COUNT = 3;

/** The job lock of a controller whose leadership lease is `leaseMs`: like the lease, at least 5 s. */
export function jobLockDurationMs(leaseMs: number): number {
  return Math.max(MIN_JOB_LOCK_MS, leaseMs);
}

/**
 * Where a worker reports what each job did: the metrics in this process, or (in a worker child
 * process) a message to the controller, which records them in its own registry.
 */
export interface ReconcileObserver {
  /** A job of `cellId` ended with `result` after `seconds`; `triggers` are the events it carried. */
  observed(
    cellId: string,
    result: ReconcileResult | { outcome: 'not-ready' },
    seconds: number,
    triggers: readonly Trigger[],
  ): void;
  /** A job failed (BullMQ retries it with backoff). */
  failed(): void;
}

/** The reconcile metrics: duration and outcome per job, event → publication latency per trigger. */
export class ReconcileMetrics implements ReconcileObserver {
  private readonly duration: Histogram;
  private readonly latency: Histogram;
  private readonly outcomes: ReturnType<typeof counter>;

  constructor(registry: Registry) {
    this.duration = histogram(
      registry,
      METRICS.reconcileDuration,
      'Time to reconcile one cell (read, compute, compare, write)',
      ['outcome'],
      DURATION_BUCKETS,
    );
    this.latency = histogram(
      registry,
      METRICS.eventToPublish,
      'Time from a platform event being seen to the new rule set being published',
      ['kind'],
      LATENCY_BUCKETS,
    );
    this.outcomes = counter(registry, METRICS.reconciles, 'Reconciles by outcome', ['outcome']);
  }

  observed(
    _cellId: string,
    result: ReconcileResult | { outcome: 'not-ready' },
    seconds: number,
    triggers: readonly Trigger[],
  ): void {
    this.duration.observe({ outcome: result.outcome }, seconds);
    this.outcomes.inc({ outcome: result.outcome });
    if (result.outcome !== 'written') return;
    for (const t of triggers) {
      this.latency.observe({ kind: t.kind }, Math.max(0, (result.publishedAt - t.at) / 1000));
    }
  }

  failed(): void {
    this.outcomes.inc({ outcome: 'error' });
  }
}

export interface ReconcileWorkerOptions {
  prefix: string;
  /** @defaultValue {@link DEFAULT_WORKER_CONCURRENCY} */
  concurrency?: number;
  /**
   * BullMQ job lock (ms; a live worker renews it every half) and stalled-job check interval
   * (default half the lock). A job whose worker died or froze goes back to the queue within about
   * lock + interval; until then the cell's follow-up job (keepLastIfActive) waits.
   * @defaultValue `jobLockDurationMs(DEFAULT_LEASE_MS)` ({@link jobLockDurationMs}, {@link DEFAULT_LEASE_MS})
   */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /**
   * Times a job may stall (its worker lost the lock) before it fails.
   * @defaultValue {@link DEFAULT_MAX_STALLED_COUNT}
   */
  maxStalledCount?: number;
  /** Metrics of every job in this registry (unless `observer` is given). */
  registry?: Registry;
  /** Where each job's outcome is reported (default: {@link ReconcileMetrics} on `registry`). */
  observer?: ReconcileObserver;
  logger?: Logger;
  /**
   * Called when a cell waits for a full world rewrite (its agent is ahead of the store: Redis lost
   * writes); the controller asks its leader for one.
   */
  onRewriteWanted?: (cellId: string) => void;
  /** Called after each job (tests and benchmarks observe publications through it). */
  onResult?: (
    cellId: string,
    result: ReconcileResult | { outcome: 'not-ready' },
    data: ReconcileJobData,
  ) => void;
}

export class ReconcileWorkers {
  readonly worker: Worker<ReconcileJobData>;
  private readonly log: Logger;
  private readonly observer?: ReconcileObserver;

  constructor(
    connection: Redis,
    private readonly reconciler: Reconciler,
    private readonly opts: ReconcileWorkerOptions,
  ) {
    this.log = opts.logger ?? defaultLogger('controller.worker');
    this.observer = opts.observer ?? (opts.registry ? new ReconcileMetrics(opts.registry) : undefined);
    const lock = opts.lockDurationMs ?? jobLockDurationMs(DEFAULT_LEASE_MS);
    this.worker = new Worker<ReconcileJobData>(RECONCILE_QUEUE, (job) => this.process(job), {
      connection,
      prefix: opts.prefix,
      concurrency: opts.concurrency ?? DEFAULT_WORKER_CONCURRENCY,
      lockDuration: lock,
      stalledInterval: opts.stalledIntervalMs ?? Math.ceil(lock / 2),
      // a reconcile is idempotent: running it again after a false stall (a long GC pause) is harmless
      maxStalledCount: opts.maxStalledCount ?? DEFAULT_MAX_STALLED_COUNT,
      autorun: false,
    });
    this.worker.on('failed', (job, err) => {
      this.observer?.failed();
      this.log.warn({ cellId: job?.data.cellId, attempts: job?.attemptsMade, err }, 'reconcile failed');
    });
    this.worker.on('error', (err) => this.log.error({ err }, 'reconcile worker error'));
  }

  start(): void {
    void this.worker.run().catch((err) => this.log.error({ err }, 'reconcile worker stopped'));
  }

  private async process(job: Job<ReconcileJobData>): Promise<ReconcileResult | { outcome: 'not-ready' }> {
    const { cellId, triggers } = job.data;
    const t0 = performance.now();
    let result: ReconcileResult | { outcome: 'not-ready' };
    try {
      result = await this.reconciler.reconcile(cellId);
    } catch (err) {
      if (!(err instanceof WorldNotReadyError)) throw err;
      // The leader re-enqueues every cell once its full world write is complete.
      if (err.context.reason === AGENT_AHEAD) this.opts.onRewriteWanted?.(cellId);
      result = { outcome: 'not-ready' };
    }
    const seconds = (performance.now() - t0) / 1000;
    this.observer?.observed(cellId, result, seconds, triggers ?? []);
    if (result.outcome === 'written') {
      this.log.debug(
        { cellId, version: result.version, containers: result.containers },
        'published rule set',
      );
    }
    this.opts.onResult?.(cellId, result, job.data);
    return result;
  }

  /** Stop taking jobs (the active ones finish first); jobs wait in Redis meanwhile. */
  async pause(): Promise<void> {
    await this.worker.pause();
  }

  resume(): void {
    this.worker.resume();
  }

  async close(): Promise<void> {
    await this.worker.close();
  }
}
