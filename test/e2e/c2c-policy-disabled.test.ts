/**
 * Silk's `disable_container_network_policy` across cells, real packets: with the switch on (the cni
 * job's property, a controller setting), containers reach each other over the VXLAN overlay on any
 * port without a network policy, on the same cell and across cells; egress stays the ASGs'.
 * The switch off (the default) is every other c2c test; toggling it on one cell:
 * dataplane-limits.test.ts.
 *
 *   a (app A) @ cell-1, c (app C) @ cell-1        b (app B) @ cell-2
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, type ContainerRef, EXTERNAL_IP } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { expectTraffic, probe } from '../helpers/netns.js';

describe('disable_container_network_policy: c2c open without policies, across cells (real packets)', () => {
  let cluster: Cluster;
  let a: ContainerRef;
  let b: ContainerRef;
  let c: ContainerRef;

  before(async () => {
    cluster = await Cluster.start({ cells: 2, controller: { disableContainerNetworkPolicy: true } });
    const [c1, c2] = cluster.cells as [Cluster['cells'][number], Cluster['cells'][number]];
    [a, b, c] = await Promise.all([
      cluster.container(c1, await cluster.app('a'), 0),
      cluster.container(c2, await cluster.app('b'), 0),
      cluster.container(c1, await cluster.app('c'), 0),
    ]);
    await cluster.serve(a.ns, [8080]);
    await cluster.serve(b.ns, [8080, 9999]);
    await cluster.serve(cluster.underlay, [9000], [EXTERNAL_IP]);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('every container reaches every other on any port, with no policy in the foundation', async () => {
    assert.notEqual(a.cell.id, b.cell.id);
    await expectTraffic(
      'a→b across cells, no policy',
      a.ns,
      [tcp(b.ip, 8080), tcp(b.ip, 9999)],
      ['open', 'open'],
    );
    assert.deepEqual(await probe(b.ns, [tcp(a.ip, 8080)]), ['open'], 'b→a across cells');
    assert.deepEqual(
      await probe(c.ns, [tcp(a.ip, 8080), tcp(b.ip, 9999)]),
      ['open', 'open'],
      'same cell and across',
    );
    // egress is still the ASGs': none is bound for this address
    assert.deepEqual(await probe(a.ns, [tcp(EXTERNAL_IP, 9000)]), ['refused'], 'egress without an ASG');
  });
});
