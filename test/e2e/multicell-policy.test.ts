/**
 * The multi-cell proof: three cells in network namespaces on one underlay, the simulator, Redis,
 * one controller process and three `cfnet agent` processes; containers made by the real CNI
 * plugin and registered in the simulator as RUNNING ActualLRPs with their real IPs. Real packets
 * prove, across cells:
 * - c2c exactly as the policies say (allowed port works; other port and other source app refused);
 * - adding / removing a policy and binding an ASG change traffic without restarting a container;
 * - NetIn (underlay → cell host port → container);
 * - SIGKILL of the controller leaves every rule in force;
 * - restarting agents drops no established connection (data flows across the restart).
 *
 *   x1 (app X) @ cell-1      y1 (app Y, NetIn 61001→8080) @ cell-2      z1 (app Z) @ cell-3
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AGENT_EVENTS } from '../../src/agent/events.js';
import { type AppRef, Cluster, type ContainerRef, EXTERNAL_IP, UNDERLAY_GW } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { expectTraffic, LongConnection, probe } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

describe('multi-cell: policies, ASGs, NetIn, controller loss and agent restarts with real packets', () => {
  let cluster: Cluster;
  let X: AppRef;
  let Y: AppRef;
  let Z: AppRef;
  let x1: ContainerRef;
  let y1: ContainerRef;
  let z1: ContainerRef;

  before(async () => {
    cluster = await Cluster.start({ cells: 3 });
    [X, Y, Z] = [await cluster.app('x'), await cluster.app('y'), await cluster.app('z')];
    await cluster.sim.apply({ kind: 'policy-add', source: X.appGuid, destination: Y.appGuid, port: 8080 });
    const [c1, c2, c3] = cluster.cells as [
      Cluster['cells'][number],
      Cluster['cells'][number],
      Cluster['cells'][number],
    ];
    [x1, y1, z1] = await Promise.all([
      cluster.container(c1, X, 0),
      cluster.container(c2, Y, 0, { hostPorts: [{ hostPort: 61001, containerPort: 8080 }] }),
      cluster.container(c3, Z, 0),
    ]);
    await cluster.serve(y1.ns, [8080, 8081]);
    await cluster.serve(cluster.underlay, [9000], [EXTERNAL_IP]);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('c2c across cells exactly as the policies say', async () => {
    assert.notEqual(x1.cell.id, y1.cell.id);
    assert.notEqual(z1.cell.id, y1.cell.id);
    await expectTraffic('X→Y:8080 allowed', x1.ns, [tcp(y1.ip, 8080)], ['open']);
    assert.deepEqual(await probe(x1.ns, [tcp(y1.ip, 8080), tcp(y1.ip, 8081)]), ['open', 'refused']);
    assert.deepEqual(await probe(z1.ns, [tcp(y1.ip, 8080), tcp(y1.ip, 8081)]), ['refused', 'refused']);
    // no NAT inside the overlay: Y sees X's own address
    const conn = await LongConnection.open(x1.ns, y1.ip, 8080);
    try {
      assert.equal(await conn.send('hello'), `data pong:8080:${x1.ip}:hello`);
    } finally {
      conn.close();
    }
  });

  it('adding and removing policies changes traffic without restarting a container', async () => {
    await cluster.sim.apply({ kind: 'policy-add', source: Z.appGuid, destination: Y.appGuid, port: 8081 });
    await expectTraffic(
      'Z→Y:8081 allowed after policy-add',
      z1.ns,
      [tcp(y1.ip, 8081), tcp(y1.ip, 8080)],
      ['open', 'refused'],
    );
    await cluster.sim.apply({ kind: 'policy-remove', source: X.appGuid, destination: Y.appGuid, port: 8080 });
    await expectTraffic('X→Y:8080 refused after policy-remove', x1.ns, [tcp(y1.ip, 8080)], ['refused']);
    assert.deepEqual(await probe(z1.ns, [tcp(y1.ip, 8081)]), ['open'], 'other policies untouched');
  });

  it("binding an ASG to a space opens egress for that space's running containers only", async () => {
    assert.deepEqual(
      await probe(y1.ns, [tcp(EXTERNAL_IP, 9000)]),
      ['refused'],
      'no ASG allows 192.168.77.10:9000 yet',
    );
    const asg = await cluster.sim.apply({
      kind: 'asg-create',
      name: 'e2e-external-9000',
      rules: [{ protocol: 'tcp', destination: EXTERNAL_IP, ports: '9000' }],
    });
    await cluster.sim.apply({
      kind: 'asg-bind-space',
      guid: asg.result.guid as string,
      spaceGuid: Y.spaceGuid,
    });
    await expectTraffic('Y → external:9000 allowed after binding', y1.ns, [tcp(EXTERNAL_IP, 9000)], ['open']);
    assert.deepEqual(await probe(x1.ns, [tcp(EXTERNAL_IP, 9000)]), ['refused'], "X's space is not bound");
  });

  it('NetIn: the cell host port reaches the container', async () => {
    const cellIp = y1.cell.underlayIp;
    await expectTraffic('NetIn 61001 → y1:8080', cluster.underlay, [tcp(cellIp, 61001)], ['open']);
    const conn = await LongConnection.open(cluster.underlay, cellIp, 61001);
    try {
      assert.equal(await conn.send('in'), `data pong:8080:${UNDERLAY_GW}:in`);
    } finally {
      conn.close();
    }
  });

  it('SIGKILL of the controller leaves every rule in force', async () => {
    const check = async (when: string) => {
      assert.deepEqual(await probe(z1.ns, [tcp(y1.ip, 8081), tcp(y1.ip, 8080)]), ['open', 'refused'], when);
      assert.deepEqual(
        await probe(x1.ns, [tcp(y1.ip, 8080), tcp(EXTERNAL_IP, 9000)]),
        ['refused', 'refused'],
        when,
      );
      assert.deepEqual(await probe(y1.ns, [tcp(EXTERNAL_IP, 9000)]), ['open'], when);
      assert.deepEqual(await probe(cluster.underlay, [tcp(y1.cell.underlayIp, 61001)]), ['open'], when);
    };
    await cluster.killController('SIGKILL');
    await waitUntil('every agent notices', async () => {
      for (const c of cluster.cells) if ((await c.agentState()).controllerReachable !== false) return false;
      return true;
    });
    await check('right after the kill');
    await new Promise((r) => setTimeout(r, 2500)); // agents keep retrying with backoff meanwhile
    await check('a few retries later');
  });

  it('restarting agents drops no established connection', async () => {
    const conn = await LongConnection.open(z1.ns, y1.ip, 8081);
    try {
      assert.equal(await conn.send('before'), `data pong:8081:${z1.ip}:before`);
      // both ends' agents, with the controller still down (restore from saved state)
      for (const cell of [y1.cell, z1.cell]) {
        const table = await cell.table();
        assert.equal(await cell.stopAgent('SIGTERM'), 0);
        assert.equal(await conn.send(`down-${cell.id}`), `data pong:8081:${z1.ip}:down-${cell.id}`);
        await cell.startAgent();
        assert.equal(await conn.send(`up-${cell.id}`), `data pong:8081:${z1.ip}:up-${cell.id}`);
        assert.equal(await cell.table(), table, 'restart changed nothing in the kernel');
        assert.equal((await cell.events(AGENT_EVENTS.kernelHoldsSavedRules)).length, 1);
      }
      // controller back: agents reconnect and a new change is enforced; the connection lives on
      await cluster.startController();
      await cluster.sim.apply({ kind: 'policy-add', source: X.appGuid, destination: Y.appGuid, port: 8081 });
      await expectTraffic(
        'X→Y:8081 allowed after the controller restart',
        x1.ns,
        [tcp(y1.ip, 8081)],
        ['open'],
        30_000,
      );
      // the destination cell's agent too, while it is connected and applying patches
      await y1.cell.stopAgent('SIGTERM');
      await y1.cell.startAgent();
      assert.equal(await conn.send('after'), `data pong:8081:${z1.ip}:after`);
    } finally {
      conn.close();
    }
  });
});
