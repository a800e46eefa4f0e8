/**
 * Routers' single-address leases (Silk's single_ip_only) beside cells' subnet leases, in real
 * Redis: addresses come from the reserved first subnet only, concurrent acquires never share one,
 * cells never get the reserved subnet (not even when router leases expire or the overlay is full),
 * renewals keep the lease a router's, and an expired router address is reused only when no
 * address is free. An explicit clock.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { deleteKeys } from '../../src/lib/redis.js';
import { LeaseError, LeaseManager } from '../../src/state/lease-store.js';
import { SingleIpLeases } from '../../src/state/single-ip-lease.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';

const T0 = 1_800_000_000_000;
const TTL = 60_000;

describe('single-address (router) leases (real Redis)', () => {
  let t: TestRedis;
  let cells: LeaseManager;
  let routers: SingleIpLeases;
  before(async () => {
    t = await openTestRedis('single-ip');
    cells = new LeaseManager(t.redis, t.keys, {
      overlayNetwork: '10.255.0.0/22',
      subnetPrefixLength: 24,
      ttlMs: TTL,
      recoveryWindowMs: 0,
    });
    routers = new SingleIpLeases(t.redis, t.keys, { reserved: cells.reserved, ttlMs: TTL });
  });
  beforeEach(async () => {
    await deleteKeys(t.redis, t.keys.pattern);
  });
  after(async () => t.cleanup());

  it('concurrent acquires of many routers never share an address, all inside the reserved subnet', async () => {
    const got = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        routers.acquire({ cellId: `router-${i}`, underlayIp: `192.0.2.${i + 1}`, tag: 9, now: T0 }),
      ),
    );
    const subnets = got.map((l) => l.subnet);
    assert.equal(new Set(subnets).size, 40, 'forty distinct addresses');
    for (const l of got) {
      assert.match(l.subnet, /^10\.255\.0\.(\d+)\/32$/);
      const last = Number(/\.(\d+)\/32$/.exec(l.subnet)![1]);
      assert.ok(last >= 1 && last <= 254, `${l.subnet} is neither the subnet's first nor last address`);
      assert.equal(l.kind, 'single-ip');
      assert.equal(l.tag, 9);
      assert.equal(l.vtepMac, `ee:ee:0a:ff:00:${last.toString(16).padStart(2, '0')}`);
    }
    const listed = await cells.list(T0);
    assert.equal(listed.length, 40, 'routers are listed as peers');
    assert.ok(listed.every((l) => l.kind === 'single-ip' && l.tag === 9));
  });

  it('cells acquiring beside routers never get the reserved subnet', async () => {
    const both = await Promise.all([
      ...Array.from({ length: 3 }, (_, i) =>
        cells.acquire(`cell-${i}`, `192.0.2.${10 + i}`, undefined, undefined, T0),
      ),
      ...Array.from({ length: 3 }, (_, i) =>
        routers.acquire({ cellId: `router-${i}`, underlayIp: `192.0.2.${20 + i}`, tag: 9, now: T0 }),
      ),
    ]);
    const cellSubnets = both
      .slice(0, 3)
      .map((l) => l.subnet)
      .sort();
    assert.deepEqual(cellSubnets, ['10.255.1.0/24', '10.255.2.0/24', '10.255.3.0/24']);
    await assert.rejects(
      cells.acquire('cell-4', '192.0.2.14', undefined, undefined, T0),
      (err: unknown) => err instanceof LeaseError && err.code === 'CFNET_LEASE_EXHAUSTED',
      'a full overlay is full: the reserved subnet is not handed to a cell',
    );
  });

  it("a cell needing an expired lease's subnet takes a cell's, never an expired router's address", async () => {
    await routers.acquire({ cellId: 'router-old', underlayIp: '192.0.2.30', tag: 9, now: T0 });
    for (let i = 0; i < 3; i++)
      await cells.acquire(`cell-${i}`, `192.0.2.${10 + i}`, undefined, undefined, T0 + 10);
    // everything expires; the router's lease expired first
    const later = T0 + TTL + 1000;
    const l = await cells.acquire('cell-new', '192.0.2.40', undefined, undefined, later);
    assert.match(l.subnet, /^10\.255\.[123]\.0\/24$/, `a cell subnet (got ${l.subnet})`);
    assert.equal(l.kind, undefined);
  });

  it("a cell's claim of the reserved subnet is refused", async () => {
    await assert.rejects(
      cells.acquire('cell-x', '192.0.2.50', undefined, '10.255.0.0/24', T0),
      (err: unknown) => err instanceof Error && (err as { field?: string }).field === 'subnet',
    );
  });

  it('a router keeps its address on re-acquire and renewal, and the renewal keeps kind and tag', async () => {
    const a = await routers.acquire({ cellId: 'router-a', underlayIp: '192.0.2.60', tag: 7, now: T0 });
    const again = await routers.acquire({
      cellId: 'router-a',
      underlayIp: '192.0.2.60',
      tag: 7,
      now: T0 + 5,
    });
    assert.equal(again.subnet, a.subnet);
    assert.equal(again.acquiredAt, T0);
    const r = await cells.renew('router-a', a.subnet, '192.0.2.60', undefined, T0 + 10);
    assert.equal(r.kind, 'single-ip');
    assert.equal(r.tag, 7);
    assert.equal((await cells.get('router-a'))?.kind, 'single-ip');
  });

  it("a router claims its address back after Redis lost it, and a live router's address is refused", async () => {
    const held = await routers.acquire({ cellId: 'router-a', underlayIp: '192.0.2.60', tag: 7, now: T0 });
    await deleteKeys(t.redis, t.keys.pattern);
    await routers.acquire({ cellId: 'router-b', underlayIp: '192.0.2.61', tag: 7, now: T0 + 1 });
    const b = await cells.get('router-b');
    assert.equal(b?.subnet, held.subnet, 'router-b got the lowest free address, the one router-a holds');
    await assert.rejects(
      routers.acquire({
        cellId: 'router-a',
        underlayIp: '192.0.2.60',
        tag: 7,
        claim: held.subnet,
        now: T0 + 2,
      }),
      (err: unknown) =>
        err instanceof LeaseError && err.code === 'CFNET_LEASE_CONFLICT' && err.status === 409,
    );
    const mine = await routers.acquire({
      cellId: 'router-c',
      underlayIp: '192.0.2.62',
      tag: 7,
      claim: '10.255.0.200/32',
      now: T0 + 3,
    });
    assert.equal(mine.subnet, '10.255.0.200/32', 'a free claimed address is granted');
    assert.throws(() => routers.checkClaim('10.255.1.5/32'), /routers' subnet/);
    assert.throws(() => routers.checkClaim('10.255.0.0/32'), /routers' subnet/);
  });

  it("an expired router's address is reused only when no address is free", async () => {
    const small = new SingleIpLeases(t.redis, t.keys, { reserved: '10.255.0.0/29', ttlMs: TTL });
    assert.equal(small.capacity, 6);
    const first = await small.acquire({ cellId: 'r0', underlayIp: '192.0.2.70', tag: 3, now: T0 });
    for (let i = 1; i < 6; i++) {
      await small.acquire({ cellId: `r${i}`, underlayIp: `192.0.2.${70 + i}`, tag: 3, now: T0 + TTL });
    }
    await assert.rejects(
      small.acquire({ cellId: 'r6', underlayIp: '192.0.2.80', tag: 3, now: T0 + 10 }),
      (err: unknown) => err instanceof LeaseError && err.code === 'CFNET_LEASE_EXHAUSTED',
    );
    const reused = await small.acquire({ cellId: 'r6', underlayIp: '192.0.2.80', tag: 3, now: T0 + TTL + 1 });
    assert.equal(reused.subnet, first.subnet, "r0's expired address goes to r6");
    assert.equal(await cells.get('r0'), null, "r0's record goes with it");
  });
});
