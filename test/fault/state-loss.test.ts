/**
 * Fault suite: losing Redis, the leader or a CF source costs time, never connectivity.
 *
 * Three cells in network namespaces, the simulator, a private redis-server (never the shared one:
 * it is flushed and killed here), real controller and agent processes, containers made by the real
 * CNI plugin. Through every scenario one prober per source container sends real packets every
 * 300 ms: each allowed flow must stay open and each denied flow closed; a scenario passes only with
 * zero failed probes. Afterwards every cell's subnet is unchanged, the stored rule sets equal an
 * independent from-scratch computation and every agent applied them (the time to get there is
 * recorded), and a new policy is still enforced.
 *
 *   x1 (app X) @ cell-1    y1 (app Y, NetIn 61001→8080, ASG → external:9000) @ cell-2    z1 (app Z) @ cell-3
 *   allowed: X→Y:8080, Z→X:8080, Y→external:9000, underlay→cell-2:61001
 *   denied:  Z→Y:8080, X→Y:8081, X→external:9000, Y→Z:8080
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { waitExit } from '../../src/lab/process.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { ruleSetsEqual } from '../../src/model/ruleset.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { WorldStore } from '../../src/state/world-store.js';
import { type AppRef, Cluster, type ContainerRef, EXTERNAL_IP } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { type Flow, FlowWatch } from '../helpers/flow-watch.js';
import { expectTraffic, probe } from '../helpers/netns.js';
import { RedisServer } from '../helpers/redis-server.js';
import { waitUntil } from '../helpers/wait.js';
import { describeDifference, fromScratch } from '../integration/controller-scratch.js';

const INITIAL_SYNC_TIMEOUT_MS = 4000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  scenario: string;
  sent: number;
  failed: number;
  convergeMs: number;
  takeoverMs: number | null;
}

describe('fault suite: state loss costs time, never connectivity (real packets)', () => {
  let redis: RedisServer;
  let cluster: Cluster;
  let conn: Redis;
  let store: RuleSetStore;
  let world: WorldStore;
  let X: AppRef;
  let Y: AppRef;
  let Z: AppRef;
  let x1: ContainerRef;
  let y1: ContainerRef;
  let z1: ContainerRef;
  let flows: Flow[];
  const rows: Row[] = [];

  before(async () => {
    redis = await RedisServer.start();
    cluster = await Cluster.start({
      cells: 3,
      redisUrl: redis.url,
      redisPrefix: 'cfnet-fault',
      controller: { initialSyncTimeoutMs: INITIAL_SYNC_TIMEOUT_MS, leaseMs: 2000 },
    });
    conn = createRedis(redis.url, { name: 'cfnet-fault-test' });
    conn.on('error', () => {}); // Redis is killed on purpose below; commands fail and are retried
    const keys = new Keys(cluster.redisNs);
    store = new RuleSetStore(conn, keys);
    world = new WorldStore(conn, keys);
    [X, Y, Z] = [await cluster.app('x'), await cluster.app('y'), await cluster.app('z')];
    await cluster.sim.apply({ kind: 'policy-add', source: X.appGuid, destination: Y.appGuid, port: 8080 });
    await cluster.sim.apply({ kind: 'policy-add', source: Z.appGuid, destination: X.appGuid, port: 8080 });
    const asg = await cluster.sim.apply({
      kind: 'asg-create',
      name: 'fault-external-9000',
      rules: [{ protocol: 'tcp', destination: EXTERNAL_IP, ports: '9000' }],
    });
    await cluster.sim.apply({
      kind: 'asg-bind-space',
      guid: asg.result.guid as string,
      spaceGuid: Y.spaceGuid,
    });
    const [c1, c2, c3] = cluster.cells as [
      Cluster['cells'][number],
      Cluster['cells'][number],
      Cluster['cells'][number],
    ];
    [x1, y1, z1] = await Promise.all([
      cluster.container(c1, X, 0),
      cluster.container(c2, Y, 0, { hostPorts: [{ hostPort: 61001, containerPort: 8080 }] }),
      cluster.container(c3, Z, 0),
    ]);
    await Promise.all([
      cluster.serve(y1.ns, [8080, 8081]),
      cluster.serve(x1.ns, [8080]),
      cluster.serve(z1.ns, [8080]),
      cluster.serve(cluster.underlay, [9000], [EXTERNAL_IP]),
    ]);
    flows = [
      { name: 'X→Y:8080', ns: x1.ns, ...tcp(y1.ip, 8080), expect: 'open' },
      { name: 'Z→X:8080', ns: z1.ns, ...tcp(x1.ip, 8080), expect: 'open' },
      { name: 'Y→external:9000', ns: y1.ns, ...tcp(EXTERNAL_IP, 9000), expect: 'open' },
      { name: 'NetIn→cell-2:61001', ns: cluster.underlay, ...tcp(y1.cell.underlayIp, 61001), expect: 'open' },
      { name: 'Z→Y:8080', ns: z1.ns, ...tcp(y1.ip, 8080), expect: 'closed' },
      { name: 'X→Y:8081', ns: x1.ns, ...tcp(y1.ip, 8081), expect: 'closed' },
      { name: 'X→external:9000', ns: x1.ns, ...tcp(EXTERNAL_IP, 9000), expect: 'closed' },
      { name: 'Y→Z:8080', ns: y1.ns, ...tcp(z1.ip, 8080), expect: 'closed' },
    ];
    // everything in force before the first fault
    await waitUntil(
      'every flow as the policies say',
      async () => {
        for (const f of flows) {
          const [r] = await probe(f.ns, [f], 1000);
          if ((f.expect === 'open') !== (r === 'open')) return false;
        }
        return true;
      },
      30_000,
    );
    await waitConverged();
  });

  after(async () => {
    if (rows.length > 0) {
      const lines = rows.map(
        (r) =>
          `| ${r.scenario} | ${r.sent} | ${r.failed} | ${(r.convergeMs / 1000).toFixed(1)} s | ${r.takeoverMs === null ? '—' : `${(r.takeoverMs / 1000).toFixed(1)} s`} |`,
      );
      process.stdout.write(
        `\n| scenario | probes sent | probes failed | converged after recovery | leader takeover |\n|---|---|---|---|---|\n${lines.join('\n')}\n`,
      );
    }
    await closeRedis(conn);
    await cluster?.stop();
    await redis?.stop();
  });

  async function subnets(): Promise<string[]> {
    return Promise.all(cluster.cells.map((c) => c.subnet()));
  }

  /** Stored = from scratch for every cell, and every agent applied the stored version. */
  async function convergedNow(): Promise<string | true> {
    const cellIds = cluster.cells.map((c) => c.id);
    const want = await fromScratch(cluster.sim, DEFAULT_CELL_CONFIG, (c) => world.inventory(c), cellIds);
    for (const [cell, rs] of want) {
      const got = await store.get(cell);
      if (!got) return `${cell}: nothing stored`;
      if (!ruleSetsEqual(got, rs)) return describeDifference(cell, got, rs);
      const st = await store.status(cell);
      if (st?.appliedVersion !== got.version)
        return `${cell}: agent applied ${st?.appliedVersion}, stored ${got.version}`;
    }
    return true;
  }

  async function waitConverged(timeoutMs = 60_000): Promise<number> {
    let last: string | true = 'not checked';
    try {
      await waitUntil(
        'cells converge to the from-scratch computation',
        async () => {
          last = await convergedNow();
          return last === true;
        },
        timeoutMs,
        250,
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; last difference: ${last}`);
    }
    return Date.now();
  }

  /** The pipeline still works: a new policy is enforced, its removal too. */
  async function newPolicyEnforced(): Promise<void> {
    await cluster.sim.apply({ kind: 'policy-add', source: Y.appGuid, destination: Z.appGuid, port: 8080 });
    await expectTraffic('a policy added after the fault is enforced', y1.ns, [tcp(z1.ip, 8080)], ['open']);
    await cluster.sim.apply({ kind: 'policy-remove', source: Y.appGuid, destination: Z.appGuid, port: 8080 });
    await expectTraffic('and its removal', y1.ns, [tcp(z1.ip, 8080)], ['refused']);
  }

  /**
   * Runs `fault` under continuous probing; it returns when the fault is over (and the takeover
   * time where a leader changed). Then waits for convergence and checks the invariants.
   */
  async function scenario(name: string, fault: () => Promise<{ takeoverMs?: number }>): Promise<void> {
    const before = await subnets();
    const watch = await FlowWatch.start(flows, { intervalMs: 300, timeoutMs: 1000 });
    let report: Awaited<ReturnType<FlowWatch['stop']>>;
    let convergeMs = 0;
    let takeoverMs: number | null = null;
    try {
      const r = await fault();
      takeoverMs = r.takeoverMs ?? null;
      const recovered = Date.now();
      convergeMs = (await waitConverged()) - recovered;
      // a few more rounds after convergence, and at least 10 rounds of every flow in all
      await sleep(1500);
      await waitUntil(
        '10 rounds of probes',
        async () => watch.counted.sent >= flows.length * 10,
        30_000,
        100,
      );
    } finally {
      report = await watch.stop();
    }
    rows.push({ scenario: name, sent: report.sent, failed: report.failed, convergeMs, takeoverMs });
    assert.ok(report.sent >= flows.length * 10, `probes were sent (${report.sent})`);
    assert.equal(report.failed, 0, `${name}: ${report.summary()}`);
    assert.deepEqual(await subnets(), before, `${name}: no cell changed subnet`);
    await newPolicyEnforced();
  }

  async function metric(name: string, labels: string): Promise<number | null> {
    const text = await (await fetch(`${cluster.operatorUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
    return line ? Number(line.split(' ').pop()) : null;
  }

  it('Redis FLUSHALL: leases are claimed back, nothing is dropped, cells converge', async () => {
    await scenario('Redis FLUSHALL', async () => {
      await redis.flushAll();
      return {};
    });
  });

  it('Redis killed, down 30 s, back empty, agents restarted in reverse order', async () => {
    await scenario(
      'Redis killed, down 30 s, restarted empty; agents restarted in reverse order',
      async () => {
        await redis.kill();
        await sleep(30_000);
        await redis.restart();
        for (const cell of [...cluster.cells].reverse()) {
          await cell.stopAgent('SIGTERM');
          await cell.startAgent();
        }
        return {};
      },
    );
  });

  it('leader SIGKILL with two replicas: the standby takes over, nothing is dropped', async () => {
    const replica = await cluster.startReplica();
    const leader = cluster.controllers[0]!;
    await scenario('leader SIGKILL (two replicas)', async () => {
      const killedAt = Date.now();
      await leader.kill('SIGKILL');
      await waitUntil(
        'the standby leads and is ready',
        async () => {
          const r = await fetch(`${replica.operatorUrl}/readyz`).catch(() => null);
          return r?.status === 200 && (await r.json()).checks?.informers?.ok === true;
        },
        30_000,
        100,
      );
      return { takeoverMs: Date.now() - killedAt };
    });
    // back to one replica, the lab's usual shape: the replica leads; restart the first one as standby
    await cluster.startController();
  });

  for (const source of ['policy', 'capi'] as const) {
    it(`controller started on an empty Redis while ${source} is down: nothing published until it is listed`, async () => {
      await scenario(`empty Redis, ${source} down > initialSyncTimeoutMs, then back`, async () => {
        for (const c of cluster.controllers) await c.kill('SIGTERM');
        await redis.flushAll();
        cluster.sim.faults.failNext(source, 1_000_000, 503);
        await cluster.startController();
        await sleep(INITIAL_SYNC_TIMEOUT_MS + 3000);
        for (const cell of cluster.cells) {
          assert.equal(await store.meta(cell.id), null, `no rule set published for ${cell.id}`);
        }
        const ready = await fetch(`${cluster.operatorUrl}/readyz`);
        assert.equal(ready.status, 503);
        const body = (await ready.json()) as { checks: Record<string, { ok: boolean; detail?: string }> };
        assert.match(body.checks.informers?.detail ?? '', new RegExp(source));
        assert.equal(await metric('cfnet_controller_publish_blocked', `source="${source}"`), 1);
        assert.equal(await metric('cfnet_controller_informer_synced', `source="${source}"`), 0);
        assert.equal(await metric('cfnet_controller_informer_synced', 'source="bbs"'), 1);
        cluster.sim.faults.reset();
        return {};
      });
      assert.equal(await metric('cfnet_controller_publish_blocked', `source="${source}"`), 0);
    });
  }

  it('SIGTERM while Redis is unreachable: leader, standby and agents exit within a few seconds', async () => {
    await cluster.startReplica();
    await redis.kill();
    const exits = [...cluster.controllers.map((c) => c.child!), ...cluster.cells.map((c) => c.agent!)];
    const started = Date.now();
    const times = await Promise.all(
      exits.map(async (child) => {
        child.kill('SIGTERM');
        assert.ok(await waitExit(child, 10_000), `pid ${child.pid} exited`);
        return Date.now() - started;
      }),
    );
    // controllers: CONTROLLER_STOP_DEADLINE_MS (5 s) at most; agents likewise
    assert.ok(Math.max(...times) < 7000, `every process exited within 7 s: ${times.join(', ')} ms`);
    await redis.restart();
  });
});
