/**
 * Prometheus metrics (prom-client) shared by every cfnet component: a registry factory, the
 * standard metric names (all `cfnet_…`), idempotent get-or-create helpers (several modules may ask
 * for the same metric) and bucket sets. Each component serves its registry on its operator port.
 */
import client, { type Counter, type Gauge, type Histogram, Registry } from 'prom-client';

export type { Counter, Gauge, Histogram, Registry };

/** Standard metric names. Components add their own with the `cfnet_` prefix. */
export const METRICS = {
  // controller: queue and reconcile
  queueDepth: 'cfnet_controller_queue_jobs',
  queueOldestAge: 'cfnet_controller_queue_oldest_job_age_seconds',
  reconcileDuration: 'cfnet_controller_reconcile_duration_seconds',
  reconciles: 'cfnet_controller_reconciles_total',
  eventToPublish: 'cfnet_controller_event_to_publish_seconds',
  rulesetVersion: 'cfnet_controller_ruleset_version',
  cellLag: 'cfnet_cell_lag_seconds',
  cellsConverged: 'cfnet_controller_cells_converged',
  cellsDryRun: 'cfnet_controller_cells_dry_run',
  // controller: informers
  streamReconnects: 'cfnet_controller_stream_reconnects_total',
  pollErrors: 'cfnet_controller_poll_errors_total',
  polls: 'cfnet_controller_polls_total',
  events: 'cfnet_controller_events_total',
  bbsEventsSkipped: 'cfnet_controller_bbs_events_skipped_total',
  informerSynced: 'cfnet_controller_informer_synced',
  worldObjects: 'cfnet_controller_world_objects',
  isLeader: 'cfnet_controller_is_leader',
  leaderChanges: 'cfnet_controller_leader_changes_total',
  // controller: input left out (validation, per-cell conflicts, agent refusals)
  rejected: 'cfnet_controller_rejected_total',
  // controller: agent API
  apiRequests: 'cfnet_controller_api_requests_total',
  longPolls: 'cfnet_controller_long_polls_active',
  leases: 'cfnet_controller_overlay_leases',
  leaseConflicts: 'cfnet_controller_lease_conflicts_total',
  publishBlocked: 'cfnet_controller_publish_blocked',
  // controller: identity and operator surface
  authFailures: 'cfnet_controller_auth_failures_total',
  cellCertificates: 'cfnet_controller_cell_certificates_total',
} as const;

/** Buckets for event → effect latencies (seconds): 1 ms … 60 s. */
export const LATENCY_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** Buckets for short operations (seconds): 0.1 ms … 5 s. */
export const DURATION_BUCKETS = [
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5,
];

export interface RegistryOptions {
  /** Collect Node process metrics (heap, event loop lag, …) with the `cfnet_` prefix. Default true. */
  processMetrics?: boolean;
  /** Labels put on every metric (e.g. `{component: 'controller', instance: 'ctl-0'}`). */
  labels?: Record<string, string>;
}

/** A fresh registry (never the global one, so tests and several components in one process coexist). */
export function createRegistry(opts: RegistryOptions = {}): Registry {
  const registry = new Registry();
  if (opts.labels) registry.setDefaultLabels(opts.labels);
  if (opts.processMetrics ?? true) client.collectDefaultMetrics({ register: registry, prefix: 'cfnet_' });
  return registry;
}

function existing<T>(registry: Registry, name: string): T | undefined {
  return registry.getSingleMetric(name) as T | undefined;
}

export function counter<L extends string = string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
): Counter<L> {
  return (
    existing<Counter<L>>(registry, name) ??
    new client.Counter<L>({ name, help, labelNames: [...labelNames], registers: [registry] })
  );
}

export function gauge<L extends string = string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  collect?: (this: Gauge<L>) => void | Promise<void>,
): Gauge<L> {
  return (
    existing<Gauge<L>>(registry, name) ??
    new client.Gauge<L>({
      name,
      help,
      labelNames: [...labelNames],
      registers: [registry],
      ...(collect ? { collect } : {}),
    })
  );
}

export function histogram<L extends string = string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[] = [],
  buckets: number[] = LATENCY_BUCKETS,
): Histogram<L> {
  return (
    existing<Histogram<L>>(registry, name) ??
    new client.Histogram<L>({ name, help, labelNames: [...labelNames], buckets, registers: [registry] })
  );
}

/** Text exposition of a registry (for an HTTP handler). */
export async function exposition(registry: Registry): Promise<{ contentType: string; body: string }> {
  return { contentType: registry.contentType, body: await registry.metrics() };
}

/**
 * Quantile of a histogram's observations estimated from its buckets (linear within a bucket), for
 * benchmarks and tests that read their own registry. Returns NaN without observations.
 */
export async function histogramQuantile(
  h: Histogram,
  q: number,
  labels: Record<string, string> = {},
): Promise<number> {
  const data = await h.get();
  const buckets = data.values
    .filter((v) => v.metricName?.endsWith('_bucket'))
    .filter((v) => Object.entries(labels).every(([k, val]) => String(v.labels[k]) === val));
  const byLe = new Map<number, number>();
  for (const b of buckets) {
    const le = b.labels.le === '+Inf' ? Number.POSITIVE_INFINITY : Number(b.labels.le);
    byLe.set(le, (byLe.get(le) ?? 0) + b.value);
  }
  const sorted = [...byLe.entries()].sort((a, b) => a[0] - b[0]);
  const total = sorted.at(-1)?.[1] ?? 0;
  if (total === 0) return Number.NaN;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, c] of sorted) {
    if (c >= rank) {
      if (!Number.isFinite(le)) return prevLe;
      const inBucket = c - prevCount;
      return inBucket === 0 ? le : prevLe + ((le - prevLe) * (rank - prevCount)) / inBucket;
    }
    prevLe = le;
    prevCount = c;
  }
  return prevLe;
}
