import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LeaderElection } from '../../src/lib/leader.js';
import { waitUntil } from '../helpers/wait.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';

describe('LeaderElection.abandon (a leader process dying, real Redis)', () => {
  let t: TestRedis;
  const elections: LeaderElection[] = [];

  before(async () => {
    t = await openTestRedis('abandon');
  });
  after(async () => {
    for (const e of elections) await e.stop();
    await t.cleanup();
  });

  function election(id: string): LeaderElection {
    const e = new LeaderElection(t.redis, {
      leaseKey: t.keys.leader,
      fenceKey: t.keys.fence,
      leaseMs: 600,
      id,
    });
    elections.push(e);
    return e;
  }

  it('leaves the lease in Redis, stops renewing it, and a standby takes over once it runs out', async () => {
    const a = election('a');
    a.start();
    const held = await waitUntil('a leads', () => a.leadership);
    a.abandon();
    assert.equal(await t.redis.get(t.keys.leader), held.value, 'the lease is not released');
    const b = election('b');
    b.start();
    const next = await waitUntil('b leads', () => b.leadership, 5000);
    assert.ok(next.fence > held.fence, 'the new leader has a larger fencing token');
    assert.equal(await t.redis.get(t.keys.leader), next.value);
  });
});
