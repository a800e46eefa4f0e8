/**
 * Per-cell convergence for operators: the desired rule-set version (what the controller stored)
 * against the version the cell's agent last reported applied, how long the desired version has
 * been waiting (lag), the agent's last error and when it last reported. Cells come from every
 * place the controller knows them from: stored rule sets, the world, agent inventories, leases.
 */
import type { Redis } from 'ioredis';
import type { Keys } from '../state/keys.js';

export type CellState =
  /** The agent reported the desired version. */
  | 'converged'
  /** The agent is at an older version (or none yet). */
  | 'lagging'
  /** The agent reported an error with its last apply. */
  | 'error'
  /** No agent ever reported for the cell. */
  | 'no-agent'
  /** The controller stored no rule set for the cell (yet). */
  | 'no-rule-set';

export interface CellConvergence {
  cellId: string;
  /** Stored version (0 = none) and when it was written (ms, Redis clock). */
  desired: number;
  desiredAt: number;
  /** Version the agent last reported applied (0 = none), its apply time and report time (ms). */
  applied: number;
  appliedAt: number;
  reportedAt: number;
  /** How long the desired version has been waiting to be applied (0 when converged). */
  lagMs: number;
  error: string;
  state: CellState;
}

/** Convergence of every known cell, sorted by cell id. */
export async function cellConvergence(
  redis: Redis,
  keys: Keys,
  now = Date.now(),
): Promise<CellConvergence[]> {
  const [rs, world, inv, leased] = await Promise.all([
    redis.smembers(keys.ruleSetCells),
    redis.smembers(keys.worldCells),
    redis.smembers(keys.inventoryCells),
    redis.hkeys(keys.leases),
  ]);
  const cells = [...new Set([...rs, ...world, ...inv, ...leased])].sort();
  const out: CellConvergence[] = [];
  for (let i = 0; i < cells.length; i += 500) {
    const part = cells.slice(i, i + 500);
    const pipe = redis.pipeline();
    for (const c of part) {
      pipe.hmget(keys.ruleSet(c), 'version', 'updatedAt');
      pipe.hmget(keys.status(c), 'appliedVersion', 'appliedAt', 'reportedAt', 'error');
    }
    const res = (await pipe.exec()) ?? [];
    part.forEach((cellId, j) => {
      const [err1, meta] = res[2 * j] ?? [];
      const [err2, status] = res[2 * j + 1] ?? [];
      if (err1) throw err1;
      if (err2) throw err2;
      const [v, at] = (meta ?? []) as Array<string | null>;
      const [av, aat, rat, error] = (status ?? []) as Array<string | null>;
      out.push(convergenceOf(cellId, { v, at, av, aat, rat, error }, now));
    });
  }
  return out;
}

function convergenceOf(
  cellId: string,
  r: {
    v?: string | null;
    at?: string | null;
    av?: string | null;
    aat?: string | null;
    rat?: string | null;
    error?: string | null;
  },
  now: number,
): CellConvergence {
  const desired = Number(r.v ?? 0);
  const desiredAt = Number(r.at ?? 0);
  const applied = Number(r.av ?? 0);
  const reported = r.av !== null && r.av !== undefined;
  const error = r.error ?? '';
  const converged = desired > 0 && applied === desired;
  let state: CellState;
  if (desired === 0) state = 'no-rule-set';
  else if (error !== '') state = 'error';
  else if (converged) state = 'converged';
  else if (!reported) state = 'no-agent';
  else state = 'lagging';
  return {
    cellId,
    desired,
    desiredAt,
    applied,
    appliedAt: Number(r.aat ?? 0),
    reportedAt: Number(r.rat ?? 0),
    lagMs: desired === 0 || converged ? 0 : Math.max(0, now - (desiredAt || now)),
    error,
    state,
  };
}

/** Cells by lag, longest first (ties by cell id): the order of the dashboard and `cfnet cells --sort lag`. */
export function byLag(cells: readonly CellConvergence[]): CellConvergence[] {
  return [...cells].sort(
    (a, b) => b.lagMs - a.lagMs || (a.cellId < b.cellId ? -1 : a.cellId > b.cellId ? 1 : 0),
  );
}

/** Counts per state. */
export function stateCounts(cells: readonly CellConvergence[]): Record<CellState, number> {
  const out: Record<CellState, number> = {
    converged: 0,
    lagging: 0,
    error: 0,
    'no-agent': 0,
    'no-rule-set': 0,
  };
  for (const c of cells) out[c.state]++;
  return out;
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
