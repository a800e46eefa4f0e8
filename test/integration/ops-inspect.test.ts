/**
 * `cfnet cells`, `cfnet rules` and `cfnet explain` against a real controller, the simulator, Redis
 * and one dry-run agent per cell (real agents: they lease, long-poll, render and report applied
 * versions, but write nothing to the kernel). Ends with the whole small foundation failing to
 * reconcile a policy change, being repaired, and converging again through `cfnet queue replay --all`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { METRICS } from '../../src/lib/metrics.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import type { CellConvergence } from '../../src/ops/cells.js';
import type { C2CExplanation, EgressExplanation } from '../../src/ops/explain.js';
import { versionText } from '../../src/ops/format.js';
import type { JobSummary, QueueCounts } from '../../src/ops/queue-admin.js';
import type { NamedRuleSet } from '../../src/ops/rules.js';
import { loadRedisWorld, type WorldContainer } from '../../src/ops/world-reader.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { cfnet, cfnetJson, type Foundation, REDIS_URL, startFoundation, waitUntil } from './ops-helpers.js';

describe('cfnet cells / rules / explain', () => {
  let f: Foundation;
  let redis: Redis;
  let keys: Keys;
  let store: RuleSetStore;
  let cells: string[];
  /** Two apps on disjoint cells: policies go from `src` to `dst`. */
  let src: string;
  let dst: string;
  let dstContainers: WorldContainer[];

  const cellsJson = () => cfnetJson<CellConvergence[]>(['cells'], f.ns);
  const allConverged = async () => {
    const cs = await cellsJson();
    return cs.length === cells.length && cs.every((c) => c.state === 'converged') ? cs : null;
  };

  before(async () => {
    f = await startFoundation('inspect', { agents: true });
    redis = createRedis(REDIS_URL);
    keys = new Keys(f.ns);
    store = new RuleSetStore(redis, keys);
    cells = [...f.sim.world.cells.keys()].sort();
    // two apps of our own on disjoint cells, so source and destination roles are distinct
    const a = await f.sim.apply({ kind: 'app-start', name: 'ops-src', instances: 1, cellIds: [cells[0]!] });
    const b = await f.sim.apply({
      kind: 'app-start',
      name: 'ops-dst',
      instances: 2,
      cellIds: [cells[1]!, cells[2]!],
    });
    src = a.result.appGuid as string;
    dst = b.result.appGuid as string;
    const world = await waitUntil(
      'the new apps running in the stored world',
      async () => {
        const w = await loadRedisWorld(redis, keys);
        return w.containersOf(src).length === 1 && w.containersOf(dst).length === 2 ? w : null;
      },
      30_000,
      100,
    );
    await waitUntil('every cell converged', allConverged, 60_000, 200);
    dstContainers = world.containersOf(dst);
  });

  after(async () => {
    await closeRedis(redis);
    await f?.stop();
  });

  it('cells: desired vs applied per cell, as JSON and as a table, filtered and sorted', async () => {
    const cs = await cellsJson();
    assert.deepEqual(
      cs.map((c) => c.cellId),
      cells,
    );
    for (const c of cs) {
      const rs = await store.get(c.cellId);
      assert.equal(c.desired, rs!.version, c.cellId);
      assert.equal(c.applied, c.desired);
      assert.equal(c.lagMs, 0);
      assert.ok(c.reportedAt > 0);
      // the agents run in dry-run and say so; their (in-memory) overlay is whole
      assert.equal(c.dryRun, true, c.cellId);
      // (an agent that started before the others may not have listed their leases yet)
      assert.ok(c.overlay !== null && c.overlay.expectedPeers <= cells.length - 1, c.cellId);
      assert.deepEqual([c.overlay.missingPeers, c.overlay.leaseHeld], [0, true], c.cellId);
    }
    const human = await cfnet(['cells', '--sort', 'lag'], { namespace: f.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^CELL\s+DESIRED\s+APPLIED\s+LAG\s+STATE\s+OVERLAY/m);
    assert.match(
      human.stdout,
      new RegExp(
        `${cells.length} cells: ${cells.length} converged; ${cells.length} in dry run \\(enforce nothing\\)`,
      ),
    );
    for (const c of cells) {
      assert.match(human.stdout, new RegExp(`^${c}\\s.*\\bconverged \\[dry run\\]\\s+(\\d+)/\\1 peers`, 'm'));
    }
    assert.equal(
      (await f.controller.registry.getSingleMetric(METRICS.cellsDryRun)!.get()).values[0]?.value,
      cells.length,
    );
    const none = await cfnetJson<CellConvergence[]>(['cells', '--state', 'lagging,error'], f.ns);
    assert.deepEqual(none, []);
    const bad = await cfnet(['cells', '--state', 'sleepy'], { namespace: f.ns });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /invalid state "sleepy"/);
  });

  /** The controller's `cfnet_cell_lag_seconds` of one cell. */
  const lagMetric = async (cell: string) =>
    (await f.controller.registry.getSingleMetric(METRICS.cellLag)!.get()).values.find(
      (v) => v.labels.cell === cell,
    )?.value;

  it('a cell whose agent stops reporting is stale, its lag growing from the change it missed; it converges when the agent returns', async () => {
    const lazy = dstContainers[0]!.cellId;
    const before = (await cellsJson()).find((c) => c.cellId === lazy)!;
    await f.agents.get(lazy)!.stop();
    f.agents.delete(lazy);
    try {
      const changedAt = Date.now();
      await f.sim.apply({ kind: 'policy-add', source: src, destination: dst, port: 7001 });
      const behind = await waitUntil(
        'the cell without agent behind',
        async () => {
          const c = (await cellsJson()).find((x) => x.cellId === lazy)!;
          return c.desired > before.desired && c.lagMs > 0 ? c : null;
        },
        30_000,
        100,
      );
      // lagging until 3 of its report intervals (2 s) passed without a report, then stale
      assert.ok(['lagging', 'stale'].includes(behind.state), behind.state);
      assert.equal(behind.applied, before.applied);
      assert.ok(behind.behindSince >= changedAt - 1000, 'behind since the policy change');
      const stale = await waitUntil(
        'the silent cell stale',
        async () => {
          const c = (await cellsJson()).find((x) => x.cellId === lazy)!;
          return c.state === 'stale' ? c : null;
        },
        30_000,
        200,
      );
      assert.ok(stale.lagMs > behind.lagMs, 'the lag keeps growing');
      assert.ok(stale.silentMs > 6000);
      const only = await cfnetJson<CellConvergence[]>(['cells', '--state', 'stale', '--sort', 'lag'], f.ns);
      assert.deepEqual(
        only.map((c) => c.cellId),
        [lazy],
      );
      const m1 = await lagMetric(lazy);
      await new Promise((r) => setTimeout(r, 1200));
      const m2 = await lagMetric(lazy);
      assert.ok(
        m1 !== undefined && m1 * 1000 >= stale.lagMs - 1000,
        `metric ${m1} s, cells ${stale.lagMs} ms`,
      );
      assert.ok(m2! > m1!, `the metric grows: ${m1} → ${m2}`);
      // explain: the policy allows it, the rule set stores it, but this cell does not enforce it yet
      const x = await cfnetJson<C2CExplanation>(
        ['explain', '--from', src, '--to', dst, '--port', '7001'],
        f.ns,
      );
      assert.equal(x.allowed, true);
      const cellX = x.cells.find((c) => c.cellId === lazy && c.role === 'destination')!;
      assert.equal(cellX.agrees, true);
      assert.equal(cellX.enforced, false);
      assert.equal(cellX.storedVersion, behind.desired);
    } finally {
      await f.startAgent(lazy);
    }
    await waitUntil('every cell converged again', allConverged, 60_000, 200);
    await waitUntil('the metric back at 0', async () => (await lagMetric(lazy)) === 0, 10_000, 200);
  });

  it('a cell whose agent reports a failed apply is in error, behind the policy change it could not apply', async () => {
    const broken = cells[cells.length - 1]!;
    const before = (await cellsJson()).find((c) => c.cellId === broken)!;
    await f.agents.get(broken)!.stop();
    f.agents.delete(broken);
    try {
      // what a real agent reports when nft refuses the rule set: the version it still holds, and why
      await store.reportStatus(broken, {
        appliedVersion: before.applied,
        appliedAt: Date.now(),
        error: 'nft: Error: Could not process rule: No such file or directory',
        intervalMs: 60_000,
      });
      // a new version (same content) the agent could not apply
      const current = (await store.get(broken))!;
      await store.write(current, current);
      const c = (await cellsJson()).find((x) => x.cellId === broken)!;
      assert.equal(c.state, 'error');
      assert.match(c.error, /Could not process rule/);
      assert.ok(c.desired > c.applied && c.lagMs >= 0);
      const errs = await cfnetJson<CellConvergence[]>(['cells', '--state', 'error'], f.ns);
      assert.deepEqual(
        errs.map((x) => x.cellId),
        [broken],
      );
      const m1 = await waitUntil(
        'the metric counting',
        async () => (((await lagMetric(broken)) ?? 0) > 0 ? lagMetric(broken) : null),
        10_000,
        200,
      );
      await new Promise((r) => setTimeout(r, 1200));
      assert.ok((await lagMetric(broken))! > m1!, 'the lag of a broken cell keeps growing');
    } finally {
      await f.startAgent(broken);
    }
    await waitUntil('every cell converged again', allConverged, 60_000, 200);
  });

  it('with the queue paused, cells with a waiting reconcile job are pending, their lag the job’s age', async () => {
    const p = await cfnet(['queue', 'pause'], { namespace: f.ns });
    assert.equal(p.code, 0, p.stderr);
    try {
      await f.sim.apply({ kind: 'policy-add', source: src, destination: dst, port: 7005 });
      const pending = await waitUntil(
        'cells pending',
        async () => {
          const cs = (await cellsJson()).filter((c) => c.state === 'pending');
          return cs.length > 0 ? cs : null;
        },
        30_000,
        100,
      );
      for (const c of pending) {
        assert.equal(c.job?.state, 'waiting');
        assert.equal(c.applied, c.desired, 'nothing new was written: only the job says the cell is behind');
      }
      await new Promise((r) => setTimeout(r, 1500));
      const later = await cellsJson();
      for (const c of pending) {
        const l = later.find((x) => x.cellId === c.cellId)!;
        assert.equal(l.state, 'pending');
        assert.ok(l.lagMs >= c.lagMs + 1000, `${c.cellId}: ${c.lagMs} → ${l.lagMs}`);
      }
      const m = await lagMetric(pending[0]!.cellId);
      assert.ok(m !== undefined && m >= 1, `metric ${m}`);
      const human = await cfnet(['cells'], { namespace: f.ns });
      assert.match(human.stdout, /pending \(job waiting\)/);
    } finally {
      await cfnet(['queue', 'resume'], { namespace: f.ns });
      // the tests after this one expect only the 7001 policy between the two apps
      await f.sim.apply({ kind: 'policy-remove', source: src, destination: dst, port: 7005 });
    }
    await waitUntil('every cell converged again', allConverged, 60_000, 200);
  });

  it('explain: allowed by which policy, on which cells at which version; denied otherwise', async () => {
    await waitUntil('every cell converged', allConverged, 60_000, 200);
    const x = await cfnetJson<C2CExplanation>(
      ['explain', '--from', src, '--to', dst, '--port', '7001'],
      f.ns,
    );
    assert.equal(x.kind, 'c2c');
    assert.equal(x.allowed, true);
    assert.deepEqual(x.policies, [{ source: src, destination: dst, protocol: 'tcp', ports: '7001' }]);
    assert.equal(x.destinationContainers, dstContainers.length);
    assert.ok(x.sourceTag !== null && x.sourceTag > 0);
    assert.equal(x.consistent, true);
    const dstCells = [...new Set(dstContainers.map((c) => c.cellId))].sort();
    assert.deepEqual(
      x.cells
        .filter((c) => c.role === 'destination')
        .map((c) => c.cellId)
        .sort(),
      dstCells,
    );
    for (const c of x.cells) {
      const rs = await store.get(c.cellId);
      assert.equal(c.storedVersion, rs!.version);
      assert.equal(c.appliedVersion, c.storedVersion);
      assert.equal(c.enforced, true);
      if (c.role === 'destination') {
        const ips = new Set(dstContainers.filter((d) => d.cellId === c.cellId).map((d) => d.ip));
        assert.ok(
          rs!.c2c.some((e) => ips.has(e.dstIp) && e.srcTag === x.sourceTag && e.ports.start === 7001),
          `c2c entry for ${c.cellId}`,
        );
      }
    }
    const human = await cfnet(['explain', '--from', src, '--to', dst, '--port', '7001'], { namespace: f.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^ALLOWED by c2c policy tcp 7001 from /);
    assert.match(human.stdout, /enforced on:\n\s*CELL\s+ROLE/);

    const denied = await cfnetJson<C2CExplanation>(
      ['explain', '--from', src, '--to', dst, '--port', '7002'],
      f.ns,
    );
    assert.equal(denied.allowed, false);
    assert.deepEqual(denied.policies, []);
    assert.deepEqual(
      denied.otherPolicies.map((p) => p.ports),
      ['7001'],
    );
    assert.equal(denied.consistent, true);
    const udp = await cfnetJson<C2CExplanation>(
      ['explain', '--from', src, '--to', dst, '--port', '7001', '--protocol', 'udp'],
      f.ns,
    );
    assert.equal(udp.allowed, false);
    // the reverse direction has no policy
    const back = await cfnet(['explain', '--from', dst, '--to', src, '--port', '7001'], { namespace: f.ns });
    assert.match(back.stdout, /^DENIED: no c2c policy from /);
    assert.equal(back.code, 1, 'denied exits 1, as kubectl auth can-i');
    assert.equal(back.stderr, '');
  });

  it('explain to an address: egress per container, by ASG, deny network or default deny', async () => {
    const x = await cfnetJson<EgressExplanation>(
      ['explain', '--from', src, '--to', '203.0.113.9', '--port', '443'],
      f.ns,
    );
    assert.equal(x.kind, 'egress');
    const world = await loadRedisWorld(redis, keys);
    assert.deepEqual(
      x.decisions.map((d) => d.handle).sort(),
      world
        .containersOf(src)
        .map((c) => c.handle)
        .sort(),
    );
    for (const d of x.decisions) {
      assert.ok(['asg', 'default-deny', 'no-rules'].includes(d.by) || d.by.startsWith('deny-network'), d.by);
      assert.equal(d.allowed, d.by === 'asg');
      if (d.by === 'asg') assert.ok(d.rules.length > 0);
    }
    const expect = x.decisions.every((d) => d.allowed)
      ? true
      : x.decisions.every((d) => !d.allowed)
        ? false
        : null;
    assert.equal(x.allowed, expect);
    for (const d of x.decisions) {
      assert.equal(d.local, null);
      if (d.by !== 'no-rules') assert.deepEqual(d.chains, ['hook_forward', 'ctr_out']);
    }
    // the cell's own addresses take the input path: its DNS server, and its underlay address
    // (known from the cell's lease), where no ASG applies
    const srcCell = world.containersOf(src)[0]!.cellId;
    const rs = (await store.get(srcCell))!;
    const dns = rs.config.dnsServers[0]!;
    const viaDns = await cfnetJson<EgressExplanation>(
      ['explain', '--from', src, '--to', dns, '--port', '53', '--protocol', 'udp'],
      f.ns,
    );
    assert.deepEqual(
      viaDns.decisions.map((d) => [d.allowed, d.by, d.chains]),
      [[true, 'dns', ['hook_input', 'ctr_host']]],
    );
    assert.match(viaDns.decisions[0]!.local ?? '', /DNS server/);
    const lease = JSON.parse((await redis.hget(keys.leases, srcCell))!) as { underlayIp: string };
    const toCell = await cfnetJson<EgressExplanation>(
      ['explain', '--from', src, '--to', lease.underlayIp, '--port', '22'],
      f.ns,
    );
    assert.deepEqual(
      toCell.decisions.map((d) => [d.allowed, d.by, d.local]),
      [[false, 'default-deny', "the cell's underlay address"]],
    );
    // an overlay address of a destination container is explained as c2c
    const ip = dstContainers[0]!.ip;
    const viaIp = await cfnetJson<C2CExplanation>(
      ['explain', '--from', src, '--to', ip, '--port', '7001'],
      f.ns,
    );
    assert.equal(viaIp.kind, 'c2c');
    assert.equal(viaIp.allowed, true);
  });

  it('rules: the stored rule set as a summary, JSON and nft; one container; errors', async () => {
    const c = dstContainers[0]!;
    const rs = (await store.get(c.cellId))!;
    const json = await cfnetJson<NamedRuleSet>(['rules', '--cell', c.cellId], f.ns);
    // the stored rule set, each container with its names added
    assert.deepEqual({ ...json, containers: json.containers.map(({ names: _n, ...x }) => x) }, rs);
    assert.ok(json.containers.every((x) => 'names' in x));
    const summary = await cfnet(['rules', '--cell', c.cellId], { namespace: f.ns });
    assert.equal(summary.code, 0, summary.stderr);
    assert.ok(
      summary.stdout.includes(`version ${versionText(rs.version)} (${rs.version}; stored `),
      summary.stdout,
    );
    assert.ok(
      summary.stdout.includes(`agent applied ${versionText(rs.version)} (converged)`),
      summary.stdout,
    );
    assert.match(summary.stdout, new RegExp(`containers \\(${rs.containers.length}\\):`));
    assert.match(summary.stdout, new RegExp(`c2c allow entries \\(${rs.c2c.length}\\):`));
    const nft = await cfnet(['rules', '--cell', c.cellId, '--nft', '--table', 'cfnet_t'], {
      namespace: f.ns,
    });
    assert.equal(nft.code, 0, nft.stderr);
    assert.match(nft.stdout, /table inet cfnet_t/);
    assert.ok(nft.stdout.includes(c.ip), 'the container address is in the nft script');

    const one = await cfnetJson<NamedRuleSet>(['rules', '--cell', c.cellId, '--container', c.handle], f.ns);
    assert.deepEqual(
      one.containers.map((x) => x.handle),
      [c.handle],
    );
    assert.ok(one.c2c.length > 0 && one.c2c.every((e) => e.dstIp === c.ip));
    const mine = rs.containers.find((x) => x.handle === c.handle)!;
    assert.deepEqual(Object.keys(one.asgSets), [mine.egress]);

    const elsewhere = cells.find((x) => x !== c.cellId)!;
    const cases: Array<[string[], number, RegExp]> = [
      [['rules', '--cell', 'no-such-cell'], 5, /cell "no-such-cell" not found: no rule set stored/],
      [['rules', '--cell', 'bad cell!'], 2, /invalid cell/],
      [['rules', '--cell', elsewhere, '--container', c.handle], 5, new RegExp(`it is on cell ${c.cellId}`)],
      [['rules', '--cell', c.cellId, '--json', '--nft'], 2, /give --json or --nft, not both/],
      [['rules'], 2, /cfnet rules: --cell is required\n\(see 'cfnet rules --help'\)/],
      [['rules', '--cell', c.cellId, '--bogus'], 2, /unknown option '--bogus'/],
      [['explain', '--from', src, '--to', dst], 2, /--port needs a value for tcp/],
      [['explain', '--from', src, '--to', dst, '--port', '70000'], 2, /invalid port "70000"/],
      [['explain', '--from', 'no-such-app', '--to', dst, '--port', '1'], 5, /no-such-app/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cfnet(args, { namespace: f.ns });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
    }
  });

  it('a whole foundation that failed to reconcile converges again after repair and replay --all', async () => {
    await waitUntil('every cell converged', allConverged, 60_000, 200);
    const before = new Map((await cellsJson()).map((c) => [c.cellId, c.desired]));
    const world = await loadRedisWorld(redis, keys);
    // every cell's world record unreadable (as a bad write would leave it)
    for (const c of cells) await redis.hset(keys.cellWorld(c), 'zz-broken', '{not json');
    let repaired = false;
    const repair = async () => {
      if (repaired) return;
      for (const c of cells) await redis.hdel(keys.cellWorld(c), 'zz-broken');
      repaired = true;
    };
    try {
      const change = await f.sim.apply({ kind: 'policy-add', source: dst, destination: src, port: 7003 });
      // the policy's destination cells get new c2c entries: their reconciles must run
      const touched = [...world.cellsOfApp(src)];
      assert.ok(touched.length >= 1, `touched none (sim: ${change.affectedCells.join(',')})`);
      await waitUntil(
        'the reconciles of the touched cells failed',
        async () => {
          const failed = await cfnetJson<JobSummary[]>(['queue', 'list', '--state', 'failed'], f.ns);
          const fc = new Set(failed.map((j) => j.cellId));
          return touched.every((c) => fc.has(c));
        },
        30_000,
        100,
      );
      // a clear error from the tools that read the whole world
      const broken = await cfnet(['explain', '--from', dst, '--to', src, '--port', '7003'], {
        namespace: f.ns,
      });
      assert.equal(broken.code, 1);
      assert.match(broken.stderr, /unreadable world record .*:w:cell:\S+ zz-broken/);
      // nothing changed on the cells: every stored version is what it was
      for (const c of await cellsJson()) assert.equal(c.desired, before.get(c.cellId), c.cellId);

      // repaired with the queue paused, so no reconcile runs before the replay
      await cfnet(['queue', 'pause'], { namespace: f.ns });
      try {
        await repair();
        const stale = await cfnetJson<C2CExplanation>(
          ['explain', '--from', dst, '--to', src, '--port', '7003'],
          f.ns,
        );
        assert.equal(stale.allowed, true, 'the policy is in the world');
        assert.equal(stale.consistent, false, 'but no stored rule set has it yet');
      } finally {
        await cfnet(['queue', 'resume'], { namespace: f.ns });
      }
    } finally {
      await repair();
    }
    const rep = await cfnet(['queue', 'replay', '--all', '--wait', '--timeout', '60s', '--progress'], {
      namespace: f.ns,
    });
    assert.equal(rep.code, 0, rep.stderr);
    assert.match(rep.stdout, new RegExp(`replayed ${cells.length} cell\\(s\\) \\(all\\)`));
    assert.match(rep.progress, new RegExp(`100% \\| ${cells.length}/${cells.length} cells`));
    assert.equal((rep.stdout.match(/\scompleted\s*$/gm) ?? []).length, cells.length);

    const converged = await waitUntil('the foundation converged', allConverged, 60_000, 200);
    const destination = new Set(world.cellsOfApp(src));
    for (const c of converged) {
      if (destination.has(c.cellId)) assert.ok(c.desired > before.get(c.cellId)!, c.cellId);
      else assert.ok(c.desired >= before.get(c.cellId)!, c.cellId);
    }
    const x = await cfnetJson<C2CExplanation>(
      ['explain', '--from', dst, '--to', src, '--port', '7003'],
      f.ns,
    );
    assert.equal(x.allowed, true);
    assert.equal(x.consistent, true);
    assert.ok(x.cells.length > 0 && x.cells.every((c) => c.enforced));
    // old failed jobs stay failed (history); a retry of them now completes too
    const r = await cfnetJson<{ retried: string[] }>(['queue', 'retry', '--all-failed'], f.ns);
    assert.ok(r.retried.length >= destination.size);
    await waitUntil(
      'no failed job left',
      async () => (await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns)).counts.failed === 0,
      30_000,
      25,
    );
  });

  it('explain: a running task without an address yet is "not yet addressed", neither a disagreement nor a denial', async () => {
    const taskGuid = 'ops-task-no-ip';
    await f.sim.apply({ kind: 'task-run', appGuid: src, taskGuid, cellId: cells[0]!, durationMs: 600_000 });
    await waitUntil(
      'the task in the stored world, without an address',
      async () => {
        const w = await loadRedisWorld(redis, keys);
        const t = w.containersOf(src).find((c) => c.handle === taskGuid);
        return t && t.ip === '' ? t : null;
      },
      30_000,
      100,
    );
    await waitUntil('every cell converged', allConverged, 60_000, 200);

    const c2c = await cfnetJson<C2CExplanation>(
      ['explain', '--from', src, '--to', dst, '--port', '7001'],
      f.ns,
    );
    assert.equal(c2c.allowed, true);
    assert.equal(c2c.consistent, true, JSON.stringify(c2c.cells));
    const srcCell = c2c.cells.find((c) => c.role === 'source' && c.cellId === cells[0])!;
    assert.deepEqual(srcCell.notAddressed, [taskGuid]);
    assert.equal(srcCell.agrees, true);
    assert.match(srcCell.detail, /1 not yet addressed/);

    const egress = await cfnetJson<EgressExplanation>(
      ['explain', '--from', src, '--to', '203.0.113.9', '--port', '443'],
      f.ns,
    );
    const task = egress.decisions.find((d) => d.handle === taskGuid)!;
    assert.equal(task.by, 'not-yet-addressed');
    assert.equal(egress.consistent, true);
    // the verdict is the addressed containers' (the app's one LRP instance), not a mix with the task
    const others = egress.decisions.filter((d) => d.handle !== taskGuid);
    assert.ok(others.length > 0);
    assert.equal(
      egress.allowed,
      others.every((d) => d.allowed) ? true : others.some((d) => d.allowed) ? null : false,
    );
    const human = await cfnet(['explain', '--from', src, '--to', '203.0.113.9', '--port', '443'], {
      namespace: f.ns,
    });
    assert.match(human.stdout, /not yet addressed/);
    assert.doesNotMatch(human.stdout, /DISAGREE/);
  });
});
