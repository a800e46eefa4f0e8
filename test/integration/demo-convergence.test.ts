/**
 * The demo's view of convergence, against a real rule-set store in Redis (unique namespace), and
 * its choice of dataplane.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { sampleRuleSet } from '../../src/dataplane/sample.js';
import { ConvergenceTracker, percentile } from '../../src/demo/convergence.js';
import { chooseDataplane, DemoEnvironmentError, kernelBlocker, onPath } from '../../src/demo/environment.js';
import { renderFrame, versionTime } from '../../src/demo/view.js';
import { REDIS_URL } from '../../src/lab/cluster.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';

const rs = (cellId: string, containers: number): CellRuleSet => ({
  ...sampleRuleSet({ containers, asgSets: 2, rulesPerSet: 3, c2cPerContainer: 1, seed: containers }),
  cellId,
});

describe('demo convergence view (real Redis rule-set store)', () => {
  const ns = `{cfnet-demo-test-${process.pid}-${randomBytes(3).toString('hex')}}`;
  let redis: Redis;
  let store: RuleSetStore;
  before(() => {
    redis = createRedis(REDIS_URL, { name: 'cfnet-demo-convergence-test' });
    store = new RuleSetStore(redis, new Keys(ns));
  });
  after(async () => {
    await deleteKeys(redis, `${ns}*`);
    await closeRedis(redis);
  });

  it('shows desired vs applied, lag and errors per cell, and the write → enforce latency', async () => {
    const agents: Record<string, Record<string, unknown> | null> = {
      c1: {
        lease: { subnet: '10.255.1.0/24' },
        appliedContainers: 4,
        memoryMb: { rss: 70 },
        controllerReachable: true,
      },
      c2: null, // its socket does not answer
    };
    const tracker = new ConvergenceTracker(store, ['c1', 'c2'], async (id) => {
      const a = agents[id];
      if (!a) throw new Error('ECONNREFUSED');
      return a;
    });

    let s = await tracker.poll();
    assert.deepEqual(
      s.cells.map((c) => [c.cellId, c.desired, c.applied]),
      [
        ['c1', 0, 0],
        ['c2', 0, 0],
      ],
    );
    assert.match(renderFrame(s, tracker.history).at(-1)!, /^converged 0\/2 cells$/);

    const v1 = await store.write(rs('c1', 4), null);
    const m1 = (await store.meta('c1'))!;
    await store.reportStatus('c1', { appliedVersion: v1, appliedAt: m1.updatedAt + 90, error: '' });
    const c2v1 = await store.write(rs('c2', 3), null);
    s = await tracker.poll();
    const [c1, c2] = s.cells;
    assert.equal(c1!.desired, v1);
    assert.equal(c1!.applied, v1);
    assert.deepEqual(c1!.agent, {
      subnet: '10.255.1.0/24',
      containers: 4,
      rssMb: 70,
      controllerReachable: true,
    });
    assert.equal(c2!.desired, c2v1);
    assert.equal(c2!.applied, 0);
    assert.equal(c2!.agent, null);
    // a version first seen already applied says nothing about when it was enforced
    assert.deepEqual(tracker.allEnforceMs(), []);

    const v2 = await store.write(rs('c1', 5), { ...rs('c1', 4), version: v1 });
    s = await tracker.poll();
    assert.equal(s.cells[0]!.desired, v2);
    assert.equal(s.cells[0]!.applied, v1, 'not applied yet');
    const m2 = (await store.meta('c1'))!;
    await store.reportStatus('c1', { appliedVersion: v2, appliedAt: m2.updatedAt + 25, error: '' });
    await store.reportStatus('c2', {
      appliedVersion: 0,
      appliedAt: Date.now(),
      error: 'nft: syntax error\nline 2',
    });
    s = await tracker.poll(m2.updatedAt + 700);
    assert.deepEqual(tracker.allEnforceMs(), [25]);
    assert.equal(tracker.history.get('c1')!.versionsApplied, 2);
    assert.ok(s.cells[1]!.lagMs >= 600, 'c2 has been waiting since its version was written');

    assert.deepEqual(tracker.history.get('c1')!.desiredSeen, [v1, v2], 'the desired versions seen, in order');

    // versions as the view numbers them (#N, the N-th desired version seen) with their time of day
    const frame = renderFrame(s, tracker.history, 200);
    assert.match(frame[0]!, /^cell\s+subnet\s+desired\s+applied\s+lag\s+max lag/);
    assert.match(
      frame[1]!,
      new RegExp(
        `^c1\\s+10\\.255\\.1\\.0/24\\s+#2 ${versionTime(v2)}\\s+#2 ${versionTime(v2)}\\s+0ms\\s+\\S+\\s+2x\\s+4 ctrs\\s+converged$`,
      ),
    );
    assert.match(
      frame[2]!,
      new RegExp(
        `^c2\\s+-\\s+#1 ${versionTime(c2v1)}\\s+-\\s+\\S+\\s+\\S+\\s+0x\\s+agent \\?\\s+error: nft: syntax error$`,
      ),
    );
    assert.equal(
      frame[3],
      'converged 1/2 cells; controller write → enforced: p50 25 ms, p99 25 ms (1 version)',
    );
  });

  it('shows the states `cfnet cells` shows: pending while a reconcile job waits, stale when the agent is silent', async () => {
    const v = await store.write(rs('c3', 2), null);
    const reportedAt = Date.now();
    await store.reportStatus(
      'c3',
      { appliedVersion: v, appliedAt: reportedAt, error: '', intervalMs: 1000 },
      reportedAt,
    );
    let pending = new Map([['c3', { state: 'waiting' as const, createdAt: reportedAt - 2000 }]]);
    const tracker = new ConvergenceTracker(
      store,
      ['c3'],
      async () => ({}),
      async () => pending,
    );
    let s = await tracker.poll(reportedAt + 500);
    assert.deepEqual([s.cells[0]!.state, s.cells[0]!.lagMs], ['pending', 2500]);
    assert.match(renderFrame(s, tracker.history)[1]!, /\s2\.5s\s.*pending$/);
    assert.match(renderFrame(s, tracker.history).at(-1)!, /^converged 0\/1 cells/);
    pending = new Map();
    s = await tracker.poll(reportedAt + 500);
    assert.equal(s.cells[0]!.state, 'converged');
    s = await tracker.poll(reportedAt + 3001);
    assert.equal(s.cells[0]!.state, 'stale', 'three report intervals without a report');
  });

  it('percentiles are taken from the sorted samples', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 0.5), 3);
    assert.equal(percentile([5, 1, 3, 2, 4], 0.99), 5);
    assert.ok(Number.isNaN(percentile([], 0.5)));
  });
});

describe('demo dataplane choice', () => {
  it('kernel when root with the tools, dry-run otherwise or when asked, an error when kernel is impossible', () => {
    assert.deepEqual(chooseDataplane('auto', ''), {
      dataplane: 'kernel',
      why: 'root, with ip, bridge and nft',
    });
    assert.equal(chooseDataplane('kernel', '').dataplane, 'kernel');
    assert.equal(chooseDataplane('dry-run', '').dataplane, 'dry-run');
    assert.deepEqual(chooseDataplane('auto', 'not running as root'), {
      dataplane: 'dry-run',
      why: 'not running as root',
    });
    assert.throws(() => chooseDataplane('kernel', 'not running as root'), DemoEnvironmentError);
  });

  it('names what is missing', () => {
    assert.equal(
      kernelBlocker(true, () => true),
      '',
    );
    assert.equal(
      kernelBlocker(false, () => false),
      'not running as root; missing on PATH: ip, bridge, nft, curl (or nc.openbsd)',
    );
    assert.equal(
      kernelBlocker(true, (n) => n !== 'curl'),
      '',
      'nc.openbsd is enough for the CNI shim',
    );
    assert.equal(onPath('sh', '/nonexistent:/bin:/usr/bin'), true);
    assert.equal(onPath('sh', '/nonexistent'), false);
  });
});
