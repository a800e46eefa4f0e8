/**
 * A cell whose overlay is broken is `degraded` in `cfnet cells`, not `converged`: three cells in
 * network namespaces with real agents (VXLAN device, routes, neighbours, FDB entries). One cell
 * loses a peer route, another a peer's FDB entry; each is degraded (the others stay converged)
 * until the entry is back: put back by hand on the first, by its agent (a restart reads the kernel
 * back and programs what is missing) on the second. The agents' periodic drift check is off, so
 * nothing repairs behind the test's back. Asserted on `cfnet cells --json`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { vtepIpOf, vtepMacOf } from '../../src/agent/overlay.js';
import type { CellConvergence } from '../../src/ops/cells.js';
import { Cluster } from '../helpers/cluster.js';
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
});
