/**
 * Leases and VXLAN programming with real agents (in cell namespaces) and the real controller:
 * the device (VNI, port, GBP, MTU, MAC and address from the lease), routes / permanent neighbours
 * / FDB entries for every other cell, only the difference programmed when a cell comes or goes,
 * and a restart that neither recreates the device nor rewrites an entry.
 */

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AGENT_EVENTS } from '../../src/agent/events.js';
import { vtepMacOf } from '../../src/agent/overlay.js';
import { Cluster } from '../helpers/cluster.js';
import { waitUntil } from '../helpers/wait.js';

type Json = Record<string, unknown>;

async function json(cell: Cluster['cells'][number], argv: string[]): Promise<Json[]> {
  const r = await cell.exec(argv);
  return JSON.parse(r.stdout || '[]') as Json[];
}

describe('agent: overlay leases and VXLAN in namespaces (real controller)', () => {
  let cluster: Cluster;

  before(async () => {
    cluster = await Cluster.start({ cells: 3 });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('each cell holds a distinct lease, a GBP VTEP and entries for every other cell', async () => {
    const subnets = await Promise.all(cluster.cells.map((c) => c.subnet()));
    assert.equal(new Set(subnets).size, 3, `distinct subnets ${subnets}`);
    for (const [i, cell] of cluster.cells.entries()) {
      const own = subnets[i]!;
      const [link] = await json(cell, ['ip', '-d', '-j', 'link', 'show', 'dev', 'cfnet-vtep']);
      const info = (link!.linkinfo as Json).info_data as Json;
      assert.equal((link!.linkinfo as Json).info_kind, 'vxlan');
      assert.equal(info.id, 1);
      assert.equal(info.port, 4789);
      assert.equal(info.gbp, true);
      assert.equal(info.learning, false);
      assert.equal(info.local, cell.underlayIp);
      assert.equal(link!.mtu, 1450, 'underlay MTU 1500 minus 50');
      assert.equal(link!.address, vtepMacOf(own));
      const [addr] = await json(cell, ['ip', '-4', '-j', 'addr', 'show', 'dev', 'cfnet-vtep']);
      assert.deepEqual(
        (addr!.addr_info as Json[]).map((a) => `${a.local}/${a.prefixlen}`),
        [`${own.split('/')[0]}/32`],
      );
      const routes = await json(cell, ['ip', '-j', 'route', 'show', 'dev', 'cfnet-vtep']);
      const neigh = await json(cell, ['ip', '-j', 'neigh', 'show', 'dev', 'cfnet-vtep']);
      const fdb = await json(cell, ['bridge', '-j', 'fdb', 'show', 'dev', 'cfnet-vtep']);
      const others = cluster.cells.filter((c) => c !== cell);
      assert.equal(routes.length, 2);
      for (const o of others) {
        const s = subnets[cluster.cells.indexOf(o)]!;
        const gw = s.split('/')[0]!;
        assert.ok(
          routes.some((r) => r.dst === s && r.gateway === gw && (r.flags as string[]).includes('onlink')),
          `route to ${s} on ${cell.id}`,
        );
        assert.ok(
          neigh.some(
            (n) => n.dst === gw && n.lladdr === vtepMacOf(s) && (n.state as string[]).includes('PERMANENT'),
          ),
          `permanent neighbour ${gw}`,
        );
        assert.ok(
          fdb.some((f) => f.mac === vtepMacOf(s) && f.dst === o.underlayIp && f.state === 'permanent'),
          `fdb entry for ${o.id}`,
        );
      }
    }
  });

  it('a new cell lease adds exactly its three entries everywhere; its release removes them', async () => {
    const extra = cluster.controllerClient('e2e-cell-extra');
    try {
      const lease = await extra.acquireLease('198.51.100.99');
      for (const cell of cluster.cells) {
        await waitUntil(`${cell.id} programs ${lease.subnet}`, async () => {
          const routes = await json(cell, ['ip', '-j', 'route', 'show', 'dev', 'cfnet-vtep']);
          return routes.some((r) => r.dst === lease.subnet);
        });
        const fdb = await json(cell, ['bridge', '-j', 'fdb', 'show', 'dev', 'cfnet-vtep']);
        assert.ok(fdb.some((f) => f.mac === lease.vtepMac && f.dst === '198.51.100.99'));
        const updates = await cell.events(AGENT_EVENTS.overlayUpdated);
        assert.equal(updates.at(-1)!.changes, 3, 'route + neighbour + fdb entry, nothing else');
      }
      assert.equal(await extra.releaseLease(), true);
      for (const cell of cluster.cells) {
        await waitUntil(`${cell.id} forgets ${lease.subnet}`, async () => {
          const routes = await json(cell, ['ip', '-j', 'route', 'show', 'dev', 'cfnet-vtep']);
          const neigh = await json(cell, ['ip', '-j', 'neigh', 'show', 'dev', 'cfnet-vtep']);
          const fdb = await json(cell, ['bridge', '-j', 'fdb', 'show', 'dev', 'cfnet-vtep']);
          return (
            !routes.some((r) => r.dst === lease.subnet) &&
            !neigh.some((n) => n.lladdr === lease.vtepMac) &&
            !fdb.some((f) => f.mac === lease.vtepMac)
          );
        });
        assert.equal((await cell.events(AGENT_EVENTS.overlayUpdated)).at(-1)!.changes, 3);
      }
    } finally {
      await extra.close();
    }
  });

  it('repairs a deleted route at the next drift check', async () => {
    const cell = cluster.cells[0]!;
    const other = await cluster.cells[1]!.subnet();
    await cell.exec(['ip', 'route', 'del', other, 'dev', 'cfnet-vtep']);
    await waitUntil(
      'route restored',
      async () =>
        (await json(cell, ['ip', '-j', 'route', 'show', 'dev', 'cfnet-vtep'])).some((r) => r.dst === other),
      15_000,
    );
  });

  it('a restarted agent keeps its lease and device and rewrites nothing', async () => {
    const cell = cluster.cells[2]!;
    const subnet = await cell.subnet();
    const [before] = await json(cell, ['ip', '-j', 'link', 'show', 'dev', 'cfnet-vtep']);
    const updatesBefore = (await cell.events(AGENT_EVENTS.overlayUpdated)).length;
    assert.equal(await cell.stopAgent('SIGTERM'), 0, 'clean exit on SIGTERM');
    // drained, not flushed: the device and the entries stay while the agent is down
    assert.equal((await json(cell, ['ip', '-j', 'route', 'show', 'dev', 'cfnet-vtep'])).length, 2);
    await cell.startAgent();
    await waitUntil('lease renewed after restart', async () => {
      const s = await cell.agentState();
      return s.controllerReachable === true && (s.lease as Json | null)?.subnet === subnet;
    });
    await new Promise((r) => setTimeout(r, 1500)); // a lease poll cycle
    const [afterLink] = await json(cell, ['ip', '-j', 'link', 'show', 'dev', 'cfnet-vtep']);
    assert.equal(afterLink!.ifindex, before!.ifindex, 'device kept (not recreated)');
    assert.equal(await cell.subnet(), subnet);
    assert.equal(
      (await cell.events(AGENT_EVENTS.overlayUpdated)).length,
      updatesBefore,
      'no entry rewritten',
    );
    assert.equal(
      (await cell.events(AGENT_EVENTS.vxlanConfigured)).length,
      1,
      'configured once, at first start',
    );
  });
});
