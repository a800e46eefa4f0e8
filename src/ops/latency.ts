/**
 * Reconcile latency of recently finished jobs, from what BullMQ keeps of them (completed jobs are
 * kept per the controller's `keepCompletedJobs`): for each job, event → done (its oldest trigger
 * to its finish) and run time (start to finish), as a bucketed distribution with quantiles. Pure
 * functions over job summaries, so the dashboard and tests share them.
 */

export interface FinishedJob {
  /** Oldest trigger time of the job (ms), null when it carries none. */
  triggeredAt: number | null;
  processedAt: number | null;
  finishedAt: number | null;
}

export interface LatencyBucket {
  /** Upper bound in ms (Infinity for the last bucket). */
  le: number;
  label: string;
  count: number;
}

export interface LatencyDistribution {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
  buckets: LatencyBucket[];
}

/** Bucket bounds (ms) of the distribution: the design targets (100 ms, 1 s, 3 s) are bounds. */
export const LATENCY_BOUNDS_MS = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000];

function label(ms: number): string {
  if (!Number.isFinite(ms)) return 'more';
  return ms < 1000 ? `≤${ms}ms` : `≤${ms / 1000}s`;
}

/** Nearest-rank quantile of sorted values. */
export function quantile(sorted: readonly number[], q: number): number | null {
  if (sorted.length === 0) return null;
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length)));
  return sorted[rank - 1]!;
}

export function distribution(values: readonly number[], bounds = LATENCY_BOUNDS_MS): LatencyDistribution {
  const sorted = values.filter((v) => Number.isFinite(v) && v >= 0).sort((a, b) => a - b);
  const buckets: LatencyBucket[] = [...bounds, Number.POSITIVE_INFINITY].map((le) => ({
    le,
    label: label(le),
    count: 0,
  }));
  for (const v of sorted) buckets.find((b) => v <= b.le)!.count++;
  return {
    count: sorted.length,
    p50: quantile(sorted, 0.5),
    p90: quantile(sorted, 0.9),
    p99: quantile(sorted, 0.99),
    max: sorted.at(-1) ?? null,
    buckets,
  };
}

/** Event → done and run time distributions of finished jobs. */
export function reconcileLatency(jobs: readonly FinishedJob[]): {
  eventToDone: LatencyDistribution;
  runTime: LatencyDistribution;
} {
  const e2d: number[] = [];
  const run: number[] = [];
  for (const j of jobs) {
    if (j.finishedAt === null) continue;
    if (j.triggeredAt !== null) e2d.push(j.finishedAt - j.triggeredAt);
    if (j.processedAt !== null) run.push(j.finishedAt - j.processedAt);
  }
  return { eventToDone: distribution(e2d), runTime: distribution(run) };
}
