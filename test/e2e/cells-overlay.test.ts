/**
 * A cell whose overlay is broken is `degraded` in `cfnet cells`, not `converged`: three cells in
 * network namespaces with real agents (VXLAN device, routes, neighbours, FDB entries). One cell
 * loses a peer route, another a peer's FDB entry; each is degraded (the others stay converged)
 * until the entry is back: put back by hand on the first, by its agent (a restart reads the kernel
 * back and programs what is missing) on the second. The agents' periodic drift check is off, so
 * nothing repairs behind the test's back. A cell whose subnet a second live lease claims (a lease
 * conflict) does not hold its lease: degraded, `no lease`, until the other claim is gone. After the
 * controller's Redis state is lost (the reported case: every cell then said `converged`), the cell
 * with a broken route is degraded and only it. Asserted on `cfnet cells --json`.
 *
 * Then every surface at once: one agent frozen (SIGSTOP), the reconcile queue paused with a job
 * waiting for another cell, a third cell's overlay broken; what `cfnet cells --json` says of each,
 * and what the controller's `/metrics` says (`cfnet_cell_lag_seconds`,
 * `cfnet_controller_cells_converged{state}`, `cfnet_controller_cells_dry_run`).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vtepIpOf, vtepMacOf } from '../../src/agent/overlay.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import type { CellConvergence } from '../../src/ops/cells.js';
import { Keys } from '../../src/state/keys.js';
import { Cluster, REDIS_URL } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';
import { cfnet, cfnetJson } from '../integration/ops-helpers.js';

const VTEP = 'cfnet-vtep';

describe('cfnet cells: a broken overlay is degraded, not converged (real namespaces)', () => {
  let cluster: Cluster;
  /** The lab's cells as `cfnet cells --json` shows them (the simulator's other cells have no agent). */
  const cells = async () => {
    const ids = new Set(cluster.cells.map((c) => c.id));
    return (await cfnetJson<CellConvergence[]>(['cells'], cluster.redisNs)).filter((c) => ids.has(c.cellId));
  };
  const whole = { expectedPeers: 2, missingPeers: 0, leaseHeld: true };
  /** Every cell converged with a whole overlay, or null. */
  const allWhole = async () => {
    const cs = await cells();
    const ok =
      cs.length === 3 &&
      cs.every((c) => c.state === 'converged' && c.dryRun === false && c.overlay?.missingPeers === 0);
    return ok ? cs : null;
  };
  /** Waits until `cell` is in `state` and every other cell converged; returns the cell's row. */
  const until = (cell: string, state: string) =>
    waitUntil(
      `${cell} ${state}, the others converged`,
      async () => {
        const cs = await cells();
        const c = cs.find((x) => x.cellId === cell);
        const others = cs.filter((x) => x.cellId !== cell);
        return c?.state === state && others.every((o) => o.state === 'converged') ? c : null;
      },
      30_000,
      200,
    );

  before(async () => {
    cluster = await Cluster.start({
      cells: 3,
      nsPrefix: 'ht',
      redisPrefix: 'cfnet-cells-overlay',
      // the simulator's cells: the controller stores rule sets for them
      simCells: true,
      agent: { driftCheckIntervalSeconds: 0, statusIntervalSeconds: 1 },
    });
  });

  after(async () => {
    await cluster?.stop();
  });

  /** The controller's metric `name` (Prometheus text) of the series carrying `label`; null when none. */
  async function metric(name: string, label = ''): Promise<number | null> {
    const text = await (await fetch(`${cluster.operatorUrl}/metrics`)).text();
    const line = text
      .split('\n')
      .find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
    return line ? Number(line.split(' ').pop()) : null;
  }

  it('every cell reports its whole overlay: converged, not in dry run', async () => {
    const cs = await waitUntil('every cell converged with a whole overlay', allWhole, 30_000, 200);
    for (const c of cs) assert.deepEqual(c.overlay, whole, c.cellId);
    const human = await cfnet(['cells'], { namespace: cluster.redisNs });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^CELL\s+DESIRED\s+APPLIED\s+LAG\s+STATE\s+OVERLAY/m);
    assert.doesNotMatch(human.stdout, /dry run/);
  });

  it('a cell without the route to a peer is degraded until the route is back', async () => {
    await waitUntil('every cell converged with a whole overlay', allWhole, 30_000, 200);
    const [a, b] = cluster.cells;
    const peer = await a!.subnet();
    const del = await b!.exec(['ip', 'route', 'del', peer, 'dev', VTEP]);
    assert.equal(del.code, 0, del.stderr);
    const broken = await until(b!.id, 'degraded');
    assert.deepEqual(broken.overlay, { expectedPeers: 2, missingPeers: 1, leaseHeld: true });
    assert.equal(broken.applied, broken.desired, 'the rule-set version alone would say converged');
    assert.equal(broken.lagMs, 0);
    const only = await cfnetJson<CellConvergence[]>(['cells', '--state', 'degraded'], cluster.redisNs);
    assert.deepEqual(
      only.map((c) => c.cellId),
      [b!.id],
    );
    const human = await cfnet(['cells'], { namespace: cluster.redisNs });
    assert.match(human.stdout, new RegExp(`^${b!.id}\\s.*\\bdegraded\\s+1/2 peers\\b`, 'm'));
    assert.match(human.stdout, /\b1 degraded\b/);

    const add = await b!.exec(['ip', 'route', 'replace', peer, 'via', vtepIpOf(peer), 'dev', VTEP, 'onlink']);
    assert.equal(add.code, 0, add.stderr);
    await waitUntil('every cell converged again', allWhole, 30_000, 200);
  });

  it("a cell without a peer's FDB entry is degraded; its agent puts the entry back", async () => {
    await waitUntil('every cell converged with a whole overlay', allWhole, 30_000, 200);
    const [a, , c] = cluster.cells;
    const mac = vtepMacOf(await a!.subnet());
    const del = await c!.exec(['bridge', 'fdb', 'del', mac, 'dev', VTEP, 'self']);
    assert.equal(del.code, 0, del.stderr);
    const broken = await until(c!.id, 'degraded');
    assert.deepEqual(broken.overlay, { expectedPeers: 2, missingPeers: 1, leaseHeld: true });
    // a restarted agent reads its overlay back from the kernel and programs what is missing
    await c!.stopAgent();
    await c!.startAgent();
    const cs = await waitUntil('every cell converged again', allWhole, 30_000, 200);
    assert.deepEqual(cs.find((x) => x.cellId === c!.id)?.overlay, whole);
    const fdb = await c!.exec(['bridge', '-j', 'fdb', 'show', 'dev', VTEP]);
    assert.ok(
      (JSON.parse(fdb.stdout) as { mac: string }[]).some((e) => e.mac === mac),
      'the FDB entry is back in the kernel',
    );
  });

  it('a cell whose subnet another live lease claims does not hold its lease: degraded until the claim is gone', async () => {
    await waitUntil('every cell converged with a whole overlay', allWhole, 30_000, 200);
    const victim = cluster.cells[1]!;
    const subnet = await victim.subnet();
    const keys = new Keys(cluster.redisNs);
    const redis = createRedis(REDIS_URL);
    // what a second cell holding the same subnet leaves in the lease table (a conflict)
    const intruder = 'ht-intruder';
    const now = Date.now();
    const expiresAt = now + 120_000;
    const lease = {
      cellId: intruder,
      subnet,
      underlayIp: '198.51.100.99',
      vtepMac: 'ee:ee:0a:ff:63:00',
      acquiredAt: now,
      renewedAt: now,
      expiresAt,
    };
    const clear = async () => {
      await redis.hdel(keys.leases, intruder);
      await redis.zrem(keys.leaseExpiry, intruder);
      if ((await redis.hget(keys.leaseSubnets, subnet)) === intruder)
        await redis.hdel(keys.leaseSubnets, subnet);
    };
    try {
      await redis.hset(keys.leases, intruder, JSON.stringify(lease));
      await redis.zadd(keys.leaseExpiry, expiresAt, intruder);
      await redis.hset(keys.leaseSubnets, subnet, intruder);
      const c = await waitUntil(
        `${victim.id} without its lease`,
        async () =>
          (await cells()).find((x) => x.cellId === victim.id && x.overlay?.leaseHeld === false) ?? null,
        30_000,
        200,
      );
      assert.equal(c.state, 'degraded');
      assert.equal(c.applied, c.desired, 'its rules are current: only the lease is lost');
      const human = await cfnet(['cells'], { namespace: cluster.redisNs });
      assert.match(
        human.stdout,
        new RegExp(`^${victim.id}\\s.*\\bdegraded\\s+\\d+/\\d+ peers, no lease\\b`, 'm'),
      );
    } finally {
      await clear();
      await closeRedis(redis);
    }
    // the next claim of the held subnet succeeds: the lease is the cell's again
    const cs = await waitUntil('every cell converged again', allWhole, 30_000, 200);
    assert.deepEqual(cs.find((x) => x.cellId === victim.id)?.overlay, whole);
  });

  it("after a loss of the controller's Redis state, a cell with a broken route is degraded, the others converged", async () => {
    await waitUntil('every cell converged with a whole overlay', allWhole, 30_000, 200);
    const [a, b] = cluster.cells;
    const peer = await a!.subnet();
    const del = await b!.exec(['ip', 'route', 'del', peer, 'dev', VTEP]);
    assert.equal(del.code, 0, del.stderr);
    // every key of the foundation's namespace gone (what FLUSHALL does to it): rule sets, statuses,
    // leases, the queue; the leader lists the world again and the cells claim their subnets back
    const redis = createRedis(REDIS_URL);
    try {
      assert.ok((await deleteKeys(redis, `${cluster.redisNs}:*`)) > 0);
    } finally {
      await closeRedis(redis);
    }
    const broken = await waitUntil(
      `${b!.id} degraded once the rule sets are back, the others converged`,
      async () => {
        const cs = await cells();
        const c = cs.find((x) => x.cellId === b!.id);
        const others = cs.filter((x) => x.cellId !== b!.id);
        return cs.length === 3 &&
          c?.state === 'degraded' &&
          c.applied === c.desired &&
          others.every((o) => o.state === 'converged')
          ? c
          : null;
      },
      90_000,
      300,
    );
    assert.deepEqual(broken.overlay, { expectedPeers: 2, missingPeers: 1, leaseHeld: true });
    const add = await b!.exec(['ip', 'route', 'replace', peer, 'via', vtepIpOf(peer), 'dev', VTEP, 'onlink']);
    assert.equal(add.code, 0, add.stderr);
    await waitUntil('every cell converged again', allWhole, 30_000, 200);
  });

  it('frozen agent, paused queue, broken overlay at once: stale, pending, degraded in cells and in the metrics', async () => {
    await waitUntil('every cell converged with a whole overlay', allWhole, 30_000, 200);
    const [frozen, waiting, broken] = cluster.cells as [
      (typeof cluster.cells)[number],
      (typeof cluster.cells)[number],
      (typeof cluster.cells)[number],
    ];
    const pid = frozen.agent!.pid!;
    const peer = await frozen.subnet();
    process.kill(pid, 'SIGSTOP');
    let paused = false;
    try {
      const p = await cfnet(['queue', 'pause'], { namespace: cluster.redisNs });
      assert.equal(p.code, 0, p.stderr);
      paused = true;
      const r = await cfnet(['queue', 'replay', '--cell', waiting.id], { namespace: cluster.redisNs });
      assert.equal(r.code, 0, r.stderr);
      const del = await broken.exec(['ip', 'route', 'del', peer, 'dev', VTEP]);
      assert.equal(del.code, 0, del.stderr);

      // the frozen agent is stale after 3 of its 1 s report intervals
      const cs = await waitUntil(
        'stale, pending and degraded',
        async () => {
          const all = await cells();
          const by = new Map(all.map((c) => [c.cellId, c]));
          return by.get(frozen.id)?.state === 'stale' &&
            by.get(waiting.id)?.state === 'pending' &&
            by.get(broken.id)?.state === 'degraded'
            ? by
            : null;
        },
        30_000,
        200,
      );
      const f = cs.get(frozen.id)!;
      const w = cs.get(waiting.id)!;
      const b = cs.get(broken.id)!;
      // frozen: silent, but it missed no version: nothing to lag behind
      assert.ok(f.silentMs > 3000, `silent ${f.silentMs} ms`);
      assert.equal(f.applied, f.desired);
      assert.equal(f.lagMs, 0);
      assert.deepEqual(f.overlay, whole, 'the overlay it last reported');
      // waiting: the replayed job waits; the lag is its age
      assert.equal(w.job?.state, 'waiting');
      assert.equal(w.applied, w.desired);
      assert.ok(w.lagMs > 0);
      // broken: the version matches, the overlay does not
      assert.deepEqual(b.overlay, { expectedPeers: 2, missingPeers: 1, leaseHeld: true });
      assert.equal(b.applied, b.desired);
      assert.equal(b.lagMs, 0);

      const lag = (cell: string) => metric('cfnet_cell_lag_seconds', `cell="${cell}"`);
      assert.equal(await lag(frozen.id), 0);
      assert.equal(await lag(broken.id), 0);
      const waitingLag = await lag(waiting.id);
      assert.ok(waitingLag !== null && waitingLag > 0, `lag of the waiting cell ${waitingLag}`);
      const state = (s: string) => metric('cfnet_controller_cells_converged', `state="${s}"`);
      assert.deepEqual(
        [await state('stale'), await state('pending'), await state('degraded'), await state('converged')],
        [1, 1, 1, 0],
      );
      assert.equal(await metric('cfnet_controller_cells_dry_run'), 0);
      const human = await cfnet(['cells'], { namespace: cluster.redisNs });
      assert.match(human.stdout, new RegExp(`^${frozen.id}\\s.*\\bstale\\b`, 'm'));
      assert.match(human.stdout, new RegExp(`^${waiting.id}\\s.*\\bpending \\(job waiting\\)`, 'm'));
      assert.match(human.stdout, new RegExp(`^${broken.id}\\s.*\\bdegraded\\s+1/2 peers\\b`, 'm'));
    } finally {
      process.kill(pid, 'SIGCONT');
      if (paused) await cfnet(['queue', 'resume'], { namespace: cluster.redisNs });
      await broken.exec(['ip', 'route', 'replace', peer, 'via', vtepIpOf(peer), 'dev', VTEP, 'onlink']);
    }
    await waitUntil('every cell converged again', allWhole, 30_000, 200);
    await waitUntil(
      'the metrics say so too',
      async () =>
        (await metric('cfnet_controller_cells_converged', 'state="converged"')) === 3 &&
        (await metric('cfnet_controller_cells_converged', 'state="degraded"')) === 0,
      10_000,
      300,
    );
  });
});
