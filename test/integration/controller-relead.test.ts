/**
 * A leader that loses its lease without dying (Redis slow or briefly unreachable, or an event loop
 * stalled past the renewal watchdog) steps down and, being the only replica, is elected again: it
 * must then rebuild its world and keep publishing. In-process controller, simulator (small), real
 * Redis.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/controller.js';
import { controllerConfig } from '../../src/controller/settings.js';
import { defaultLogger } from '../../src/lib/log.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { waitUntil } from '../helpers/wait.js';
import { REDIS_URL, simSources, testNamespace } from './controller-helpers.js';
import { type ConvergenceTarget, waitConverged } from './controller-scratch.js';

const config = DEFAULT_CELL_CONFIG;

describe('controller: lease lost without dying', () => {
  const ns = testNamespace('relead');
  let sim: SimHandle;
  let ctl: Controller;
  let target: ConvergenceTarget;
  const redis = createRedis(REDIS_URL);

  before(async () => {
    sim = await startSimulator({ seed: 9, size: 'small' });
    ctl = new Controller(
      controllerConfig({
        redisUrl: REDIS_URL,
        namespace: ns,
        instanceId: 'solo',
        leaseMs: 1500,
        workers: { concurrency: 2, backoffMs: 100 },
        ...simSources(sim, 150, 1500),
        cellConfig: config,
        initialSyncTimeoutMs: 5000,
        logger: defaultLogger('controller-solo'),
      }),
    );
    await ctl.start();
    target = { sim, store: ctl.ruleSetStore, config, inventoryOf: (c) => ctl.worldState.inventory(c) };
  });

  after(async () => {
    await ctl?.stop().catch(() => {});
    await sim?.stop();
    await deleteKeys(redis, `${ns}:*`);
    await closeRedis(redis);
  });

  it('steps down when its lease disappears, is elected again, and keeps converging', async () => {
    await ctl.leading(30_000);
    await waitConverged(target, 'initial rule sets');
    const fence = Number(await redis.get(`${ns}:leader:fence`));
    for (let round = 1; round <= 2; round++) {
      assert.equal(await redis.del(`${ns}:leader`), 1, 'the lease vanishes under the leader');
      await waitUntil(
        'elected again with a new fencing token',
        async () => Number(await redis.get(`${ns}:leader:fence`)) > fence + round - 1 && ctl.isLeader,
        15_000,
        25,
      );
      await ctl.leading(30_000);
      const run = sim.runChurn({ rate: 80, maxChanges: 40, seed: 20 + round });
      assert.ok((await run.done).applied > 20);
      await waitConverged(target, `after churn on the re-elected leader (round ${round})`);
    }
  });
});
