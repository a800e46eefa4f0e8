/**
 * A replica's readiness (the operator port's /readyz): Redis answers; on the leader, its world is
 * written (or which sources it waits for); on a standby, a leader is elected and publishing.
 */
import type { Redis } from 'ioredis';
import { errorMessage } from '../lib/errors.js';
import type { LeaderElection } from '../lib/leader.js';
import type { Keys } from '../state/keys.js';
import type { LeaderState } from './leadership.js';

export type ReadinessChecks = Record<string, { ok: boolean; detail?: string }>;

export interface ReadinessSources {
  redis: Redis;
  keys: Keys;
  /** This replica's leader state (null on a standby). */
  leader: LeaderState | null;
  election: LeaderElection;
}

export async function readiness(r: ReadinessSources): Promise<ReadinessChecks> {
  const checks: ReadinessChecks = {};
  try {
    await r.redis.ping();
    checks.redis = { ok: true };
  } catch (err) {
    checks.redis = { ok: false, detail: errorMessage(err) };
    return checks;
  }
  const l = r.leader;
  if (l) {
    checks.informers = l.resynced
      ? { ok: true, detail: 'leader; world written' }
      : l.missing.length > 0
        ? {
            ok: false,
            detail: `leader; not publishing: waiting for ${l.missing.join(', ')} (not listed since the state was lost)`,
          }
        : { ok: false, detail: 'leader; waiting for the first listing' };
  } else {
    const holder = await r.election.currentLeader().catch(() => null);
    checks.leader = holder
      ? { ok: true, detail: `leader ${holder}` }
      : { ok: false, detail: 'no leader elected' };
    const p = await r.redis.hgetall(r.keys.publishState).catch(() => ({}) as Record<string, string>);
    if (holder && p.state === 'waiting') {
      checks.informers = {
        ok: false,
        detail: `leader not publishing: waiting for ${p.missing?.split(',').join(', ')} (not listed since the state was lost)`,
      };
    }
  }
  return checks;
}
