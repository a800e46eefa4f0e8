/**
 * Controller against the simulator (small foundation: 3 cells, 30 containers) and real Redis, in
 * this process: the stored rule sets equal an independent from-scratch computation after a churn
 * script; a storm of 10,000 BBS events on the 3 cells runs a handful of reconcile jobs; a stale
 * worker's write is refused. (Leader failover and FLUSHALL with real processes and a private
 * redis-server: controller-failover.test.ts.)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller, type ControllerConfig } from '../../src/controller/controller.js';
import { Reconciler } from '../../src/controller/reconcile/reconciler.js';
import { controllerConfig as completeConfig } from '../../src/controller/settings.js';
import { defaultLogger } from '../../src/lib/log.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import { type CellConfig, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { StaleWriteError } from '../../src/state/errors.js';
import { waitUntil } from '../helpers/wait.js';
import { REDIS_URL, simSources, testNamespace } from './controller-helpers.js';
import { type ConvergenceTarget, waitConverged } from './controller-scratch.js';

const config = DEFAULT_CELL_CONFIG;

function controllerConfig(
  sim: SimHandle,
  ns: string,
  id: string,
  onReconcile: ControllerConfig['onReconcile'],
): ControllerConfig {
  return completeConfig({
    redisUrl: REDIS_URL,
    namespace: ns,
    instanceId: id,
    // The simulator runs in this process: a 10,000-event storm (made, encoded, decoded, applied in
    // one event loop) on a loaded 2-core machine can hold up the lease renewal for over a second,
    // and with a 1.5 s lease the leader then (rightly) steps down mid-test. Short leases and
    // failover are tested with real processes in controller-failover / controller-relead.
    leaseMs: 10_000,
    workers: { concurrency: 4, backoffMs: 100 },
    ...simSources(sim, 150, 1500),
    cellConfig: config,
    initialSyncTimeoutMs: 5000,
    logger: defaultLogger(`controller-${id}`),
    ...(onReconcile ? { onReconcile } : {}),
  });
}

/** Sum of a counter's samples in a controller's registry. */
async function counterTotal(ctl: Controller, name: string): Promise<number> {
  const m = ctl.registry.getSingleMetric(name);
  if (!m) return 0;
  const { values } = await m.get();
  return values.reduce((n, v) => n + v.value, 0);
}

describe('controller end to end (simulator + Redis)', () => {
  const ns = testNamespace('e2e');
  let sim: SimHandle;
  let ctl: Controller;
  let target: ConvergenceTarget;
  const jobs = { total: 0, written: 0 };
  const enqueued = { requests: 0, ids: new Set<string>() };
  let initialTasks = new Set<string>();

  before(async () => {
    // BBS drops a subscriber more than 1024 events behind; the storm below sends 10,000 at once
    // and is about the queue, not about that (reconnect + re-list is covered in cf-bbs-stream).
    sim = await startSimulator({ seed: 7, size: 'small', eventBufferLimit: 100_000 });
    initialTasks = new Set(sim.world.tasks.keys());
    ctl = new Controller({
      ...controllerConfig(sim, ns, 'a', (_cell, r) => {
        jobs.total++;
        if (r.outcome === 'written') jobs.written++;
      }),
      extensions: [
        {
          name: 'count-enqueues',
          onEnqueued: (list) => {
            enqueued.requests += list.length;
            for (const j of list) enqueued.ids.add(j.jobId);
          },
        },
      ],
    });
    await ctl.start();
    target = {
      sim,
      store: ctl.ruleSetStore,
      config,
      inventoryOf: (c) => ctl.worldState.inventory(c),
    };
  });

  after(async () => {
    await ctl?.stop().catch(() => {});
    await sim?.stop();
    const r = createRedis(REDIS_URL);
    await deleteKeys(r, `${ns}:*`);
    await closeRedis(r);
  });

  it('computes every cell, and stays equal to a from-scratch computation through churn', async () => {
    await ctl.leading(30_000);
    await waitConverged(target, 'initial rule sets');
    const stored = await ctl.ruleSetStore.cells();
    assert.deepEqual(stored, [...sim.world.cells.keys()].sort());
    const some = (await ctl.ruleSetStore.get(stored[0]!))!;
    assert.ok(some.containers.length > 0, 'containers on the cell');
    assert.ok(Object.keys(some.asgSets).length > 0, 'egress sets');

    const before = new Map<string, number>();
    for (const c of stored) before.set(c, (await ctl.ruleSetStore.meta(c))!.version);
    // every kind of change: apps, crashes, restages, tasks, ASG rules and bindings, policies
    const run = sim.runChurn({ rate: 80, maxChanges: 150, seed: 3 });
    const res = await run.done;
    assert.ok(res.applied > 100, `churn applied ${res.applied} changes (${res.lastError ?? ''})`);
    for (const kind of ['app-start', 'asg-update', 'policy-add']) {
      assert.ok((res.byKind[kind] ?? 0) > 0, `churn included ${kind}: ${JSON.stringify(res.byKind)}`);
    }
    await waitConverged(target, 'after churn');
    let moved = 0;
    let c2c = 0;
    let containers = 0;
    for (const c of stored) {
      const rs = (await ctl.ruleSetStore.get(c))!;
      if (rs.version !== before.get(c)) moved++;
      c2c += rs.c2c.length;
      containers += rs.containers.length;
    }
    assert.equal(moved, stored.length, 'churn changed every cell’s rule set');
    assert.ok(c2c > 0 && containers > 5, `non-trivial rule sets (${containers} containers, ${c2c} c2c)`);
  });

  it('a storm of 10,000 BBS events on the 3 cells runs a handful of reconcile jobs', async () => {
    const eventsBefore = await counterTotal(ctl, 'cfnet_controller_events_total');
    const queueIdle = async () => {
      const c = await ctl.reconcileQueue.counts();
      return c.waiting === 0 && c.active === 0 && c.delayed === 0 && c.prioritized === 0;
    };
    // The churn of the first test leaves tasks that finish up to 2 s later: let them, so that only
    // the storm feeds the queue from here on.
    await waitUntil(
      'the churn’s tasks finished',
      () => [...sim.world.tasks.keys()].every((g) => initialTasks.has(g)),
      15_000,
      25,
    );
    await ctl.settled();
    await waitUntil('queue idle before the storm', queueIdle, 10_000, 25);
    // The workers are busy elsewhere (paused here): every request for a cell is absorbed by the
    // cell's one waiting job, however many events and world flushes the storm brings.
    await ctl.pauseWorkers();
    let resumed = false;
    try {
      jobs.total = 0;
      jobs.written = 0;
      enqueued.requests = 0;
      enqueued.ids.clear();
      const running = [...sim.world.apps.values()].filter((a) => a.state === 'STARTED').map((a) => a.guid);
      assert.ok(running.length >= 3, 'running apps to crash');
      const cells = [...sim.world.cells.keys()].sort();
      assert.equal(cells.length, 3);
      // An immediate crash + restart is 5 BBS events (crashed, created, removed, changed ×2); the
      // restarts go round the 3 cells so that the storm touches every one of them.
      const t0 = Date.now();
      const applied: Array<Promise<unknown>> = [];
      for (let i = 0; i < 2000; i++) {
        applied.push(
          sim.apply({
            kind: 'app-crash',
            appGuid: running[i % running.length]!,
            restart: 'immediate',
            cellId: cells[i % cells.length]!,
          }),
        );
      }
      await Promise.all(applied);
      await waitUntil(
        '10,000 events applied by the informer',
        async () => (await counterTotal(ctl, 'cfnet_controller_events_total')) - eventsBefore >= 10_000,
        30_000,
        25,
      );
      // every event applied, every world change written and enqueued: only then count the requests
      await ctl.settled();
      await waitUntil(
        'one waiting job per cell',
        async () => (await ctl.reconcileQueue.counts()).waiting === 3,
        10_000,
        25,
      );
      const requests = enqueued.requests;
      const distinct = enqueued.ids.size;
      ctl.resumeWorkers();
      resumed = true;
      await waitConverged(target, 'after the storm');
      await waitUntil('queue idle after the storm', queueIdle, 10_000, 25);
      const events = (await counterTotal(ctl, 'cfnet_controller_events_total')) - eventsBefore;
      console.log(
        `storm: ${events} BBS events on 3 cells → ${requests} enqueue requests, ${distinct} distinct jobs → ${jobs.total} reconciles (${jobs.written} wrote) in ${Date.now() - t0} ms`,
      );
      assert.ok(requests >= 3, `the leader enqueued the cells (${requests} requests)`);
      assert.equal(distinct, 3, 'every request during the storm was absorbed by its cell’s waiting job');
      assert.ok(jobs.total >= 3, `every cell was reconciled (${jobs.total} jobs)`);
      assert.ok(jobs.total <= 6, `10,000 events ran ${jobs.total} jobs (at most 2 per cell)`);
    } finally {
      if (!resumed) ctl.resumeWorkers();
    }
  });

  it('refuses a stale worker’s write: the newer rule set stands', async () => {
    await ctl.leading();
    const cell = (await ctl.ruleSetStore.cells())[0]!;
    const before = (await ctl.ruleSetStore.meta(cell))!.version;
    // A worker whose computation differs from what is stored (here: another cell config) reads the
    // cell at version `before`; while it is between compute and write, the platform changes and the
    // controller publishes a newer version. Its compare-and-set on `before` must be refused.
    const staleConfig: CellConfig = { ...config, logging: { ...config.logging, asg: !config.logging.asg } };
    const stale = new Reconciler(ctl.worldState, ctl.ruleSetStore, { config: staleConfig, maxRounds: 1 });
    let newer = 0;
    await assert.rejects(
      stale.reconcile(cell, {
        beforeWrite: async () => {
          const app = [...sim.world.apps.values()].find(
            (a) =>
              a.state === 'STARTED' &&
              sim.world
                .actualsOf(sim.world.desiredOfApp(a.guid)?.processGuid ?? '')
                .some((x) => x.state === 'RUNNING' && x.cellId === cell),
          );
          assert.ok(app, `an app running on ${cell}`);
          await sim.apply({ kind: 'app-stop', appGuid: app.guid });
          newer = await waitUntil(
            'the controller published a newer version',
            async () => {
              const v = (await ctl.ruleSetStore.meta(cell))!.version;
              return v > before ? v : 0;
            },
            10_000,
            25,
          );
        },
      }),
      (err: unknown) => {
        assert.ok(err instanceof StaleWriteError, String(err));
        assert.equal(err.context.expected, before);
        assert.equal(err.context.actual, newer);
        return true;
      },
    );
    const stored = (await ctl.ruleSetStore.get(cell))!;
    assert.equal(stored.version, newer, 'the newer version stands');
    assert.equal(
      stored.config.logging.asg,
      config.logging.asg,
      'nothing of the stale computation was stored',
    );
    await waitConverged(target, 'after the refused write');
  });
});
