/**
 * Convergence of a cell, defined once: the states, what each means, and the lag, shared by
 * `cfnet cells`, the dashboard, the demo's live view and the controller's `cfnet_cell_lag_seconds`.
 *
 * Lag is how long the cell has been behind, never the age of the newest desired version: it counts
 * from the moment the agent's applied version first fell behind a desired one (`behindSince`, kept
 * by the rule-set write and report scripts), or from the creation of a reconcile job for the cell
 * that waits or runs (a change the controller has not written yet), whichever is older. A cell whose
 * agent is silent shows as `stale` whatever it last reported: what it enforces now is unknown.
 * A cell whose agent reports its overlay incomplete (peer entries missing from its kernel, its own
 * lease not held) is `degraded` whatever version it applied: rules in force do not make a cell
 * reachable (the case this state exists for: after a loss of Redis, cells with broken overlay
 * routes all said `converged`).
 *
 * Dry run is a flag (`dryRun`), not a state: it is how the agent was started, not how far it got,
 * and a dry-run agent can itself be lagging, stale or in error; a state would hide those behind
 * it (one state per cell). `cfnet cells` marks such cells and counts them; "converged" of a
 * dry-run cell means it computed the desired rules, not that it enforces them.
 * `classify` is pure (the clock is an argument); `readConvergence` reads the facts from Redis.
 */
import type { Redis } from 'ioredis';
import type { OverlayHealth } from '../model/types.js';
import type { Keys } from './keys.js';

/** Every state, with its meaning (help texts and docs quote these). In order of precedence. */
export const CELL_STATES = {
  'no-rule-set': 'the controller stored no rule set for the cell (yet), and no reconcile job for it waits',
  'no-agent': 'no agent ever reported for the cell',
  stale:
    'the agent has not reported for several of its report intervals: what it enforces is unknown, its lag keeps growing',
  error: 'the agent reported an error with its last apply',
  degraded:
    'the agent reported its overlay incomplete: peer cells whose route, neighbour or FDB entry is missing from its kernel, or its own subnet lease not held; its containers cannot reach every other cell, whatever version it applied',
  pending:
    'a reconcile job for the cell waits, is delayed or runs: a change is not written yet; lag counts from the job’s creation',
  lagging:
    'the agent reports an older version than the desired one; lag counts from when it first fell behind',
  converged:
    'the agent recently reported the desired version without error and, when it reports it, a complete overlay; no reconcile job for the cell waits',
} as const;

export type CellState = keyof typeof CELL_STATES;

export const CELL_STATE_NAMES = Object.keys(CELL_STATES) as CellState[];

/** A cell is stale after this many of its agent's report intervals without a report. */
export const STALE_AFTER_INTERVALS = 3;

/** The report interval assumed for an agent that did not say (the agent's `statusIntervalSeconds` default). */
export const DEFAULT_REPORT_INTERVAL_MS = 30_000;

export type { OverlayHealth };

/** Whether an overlay report makes a cell degraded. */
export function overlayBroken(o: OverlayHealth | null): boolean {
  return o !== null && (o.missingPeers > 0 || !o.leaseHeld);
}

/** The overlay in a few words for tables: `2/3 peers` (present/expected), `no lease`. */
export function overlaySummary(o: OverlayHealth | null): string {
  if (o === null) return '';
  const peers = `${o.expectedPeers - o.missingPeers}/${o.expectedPeers} peers`;
  return o.leaseHeld ? peers : `${peers}, no lease`;
}

/** A reconcile job of a cell that has not finished: BullMQ's state and creation time (ms). */
export interface PendingJob {
  state: 'waiting' | 'prioritized' | 'delayed' | 'active';
  createdAt: number;
}

/** What Redis holds about one cell (0 / '' when absent). */
export interface CellFacts {
  cellId: string;
  /** Desired version, when it was written, when the agent first fell behind (ms, Redis clock). */
  desired: number;
  desiredAt: number;
  behindSince: number;
  /** Last report: whether there was one, the applied version, its apply time and report time (ms). */
  reported: boolean;
  applied: number;
  appliedAt: number;
  reportedAt: number;
  /** The agent's report interval (ms, 0 = unknown). */
  intervalMs: number;
  error: string;
  /** The overlay as last reported (null: the agent does not report it, or never reported). */
  overlay: OverlayHealth | null;
  /** The agent runs in dry-run: it computes and logs but enforces nothing. */
  dryRun: boolean;
}

export interface CellConvergence extends Omit<CellFacts, 'reported' | 'intervalMs'> {
  state: CellState;
  /** How long the cell has been behind (0 when converged), see the module comment. */
  lagMs: number;
  /** Time since the agent's last report (0 when it never reported). */
  silentMs: number;
  /** The unfinished reconcile job of the cell, with its age. */
  job: (PendingJob & { ageMs: number }) | null;
}

export interface ConvergenceOptions {
  /** The clock (ms). */
  now?: number;
  /** Unfinished reconcile jobs by cell (the oldest per cell); none when absent. */
  pending?: ReadonlyMap<string, PendingJob>;
}

/** The state and lag of one cell at `now`. */
export function classify(f: CellFacts, job: PendingJob | undefined, now: number): CellConvergence {
  const behind = f.desired > 0 && f.applied !== f.desired;
  const behindLag = behind ? now - (f.behindSince || f.desiredAt || now) : 0;
  const jobAge = job ? now - job.createdAt : 0;
  const silentMs = f.reported ? Math.max(0, now - f.reportedAt) : 0;
  const staleAfter = STALE_AFTER_INTERVALS * (f.intervalMs || DEFAULT_REPORT_INTERVAL_MS);
  let state: CellState;
  if (f.desired === 0 && !job) state = 'no-rule-set';
  else if (!f.reported) state = f.desired === 0 ? 'pending' : 'no-agent';
  else if (silentMs > staleAfter) state = 'stale';
  else if (f.error !== '') state = 'error';
  else if (overlayBroken(f.overlay)) state = 'degraded';
  else if (job) state = 'pending';
  else if (behind) state = 'lagging';
  else state = 'converged';
  const { reported: _r, intervalMs: _i, ...rest } = f;
  return {
    ...rest,
    state,
    lagMs: Math.max(0, behindLag, jobAge),
    silentMs,
    job: job ? { ...job, ageMs: Math.max(0, jobAge) } : null,
  };
}

/** Cells by lag, longest first (ties by cell id). */
export function byLag(cells: readonly CellConvergence[]): CellConvergence[] {
  return [...cells].sort(
    (a, b) => b.lagMs - a.lagMs || (a.cellId < b.cellId ? -1 : a.cellId > b.cellId ? 1 : 0),
  );
}

/** Counts per state (every state present, 0 when none). */
export function stateCounts(cells: readonly CellConvergence[]): Record<CellState, number> {
  const out = Object.fromEntries(CELL_STATE_NAMES.map((s) => [s, 0])) as Record<CellState, number>;
  for (const c of cells) out[c.state]++;
  return out;
}

/** Reads the facts of `cellIds` (500 per pipeline) and classifies them, in the order given. */
export async function readConvergence(
  redis: Redis,
  keys: Keys,
  cellIds: readonly string[],
  opts: ConvergenceOptions = {},
): Promise<CellConvergence[]> {
  const now = opts.now ?? Date.now();
  const out: CellConvergence[] = [];
  for (let i = 0; i < cellIds.length; i += 500) {
    const part = cellIds.slice(i, i + 500);
    const pipe = redis.pipeline();
    for (const c of part) {
      pipe.hmget(keys.ruleSet(c), 'version', 'updatedAt', 'behindSince');
      pipe.hmget(
        keys.status(c),
        'appliedVersion',
        'appliedAt',
        'reportedAt',
        'error',
        'intervalMs',
        'overlay',
        'dryRun',
      );
    }
    const res = (await pipe.exec()) ?? [];
    part.forEach((cellId, j) => {
      const [err1, meta] = res[2 * j] ?? [];
      const [err2, status] = res[2 * j + 1] ?? [];
      if (err1) throw err1;
      if (err2) throw err2;
      const [v, at, since] = (meta ?? []) as Array<string | null>;
      const [av, aat, rat, error, interval, overlay, dryRun] = (status ?? []) as Array<string | null>;
      const facts: CellFacts = {
        cellId,
        desired: Number(v ?? 0),
        desiredAt: Number(at ?? 0),
        behindSince: Number(since ?? 0),
        reported: av !== null && av !== undefined,
        applied: Number(av ?? 0),
        appliedAt: Number(aat ?? 0),
        reportedAt: Number(rat ?? 0),
        intervalMs: Number(interval ?? 0),
        error: error ?? '',
        overlay: parseOverlayHealth(overlay),
        dryRun: dryRun === '1',
      };
      out.push(classify(facts, opts.pending?.get(cellId), now));
    });
  }
  return out;
}

/** The stored form of an overlay report (`expected missing held`, '' when none). */
export function encodeOverlayHealth(o: OverlayHealth | undefined): string {
  return o ? `${o.expectedPeers} ${o.missingPeers} ${o.leaseHeld ? 1 : 0}` : '';
}

/** An overlay report as stored; null when absent or unreadable. */
export function parseOverlayHealth(text: string | null | undefined): OverlayHealth | null {
  const m = /^(\d+) (\d+) ([01])$/.exec(text ?? '');
  if (!m) return null;
  return { expectedPeers: Number(m[1]), missingPeers: Number(m[2]), leaseHeld: m[3] === '1' };
}
