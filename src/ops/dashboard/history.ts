/**
 * The charts' history: a bounded ring buffer of samples taken from the dashboard's snapshot (the
 * one every open page shares), one per sample interval.
 *
 * Why the bound: 360 samples at the default 10 s are the last hour, enough to see an incident's
 * rise and its recovery, and a fixed few tens of kilobytes per controller replica whatever the
 * foundation's size (a sample is a handful of numbers, never per cell). History longer than that,
 * or surviving a restart, is Prometheus's job (`cfnet_cell_lag_seconds`, the queue metrics). Each
 * replica keeps its own: a page shows the history of the replica that serves it.
 */
import type { DashboardSnapshot } from './snapshot.js';

/** Samples kept (the last hour at the default interval). */
export const HISTORY_CAPACITY = 360;
/** Default sample interval (ms). */
export const HISTORY_INTERVAL_MS = 10_000;

export interface HistorySample {
  at: number;
  /** Lag of the cell furthest behind, and the 90th and 50th percentile of every cell's lag (ms). */
  maxLagMs: number;
  p90LagMs: number;
  p50LagMs: number;
  /** Cells not converged (any other state). */
  behind: number;
  /** Reconcile jobs waiting, prioritized, delayed or running. */
  backlog: number;
  /** Age of the oldest unfinished reconcile job (ms, 0 when none). */
  oldestJobAgeMs: number;
}

/** The `q` quantile of ascending `sorted` (nearest rank), 0 when empty. */
function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

export function sampleOf(s: Pick<DashboardSnapshot, 'at' | 'cells' | 'queue'>): HistorySample {
  const lags = s.cells.map((c) => c.lagMs).sort((a, b) => a - b);
  const c = s.queue.counts;
  return {
    at: s.at,
    maxLagMs: lags.at(-1) ?? 0,
    p90LagMs: quantile(lags, 0.9),
    p50LagMs: quantile(lags, 0.5),
    behind: s.cells.filter((x) => x.state !== 'converged').length,
    backlog: c.waiting + c.prioritized + c.delayed + c.active,
    oldestJobAgeMs: Math.max(0, ...s.cells.map((x) => x.job?.ageMs ?? 0)),
  };
}

export class History {
  private readonly ring: HistorySample[] = [];
  private next = 0;
  private lastAt = -Infinity;

  constructor(readonly capacity = HISTORY_CAPACITY) {}

  /** Adds a sample, dropping the oldest when full; a sample not newer than the last is ignored. */
  add(sample: HistorySample): void {
    if (sample.at <= this.lastAt) return;
    this.lastAt = sample.at;
    if (this.ring.length < this.capacity) this.ring.push(sample);
    else this.ring[this.next] = sample;
    this.next = (this.next + 1) % this.capacity;
  }

  /** Oldest first. */
  samples(): HistorySample[] {
    return this.ring.length < this.capacity
      ? [...this.ring]
      : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}
