/**
 * Controller replicas as real processes (`node bin/cfnet.js controller --config …` from a fresh
 * install of this working copy) against the simulator (small foundation) and a PRIVATE
 * redis-server started here on a free port (the test runs FLUSHALL on it; the shared Redis on
 * 127.0.0.1:6379 is never touched):
 * - two replicas: one leads, both are ready; metrics, /healthz, /readyz;
 * - SIGKILL of the leader: the standby takes over within the lease, with the same rule sets;
 * - SIGSTOP of the leader (paused, not dead): a standby takes over; once resumed the old leader
 *   steps down and cannot overwrite anything; churn meanwhile converges;
 * - FLUSHALL: the leader rebuilds the world and every rule set, with higher versions.
 * Every check compares the stored rule sets with an independent from-scratch computation.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseControllerSettings, toControllerConfig } from '../../src/controller/settings.js';
import { LabController } from '../../src/lab/controller.js';
import { type Install, labInstall, removeInstalls } from '../../src/lab/install.js';
import { alive } from '../../src/lab/process.js';
import { type LabRedis, provideRedis } from '../../src/lab/redis.js';
import { METRICS } from '../../src/lib/metrics.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { createCa, issueCert } from '../../src/lib/tls.js';
import { ruleSetsEqual } from '../../src/model/ruleset.js';
import type { CellConfig, CellRuleSet } from '../../src/model/types.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { WorldStore } from '../../src/state/world-store.js';
import { waitUntil } from '../helpers/wait.js';
import { testNamespace } from './controller-helpers.js';
import { type ConvergenceTarget, waitConverged } from './controller-scratch.js';

const LEASE_MS = 1500;

describe('controller processes: failover and FLUSHALL (private redis-server)', () => {
  const ns = testNamespace('failover');
  const keys = new Keys(ns);
  let dir: string;
  let redis: LabRedis;
  let sim: SimHandle;
  let install: Install;
  let conn: ReturnType<typeof createRedis>;
  let store: RuleSetStore;
  let target: ConvergenceTarget;
  let apiTls: { ca: string; cert: string; key: string };
  const replicas = new Map<string, LabController>();

  async function startReplica(id: string): Promise<LabController> {
    const d = join(dir, id);
    await mkdir(d, { recursive: true });
    const c = new LabController({
      install,
      dir: d,
      sim,
      redisUrl: redis.url,
      namespace: ns,
      apiTls,
      logLevel: 'info',
      settings: {
        instanceId: id,
        leaseMs: LEASE_MS,
        asgCheckIntervalMs: 150,
        asgFullListIntervalMs: 1500,
        policyPollIntervalMs: 150,
      },
    });
    replicas.set(id, c);
    await c.start();
    return c;
  }

  /** Instance id of the current leader (from its lease in Redis), or null. */
  async function leaderId(): Promise<string | null> {
    const v = await conn.get(keys.leader);
    return v ? v.slice(v.indexOf(':') + 1) : null;
  }

  async function snapshot(): Promise<Map<string, CellRuleSet>> {
    const out = new Map<string, CellRuleSet>();
    for (const c of await store.cells()) out.set(c, (await store.get(c))!);
    return out;
  }

  async function get(c: LabController, path: string): Promise<Response> {
    const headers: Record<string, string> = c.operatorToken
      ? { authorization: `Bearer ${c.operatorToken}` }
      : {};
    return fetch(`${c.operatorUrl}${path}`, { headers });
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cfnet-failover-'));
    const ca = createCa({ cn: 'cfnet failover test CA' });
    const server = issueCert(ca, { cn: 'cfnet-controller', sans: ['localhost', '127.0.0.1'] });
    apiTls = { ca: ca.cert, cert: server.cert, key: server.key };
    [redis, sim, install] = await Promise.all([
      provideRedis({ throwaway: true }),
      startSimulator({ seed: 11, size: 'small', certDir: join(dir, 'sim') }),
      labInstall(),
    ]);
    conn = createRedis(redis.url, { name: 'cfnet-failover-test' });
    store = new RuleSetStore(conn, keys);
    const world = new WorldStore(conn, keys);
    // the cell config the processes derive from their settings
    const probe = new LabController({
      install,
      dir: join(dir, 'probe'),
      sim,
      redisUrl: redis.url,
      namespace: ns,
      apiTls,
      logLevel: 'info',
    });
    await mkdir(join(dir, 'probe'), { recursive: true });
    const config: CellConfig = toControllerConfig(
      parseControllerSettings({ file: await probe.settings(), env: {} }),
    ).cellConfig;
    target = { sim, store, config, inventoryOf: (c) => world.inventory(c) };
  });

  after(async () => {
    for (const c of replicas.values()) {
      if (c.child && alive(c.child)) c.child.kill('SIGCONT');
      await c.kill('SIGKILL').catch(() => {});
    }
    await sim?.stop();
    if (conn) await closeRedis(conn);
    await redis?.stop();
    await removeInstalls();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('two replicas: one leads and computes every cell, both are ready; metrics and health', async () => {
    const a = await startReplica('a');
    await waitUntil('a leads', async () => (await leaderId()) === 'a', 15_000, 25);
    const b = await startReplica('b');
    await waitConverged(target, 'initial rule sets');
    assert.deepEqual(await store.cells(), [...sim.world.cells.keys()].sort());
    assert.equal(await leaderId(), 'a', 'the first replica keeps the lead');

    for (const c of [a, b]) {
      assert.equal((await get(c, '/healthz')).status, 200);
      const ready = await waitUntil(
        'ready',
        async () => {
          const r = await get(c, '/readyz');
          return r.status === 200 ? ((await r.json()) as { checks: Record<string, unknown> }) : null;
        },
        10_000,
        25,
      );
      assert.ok(c === a ? ready.checks.informers : ready.checks.leader, JSON.stringify(ready));
    }
    const text = await (await get(a, '/metrics')).text();
    for (const name of [
      METRICS.queueDepth,
      METRICS.queueOldestAge,
      METRICS.reconcileDuration,
      METRICS.eventToPublish,
      METRICS.cellLag,
      METRICS.cellsConverged,
      METRICS.streamReconnects,
      METRICS.pollErrors,
      METRICS.isLeader,
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), `metric ${name}`);
    }
    assert.match(text, /^cfnet_controller_is_leader\{[^}]*\} 1$/m);
    assert.match(text, /^cfnet_controller_event_to_publish_seconds_count\{[^}]*kind="resync"[^}]*\} [1-9]/m);
    assert.match(
      text,
      /^cfnet_controller_reconcile_duration_seconds_count\{[^}]*outcome="written"[^}]*\} [1-9]/m,
    );
    assert.match(
      await (await get(b, '/metrics')).text(),
      /^cfnet_controller_is_leader\{[^}]*\} 0$/m,
      'b is a standby',
    );
  });

  it('SIGKILL of the leader: the standby takes over within the lease, with the same rule sets', async () => {
    const before = await snapshot();
    const t0 = Date.now();
    await replicas.get('a')!.kill('SIGKILL');
    await waitUntil('b leads', async () => (await leaderId()) === 'b', 15_000, 25);
    const took = Date.now() - t0;
    assert.ok(took <= 2 * LEASE_MS + 1000, `took over after ${took} ms (lease ${LEASE_MS} ms)`);
    // b's full resync re-enqueues every cell; its reconciles must find nothing to change
    const b = replicas.get('b')!;
    await waitUntil(
      'b reconciled every cell after the takeover',
      async () => {
        const text = await (await get(b, '/metrics')).text();
        const n = /^cfnet_controller_reconciles_total\{[^}]*outcome="unchanged"[^}]*\} (\d+)/m.exec(text);
        return Number(n?.[1] ?? 0) >= before.size;
      },
      15_000,
      25,
    );
    await waitConverged(target, 'after the takeover');
    const afterTakeover = await snapshot();
    for (const [cell, rs] of before) {
      const now = afterTakeover.get(cell)!;
      assert.ok(ruleSetsEqual(now, rs), `${cell}: same rule set`);
      assert.equal(now.version, rs.version, `${cell}: nothing republished`);
    }
    const run = sim.runChurn({ rate: 80, maxChanges: 60, seed: 4 });
    assert.ok((await run.done).applied > 30);
    await waitConverged(target, 'after churn on the new leader');
  });

  it('SIGSTOP of the leader: a standby takes over; resumed, the old leader steps down and changes nothing', async () => {
    const b = replicas.get('b')!;
    await startReplica('c');
    b.child!.kill('SIGSTOP');
    try {
      await waitUntil('c leads', async () => (await leaderId()) === 'c', 15_000, 25);
      // the platform moves on while b is frozen with its old view of the world
      const run = sim.runChurn({ rate: 80, maxChanges: 40, seed: 5 });
      assert.ok((await run.done).applied > 20);
      await waitConverged(target, 'after churn on c');
    } finally {
      b.child!.kill('SIGCONT');
    }
    await waitUntil(
      'b stepped down',
      async () => (await readFile(b.logPath, 'utf8')).includes('"lost leadership"'),
      10_000,
      25,
    );
    const run = sim.runChurn({ rate: 80, maxChanges: 30, seed: 6 });
    await run.done;
    await waitConverged(target, 'after b resumed');
    assert.equal(await leaderId(), 'c', 'c keeps the lead');
    assert.match(
      await (await get(b, '/metrics')).text(),
      /^cfnet_controller_is_leader\{[^}]*\} 0$/m,
      'b is a standby again',
    );
  });

  it('FLUSHALL: the leader rebuilds the world and every rule set, with higher versions', async () => {
    const before = await snapshot();
    assert.ok(before.size > 0);
    assert.equal(await conn.flushall(), 'OK');
    assert.equal(await conn.dbsize(), 0);
    await waitConverged(target, 'after FLUSHALL', 40_000);
    const now = await snapshot();
    for (const [cell, rs] of before) {
      assert.ok(now.get(cell)!.version > rs.version, `${cell}: ${now.get(cell)!.version} > ${rs.version}`);
    }
    assert.ok(['b', 'c'].includes((await leaderId()) ?? ''), 'a live replica leads');
    // and the rebuilt installation keeps working
    const run = sim.runChurn({ rate: 80, maxChanges: 30, seed: 8 });
    await run.done;
    await waitConverged(target, 'after churn following FLUSHALL');
  });
});
