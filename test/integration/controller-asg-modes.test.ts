/**
 * Security-group timing and modes through the simulator (real wire formats) and real Redis, at
 * rule-set level:
 * - dynamic (default): a group bound and unbound through the v2 API, which leaves
 *   `asg_latest_update` where it was, reaches the stored rule set of a cell running the space
 *   within one full listing interval (shortened here by the setting);
 * - static (`dynamicAsgs: false`): a group bound to a space changes no container's rules; a
 *   restart (CC's new desired LRP) brings the rules compiled at its desire time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Controller, type ControllerConfig } from '../../src/controller/controller.js';
import { controllerConfig } from '../../src/controller/settings.js';
import { defaultLogger } from '../../src/lib/log.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { type CellRuleSet, DEFAULT_CELL_CONFIG, type EgressRule } from '../../src/model/types.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { Keys } from '../../src/state/keys.js';
import type { AsgData } from '../../src/state/world-store.js';
import { waitUntil } from '../helpers/wait.js';
import { REDIS_URL, simSources, testNamespace } from './controller-helpers.js';

const POLL_MS = 150;
const FULL_LIST_MS = 2_000;
/** A port no generated group uses: a rule with it is the test's group. */
const MARK_PORT = 47_123;
const MARK_RULE = { protocol: 'tcp' as const, destination: '203.0.113.7', ports: String(MARK_PORT) };

const marked = (rules: readonly EgressRule[] | undefined) =>
  (rules ?? []).some((r) => r.ports.some((p) => p.start === MARK_PORT));

function config(sim: SimHandle, ns: string, mode: 'dynamic' | 'static'): ControllerConfig {
  const sources = simSources(sim, POLL_MS, FULL_LIST_MS);
  return controllerConfig({
    redisUrl: REDIS_URL,
    namespace: ns,
    instanceId: `asg-${mode}`,
    leaseMs: 10_000,
    workers: { concurrency: 2, backoffMs: 100 },
    bbs: sources.bbs!,
    policy: sources.policy!,
    // what settings make of dynamicAsgs=false: static compute, Cloud Controller not polled
    ...(mode === 'dynamic' ? { capi: sources.capi! } : { compute: { egressSource: 'static' as const } }),
    cellConfig: DEFAULT_CELL_CONFIG,
    initialSyncTimeoutMs: 5000,
    logger: defaultLogger(`controller-asg-${mode}`),
  });
}

/** A started app with a running instance with an address, and its space. */
function runningApp(sim: SimHandle, except: Set<string> = new Set()) {
  for (const app of sim.world.apps.values()) {
    if (app.state !== 'STARTED' || except.has(app.spaceGuid)) continue;
    const d = sim.world.desiredOfApp(app.guid);
    const a = d && sim.world.actualsOf(d.processGuid).find((x) => x.state === 'RUNNING' && x.instanceAddress);
    if (a) return { app, cellId: a.cellId, handle: a.instanceGuid };
  }
  throw new Error('no running app in the simulated foundation');
}

/** The egress rules the stored rule set gives a container (undefined: not in the rule set). */
function egressOf(rs: CellRuleSet | null, handle: string): EgressRule[] | undefined {
  const c = rs?.containers.find((x) => x.handle === handle);
  return c ? rs!.asgSets[c.egress] : undefined;
}

async function setUp(
  label: string,
  mode: 'dynamic' | 'static',
  before?: (sim: SimHandle, keys: Keys) => Promise<void>,
) {
  const ns = testNamespace(label);
  const sim = await startSimulator({ seed: 11, size: 'small' });
  await before?.(sim, new Keys(ns));
  const ctl = new Controller(config(sim, ns, mode));
  await ctl.start();
  await ctl.leading(30_000);
  return {
    sim,
    ctl,
    async stop() {
      await ctl.stop().catch(() => {});
      await sim.stop();
      const r = createRedis(REDIS_URL);
      await deleteKeys(r, `${ns}:*`);
      await closeRedis(r);
    },
  };
}

describe('security groups written through v2, dynamic ASGs', () => {
  let env: Awaited<ReturnType<typeof setUp>>;
  before(async () => {
    env = await setUp('asg-v2', 'dynamic');
  });
  after(async () => env?.stop());

  it('a v2 bind and a v2 unbind reach the cell within one full listing interval', async () => {
    const { sim, ctl } = env;
    const { app, cellId, handle } = runningApp(sim);
    await waitUntil(
      'the container in its cell’s rule set',
      async () => egressOf(await ctl.ruleSetStore.get(cellId), handle),
      10_000,
      25,
    );
    const stamp = sim.world.asgLatestUpdate;
    const created = await sim.apply({ kind: 'asg-create', name: 'v2-bound', rules: [MARK_RULE], via: 'v2' });
    const guid = String((created.result as { guid?: string } | undefined)?.guid ?? '');
    assert.ok(guid, `created ${JSON.stringify(created.result)}`);
    // let a listing take the (unbound) group in, so the bind below is the only change
    await new Promise((r) => setTimeout(r, FULL_LIST_MS * 1.5));

    let t0 = Date.now();
    await sim.apply({ kind: 'asg-bind-space', guid, spaceGuid: app.spaceGuid, via: 'v2' });
    assert.equal(sim.world.asgLatestUpdate, stamp, 'v2 writes leave asg_latest_update alone');
    await waitUntil(
      'the v2 bind in the rule set',
      async () => marked(egressOf(await ctl.ruleSetStore.get(cellId), handle)),
      FULL_LIST_MS * 5,
      25,
    );
    const bindMs = Date.now() - t0;

    t0 = Date.now();
    await sim.apply({ kind: 'asg-unbind-space', guid, spaceGuid: app.spaceGuid, via: 'v2' });
    await waitUntil(
      'the v2 unbind in the rule set',
      async () => {
        const rules = egressOf(await ctl.ruleSetStore.get(cellId), handle);
        return rules !== undefined && !marked(rules);
      },
      FULL_LIST_MS * 5,
      25,
    );
    const unbindMs = Date.now() - t0;
    // one full interval (+20 % poll jitter of the check) plus listing, compute and publish on a
    // shared machine
    const bound = FULL_LIST_MS + 2 * POLL_MS + 3_000;
    assert.ok(bindMs <= bound, `bind took ${bindMs} ms (bound ${bound})`);
    assert.ok(unbindMs <= bound, `unbind took ${unbindMs} ms (bound ${bound})`);
  });
});

describe('static ASGs (dynamicAsgs: false)', () => {
  let env: Awaited<ReturnType<typeof setUp>>;
  let stale = '';
  before(async () => {
    // a last-known CAPI copy left by an earlier dynamic run, binding the marked rule everywhere
    env = await setUp('asg-static', 'static', async (_sim, keys) => {
      stale = keys.asg;
      const data: AsgData = [
        {
          guid: 'g-stale',
          name: 'stale',
          rules: [parseCapiRule(MARK_RULE)],
          runningDefault: true,
          stagingDefault: true,
          runningSpaces: [],
          stagingSpaces: [],
        },
      ];
      const r = createRedis(REDIS_URL);
      await r.hset(keys.asg, { data: JSON.stringify(data), hash: 'stale', stateAt: String(Date.now()) });
      await closeRedis(r);
    });
  });

  it('ignores and removes a CAPI copy left in Redis by an earlier dynamic run', async () => {
    const { sim, ctl } = env;
    const { cellId, handle } = runningApp(sim);
    const rules = await waitUntil(
      'the container in its cell’s rule set',
      async () => egressOf(await ctl.ruleSetStore.get(cellId), handle),
      10_000,
      25,
    );
    assert.ok(!marked(rules), 'the snapshot, not the stale globally enabled group');
    const r = createRedis(REDIS_URL);
    try {
      assert.equal(await r.exists(stale), 0, 'the stale copy is gone');
    } finally {
      await closeRedis(r);
    }
  });
  after(async () => env?.stop());

  it('a bound group changes nothing until the app is restarted; the restart brings it', async () => {
    const { sim, ctl } = env;
    const { app, cellId, handle } = runningApp(sim);
    const before = await waitUntil(
      'the container in its cell’s rule set',
      async () => egressOf(await ctl.ruleSetStore.get(cellId), handle),
      10_000,
      25,
    );
    assert.ok(!marked(before));
    // another app of the same space, if the foundation has one, must not move either
    const sibling = [...sim.world.apps.values()].find(
      (a) => a.guid !== app.guid && a.spaceGuid === app.spaceGuid && a.state === 'STARTED',
    );
    const siblingD = sibling && sim.world.desiredOfApp(sibling.guid);
    const siblingA = siblingD && sim.world.actualsOf(siblingD.processGuid).find((x) => x.state === 'RUNNING');

    await sim.apply({
      kind: 'asg-create',
      name: 'bound-static',
      rules: [MARK_RULE],
      runningSpaces: [app.spaceGuid],
      via: 'v3',
    });
    // the dynamic mode would show it within a check interval; give it many
    await new Promise((r) => setTimeout(r, 10 * POLL_MS));
    assert.deepEqual(
      egressOf(await ctl.ruleSetStore.get(cellId), handle),
      before,
      'unchanged before a restart',
    );

    const restaged = await sim.apply({ kind: 'app-restage', appGuid: app.guid });
    const newGuid = String((restaged.result as { processGuid?: string } | undefined)?.processGuid ?? '');
    const fresh = sim.world.actualsOf(newGuid).find((x) => x.instanceAddress);
    assert.ok(fresh, 'the restart placed an instance');
    await waitUntil(
      'the restarted instance with the new rules',
      async () => marked(egressOf(await ctl.ruleSetStore.get(fresh.cellId), fresh.instanceGuid)),
      10_000,
      25,
    );
    if (siblingA) {
      const rules = egressOf(await ctl.ruleSetStore.get(siblingA.cellId), siblingA.instanceGuid);
      assert.ok(rules && !marked(rules), 'an app of the same space that was not restarted keeps its rules');
    }
  });
});
