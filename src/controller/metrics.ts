/**
 * The controller's own metrics: leadership, queue depth and age, convergence per cell, the
 * leader's world, and per source whether it is listed (informers) or blocks publishing. Every
 * configured source is a series from start-up: 0 until this replica leads and lists it.
 */
import { type Gauge, gauge, METRICS, type Registry } from '../lib/metrics.js';
import type { World } from '../rules/world.js';
import { type CellConvergence, stateCounts } from '../state/convergence.js';
import type { RuleSetStore } from '../state/ruleset-store.js';
import type { ReconcileQueue } from './reconcile/queue.js';
import { InformerMetrics, type InformerSource } from './sources/context.js';

/** The series the leader life cycle sets. */
export interface ControllerMetrics {
  informerMetrics: InformerMetrics;
  publishBlocked: Gauge<'source'>;
}

/** What the gauges read at scrape time. */
export interface MetricsSources {
  sources: readonly InformerSource[];
  isLeader: () => boolean;
  queue: () => ReconcileQueue;
  store: () => RuleSetStore;
  world: () => World | null;
  /** The clock convergence is measured with (ms); tests move it. */
  clock?: () => number;
}

export function registerControllerMetrics(r: Registry, self: MetricsSources): ControllerMetrics {
  // Every configured source is a series from start-up: 0 until this replica leads and lists it.
  const informerMetrics = new InformerMetrics(r);
  const publishBlocked = gauge(
    r,
    METRICS.publishBlocked,
    '1 while the leader publishes no rule set because this source was not listed since the state was lost',
    ['source'],
  );
  for (const source of self.sources) {
    informerMetrics.setSynced(source, false);
    publishBlocked.set({ source }, 0);
  }
  gauge(r, METRICS.isLeader, '1 when this replica is the leader', [], function () {
    this.set(self.isLeader() ? 1 : 0);
  });
  gauge(r, METRICS.queueDepth, 'Reconcile jobs by state', ['state'], async function () {
    try {
      const counts = await self.queue().counts();
      for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
    } catch {
      // Redis unavailable: leave the last values
    }
  });
  gauge(r, METRICS.queueOldestAge, 'Age of the oldest reconcile job not yet started', [], async function () {
    try {
      this.set((await self.queue().oldestPendingAgeMs()) / 1000);
    } catch {
      // ignore
    }
  });
  // One read of every cell's convergence (and the queue's unfinished jobs) serves both gauges of a scrape.
  let convergence: { at: number; rows: Promise<CellConvergence[]> } | null = null;
  const convergenceNow = () => {
    const now = (self.clock ?? Date.now)();
    if (!convergence || now - convergence.at > 1000) {
      const rows = self
        .queue()
        .pendingByCell()
        .then((pending) => self.store().convergence({ now, pending }));
      rows.catch(() => {});
      convergence = { at: now, rows };
    }
    return convergence.rows;
  };
  gauge(
    r,
    METRICS.cellLag,
    'Per cell with a rule set: how long it has been behind (since its applied version first fell behind a desired one, or its reconcile job was created); 0 when converged',
    ['cell'],
    async function () {
      try {
        const rows = await convergenceNow();
        this.reset();
        for (const c of rows) this.set({ cell: c.cellId }, c.lagMs / 1000);
      } catch {
        // Redis unavailable: leave the last values
      }
    },
  );
  gauge(
    r,
    METRICS.cellsConverged,
    'Cells with a rule set per convergence state: converged, pending, lagging, degraded, stale, error, no-agent, no-rule-set (docs/operations.md, `cfnet cells`)',
    ['state'],
    async function () {
      try {
        const counts = stateCounts(await convergenceNow());
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      } catch {
        // ignore
      }
    },
  );
  gauge(
    r,
    METRICS.cellsDryRun,
    'Cells whose agent last reported that it runs in dry-run: it computes and reports rule sets but enforces nothing (counted in their convergence state too)',
    [],
    async function () {
      try {
        this.set((await convergenceNow()).filter((c) => c.dryRun).length);
      } catch {
        // ignore
      }
    },
  );
  gauge(r, METRICS.worldObjects, 'Objects in the leader’s world', ['kind'], function () {
    const w = self.world();
    if (!w) return;
    for (const [kind, n] of Object.entries(w.counts)) this.set({ kind }, n);
  });
  return { informerMetrics, publishBlocked };
}
