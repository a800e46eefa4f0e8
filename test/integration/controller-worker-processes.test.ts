import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ReconcileQueue } from '../../src/controller/reconcile/queue.js';
import type { ReconcileResult } from '../../src/controller/reconcile/reconciler.js';
import { ReconcileWorkerPool } from '../../src/controller/reconcile/worker-pool.js';
import { LeaderElection } from '../../src/lib/leader.js';
import { createLogger } from '../../src/lib/log.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { ruleSetsEqual } from '../../src/model/ruleset.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { WorldStore } from '../../src/state/world-store.js';
import { waitUntil } from '../helpers/wait.js';
import { openTestRedis, REDIS_URL, type TestRedis } from './controller-helpers.js';
import { buildWorld, T } from './queue-world.js';

const config = DEFAULT_CELL_CONFIG;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('reconcile worker processes (workerProcesses; real Redis, real child processes)', () => {
  let t: TestRedis;
  let leader: LeaderElection;
  let fence: string;
  const cells = Array.from({ length: 12 }, (_, i) => `wp-cell-${i}`);
  const w = buildWorld(cells, 3);

  before(async () => {
    t = await openTestRedis('wproc');
    leader = new LeaderElection(t.redis, {
      leaseKey: t.keys.leader,
      fenceKey: t.keys.fence,
      leaseMs: 60_000,
    });
    leader.start();
    fence = (await waitUntil('leadership', () => leader.leadership, 10_000, 25)).value;
    w.takeChanges();
    await new WorldStore(t.redis, t.keys).resync(w, fence);
  });
  after(async () => {
    await leader.stop();
    await t.cleanup();
  });

  it('runs the reconciles in its children, reports each outcome to the parent and restarts a child that dies', async () => {
    const results: Array<{ cell: string; outcome: string }> = [];
    const observed: string[] = [];
    let failed = 0;
    const pool = new ReconcileWorkerPool({
      processes: 2,
      init: {
        instanceId: 'test',
        redisUrl: REDIS_URL,
        namespace: t.ns,
        cellConfig: config,
        concurrency: 2,
        lockDurationMs: 5000,
        rulesetLogLength: 10,
        logLevel: 'silent',
      },
      logger: createLogger('test', { level: 'silent' }),
      observer: {
        observed: (cell, r: ReconcileResult | { outcome: 'not-ready' }, seconds) => {
          assert.ok(seconds >= 0);
          observed.push(`${cell}:${r.outcome}`);
        },
        failed: () => {
          failed++;
        },
      },
      onResult: (cell, r) => results.push({ cell, outcome: r.outcome }),
    });
    const producer = createRedis(REDIS_URL, { role: 'producer' });
    const queue = new ReconcileQueue(producer, { prefix: t.ns });
    const store = new RuleSetStore(t.redis, t.keys);
    pool.start();
    try {
      assert.equal(pool.pids.length, 2);
      assert.ok(!pool.pids.includes(process.pid));
      await waitUntil('both children take jobs', () => pool.ready, 30_000, 25);
      await queue.enqueueCells(cells, T);
      await waitUntil('every cell written', () => results.length === cells.length, 30_000, 25);
      assert.deepEqual(
        results.map((r) => r.outcome).sort(),
        cells.map(() => 'written'),
      );
      assert.equal(observed.length, cells.length, 'every outcome reached the observer (metrics)');
      assert.equal(failed, 0);
      for (const c of cells) {
        assert.ok(ruleSetsEqual((await store.get(c))!, computeCellRuleSet(w, c, config)), c);
      }
      // both children run, each with its Redis connections named by its index
      const clients = String(await t.redis.client('LIST'));
      for (const i of [1, 2]) assert.match(clients, new RegExp(`name=cfnet-controller-test-worker-${i}\\b`));

      // one child dies: another takes its place and the work goes on
      const [victim] = pool.pids;
      process.kill(victim!, 'SIGKILL');
      await waitUntil(
        'a new child',
        () => pool.pids.length === 2 && !pool.pids.includes(victim!),
        15_000,
        50,
      );
      results.length = 0;
      await queue.enqueueCells(cells, { kind: 'resync', id: 'again', at: Date.now() });
      await waitUntil('every cell reconciled again', () => results.length === cells.length, 30_000, 25);
      assert.deepEqual(
        results.map((r) => r.outcome).sort(),
        cells.map(() => 'unchanged'),
      );
    } finally {
      const pids = pool.pids;
      const t0 = Date.now();
      await pool.close();
      assert.ok(Date.now() - t0 < 3000, 'children stop within the bound');
      for (const pid of pids) assert.equal(alive(pid), false, `child ${pid} exited`);
      await queue.close();
      await closeRedis(producer);
    }
  });
});
