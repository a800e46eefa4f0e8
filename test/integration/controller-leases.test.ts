/**
 * Overlay subnet leases when Redis is only a cache: the cells hold the truth, claims rebuild the
 * table after a loss, conflicts are refused loudly, fresh subnets wait for the recovery window, and
 * an operator can move a cell. Real Redis, one namespace per test file; an explicit clock.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { deleteKeys } from '../../src/lib/redis.js';
import { LeaseError, LeaseManager } from '../../src/state/lease-store.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';

const T0 = 1_800_000_000_000;
const WINDOW = 10_000;

function leaseError(code: string) {
  return (err: unknown) => {
    assert.ok(err instanceof LeaseError, `a LeaseError, got ${String(err)}`);
    assert.equal(err.code, code);
    return true;
  };
}

describe('lease manager: claims, recovery window, conflicts (real Redis)', () => {
  let t: TestRedis;
  let leases: LeaseManager;
  before(async () => {
    t = await openTestRedis('leases');
    leases = new LeaseManager(t.redis, t.keys, {
      overlayNetwork: '10.255.0.0/22',
      subnetPrefixLength: 24,
      ttlMs: 60_000,
      recoveryWindowMs: WINDOW,
    });
  });
  beforeEach(async () => {
    await deleteKeys(t.redis, t.keys.pattern); // "Redis lost its data"
  });
  after(async () => t.cleanup());

  it('an empty table hands out fresh subnets only after the recovery window, claims at once', async () => {
    await assert.rejects(
      leases.acquire('new-cell', '192.0.2.1', undefined, undefined, T0),
      (err: unknown) => {
        leaseError('CFNET_LEASE_RECOVERING')(err);
        assert.equal((err as LeaseError).status, 503);
        assert.equal((err as LeaseError).context.retryAfterMs, WINDOW);
        return true;
      },
    );
    const claimed = await leases.acquire('old-cell', '192.0.2.2', undefined, '10.255.3.0/24', T0 + 1);
    assert.equal(claimed.subnet, '10.255.3.0/24', 'the claim is granted during the window');
    await assert.rejects(
      leases.acquire('new-cell', '192.0.2.1', undefined, undefined, T0 + WINDOW - 1),
      leaseError('CFNET_LEASE_RECOVERING'),
    );
    const fresh = await leases.acquire('new-cell', '192.0.2.1', undefined, undefined, T0 + WINDOW);
    assert.equal(fresh.subnet, '10.255.1.0/24', 'lowest free subnet once the window is over');
  });

  it('a table that still holds leases opens at once (no window after a plain restart)', async () => {
    await leases.acquire('a', '192.0.2.1', undefined, '10.255.2.0/24', T0);
    await t.redis.del(t.keys.leaseRecovery); // e.g. written by an older version without the marker
    const b = await leases.acquire('b', '192.0.2.2', undefined, undefined, T0 + 1);
    assert.equal(b.subnet, '10.255.1.0/24');
  });

  it('restores the table from claims in any order: every cell keeps its subnet', async () => {
    const held = { c1: '10.255.1.0/24', c2: '10.255.2.0/24', c3: '10.255.3.0/24' };
    for (const cell of ['c3', 'c2', 'c1'] as const) {
      const l = await leases.acquire(cell, `192.0.2.${cell.slice(1)}`, undefined, held[cell], T0);
      assert.equal(l.subnet, held[cell]);
    }
    assert.deepEqual(
      (await leases.list(T0)).map((l) => [l.cellId, l.subnet]),
      Object.entries(held),
    );
    // renewals go on as before the loss
    const r = await leases.renew('c2', held.c2, '192.0.2.2', undefined, T0 + 1000);
    assert.equal(r.subnet, held.c2);
  });

  it('a claim of a subnet another live cell holds is refused with CFNET_LEASE_CONFLICT, nothing moves', async () => {
    await leases.acquire('c1', '192.0.2.1', undefined, '10.255.1.0/24', T0);
    await assert.rejects(
      leases.acquire('c2', '192.0.2.2', undefined, '10.255.1.0/24', T0 + 1),
      (err: unknown) => {
        leaseError('CFNET_LEASE_CONFLICT')(err);
        assert.equal((err as LeaseError).status, 409);
        assert.equal((err as LeaseError).context.holder, 'c1');
        return true;
      },
    );
    assert.equal((await leases.get('c1'))!.subnet, '10.255.1.0/24');
    assert.equal(await leases.get('c2'), null);
  });

  it('a claim of a subnet whose lease expired takes it over', async () => {
    await leases.acquire('gone', '192.0.2.1', undefined, '10.255.1.0/24', T0);
    const l = await leases.acquire('c2', '192.0.2.2', undefined, '10.255.1.0/24', T0 + 60_001);
    assert.equal(l.subnet, '10.255.1.0/24');
    assert.equal(await leases.get('gone'), null);
  });

  it('a claim outside the overlay plan is a ValidationError naming subnet', async () => {
    for (const bad of ['10.255.0.0/24', '10.255.1.0/25', '10.254.1.0/24', '10.255.1.7/24', 'x']) {
      await assert.rejects(leases.acquire('c1', '192.0.2.1', undefined, bad, T0), (err: unknown) => {
        assert.equal((err as { field?: string }).field, 'subnet', bad);
        return true;
      });
    }
  });

  it('a cell re-claiming its own subnet keeps acquiredAt; claiming another free subnet moves its record', async () => {
    const a = await leases.acquire('c1', '192.0.2.1', undefined, '10.255.1.0/24', T0);
    const b = await leases.acquire('c1', '192.0.2.1', undefined, '10.255.1.0/24', T0 + 5);
    assert.equal(b.acquiredAt, a.acquiredAt);
    const c = await leases.acquire('c1', '192.0.2.1', undefined, '10.255.2.0/24', T0 + 10);
    assert.equal(c.subnet, '10.255.2.0/24');
    assert.equal(await t.redis.hget(t.keys.leaseSubnets, '10.255.1.0/24'), null, 'the old subnet is free');
  });

  it('an operator move answers the next claim with a fresh subnet marked moved', async () => {
    await leases.acquire('c1', '192.0.2.1', undefined, '10.255.1.0/24', T0);
    await leases.requestMove('c1');
    await assert.rejects(
      leases.renew('c1', '10.255.1.0/24', '192.0.2.1', undefined, T0 + WINDOW),
      leaseError('CFNET_LEASE_MISMATCH'),
    );
    const moved = await leases.acquire('c1', '192.0.2.1', undefined, '10.255.1.0/24', T0 + WINDOW);
    assert.notEqual(moved.subnet, '10.255.1.0/24');
    assert.equal(moved.moved, 'operator');
    const next = await leases.renew('c1', moved.subnet, '192.0.2.1', undefined, T0 + WINDOW + 1);
    assert.equal(next.subnet, moved.subnet, 'the move is done once');
  });

  it('a release leaves a tombstone that agents read with the listing', async () => {
    await leases.acquire('c1', '192.0.2.1', undefined, '10.255.1.0/24', T0);
    assert.equal(await leases.release('c1', T0 + 100), true);
    assert.deepEqual(await leases.released(T0 + 200), [
      { cellId: 'c1', subnet: '10.255.1.0/24', releasedAt: T0 + 100 },
    ]);
    assert.deepEqual(await leases.released(T0 + 100 + 60_001), [], 'tombstones last one TTL');
  });
});
