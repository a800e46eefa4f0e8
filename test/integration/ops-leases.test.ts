/**
 * `cfnet leases` and the publish state in `cfnet cells`: what an operator sees after the
 * controller's state was lost, and the one command that moves a cell to a new subnet.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LeaseManager } from '../../src/state/lease-store.js';
import { SingleIpLeases } from '../../src/state/single-ip-lease.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';
import { cfnet } from './ops-helpers.js';

describe('cfnet leases / publish state in cfnet cells', () => {
  let t: TestRedis;
  let leases: LeaseManager;
  before(async () => {
    t = await openTestRedis('ops-leases');
    leases = new LeaseManager(t.redis, t.keys, { recoveryWindowMs: 60_000 });
    // a leader holds the namespace (else the read commands answer "no controller", exit 4)
    await t.redis.set(t.keys.leader, '1:ctl-1');
  });
  after(async () => t.cleanup());

  it('lists leases, says while the table is recovering, and shows releases', async () => {
    await leases.acquire('cell-a', '192.0.2.1', undefined, '10.255.4.0/24');
    await leases.acquire('cell-b', '192.0.2.2', undefined, '10.255.5.0/24');
    await leases.release('cell-b');
    const human = await cfnet(['leases'], { namespace: t.keys.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^CELL\s+KIND\s+SUBNET\s+UNDERLAY/m);
    assert.match(human.stdout, /cell-a\s+cell\s+10\.255\.4\.0\/24\s+192\.0\.2\.1/);
    assert.match(human.stdout, /recovering: the lease table was found empty/);
    assert.match(human.stdout, /released: cell-b 10\.255\.5\.0\/24/);
    const json = await cfnet(['leases', '--json'], { namespace: t.keys.ns });
    const body = JSON.parse(json.stdout) as { leases: { cellId: string }[]; freshSubnetsFrom: number };
    assert.deepEqual(
      body.leases.map((l) => l.cellId),
      ['cell-a'],
    );
    assert.ok(body.freshSubnetsFrom > Date.now());
  });

  it("a router's single-address lease is KIND router, a cell's KIND cell; --json keeps the stored kind", async () => {
    const routers = new SingleIpLeases(t.redis, t.keys, { reserved: leases.reserved, ttlMs: 60_000 });
    const r = await routers.acquire({ cellId: 'router-1', underlayIp: '192.0.2.9', tag: 7 });
    const human = await cfnet(['leases'], { namespace: t.keys.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(
      human.stdout,
      new RegExp(`^router-1\\s+router\\s+${r.subnet.replaceAll('.', '\\.')}\\s+192\\.0\\.2\\.9`, 'm'),
    );
    assert.match(human.stdout, /^cell-a\s+cell\s/m);
    const body = JSON.parse((await cfnet(['leases', '--json'], { namespace: t.keys.ns })).stdout) as {
      leases: { cellId: string; kind?: string }[];
    };
    assert.deepEqual(
      body.leases.map((l) => [l.cellId, l.kind ?? null]),
      [
        ['cell-a', null],
        ['router-1', 'single-ip'],
      ],
    );
    await t.redis.hdel(t.keys.leases, 'router-1');
  });

  it('leases move marks the cell; an invalid cell id is exit 2', async () => {
    const r = await cfnet(['leases', 'move', 'cell-a'], { namespace: t.keys.ns });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await t.redis.sismember(t.keys.leaseMoves, 'cell-a'), 1);
    const bad = await cfnet(['leases', 'move', 'bad cell;'], { namespace: t.keys.ns });
    assert.equal(bad.code, 2);
  });

  it('cfnet cells says why nothing is published while the leader waits for a source', async () => {
    await t.redis.hset(t.keys.publishState, {
      leader: 'ctl-1',
      state: 'waiting',
      missing: 'policy',
      since: String(Date.now() - 5000),
    });
    const r = await cfnet(['cells'], { namespace: t.keys.ns });
    assert.match(r.stderr, /NOT being published: leader ctl-1 waits for policy/);
    await t.redis.hset(t.keys.publishState, { state: 'publishing', missing: '' });
    const ok = await cfnet(['cells'], { namespace: t.keys.ns });
    assert.doesNotMatch(ok.stderr, /NOT being published/);
  });
});
