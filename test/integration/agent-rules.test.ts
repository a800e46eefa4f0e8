/**
 * The agent's rule handling with the real controller, CNI plugin and nftables (two cells in
 * namespaces): the controller's rule set reaches the kernel, CNI-time containers the controller
 * does not know keep their rules (merge), kernel drift is repaired, SIGTERM drains without touching
 * the table, a restart with the controller down restores without applying anything, and the saved
 * state resumes the long-poll from its version.
 */

import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { AGENT_EVENTS } from '../../src/agent/events.js';
import { type AppRef, Cluster, type ContainerRef } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';

type Json = Record<string, unknown>;

async function setText(cell: Cluster['cells'][number], set: string): Promise<string> {
  return (await cell.exec(['nft', 'list', 'set', 'inet', 'cfnet', set])).stdout;
}

/**
 * The agent's state once it has applied the rule set it holds (appliedVersion = controllerVersion
 * > 0): the kernel shows an apply a moment before the agent records it.
 */
async function appliedState(cell: Cluster['cells'][number]): Promise<Json> {
  return waitUntil(`agent of ${cell.id} reports its rule set applied`, async () => {
    const s = await cell.agentState();
    const v = s.appliedVersion as number;
    return v > 0 && v === s.controllerVersion ? s : null;
  });
}

async function mapText(cell: Cluster['cells'][number], map: string): Promise<string> {
  return (await cell.exec(['nft', 'list', 'map', 'inet', 'cfnet', map])).stdout;
}

describe('agent: rules from the controller, merge, drift, drain and restart (real nft)', () => {
  let cluster: Cluster;
  let src: AppRef;
  let dst: AppRef;
  let a: ContainerRef;
  let b: ContainerRef;

  before(async () => {
    cluster = await Cluster.start({ cells: 2 });
    src = await cluster.app('rules-src');
    dst = await cluster.app('rules-dst');
    await cluster.sim.apply({
      kind: 'policy-add',
      source: src.appGuid,
      destination: dst.appGuid,
      port: 8080,
    });
    a = await cluster.container(cluster.cells[0]!, src, 0);
    b = await cluster.container(cluster.cells[1]!, dst, 0, {
      hostPorts: [{ hostPort: 61001, containerPort: 8080 }],
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it("applies the controller's rule set: tag on the source cell, c2c allow on the destination cell", async () => {
    const [c1, c2] = cluster.cells as [Cluster['cells'][number], Cluster['cells'][number]];
    const tag = await waitUntil('source container tagged on cell 1', async () => {
      const m = new RegExp(`${a.ip.replaceAll('.', '\\.')} : (0x[0-9a-f]+)`).exec(
        await mapText(c1, 'ctr_tag'),
      );
      return m?.[1];
    });
    await waitUntil('c2c allow on cell 2', async () =>
      (await setText(c2, 'c2c_tcp')).includes(`${tag} . ${b.ip} . 8080`),
    );
    // The agent records (and logs) an apply only after nft committed it, so the element can be in
    // the kernel a moment before the agent reports it: wait for the report (version > 0), then check it.
    const s2 = await appliedState(c2);
    assert.equal(s2.lastApplyError, '');
    assert.deepEqual(s2.cniOnlyContainers, [], 'the controller knows every container');
    assert.match(
      await mapText(c2, 'netin_dnat'),
      new RegExp(`61001 : ${b.ip.replaceAll('.', '\\.')} \\. 8080`),
    );
    // applied as one incremental transaction per change, never a flush (the log line reaches this
    // process through the agent's stdout pipe, so it may lag the agent's state)
    const applied = await waitUntil('the apply is in the agent log', async () => {
      const lines = await c2.events(AGENT_EVENTS.rulesApplied);
      return lines.some((l) => l.version === s2.appliedVersion) ? lines : null;
    });
    assert.equal(applied[0]?.mode, 'full', 'the first rule set replaces the table once');
    assert.ok(
      applied.slice(1).every((l) => l.mode !== 'full'),
      JSON.stringify(applied.map((l) => l.mode)),
    );
  });

  it('keeps the CNI-time rules of a container the controller does not know, through drift repair and restart', async () => {
    const cell = cluster.cells[0]!;
    await cluster.killController('SIGKILL');
    await waitUntil(
      'agent notices the controller is gone',
      async () => (await cell.agentState()).controllerReachable === false,
    );
    const before = await cell.agentState();
    // a container made while the controller is down: never registered anywhere but on the cell
    const c = await cluster.container(cell, src, 1, {
      hostPorts: [{ hostPort: 61005, containerPort: 8080 }],
      register: false,
    });
    assert.match(await setText(cell, 'ctr_addrs'), new RegExp(c.handle));
    assert.deepEqual((await cell.agentState()).cniOnlyContainers, [c.handle]);
    // drift: somebody deletes the first container's tag; the repair must not drop the new one
    await cell.exec(['nft', 'delete', 'element', 'inet', 'cfnet', 'ctr_tag', `{ ${a.ip} }`]);
    await waitUntil(
      'tag restored by drift repair',
      async () => (await mapText(cell, 'ctr_tag')).includes(a.ip),
      15_000,
    );
    assert.match(await setText(cell, 'ctr_addrs'), new RegExp(c.handle), 'CNI-time container kept');
    assert.match(await mapText(cell, 'netin_dnat'), /61005 :/);
    await waitUntil(
      'drift repair in the agent log',
      async () => (await cell.events(AGENT_EVENTS.driftRepaired)).length >= 1,
    );

    // drain: SIGTERM exits 0, the executor socket goes away, the table is untouched
    const table = await cell.table();
    assert.equal(await cell.stopAgent('SIGTERM'), 0);
    await assert.rejects(stat(cell.executorSocket), 'executor socket removed');
    assert.equal(await cell.table(), table, 'nothing flushed on the way down');

    // restart with the controller still down: the saved rule set equals the kernel's: no transaction
    await cell.startAgent();
    await waitUntil(
      'restored',
      async () => (await cell.events(AGENT_EVENTS.kernelHoldsSavedRules)).length === 1,
    );
    assert.equal((await cell.events(AGENT_EVENTS.savedRulesRestored)).length, 0);
    assert.equal(await cell.table(), table);
    const after = await cell.agentState();
    assert.equal(after.appliedVersion, before.appliedVersion);
    assert.deepEqual(after.cniOnlyContainers, [c.handle], 'CNI-time record survived the restart');
    const saved = JSON.parse(await readFile(`${cell.stateDir}/agent-state.json`, 'utf8')) as Json;
    assert.equal((saved.base as Json).version, before.appliedVersion);

    // controller back: the inventory report makes the controller include the container; the
    // long-poll resumes from the saved version (a patch, not a snapshot)
    await cluster.startController();
    // (the merge forgets the CNI-time record before nft commits: wait for the apply to be reported)
    const resumed = await waitUntil(
      'controller includes the CNI-time container',
      async () => {
        const s = await cell.agentState();
        const v = s.appliedVersion as number;
        const done =
          (s.cniOnlyContainers as string[]).length === 0 &&
          v > (before.appliedVersion as number) &&
          v === s.controllerVersion;
        return done ? s : null;
      },
      30_000,
    );
    assert.match(await setText(cell, 'ctr_addrs'), new RegExp(c.handle));
    assert.match(
      await mapText(cell, 'ctr_tag'),
      new RegExp(c.ip.replaceAll('.', '\\.')),
      'now with its policy tag',
    );
    const sources = await waitUntil('the resumed apply is in the agent log', async () => {
      const lines = await cell.events(AGENT_EVENTS.rulesApplied);
      return lines.some((l) => l.version === resumed.appliedVersion) ? lines.map((l) => l.source) : null;
    });
    assert.equal(sources[0], 'snapshot');
    assert.equal(sources.at(-1), 'patch', `after the restart: ${sources}`);
  });
});
