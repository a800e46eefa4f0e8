/**
 * Redis high availability: the controller reaches Redis through Sentinel (1 master, 2 replicas,
 * 3 sentinels, real processes on loopback) and the master is killed during policy churn on a
 * 3-cell foundation in namespaces. The controller follows the promotion without a restart; no
 * agent's rule-set version ever goes backwards; every policy change made before, during and after
 * the failover is enforced (real packets); flows not touched by the churn never fail a probe; the
 * time from the kill to the first change enforced again is recorded.
 *
 *   x1 (app X) @ cell-1, z1 (app Z) @ cell-3 → y1 (app Y) @ cell-2, ports 8080 (stable) and 9001–9006 (churn)
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AppRef, Cluster, type ContainerRef } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { FlowWatch } from '../helpers/flow-watch.js';
import { expectTraffic, probe } from '../helpers/netns.js';
import { SentinelRedis } from '../helpers/redis-sentinel.js';
import { waitUntil } from '../helpers/wait.js';
import { cfnet } from '../integration/ops-helpers.js';

const CHURN_PORTS = [9001, 9002, 9003, 9004, 9005, 9006];

describe('Redis Sentinel: master killed during policy churn (real packets)', () => {
  let redis: SentinelRedis;
  let cluster: Cluster;
  let X: AppRef;
  let Y: AppRef;
  let Z: AppRef;
  let x1: ContainerRef;
  let y1: ContainerRef;
  let z1: ContainerRef;
  /** The policies X→Y and Z→Y on churn ports that should be in force. */
  const allowed = new Set<string>();

  before(async () => {
    redis = await SentinelRedis.start();
    cluster = await Cluster.start({
      cells: 3,
      redisUrl: redis.url,
      redisPrefix: 'cfnet-sentinel',
      controller: { leaseMs: 3000 },
    });
    [X, Y, Z] = [await cluster.app('x'), await cluster.app('y'), await cluster.app('z')];
    const [c1, c2, c3] = cluster.cells as [
      Cluster['cells'][number],
      Cluster['cells'][number],
      Cluster['cells'][number],
    ];
    [x1, y1, z1] = await Promise.all([
      cluster.container(c1, X, 0),
      cluster.container(c2, Y, 0),
      cluster.container(c3, Z, 0),
    ]);
    await cluster.serve(y1.ns, [8080, ...CHURN_PORTS]);
    await cluster.sim.apply({ kind: 'policy-add', source: X.appGuid, destination: Y.appGuid, port: 8080 });
    await expectTraffic('X→Y:8080 allowed', x1.ns, [tcp(y1.ip, 8080)], ['open'], 30_000);
  });

  after(async () => {
    await cluster?.stop();
    await redis?.stop();
  });

  async function change(kind: 'policy-add' | 'policy-remove', from: AppRef, port: number): Promise<void> {
    await cluster.sim.apply({ kind, source: from.appGuid, destination: Y.appGuid, port });
    const key = `${from === X ? 'X' : 'Z'}:${port}`;
    if (kind === 'policy-add') allowed.add(key);
    else allowed.delete(key);
  }

  /** Every churn port from X and from Z to Y as the policies say. */
  async function expectChurnEnforced(what: string, timeoutMs = 30_000): Promise<void> {
    for (const [name, src] of [
      ['X', x1],
      ['Z', z1],
    ] as const) {
      const want = CHURN_PORTS.map((p) => (allowed.has(`${name}:${p}`) ? 'open' : 'refused'));
      await expectTraffic(
        `${what}: ${name}→Y churn ports`,
        src.ns,
        CHURN_PORTS.map((p) => tcp(y1.ip, p)),
        want as never,
        timeoutMs,
      );
    }
  }

  /** Every agent's applied version, sampled every 200 ms until stop(). */
  function sampleAppliedVersions() {
    const seen = new Map<string, number[]>();
    let sampling = true;
    const loop = (async () => {
      while (sampling) {
        for (const c of cluster.cells) {
          const v = Number(
            (await c.agentState().catch(() => ({}) as Record<string, unknown>)).appliedVersion ?? 0,
          );
          if (v > 0) seen.set(c.id, [...(seen.get(c.id) ?? []), v]);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    })();
    return {
      seen,
      async stop() {
        sampling = false;
        await loop;
      },
      assertNeverBackwards() {
        for (const [cell, seq] of seen) {
          for (let i = 1; i < seq.length; i++) {
            assert.ok(
              seq[i]! >= seq[i - 1]!,
              `${cell}: applied version went back from ${seq[i - 1]} to ${seq[i]}`,
            );
          }
        }
      },
    };
  }

  it('follows the promotion; every change is enforced; no version goes backwards; stable flows never fail', async () => {
    // versions every agent applied, sampled throughout: must never decrease
    const versions = sampleAppliedVersions();
    const watch = await FlowWatch.start([
      { name: 'X→Y:8080', ns: x1.ns, ...tcp(y1.ip, 8080), expect: 'open' },
      { name: 'Z→Y:8080', ns: z1.ns, ...tcp(y1.ip, 8080), expect: 'closed' },
    ]);
    try {
      // before
      await change('policy-add', X, 9001);
      await change('policy-add', Z, 9002);
      await change('policy-add', X, 9003);
      await expectChurnEnforced('before the failover');

      // during: the master dies right after a burst of changes (some may not have replicated)
      await change('policy-add', Z, 9004);
      await change('policy-remove', X, 9001);
      const killed = await redis.killMaster();
      const killedAt = Date.now();
      await change('policy-add', X, 9005);
      await expectTraffic('the first change after the kill', x1.ns, [tcp(y1.ip, 9005)], ['open'], 60_000);
      const firstEnforcedMs = Date.now() - killedAt;
      await expectChurnEnforced('through the failover', 60_000);
      const promoted = await redis.masterPort();
      assert.notEqual(promoted, killed, 'a replica was promoted');

      // after
      await change('policy-add', Z, 9006);
      await change('policy-remove', Z, 9002);
      await expectChurnEnforced('after the failover');
      process.stdout.write(
        `\nSentinel failover: first change enforced ${firstEnforcedMs} ms after the master was killed\n`,
      );
      assert.ok(cluster.controllerStarts === 1, 'the controller was never restarted');
    } finally {
      await versions.stop();
    }
    const report = await watch.stop();
    assert.equal(report.failed, 0, report.summary());
    versions.assertNeverBackwards();
    assert.equal(versions.seen.size, 3, 'every agent was sampled');
    // operator tools reach the promoted master through the same URL: every cell converged
    const cells = await cfnet(['cells', '--json', '--redis-url', redis.url], { namespace: cluster.redisNs });
    assert.equal(cells.code, 0, cells.stderr);
    await waitUntil('cfnet cells (through Sentinel) shows every cell converged', async () => {
      const r = await cfnet(['cells', '--json', '--redis-url', redis.url], { namespace: cluster.redisNs });
      const rows = JSON.parse(r.stdout) as { cellId: string; state: string }[];
      return cluster.cells.every((c) => rows.find((x) => x.cellId === c.id)?.state === 'converged');
    });
    // and the final state once more from both sources, the way an operator would check it
    await waitUntil('X→Y:9005 and Z→Y:9006 open, X→Y:9001 and Z→Y:9002 closed', async () => {
      const [a, b] = await Promise.all([
        probe(x1.ns, [tcp(y1.ip, 9005), tcp(y1.ip, 9001)], 1000),
        probe(z1.ns, [tcp(y1.ip, 9006), tcp(y1.ip, 9002)], 1000),
      ]);
      return (
        JSON.stringify([a, b]) ===
        JSON.stringify([
          ['open', 'refused'],
          ['open', 'refused'],
        ])
      );
    });
  });

  it('writes the old master accepted but lost: nothing applied from them is dropped, no version goes back', async () => {
    const versions = sampleAppliedVersions();
    try {
      const before = new Map<string, number>();
      for (const c of cluster.cells) before.set(c.id, Number((await c.agentState()).appliedVersion));
      // the replicas stop receiving: this change reaches the agents from the master alone
      await redis.pauseReplicas();
      await change('policy-add', X, 9002);
      await expectTraffic(
        'X→Y:9002 enforced from the master alone',
        x1.ns,
        [tcp(y1.ip, 9002)],
        ['open'],
        30_000,
      );
      // the cells whose rule set changed (Y's: the destination enforces c2c) hold versions only the
      // master had
      const lostVersions = new Map<string, number>();
      for (const c of cluster.cells) {
        const v = Number((await c.agentState()).appliedVersion);
        if (v !== before.get(c.id)) lostVersions.set(c.id, v);
      }
      assert.ok(lostVersions.has(y1.cell.id), "Y's cell applied a rule set only the master had");
      // it must stay in force from here on, whatever Redis forgets
      const watch = await FlowWatch.start([
        { name: 'X→Y:9002 (its rule set was lost by Redis)', ns: x1.ns, ...tcp(y1.ip, 9002), expect: 'open' },
        { name: 'X→Y:8080', ns: x1.ns, ...tcp(y1.ip, 8080), expect: 'open' },
        { name: 'Z→Y:8080', ns: z1.ns, ...tcp(y1.ip, 8080), expect: 'closed' },
      ]);
      const killed = await redis.killMaster(); // the rule sets of that change die with it
      redis.resumeReplicas();
      await waitUntil(
        'a replica is promoted',
        async () => {
          const m = await redis.masterPort();
          return m !== 0 && m !== killed;
        },
        30_000,
      );
      // the controller recomputes; agents get versions above what they hold
      await waitUntil(
        'every agent whose rule set Redis lost is above that version',
        async () => {
          for (const [cell, lost] of lostVersions) {
            const c = cluster.cells.find((x) => x.id === cell)!;
            if (Number((await c.agentState()).appliedVersion) <= lost) return false;
          }
          return true;
        },
        60_000,
        250,
      );
      await change('policy-add', Z, 9003);
      await expectChurnEnforced('after the lost writes');
      const report = await watch.stop();
      assert.equal(report.failed, 0, report.summary());
    } finally {
      await versions.stop();
    }
    versions.assertNeverBackwards();
  });
});
