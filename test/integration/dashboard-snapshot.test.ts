// The dashboard's snapshot (src/ops/dashboard/snapshot.ts) against Redis: it lists the cells whose
// agent's last status says dry-run (the banner on every page), and names the apps and spaces the
// journal rows show by org/space/app, leaving guids the names do not know out of the labels.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ReconcileQueue } from '../../src/controller/reconcile/queue.js';
import { sampleOf } from '../../src/ops/dashboard/history.js';
import { takeSnapshot } from '../../src/ops/dashboard/snapshot.js';
import { Journal } from '../../src/ops/journal.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';

describe('dashboard snapshot', () => {
  let t: TestRedis;
  let queue: ReconcileQueue;

  before(async () => {
    t = await openTestRedis('dashboard-snapshot');
    queue = new ReconcileQueue(t.redis, { prefix: t.keys.ns });
    await t.redis.sadd(t.keys.ruleSetCells, 'cell-a', 'cell-b', 'cell-c');
    await t.redis.hset(t.keys.names, {
      data: JSON.stringify({
        orgs: [{ guid: 'o1', name: 'acme' }],
        spaces: [{ guid: 's1', name: 'prod', orgGuid: 'o1' }],
        apps: [{ guid: 'a-web', name: 'web', spaceGuid: 's1' }],
      }),
    });
    await new Journal(t.redis, t.keys).record({
      type: 'lrp',
      source: 'bbs',
      subject: { guid: 'instance-1', apps: ['a-web', 'a-unnamed'], spaces: ['s1'] },
      cells: ['cell-a'],
      jobIds: [],
      at: Date.now(),
    });
  });

  after(async () => {
    await queue.close();
    await t.cleanup();
  });

  it('lists the cells whose agent reports dry-run, and labels the journal rows’ apps and spaces by name', async () => {
    // what the agents reported: cell-a in dry-run, cell-b enforcing, cell-c never reported
    const store = new RuleSetStore(t.redis, t.keys);
    await store.reportStatus('cell-a', { appliedVersion: 1, appliedAt: 1, error: '', dryRun: true });
    await store.reportStatus('cell-b', { appliedVersion: 1, appliedAt: 1, error: '', dryRun: false });
    const s = await takeSnapshot({
      redis: t.redis,
      keys: t.keys,
      queue: queue.queue,
      journal: new Journal(t.redis, t.keys),
    });
    assert.deepEqual(s.dryRunCells, ['cell-a']);
    assert.deepEqual(s.labels, { 'a-web': 'acme/prod/web', s1: 'acme/prod' });
    assert.equal(s.journal[0]?.subject.guid, 'instance-1');
    assert.equal(sampleOf(s).behind, 3, 'no cell has converged: none has a rule set stored');
  });
});
