import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ReconcileQueue } from '../../src/controller/reconcile/queue.js';
import { AGENT_AHEAD, Reconciler } from '../../src/controller/reconcile/reconciler.js';
import { ReconcileWorkers } from '../../src/controller/reconcile/worker.js';
import { LeaderElection } from '../../src/lib/leader.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { ruleSetsEqual } from '../../src/model/ruleset.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import { FencedOffError, StaleWriteError, WorldNotReadyError } from '../../src/state/errors.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { WorldStore } from '../../src/state/world-store.js';
import { waitUntil } from '../helpers/wait.js';
import { openTestRedis, REDIS_URL, type TestRedis } from './controller-helpers.js';
import { buildWorld, T } from './queue-world.js';

const config = DEFAULT_CELL_CONFIG;

describe('reconcile queue, workers and fenced world writes (real Redis)', () => {
  let t: TestRedis;
  let world: WorldStore;
  let store: RuleSetStore;
  let leader: LeaderElection;
  let fence: string;
  const conns: Array<ReturnType<typeof createRedis>> = [];
  const cells = ['cell-a', 'cell-b', 'cell-c'];
  const w = buildWorld(cells, 5);

  before(async () => {
    t = await openTestRedis('queue');
    world = new WorldStore(t.redis, t.keys);
    store = new RuleSetStore(t.redis, t.keys);
    // A long lease: on a loaded machine a 5 s lease can be given up by the renewal watchdog
    // mid-suite, and the fencing checks below are about writes, not about election timing.
    leader = new LeaderElection(t.redis, {
      leaseKey: t.keys.leader,
      fenceKey: t.keys.fence,
      leaseMs: 60_000,
    });
    leader.start();
    fence = (await waitUntil('leadership', () => leader.leadership, 10_000, 25)).value;
  });
  after(async () => {
    await leader.stop();
    for (const c of conns) await closeRedis(c);
    await t.cleanup();
  });

  function conn(role: 'blocking' | 'producer' | 'client') {
    const c = createRedis(REDIS_URL, { role });
    conns.push(c);
    return c;
  }

  it('workers compute nothing before the world is ready, then exactly the world after a resync', async () => {
    const reconciler = new Reconciler(world, store, { config });
    const results: string[] = [];
    const workers = new ReconcileWorkers(conn('blocking'), reconciler, {
      prefix: t.ns,
      concurrency: 2,
      onResult: (cell, r) => results.push(`${cell}:${r.outcome}`),
    });
    const queue = new ReconcileQueue(conn('producer'), { prefix: t.ns });
    workers.start();
    try {
      await queue.enqueueCells(['cell-a'], T);
      await waitUntil('not-ready result', () => results.includes('cell-a:not-ready'), 10_000, 25);
      assert.equal(await store.get('cell-a'), null, 'nothing written while the world is incomplete');

      w.takeChanges();
      const all = await world.resync(w, fence);
      assert.deepEqual([...all].sort(), cells);
      assert.equal(await world.isReady(), true);
      await queue.enqueueCells(all, { kind: 'resync', id: 'test', at: Date.now() });
      await waitUntil('three cells written', async () => (await store.cells()).length === 3, 10_000, 25);
      for (const c of cells) {
        const stored = (await store.get(c))!;
        assert.ok(ruleSetsEqual(stored, computeCellRuleSet(w, c, config)), c);
        assert.equal(stored.containers.length, 5);
      }
      assert.equal((await store.get('cell-b'))!.c2c.length, 1);
      // a second resync of the same world writes nothing new and changes no rule set
      const before = await Promise.all(cells.map((c) => store.meta(c)));
      await world.resync(w, fence);
      results.length = 0;
      await queue.enqueueCells(cells, T);
      await waitUntil(
        'three unchanged',
        () => results.filter((r) => r.endsWith(':unchanged')).length === 3,
        10_000,
        25,
      );
      assert.deepEqual(await Promise.all(cells.map((c) => store.meta(c))), before);
    } finally {
      await workers.close();
      await queue.close();
    }
  });

  it('incremental world writes reach the workers', async () => {
    const reconciler = new Reconciler(world, store, { config });
    w.removeInstance('cell-b-h3', T);
    w.upsertInstance(
      {
        handle: 'cell-b-new',
        processGuid: 'pg-1',
        index: 9,
        cellId: 'cell-b',
        state: 'RUNNING',
        ip: '10.255.2.99',
        netIn: [],
      },
      T,
    );
    const ch = w.takeChanges();
    assert.deepEqual([...ch.cells.keys()], ['cell-b']);
    await world.write(ch, fence, (c) => [...w.cellRecords(c)].length > 0);
    const r = await reconciler.reconcile('cell-b');
    assert.equal(r.outcome, 'written');
    const stored = (await store.get('cell-b'))!;
    assert.ok(ruleSetsEqual(stored, computeCellRuleSet(w, 'cell-b', config)));
    assert.equal(stored.c2c.length, 2, 'new app-1 instance is a c2c destination');
  });

  it('refuses a stale worker’s write; the level-based retry converges on the newest state', async () => {
    const stale = new Reconciler(world, store, { config, maxRounds: 1 });
    const fresh = new Reconciler(world, store, { config });
    const drop = async (handle: string) => {
      w.removeInstance(handle, T);
      await world.write(w.takeChanges(), fence, () => true);
    };
    await drop('cell-c-h0'); // a change the stale worker will see
    // while the stale worker is between compute and write, the world moves on and another worker
    // publishes the newer rule set
    await assert.rejects(
      stale.reconcile('cell-c', {
        beforeWrite: async () => {
          await drop('cell-c-h1');
          assert.equal((await fresh.reconcile('cell-c')).outcome, 'written');
        },
      }),
      StaleWriteError,
    );
    const stored = (await store.get('cell-c'))!;
    assert.equal(stored.containers.length, 3, 'the newer rule set stands');
    assert.ok(ruleSetsEqual(stored, computeCellRuleSet(w, 'cell-c', config)));
    // with retries allowed, a stale round is simply recomputed from a fresh read
    await drop('cell-c-h2');
    const retrying = new Reconciler(world, store, { config });
    let rounds = 0;
    const r = await retrying.reconcile('cell-c', {
      beforeWrite: async () => {
        if (rounds++ > 0) return;
        await drop('cell-c-h3');
        await fresh.reconcile('cell-c');
      },
    });
    assert.equal(rounds, 1, 'second round found nothing to write');
    assert.equal(r.outcome, 'unchanged');
    const final = (await store.get('cell-c'))!;
    assert.equal(final.containers.length, 1);
    assert.ok(ruleSetsEqual(final, computeCellRuleSet(w, 'cell-c', config)));
  });

  it('a storm of 10,000 events on 3 cells runs a handful of jobs', async () => {
    const reconciler = new Reconciler(world, store, { config });
    let jobs = 0;
    const workers = new ReconcileWorkers(conn('blocking'), reconciler, {
      prefix: t.ns,
      concurrency: 3,
      onResult: () => {
        jobs++;
      },
    });
    const queue = new ReconcileQueue(conn('producer'), { prefix: t.ns });
    workers.start();
    try {
      const t0 = Date.now();
      const adds: Array<Promise<number>> = [];
      for (let i = 0; i < 10_000; i++) {
        const cell = cells[i % 3]!;
        adds.push(queue.enqueue([[cell, [{ kind: 'lrp', id: `e${i}`, at: Date.now() }]]]));
      }
      await Promise.all(adds);
      await waitUntil(
        'queue drained',
        async () => {
          const c = await queue.counts();
          return c.waiting === 0 && c.active === 0 && c.delayed === 0 && c.prioritized === 0;
        },
        30_000,
        25,
      );
      // let follow-up jobs (keepLastIfActive) finish
      await new Promise((r) => setTimeout(r, 300));
      const took = Date.now() - t0;
      assert.ok(jobs >= 3, `every cell reconciled at least once (${jobs})`);
      assert.ok(jobs <= 12, `10,000 events ran ${jobs} jobs`);
      console.log(`storm: 10,000 events → ${jobs} jobs in ${took} ms`);
    } finally {
      await workers.close();
      await queue.close();
    }
  });

  it('events arriving while a cell’s job is active get exactly one follow-up job with the latest data', async () => {
    const inner = new Reconciler(world, store, { config });
    // the first job stays active until every request below was made (however slow the machine)
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    const slow = Object.assign(Object.create(inner) as Reconciler, {
      reconcile: async (cell: string) => {
        await gate;
        return inner.reconcile(cell);
      },
    });
    const seen: string[][] = [];
    const workers = new ReconcileWorkers(conn('blocking'), slow, {
      prefix: t.ns,
      concurrency: 2,
      onResult: (_c, _r, data) => seen.push(data.triggers.map((x) => x.id)),
    });
    const queue = new ReconcileQueue(conn('producer'), { prefix: t.ns });
    workers.start();
    try {
      await queue.enqueue([['cell-a', [{ kind: 'lrp', id: 'first', at: Date.now() }]]]);
      await waitUntil('job active', async () => (await queue.counts()).active === 1, 10_000, 25);
      for (let i = 0; i < 100; i++)
        await queue.enqueue([['cell-a', [{ kind: 'lrp', id: `during-${i}`, at: Date.now() }]]]);
      assert.deepEqual(seen, [], 'the first job is still active');
      open();
      await waitUntil('two jobs', () => seen.length === 2, 10_000, 25);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(seen, [['first'], ['during-99']]);
    } finally {
      await workers.close();
      await queue.close();
    }
  });

  it('a deposed leader cannot write the world', async () => {
    w.removeInstance('cell-a-h0', T);
    const ch = w.takeChanges();
    await assert.rejects(
      world.write(ch, '999999:someone-else', () => true),
      FencedOffError,
    );
    // after losing the lease, the old value is refused too
    await leader.stop();
    await assert.rejects(
      world.write(ch, fence, () => true),
      FencedOffError,
    );
    const stored = await t.redis.hget(t.keys.cellWorld('cell-a'), 'cell-a-h0');
    assert.ok(stored, 'the refused write changed nothing');
  });

  it('retries a failing reconcile with exponential backoff and keeps a bounded history', async () => {
    const attempts = new Map<string, number[]>();
    // fails twice for cell-r, always for the cell-f*, succeeds otherwise
    const flaky = {
      reconcile: async (cell: string) => {
        const times = attempts.get(cell) ?? [];
        times.push(Date.now());
        attempts.set(cell, times);
        if (cell.startsWith('cell-f') || (cell === 'cell-r' && times.length <= 2)) {
          throw new Error(`transient failure of ${cell}`);
        }
        return { outcome: 'unchanged' as const, version: 1, containers: 0 };
      },
    } as unknown as Reconciler;
    const workers = new ReconcileWorkers(conn('blocking'), flaky, { prefix: t.ns, concurrency: 4 });
    const queue = new ReconcileQueue(conn('producer'), {
      prefix: t.ns,
      attempts: 3,
      backoffMs: 100,
      keepCompleted: { count: 2, age: 3600 },
      keepFailed: { count: 1, age: 3600 },
    });
    workers.start();
    try {
      await queue.enqueueCells(['cell-r', 'cell-f1', 'cell-f2', 'cell-o1', 'cell-o2', 'cell-o3'], T);
      await waitUntil(
        'every job finished',
        async () => {
          const c = await queue.counts();
          return (
            c.waiting === 0 &&
            c.active === 0 &&
            c.delayed === 0 &&
            attempts.get('cell-r')?.length === 3 &&
            attempts.get('cell-f2')?.length === 3
          );
        },
        10_000,
        25,
      );
      const r = attempts.get('cell-r')!;
      assert.equal(r.length, 3, 'two retries, then success');
      assert.ok(r[1]! - r[0]! >= 95, `first retry after ${r[1]! - r[0]!} ms (backoff 100 ms)`);
      assert.ok(r[2]! - r[1]! >= 195, `second retry after ${r[2]! - r[1]!} ms (backoff doubled)`);
      assert.equal(attempts.get('cell-f1')!.length, 3, 'a failing job gives up after its attempts');
      const c = await queue.counts();
      assert.equal(c.completed, 2, 'completed jobs beyond the bound are removed');
      assert.equal(c.failed, 1, 'failed jobs beyond the bound are removed');
      // BullMQ's keys carry the namespace, hash tag first: one Redis Cluster slot for all of them
      const bull = await t.redis.keys(`${t.ns}:reconcile:*`);
      assert.ok(bull.length > 0, 'BullMQ keys under the namespace');
      assert.ok(t.ns.startsWith('{') && t.ns.indexOf('}') > 1);
    } finally {
      await workers.close();
      await queue.close();
    }
  });

  it('a cell whose agent is ahead of the store waits for a full world rewrite, then goes above the agent', async () => {
    const reconciler = new Reconciler(world, store, { config });
    // a leadership of its own (earlier tests depose the suite's leader)
    await leader.stop();
    const current = '999:agent-ahead-test';
    await t.redis.set(t.keys.leader, current);
    await world.resync(w, current);
    await reconciler.reconcile('cell-c');
    const stored = (await store.meta('cell-c'))!;
    // the agent holds a version the store lost (a failover): the store records it as the floor
    const held = stored.version + 1_000_000;
    assert.equal((await store.changesSince('cell-c', held)).kind, 'ahead');
    // the world was written before that was seen: it may lack what the lost rule set had
    await assert.rejects(reconciler.reconcile('cell-c'), (err: unknown) => {
      assert.ok(err instanceof WorldNotReadyError);
      assert.equal(err.context.reason, AGENT_AHEAD);
      return true;
    });
    assert.equal((await store.meta('cell-c'))!.version, stored.version, 'nothing written meanwhile');
    // the leader rewrites the world in full: now the cell is recomputed above the agent's version
    await new Promise((r) => setTimeout(r, 5)); // Redis clock: the rewrite comes strictly later
    await world.resync(w, current);
    const r = await reconciler.reconcile('cell-c');
    assert.equal(r.outcome, 'written', 'equal content is written again, above the agent');
    assert.ok(r.version > held);
  });

  describe('worker caches after Redis lost the world (real Redis)', () => {
    let t: TestRedis;
    let leader: LeaderElection;
    before(async () => {
      t = await openTestRedis('lost');
      leader = new LeaderElection(t.redis, {
        leaseKey: t.keys.leader,
        fenceKey: t.keys.fence,
        leaseMs: 5000,
      });
      leader.start();
    });
    after(async () => {
      await leader.stop();
      await t.cleanup();
    });

    it('a worker never takes old security groups or policies for new ones when the counters restart', async () => {
      const fence = (await waitUntil('leadership', () => leader.leadership, 10_000, 25)).value;
      const writer = new WorldStore(t.redis, t.keys);
      const workerConn = createRedis(REDIS_URL);
      const worker = new WorldStore(workerConn, t.keys);
      try {
        const before = buildWorld(['cell-a'], 3);
        before.takeChanges();
        await writer.resync(before, fence);
        const old = await worker.loadCell('cell-a');
        assert.deepEqual(
          computeCellRuleSet(old.view, 'cell-a', config),
          computeCellRuleSet(before, 'cell-a', config),
        );
        // Redis loses the world (FLUSHALL, failover to an empty replica); only the lease survives here
        for (const k of await t.redis.keys(t.keys.pattern)) if (k !== t.keys.leader) await t.redis.del(k);
        const other = parseCapiRule({ protocol: 'udp', destination: '192.0.2.0/24', ports: '53' });
        const after = buildWorld(['cell-a'], 3);
        after.setAsgs(
          [
            {
              guid: 'g2',
              name: 'g2',
              rules: [other],
              runningDefault: true,
              stagingDefault: false,
              runningSpaces: [],
              stagingSpaces: [],
            },
          ],
          2,
          T,
        );
        after.setPolicies([], T);
        after.takeChanges();
        await writer.resync(after, fence);
        const now = await worker.loadCell('cell-a');
        assert.equal(now.asgVersion, old.asgVersion, 'the version counter restarted at the same value');
        const got = computeCellRuleSet(now.view, 'cell-a', config);
        assert.deepEqual(got, computeCellRuleSet(after, 'cell-a', config));
        assert.deepEqual(Object.values(got.asgSets), [[other]]);
        assert.equal(got.c2c.length, 0, 'the new (empty) policy list, not the cached one');
      } finally {
        await closeRedis(workerConn);
      }
    });
  });
  it('jobs that read slices at once after a change load the groups and the policies once', async () => {
    const fresh = new WorldStore(t.redis, t.keys);
    const reads: string[] = [];
    const hmget = t.redis.hmget.bind(t.redis);
    const spy = ((key: string, ...fields: string[]) => {
      if (fields.includes('data')) reads.push(key);
      return hmget(key, ...fields);
    }) as typeof t.redis.hmget;
    t.redis.hmget = spy;
    try {
      const slices = await Promise.all(cells.map((c) => fresh.loadCell(c)));
      assert.equal(slices.length, cells.length);
      assert.deepEqual(reads.sort(), [t.keys.asg, t.keys.policies].sort(), 'one load of each document');
      for (const [i, c] of cells.entries()) {
        assert.ok(
          ruleSetsEqual(computeCellRuleSet(slices[i]!.view, c, config), computeCellRuleSet(w, c, config)),
        );
      }
    } finally {
      t.redis.hmget = hmget;
    }
  });
});
