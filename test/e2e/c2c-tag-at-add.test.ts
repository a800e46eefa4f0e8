/**
 * The c2c source tag is in place before CNI ADD returns, with no controller round trip: every
 * cell's rule set carries the foundation's source tag table, and the agent's warm executor puts
 * the new container's IP → tag element into `ctr_tag` in the transaction that admits it. CF's
 * `task_connectivity` acceptance test starts c2c traffic the moment the task starts.
 *
 * Two cells, a policy A → B:8080, b1 (app B) on cell-2. The controller is paused (SIGSTOP: it
 * accepts connections and answers nothing, so anything waiting on it would hang) before new
 * containers of A are ADDed on cell-1, where no container of A ran before: the tag can only come
 * from the table the agent already holds. The very first TCP connect after ADD returns must
 * succeed (a missing tag is refused at once by the destination, so "open" is the first SYN's fate).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { CellRuleSet } from '../../src/model/types.js';
import { type AppRef, type CellNode, Cluster, type ContainerRef } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { probe } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

/** The controller's current rule set of a cell (a snapshot), null while it has none. */
async function controllerRuleSet(cluster: Cluster, cell: CellNode): Promise<CellRuleSet | null> {
  const client = cluster.controllerClient(cell.id);
  try {
    const a = await client.rules(0, 0);
    return a.kind === 'snapshot' ? a.ruleSet : null;
  } finally {
    await client.destroy();
  }
}

/** Waits until the controller's rule set of `cell` satisfies `ok` and the agent holds that version. */
async function heldBy(cluster: Cluster, cell: CellNode, what: string, ok: (rs: CellRuleSet) => boolean) {
  let version = 0;
  await waitUntil(`controller: ${what}`, async () => {
    const rs = await controllerRuleSet(cluster, cell);
    if (rs === null) return false;
    version = rs.version;
    return ok(rs);
  });
  await waitUntil(`agent of ${cell.id} holds it`, async () => {
    return Number((await cell.agentState()).controllerVersion) >= version;
  });
}

describe('c2c source tag in place before CNI ADD returns, with the controller paused', () => {
  let cluster: Cluster;
  let A: AppRef;
  let B: AppRef;
  let C: AppRef;
  let b1: ContainerRef;
  let cell1: CellNode;
  let cell2: CellNode;
  let paused = false;
  /** A's tag as the policy server gave it (from cell-1's rule set). */
  let tagA = 0;

  before(async () => {
    cluster = await Cluster.start({ cells: 2, redisPrefix: 'h16c' });
    [cell1, cell2] = cluster.cells as [CellNode, CellNode];
    [A, B, C] = [await cluster.app('a'), await cluster.app('b'), await cluster.app('c')];
    await cluster.sim.apply({ kind: 'policy-add', source: A.appGuid, destination: B.appGuid, port: 8080 });
    b1 = await cluster.container(cell2, B, 0);
    // cell-1 in BBS's cell list, as every Diego cell is (the simulator lists a cell once something
    // is placed on it): it holds a rule set, tag table included, before any container of A exists
    await cluster.container(cell1, C, 0);
    await cluster.serve(b1.ns, [8080]);
    await heldBy(cluster, cell1, 'cell-1 carries the tag of A', (rs) => {
      tagA = rs.tags?.[A.appGuid] ?? 0;
      return tagA > 0;
    });
    await heldBy(cluster, cell2, 'cell-2 allows A → b1:8080', (rs) =>
      rs.c2c.some((e) => e.dstIp === b1.ip && e.ports.start === 8080),
    );
    cluster.pauseController(true);
    paused = true;
  });
  after(async () => {
    if (paused) cluster.pauseController(false);
    await cluster?.stop();
  });

  it('a new instance of the source app connects on its very first attempt, ADD not waiting on the controller', async () => {
    const t0 = performance.now();
    const a1 = await cluster.container(cell1, A, 0, { register: false });
    const addMs = performance.now() - t0;
    assert.deepEqual(await probe(a1.ns, [tcp(b1.ip, 8080)]), ['open']);
    assert.equal(await cell1.ctrTag(a1.ip), tagA);
    // A round trip to the paused controller would hang for the client's 10 s request timeout.
    assert.ok(addMs < 3000, `ADD (with a new netns) took ${Math.round(addMs)} ms with the controller paused`);
  });

  it('a new task of the source app (policy group = its app) connects on its very first attempt', async () => {
    const t = await cluster.container(cell1, A, 0, {
      register: false,
      metadata: {
        policy_group_id: A.appGuid,
        app_id: A.appGuid,
        space_id: A.spaceGuid,
        org_id: A.orgGuid,
        container_workload: 'task',
      },
    });
    assert.deepEqual(await probe(t.ns, [tcp(b1.ip, 8080)]), ['open']);
    assert.equal(await cell1.ctrTag(t.ip), tagA);
  });

  it('an app that is no policy source gets no tag: its connect is refused', async () => {
    const c1 = await cluster.container(cell1, C, 0, { register: false });
    assert.deepEqual(await probe(c1.ns, [tcp(b1.ip, 8080)]), ['refused']);
    assert.equal(await cell1.ctrTag(c1.ip), null);
  });

  it('a new instance of the destination app is reachable at once where its app already runs', async () => {
    const b2 = await cluster.container(cell2, B, 1, { register: false });
    await cluster.serve(b2.ns, [8080]);
    const a2 = await cluster.container(cell1, A, 1, { register: false });
    assert.deepEqual(await probe(a2.ns, [tcp(b2.ip, 8080), tcp(b2.ip, 8081)]), ['open', 'refused']);
  });

  it('what ADD put in place is exactly what the controller computes once it knows the containers', async () => {
    const c2cOf = async (cell: CellNode) => ({
      tags: (await cell.exec(['nft', 'list', 'map', 'inet', 'cfnet', 'ctr_tag'])).stdout,
      c2c: (await cell.exec(['nft', 'list', 'set', 'inet', 'cfnet', 'c2c_tcp'])).stdout,
    });
    const before1 = await c2cOf(cell1);
    const before2 = await c2cOf(cell2);
    cluster.pauseController(false);
    paused = false;
    // the agents report the new containers; the controller's rule sets take them over (their tag
    // from the policies, the destination's allow entries), and nothing is left CNI-only
    for (const cell of [cell1, cell2]) {
      await waitUntil(`${cell.id}: the controller knows every container`, async () => {
        const st = await cell.agentState();
        return st.controllerReachable === true && (st.cniOnlyContainers as string[]).length === 0;
      });
    }
    assert.deepEqual(await c2cOf(cell1), before1);
    assert.deepEqual(await c2cOf(cell2), before2);
  });
});
