/**
 * What the convergence page shows, read in one go: queue counts, cells by lag, the latency
 * distribution of recently finished reconciles, failed jobs, recently finished jobs and the newest
 * journal entries, with the org/space/app names of the apps and spaces those entries name, and the
 * cells whose agents run in dry-run. One snapshot is shared by every open page (computed at most
 * once per interval).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ReconcileJobData } from '../../controller/reconcile/queue.js';
import type { Keys } from '../../state/keys.js';
import {
  byLag,
  CELL_STATES,
  type CellConvergence,
  type CellState,
  cellConvergence,
  type PublishState,
  publishState,
  stateCounts,
} from '../cells.js';
import type { Journal, JournalEntry } from '../journal.js';
import { type LatencyDistribution, reconcileLatency } from '../latency.js';
import { type JobSummary, oldestTrigger, QueueAdmin, type QueueCounts } from '../queue-admin.js';
import { loadNames } from '../world-reader.js';
import { foldAgentReports, type JournalRow } from './journal-rows.js';

export interface DashboardSnapshot {
  at: number;
  namespace: string;
  leader: string | null;
  /** The leader's publish state: `waiting` names the sources that block publishing. */
  publish: PublishState | null;
  queue: QueueCounts;
  cells: CellConvergence[];
  states: Record<CellState, number>;
  /** What each state means (the cell table's tooltips). */
  stateMeanings: typeof CELL_STATES;
  latency: { sample: number; eventToDone: LatencyDistribution; runTime: LatencyDistribution };
  failed: JobSummary[];
  recent: JobSummary[];
  /** Newest first, runs of agent reports folded into one row each. */
  journal: JournalRow[];
  /** Input left out (journal entries of type `rejected`), newest first. */
  rejected: JournalEntry[];
  /** `org/space/app` or `org/space` of each app and space guid the journal rows name (known ones). */
  labels: Record<string, string>;
  /** Cells whose agent's last status says it runs in dry-run (enforces nothing). */
  dryRunCells: string[];
}

export interface SnapshotSource {
  redis: Redis;
  keys: Keys;
  queue: Queue<ReconcileJobData>;
  journal: Journal;
  /** Completed jobs the latency distribution is computed from (default 300). */
  latencySample?: number;
}

export async function takeSnapshot(src: SnapshotSource, now = Date.now()): Promise<DashboardSnapshot> {
  const admin = new QueueAdmin(src.queue);
  const sample = src.latencySample ?? 300;
  const [queue, cells, failed, completed, journal, leader, publish, rejected, names] = await Promise.all([
    admin.counts(),
    cellConvergence(src.redis, src.keys, { now, queue: src.queue }),
    admin.list({ states: ['failed'], limit: 50 }),
    src.queue.getJobs(['completed'], 0, sample - 1, false),
    // agent reports come in runs: read more than is shown, they fold into one row per run
    src.journal.read({}, 200),
    src.redis.get(src.keys.leader),
    publishState(src.redis, src.keys),
    src.journal.read({ types: ['rejected'] }, 20),
    loadNames(src.redis, src.keys),
  ]);
  // the convergence rows carry each cell's last report, dry run included (no second read per cell)
  const dryRunCells = cells.filter((c) => c.dryRun).map((c) => c.cellId);
  const finished = completed.filter((j) => !!j);
  const latency = reconcileLatency(
    finished.map((j) => ({
      triggeredAt: oldestTrigger(j.data),
      processedAt: j.processedOn ?? null,
      finishedAt: j.finishedOn ?? null,
    })),
  );
  const recent = await admin.list({ states: ['active', 'completed'], limit: 20 });
  const rows = foldAgentReports(journal.reverse(), 20);
  const shownRejected = rejected.reverse();
  const labels: Record<string, string> = {};
  for (const e of [...rows, ...shownRejected]) {
    for (const a of e.subject.apps ?? []) if (names.app(a)) labels[a] = names.appLabel(a);
    for (const sp of e.subject.spaces ?? []) if (names.space(sp)) labels[sp] = names.spaceLabel(sp);
  }
  return {
    at: now,
    namespace: src.keys.ns,
    leader,
    publish,
    queue,
    cells: byLag(cells),
    states: stateCounts(cells),
    stateMeanings: CELL_STATES,
    latency: { sample: finished.length, ...latency },
    failed,
    recent,
    journal: rows,
    rejected: shownRejected,
    labels,
    dryRunCells,
  };
}
