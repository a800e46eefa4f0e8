/**
 * The convergence states and lag (src/state/convergence.ts), pure: each state with what makes it,
 * in precedence order, and lag measured from when the cell fell behind, not from the newest version.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CELL_STATE_NAMES,
  type CellFacts,
  classify,
  DEFAULT_REPORT_INTERVAL_MS,
  encodeOverlayHealth,
  overlaySummary,
  type PendingJob,
  parseOverlayHealth,
  STALE_AFTER_INTERVALS,
  stateCounts,
} from '../../src/state/convergence.js';

const T = 1_800_000_000_000;

/** A cell converged at version T-60 s, reported 1 s before T, reporting every 2 s. */
function facts(over: Partial<CellFacts> = {}): CellFacts {
  return {
    cellId: 'cell-1',
    desired: T - 60_000,
    desiredAt: T - 60_000,
    behindSince: T - 60_000,
    reported: true,
    applied: T - 60_000,
    appliedAt: T - 59_000,
    reportedAt: T - 1000,
    intervalMs: 2000,
    error: '',
    overlay: { expectedPeers: 2, missingPeers: 0, leaseHeld: true },
    dryRun: false,
    ...over,
  };
}

describe('cell convergence states', () => {
  const waiting: PendingJob = { state: 'waiting', createdAt: T - 30_000 };
  const cases: Array<[string, Partial<CellFacts>, PendingJob | undefined, string, number]> = [
    ['applied = desired, recent report, no job', {}, undefined, 'converged', 0],
    ['no rule set and no job', { desired: 0, desiredAt: 0, behindSince: 0 }, undefined, 'no-rule-set', 0],
    [
      'no rule set yet but a job waits',
      { desired: 0, desiredAt: 0, behindSince: 0 },
      waiting,
      'pending',
      30_000,
    ],
    ['never reported', { reported: false, applied: 0, reportedAt: 0 }, undefined, 'no-agent', 60_000],
    ['silent for more than 3 intervals', { reportedAt: T - 6001 }, undefined, 'stale', 0],
    ['silent for exactly 3 intervals', { reportedAt: T - 6000 }, undefined, 'converged', 0],
    ['stale wins over an error', { reportedAt: T - 7000, error: 'nft: boom' }, undefined, 'stale', 0],
    ['an apply error', { error: 'nft: boom' }, undefined, 'error', 0],
    ['a job waits although applied = desired', {}, waiting, 'pending', 30_000],
    [
      'applied = desired but a peer route missing',
      { overlay: { expectedPeers: 2, missingPeers: 1, leaseHeld: true } },
      undefined,
      'degraded',
      0,
    ],
    [
      'applied = desired, every peer present, but the lease not held',
      { overlay: { expectedPeers: 2, missingPeers: 0, leaseHeld: false } },
      undefined,
      'degraded',
      0,
    ],
    [
      'degraded wins over a waiting job (a broken overlay does not heal by reconciling)',
      { overlay: { expectedPeers: 2, missingPeers: 2, leaseHeld: true } },
      waiting,
      'degraded',
      30_000,
    ],
    [
      'an error wins over a broken overlay',
      { error: 'nft: boom', overlay: { expectedPeers: 2, missingPeers: 2, leaseHeld: true } },
      undefined,
      'error',
      0,
    ],
    ['an agent that does not report its overlay', { overlay: null }, undefined, 'converged', 0],
    [
      'no peers at all, lease held',
      { overlay: { expectedPeers: 0, missingPeers: 0, leaseHeld: true } },
      undefined,
      'converged',
      0,
    ],
    [
      'behind since 10 s, although the newest version is 1 s old',
      { desired: T - 1000, desiredAt: T - 1000, behindSince: T - 10_000 },
      undefined,
      'lagging',
      10_000,
    ],
    [
      'pending and behind: the longer of the two',
      { desired: T - 1000, desiredAt: T - 1000, behindSince: T - 45_000 },
      waiting,
      'pending',
      45_000,
    ],
    [
      'stored before behindSince existed: from the desired version’s write',
      { desired: T - 5000, desiredAt: T - 5000, behindSince: 0 },
      undefined,
      'lagging',
      5000,
    ],
  ];
  for (const [name, over, job, state, lag] of cases) {
    it(`${name}: ${state}, lag ${lag} ms`, () => {
      const c = classify(facts(over), job, T);
      assert.equal(c.state, state);
      assert.equal(c.lagMs, lag);
    });
  }

  it('lag grows with the clock while the cell stays behind; silence turns it stale', () => {
    const f = facts({ desired: T, desiredAt: T, behindSince: T, reportedAt: T });
    const at = (ms: number) => classify(f, undefined, T + ms);
    assert.deepEqual([at(1000).state, at(1000).lagMs], ['lagging', 1000]);
    assert.deepEqual([at(5000).state, at(5000).lagMs], ['lagging', 5000]);
    assert.deepEqual([at(6001).state, at(6001).lagMs, at(6001).silentMs], ['stale', 6001, 6001]);
  });

  it('a pending job carries its state and age', () => {
    const c = classify(facts(), { state: 'delayed', createdAt: T - 2500 }, T);
    assert.deepEqual(c.job, { state: 'delayed', createdAt: T - 2500, ageMs: 2500 });
  });

  it('an agent that never said its interval is stale after 3 default intervals', () => {
    const limit = STALE_AFTER_INTERVALS * DEFAULT_REPORT_INTERVAL_MS;
    assert.equal(classify(facts({ intervalMs: 0, reportedAt: T - limit }), undefined, T).state, 'converged');
    assert.equal(classify(facts({ intervalMs: 0, reportedAt: T - limit - 1 }), undefined, T).state, 'stale');
  });

  it('dry run is a flag beside the state, not a state: a dry-run cell can be converged, lagging or stale', () => {
    const dry = (over: Partial<CellFacts>) => classify(facts({ dryRun: true, ...over }), undefined, T);
    assert.deepEqual([dry({}).state, dry({}).dryRun], ['converged', true]);
    assert.equal(dry({ desired: T - 1000, desiredAt: T - 1000, behindSince: T - 5000 }).state, 'lagging');
    assert.equal(dry({ reportedAt: T - 7000 }).state, 'stale');
    assert.equal(classify(facts(), undefined, T).dryRun, false);
  });

  it('overlay reports round-trip through their stored form; anything else reads as not reported', () => {
    for (const o of [
      { expectedPeers: 0, missingPeers: 0, leaseHeld: true },
      { expectedPeers: 2499, missingPeers: 7, leaseHeld: false },
    ]) {
      assert.deepEqual(parseOverlayHealth(encodeOverlayHealth(o)), o);
    }
    assert.equal(encodeOverlayHealth(undefined), '');
    for (const bad of ['', null, undefined, '1 2', 'a b c', '1 2 3'])
      assert.equal(parseOverlayHealth(bad), null);
    assert.equal(overlaySummary({ expectedPeers: 3, missingPeers: 1, leaseHeld: true }), '2/3 peers');
    assert.equal(
      overlaySummary({ expectedPeers: 3, missingPeers: 0, leaseHeld: false }),
      '3/3 peers, no lease',
    );
    assert.equal(overlaySummary(null), '');
  });

  it('counts every state, absent ones as 0', () => {
    const counts = stateCounts([
      classify(facts(), undefined, T),
      classify(facts({ error: 'x' }), undefined, T),
    ]);
    assert.deepEqual(Object.keys(counts).sort(), [...CELL_STATE_NAMES].sort());
    assert.equal(counts.converged, 1);
    assert.equal(counts.error, 1);
    assert.equal(counts.stale, 0);
  });
});
