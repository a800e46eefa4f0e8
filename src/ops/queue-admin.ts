/**
 * Administration of the `reconcile` queue for operators: counts by state, listing with filters,
 * one job in detail, retry, pause/resume and cleaning. Jobs carry keys only ("recompute cell X" and
 * the trigger timestamps), so a retry can never apply anything stale: the worker recomputes from
 * the current world.
 */
import { Job, type JobType, type Queue } from 'bullmq';
import type { ReconcileJobData } from '../controller/reconcile/queue.js';
import { ValidationError } from '../lib/errors.js';
import type { Trigger } from '../rules/world.js';
import { NotFoundError } from './errors.js';

export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed', 'completed'] as const;
export type JobState = (typeof JOB_STATES)[number];

export function parseJobState(s: string, field = 'state'): JobState {
  if (!(JOB_STATES as readonly string[]).includes(s)) {
    throw new ValidationError(field, s, `must be one of ${JOB_STATES.join(', ')}`);
  }
  return s as JobState;
}

export interface QueueCounts {
  counts: Record<JobState, number>;
  paused: boolean;
  /** Workers connected to the queue (BullMQ names their connections); null when unknown. */
  workers: number | null;
}

export interface JobSummary {
  id: string;
  state: string;
  cellId: string;
  attemptsMade: number;
  /** When the job was created / started / finished (ms). */
  createdAt: number;
  processedAt: number | null;
  finishedAt: number | null;
  failedReason: string;
  /** Trigger kinds and ids, e.g. `lrp:3f1e…`. */
  triggers: string[];
  /** Oldest trigger → finished (ms): the event-to-done latency; null when not finished. */
  latencyMs: number | null;
}

export interface JobDetail extends JobSummary {
  name: string;
  data: ReconcileJobData;
  maxAttempts: number;
  stacktrace: string[];
  returnValue: unknown;
  /** Triggers with ISO times and their age when the job was created. */
  triggerDetails: Array<Trigger & { iso: string; waitedMs: number | null }>;
  delayMs: number;
}

function summary(job: Job<ReconcileJobData>, state: string): JobSummary {
  const data = (job.data ?? {}) as Partial<ReconcileJobData>;
  const oldest = oldestTrigger(data);
  return {
    id: String(job.id ?? ''),
    state,
    cellId: data.cellId ?? '',
    attemptsMade: job.attemptsMade ?? 0,
    createdAt: job.timestamp,
    processedAt: job.processedOn ?? null,
    finishedAt: job.finishedOn ?? null,
    failedReason: job.failedReason ?? '',
    triggers: (data.triggers ?? []).map((t) => `${t.kind}:${t.id}`),
    latencyMs: job.finishedOn && oldest !== null ? job.finishedOn - oldest : null,
  };
}

/** Oldest trigger time of a job's data (the event the latency is measured from). */
export function oldestTrigger(data: Partial<ReconcileJobData> | undefined): number | null {
  let min: number | null = null;
  for (const t of data?.triggers ?? [])
    if (typeof t.at === 'number' && (min === null || t.at < min)) min = t.at;
  return min;
}

export class QueueAdmin {
  constructor(readonly queue: Queue<ReconcileJobData>) {}

  async counts(): Promise<QueueCounts> {
    const raw = await this.queue.getJobCounts(...JOB_STATES);
    const counts = Object.fromEntries(JOB_STATES.map((s) => [s, raw[s] ?? 0])) as Record<JobState, number>;
    const paused = await this.queue.isPaused();
    let workers: number | null = null;
    try {
      workers = await this.queue.getWorkersCount();
    } catch {
      workers = null; // CLIENT LIST not allowed
    }
    return { counts, paused, workers };
  }

  /**
   * Jobs, newest first per state. `cell` filters by cell id (pages through up to `scanLimit` jobs
   * per state to find `limit` matches).
   */
  async list(
    opts: { states?: readonly JobState[]; cell?: string; limit?: number; scanLimit?: number } = {},
  ): Promise<JobSummary[]> {
    const states = opts.states && opts.states.length > 0 ? opts.states : JOB_STATES;
    const limit = opts.limit ?? 50;
    const scanLimit = opts.scanLimit ?? 10_000;
    const out: JobSummary[] = [];
    for (const state of states) {
      const page = opts.cell ? 500 : limit;
      for (let start = 0; start < scanLimit && out.length < limit; start += page) {
        const jobs = (await this.queue.getJobs([state as JobType], start, start + page - 1, false)).filter(
          (j): j is Job<ReconcileJobData> => !!j,
        );
        for (const j of jobs) {
          if (opts.cell && j.data?.cellId !== opts.cell) continue;
          out.push(summary(j, state));
          if (out.length >= limit) break;
        }
        if (jobs.length < page) break;
      }
      if (out.length >= limit) break;
    }
    return out;
  }

  private async job(id: string): Promise<Job<ReconcileJobData>> {
    const job = (await Job.fromId(this.queue, id)) as Job<ReconcileJobData> | undefined;
    if (!job)
      throw new NotFoundError('job', id, `not in queue ${this.queue.name} (removed, or a wrong namespace?)`);
    return job;
  }

  async show(id: string): Promise<JobDetail> {
    const job = await this.job(id);
    const state = await job.getState();
    const data = job.data;
    return {
      ...summary(job, state),
      name: job.name,
      data,
      maxAttempts: job.opts.attempts ?? 1,
      stacktrace: job.stacktrace ?? [],
      returnValue: job.returnvalue ?? null,
      triggerDetails: (data.triggers ?? []).map((t) => ({
        ...t,
        iso: new Date(t.at).toISOString(),
        waitedMs: job.processedOn ? job.processedOn - t.at : null,
      })),
      delayMs: job.delay ?? 0,
    };
  }

  /**
   * Retry one failed job: back to waiting with its attempts reset (the worker recomputes the cell
   * from the current world, so a retry can never apply anything stale). Returns its id.
   */
  async retry(id: string): Promise<string> {
    const job = await this.job(id);
    const state = await job.getState();
    if (state !== 'failed') {
      throw new ValidationError('jobId', id, `job is ${state}; only failed jobs can be retried`);
    }
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return id;
  }

  /**
   * Retry every job that is failed now (at most `max`, default 100,000); returns the ids moved
   * back to waiting. Jobs that fail again meanwhile are not retried twice.
   */
  async retryAllFailed(max = 100_000): Promise<string[]> {
    const ids = new Set<string>();
    const page = 500;
    while (ids.size < max) {
      const jobs = (await this.queue.getJobs(['failed'], 0, page - 1, true)).filter(
        (j): j is Job<ReconcileJobData> => !!j && !ids.has(String(j.id)),
      );
      if (jobs.length === 0) break;
      for (const j of jobs.slice(0, max - ids.size)) {
        try {
          await j.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
          ids.add(String(j.id));
        } catch {
          // moved meanwhile (retried by someone else, removed): not ours to retry
          ids.add(String(j.id));
        }
      }
    }
    return [...ids];
  }

  /**
   * Has the reconcile requested at `since` (ms) for this cell run? `jobId` is what the enqueue
   * returned. A request absorbed by a job that was already running (deduplication keeps one
   * follow-up job per cell) is followed to that follow-up job. Returns the final state, or null
   * while the reconcile is still to run.
   */
  async settled(
    cellId: string,
    jobId: string,
    since: number,
  ): Promise<{ state: 'completed' | 'failed' | 'removed'; jobId: string } | null> {
    let id = jobId;
    for (let hops = 0; hops < 5; hops++) {
      const job = (await Job.fromId(this.queue, id)) as Job<ReconcileJobData> | undefined;
      const next = async () => {
        const n = await this.queue.getDeduplicationJobId(cellId);
        return n && n !== id ? n : null;
      };
      if (!job) {
        const n = await next();
        if (n) {
          id = n;
          continue;
        }
        return { state: 'removed', jobId: id };
      }
      const state = await job.getState();
      if (state !== 'completed' && state !== 'failed') return null;
      if ((job.processedOn ?? 0) < since) {
        // It started before the request: the request became (or already ran as) its follow-up.
        const n = await next();
        if (n) {
          id = n;
          continue;
        }
      }
      return { state, jobId: id };
    }
    return null;
  }

  async pause(): Promise<void> {
    await this.queue.pause();
  }

  async resume(): Promise<void> {
    await this.queue.resume();
  }

  /** Remove finished jobs older than `olderThanMs`; returns the removed ids per state. */
  async clean(
    olderThanMs: number,
    states: ReadonlyArray<'completed' | 'failed'> = ['completed', 'failed'],
  ): Promise<Record<string, string[]>> {
    const out: Record<string, string[]> = {};
    for (const s of states) {
      const ids: string[] = [];
      for (;;) {
        const removed = await this.queue.clean(olderThanMs, 1000, s);
        ids.push(...removed);
        if (removed.length < 1000) break;
      }
      out[s] = ids;
    }
    return out;
  }
}
