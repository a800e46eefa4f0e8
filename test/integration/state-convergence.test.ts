/**
 * Convergence against real Redis: `behindSince` kept by the rule-set write and report scripts, the
 * states and lag every surface reads (the store, `cellConvergence` of `cfnet cells` and the
 * dashboard, the controller's `cfnet_cell_lag_seconds`), a paused reconcile queue with waiting
 * jobs, a silent agent and a failed apply, all under a clock the test moves.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerControllerMetrics } from '../../src/controller/metrics.js';
import { ReconcileQueue } from '../../src/controller/reconcile/queue.js';
import { createRegistry, METRICS, type Registry } from '../../src/lib/metrics.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { cellConvergence } from '../../src/ops/cells.js';
import type { CellConvergence } from '../../src/state/convergence.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { ruleSetOfHandles } from '../helpers/fixtures.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';

const rs = (cell: string, handles: string[]) => ruleSetOfHandles(cell, handles, 'x');

describe('cell convergence (real Redis)', () => {
  let t: TestRedis;
  let store: RuleSetStore;
  let queue: ReconcileQueue;
  before(async () => {
    t = await openTestRedis('converge');
    store = new RuleSetStore(t.redis, t.keys);
    queue = new ReconcileQueue(t.redis, { prefix: t.ns });
  });
  after(async () => {
    await queue.close();
    await t.cleanup();
  });

  const behindSince = async (cell: string) => Number(await t.redis.hget(t.keys.ruleSet(cell), 'behindSince'));
  /** An agent's report; it reports every minute unless told (the clock moves by less). */
  const report = (
    cell: string,
    appliedVersion: number,
    over: { error?: string; at?: number; intervalMs?: number } = {},
  ) =>
    store.reportStatus(
      cell,
      {
        appliedVersion,
        appliedAt: Date.now(),
        error: over.error ?? '',
        intervalMs: over.intervalMs ?? 60_000,
      },
      over.at ?? Date.now(),
    );
  const cellAt = async (cell: string, now: number): Promise<CellConvergence> =>
    (await store.convergence({ now })).find((c) => c.cellId === cell)!;
  /** Writes the next rule set of the cell; returns it as stored. */
  const write = async (cell: string, handles: string[], prev: CellRuleSet | null) => {
    await store.write(rs(cell, handles), prev);
    await sleep(5); // distinct Redis-clock milliseconds between writes
    return (await store.get(cell))!;
  };

  it('lag counts from when the applied version first fell behind, not from the newest version', async () => {
    const v1 = await write('c1', ['a'], null);
    await report('c1', v1.version);
    const now0 = Date.now();
    assert.deepEqual([(await cellAt('c1', now0)).state, (await cellAt('c1', now0)).lagMs], ['converged', 0]);

    const v2 = await write('c1', ['a', 'b'], v1);
    const fellBehind = (await store.meta('c1'))!.updatedAt;
    assert.equal(await behindSince('c1'), fellBehind, 'the first version above the applied one starts it');
    const v3 = await write('c1', ['a', 'b', 'c'], v2);
    assert.equal(await behindSince('c1'), fellBehind, 'a newer version does not restart it');

    const now = Date.now() + 10_000;
    const c = await cellAt('c1', now);
    assert.equal(c.state, 'lagging');
    assert.equal(c.lagMs, now - fellBehind);
    assert.ok(c.lagMs > now - v3.version, 'longer than the newest version’s age');
    assert.equal((await cellAt('c1', now + 5000)).lagMs, c.lagMs + 5000, 'grows with the clock');

    // the agent catches up part of the way: behind since the first version above the one it holds
    await report('c1', v2.version);
    const v3At = (await store.meta('c1'))!.updatedAt;
    assert.equal(await behindSince('c1'), v3At);
    assert.equal((await cellAt('c1', now)).lagMs, now - v3At);

    await report('c1', v3.version);
    assert.deepEqual([(await cellAt('c1', now)).state, (await cellAt('c1', now)).lagMs], ['converged', 0]);
    // converged, then a new version: behind from that write on
    await write('c1', ['d'], v3);
    assert.equal(await behindSince('c1'), (await store.meta('c1'))!.updatedAt);
  });

  it('an agent that stops reporting turns stale after 3 of its intervals; a failed apply is an error', async () => {
    const v1 = await write('c2', ['a'], null);
    const reportedAt = Date.now();
    await report('c2', v1.version, { at: reportedAt, intervalMs: 2000 });
    assert.equal((await cellAt('c2', reportedAt + 6000)).state, 'converged');
    const frozen = await cellAt('c2', reportedAt + 6001);
    assert.deepEqual([frozen.state, frozen.silentMs], ['stale', 6001]);
    // a change it never picks up: stale, lag growing from the write
    await write('c2', ['a', 'b'], v1);
    const since = await behindSince('c2');
    const later = reportedAt + 60_000;
    assert.deepEqual(
      [(await cellAt('c2', later)).state, (await cellAt('c2', later)).lagMs],
      ['stale', later - since],
    );

    await report('c2', v1.version, { error: 'nft: Could not process rule', intervalMs: 2000 });
    const broken = await cellAt('c2', Date.now());
    assert.equal(broken.state, 'error');
    assert.equal(broken.error, 'nft: Could not process rule');
    assert.ok(broken.lagMs >= 0);
  });

  it('a paused queue with waiting jobs: the cells are pending, with the job’s age, in cells and in the metric', async () => {
    const v1 = await write('c3', ['a'], null);
    await report('c3', v1.version);
    await queue.queue.pause();
    let clock = Date.now();
    const registry: Registry = createRegistry({ processMetrics: false });
    registerControllerMetrics(registry, {
      sources: [],
      isLeader: () => true,
      queue: () => queue,
      store: () => store,
      world: () => null,
      clock: () => clock,
    });
    const lagMetric = async (cell: string) =>
      (await registry.getSingleMetric(METRICS.cellLag)!.get()).values.find((v) => v.labels.cell === cell)
        ?.value;
    const stateMetric = async (state: string) =>
      (await registry.getSingleMetric(METRICS.cellsConverged)!.get()).values.find(
        (v) => v.labels.state === state,
      )?.value;
    try {
      assert.equal(await lagMetric('c3'), 0);
      const enqueuedAt = Date.now();
      await queue.enqueueCells(['c3', 'c-new'], { kind: 'policy', id: 'p1', at: enqueuedAt });
      const [job] = await queue.queue.getJobs(['waiting'], 0, 0, true);
      const createdAt = job!.timestamp;

      clock = Date.now() + 30_000;
      const cells = await cellConvergence(t.redis, t.keys, { now: clock, queue: queue.queue });
      const c3 = cells.find((c) => c.cellId === 'c3')!;
      assert.equal(c3.state, 'pending');
      assert.equal(c3.job?.state, 'waiting');
      assert.ok(c3.lagMs >= 30_000 && c3.lagMs === clock - c3.job!.createdAt, JSON.stringify(c3));
      // a cell known only from its waiting job is listed too
      assert.equal(cells.find((c) => c.cellId === 'c-new')?.state, 'pending');
      assert.ok(Math.abs(c3.job!.createdAt - createdAt) < 5000);

      const first = await lagMetric('c3');
      assert.equal(first, (clock - c3.job!.createdAt) / 1000);
      assert.equal(await stateMetric('pending'), 1, 'c-new has no rule set: not a series of the metric');
      clock += 5000;
      assert.equal(
        await lagMetric('c3'),
        (clock - c3.job!.createdAt) / 1000,
        'the metric grows with the clock too',
      );
      assert.ok((await lagMetric('c3'))! > first! + 4.99);
    } finally {
      await queue.queue.obliterate({ force: true });
      await queue.queue.resume();
    }
    clock += 2000; // past the metric's one-second cache
    assert.equal((await cellAt('c3', clock)).state, 'converged');
    assert.equal(await lagMetric('c3'), 0);
  });

  it('overlay health and dry run as the agent reports them: degraded in cells and the state metric, dry run counted, cleared by an older agent', async () => {
    const v1 = await write('c4', ['a'], null);
    const registry: Registry = createRegistry({ processMetrics: false });
    let clock = Date.now();
    registerControllerMetrics(registry, {
      sources: [],
      isLeader: () => true,
      queue: () => queue,
      store: () => store,
      world: () => null,
      clock: () => clock,
    });
    const metric = async (name: string, labels: Record<string, string> = {}) =>
      (await registry.getSingleMetric(name)!.get()).values.find((v) =>
        Object.entries(labels).every(([k, x]) => v.labels[k] === x),
      )?.value;
    const full = { appliedVersion: v1.version, appliedAt: Date.now(), error: '', intervalMs: 60_000 };
    await store.reportStatus('c4', {
      ...full,
      dryRun: true,
      overlay: { expectedPeers: 3, missingPeers: 1, leaseHeld: true },
    });
    assert.deepEqual(await store.status('c4'), {
      ...full,
      reportedAt: (await store.status('c4'))!.reportedAt,
      dryRun: true,
      overlay: { expectedPeers: 3, missingPeers: 1, leaseHeld: true },
    });
    let c = await cellAt('c4', Date.now());
    assert.deepEqual(
      [c.state, c.overlay, c.dryRun, c.lagMs],
      ['degraded', { expectedPeers: 3, missingPeers: 1, leaseHeld: true }, true, 0],
    );
    assert.equal(await metric(METRICS.cellsConverged, { state: 'degraded' }), 1);
    assert.equal(await metric(METRICS.cellsDryRun), 1);
    assert.equal(
      await metric(METRICS.cellLag, { cell: 'c4' }),
      0,
      'a degraded cell is not behind: its lag stays 0',
    );

    await store.reportStatus('c4', {
      ...full,
      dryRun: false,
      overlay: { expectedPeers: 3, missingPeers: 0, leaseHeld: true },
    });
    c = await cellAt('c4', Date.now());
    assert.deepEqual([c.state, c.dryRun], ['converged', false]);
    clock += 2000; // past the metric's one-second cache
    assert.equal(await metric(METRICS.cellsConverged, { state: 'degraded' }), 0);
    assert.equal(await metric(METRICS.cellsDryRun), 0);

    await store.reportStatus('c4', {
      ...full,
      overlay: { expectedPeers: 3, missingPeers: 0, leaseHeld: false },
    });
    assert.equal((await cellAt('c4', Date.now())).state, 'degraded', 'a lease not held degrades the cell');
    // an agent that does not report overlay or dry run (an older one) leaves neither behind
    await store.reportStatus('c4', full);
    c = await cellAt('c4', Date.now());
    assert.deepEqual([c.state, c.overlay, c.dryRun], ['converged', null, false]);
    const st = (await store.status('c4'))!;
    assert.equal('overlay' in st || 'dryRun' in st, false);
  });
});
