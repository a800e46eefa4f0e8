/**
 * Overlay ingress for routers with real packets (Silk's single_ip_only + enable_overlay_ingress_rules):
 * two cells with `enableOverlayIngressRules` and a router namespace running `cfnet agent --router`,
 * the simulator's policy server handing out the routers' tag, one controller, real VXLAN.
 *
 *   a1 (app A, NetIn 61001→8080) @ cell-1      b1 (app B, no exposed port) @ cell-2      router
 *
 * The router holds one address of the reserved first subnet, marks its overlay packets with the
 * tag the policy server gave `INGRESS_ROUTER`, and reaches exactly a1's app port: a1's other
 * port and the container that exposes no port are refused, and no NAT hides the router's address.
 * A container started later is open to it from its CNI ADD on; without the mark, or on a cell with
 * the setting off, the router gets in nowhere.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type AppRef, type CellNode, Cluster, type ContainerRef } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { expectTraffic, LongConnection, probe } from '../helpers/netns.js';

describe('overlay ingress for routers: a router namespace reaches app ports over the overlay and nothing else', () => {
  let cluster: Cluster;
  let router: CellNode;
  let A: AppRef;
  let B: AppRef;
  let a1: ContainerRef;
  let b1: ContainerRef;

  before(async () => {
    cluster = await Cluster.start({
      cells: 2,
      routers: 1,
      nsPrefix: 'hr',
      agent: { enableOverlayIngressRules: true },
    });
    router = cluster.cells.find((c) => c.router)!;
    const [c1, c2] = cluster.cells.filter((c) => !c.router) as [CellNode, CellNode];
    [A, B] = [await cluster.app('a'), await cluster.app('b')];
    [a1, b1] = await Promise.all([
      cluster.container(c1, A, 0, { hostPorts: [{ hostPort: 61001, containerPort: 8080 }] }),
      cluster.container(c2, B, 0),
    ]);
    await cluster.serve(a1.ns, [8080, 8081]);
    await cluster.serve(b1.ns, [8080]);
  });
  after(async () => {
    await cluster?.stop();
  });

  it("the router holds one address of the reserved first subnet, tagged with the policy server's router tag", async () => {
    const saved = JSON.parse((await router.exec(['cat', router.routerStateFile])).stdout) as {
      lease: { subnet: string; kind: string; tag: number };
    };
    assert.match(saved.lease.subnet, /^10\.255\.0\.\d+\/32$/);
    assert.equal(saved.lease.kind, 'single-ip');
    const simTag = cluster.sim.world.tags.get('INGRESS_ROUTER');
    assert.ok(simTag, 'the controller asked the policy server for INGRESS_ROUTER');
    assert.equal(simTag.type, 'router');
    assert.equal(saved.lease.tag, simTag.tag);
    for (const c of cluster.cells.filter((x) => !x.router)) {
      assert.doesNotMatch(await c.subnet(), /^10\.255\.0\./, `cell ${c.id} is outside the reserved subnet`);
    }
    // the kernel's mark rule carries the tag
    const chain = (await router.exec(['nft', 'list', 'chain', 'inet', 'cfnet', 'router_mark'])).stdout;
    assert.match(chain, new RegExp(`meta mark set 0x0*${simTag.tag.toString(16)}\\b`));
  });

  it("reaches the container's app port, and neither its other port nor a container exposing none", async () => {
    await expectTraffic('router → a1:8080 allowed', router.ns, [tcp(a1.ip, 8080)], ['open'], 30_000);
    assert.deepEqual(await probe(router.ns, [tcp(a1.ip, 8081), tcp(b1.ip, 8080)]), ['refused', 'refused']);
  });

  it('a container started later is reachable on its app port as soon as its ADD returned', async () => {
    const c2 = cluster.cells.filter((c) => !c.router)[1]!;
    const a2 = await cluster.container(c2, A, 1, { hostPorts: [{ hostPort: 61002, containerPort: 8080 }] });
    // read at once: BBS learnt of the instance only after ADD, the controller's rule set comes later
    const set = (await c2.exec(['nft', 'list', 'set', 'inet', 'cfnet', 'c2c_tcp'])).stdout;
    assert.match(set, new RegExp(`${a2.ip.replaceAll('.', '\\.')} \\. 8080`), 'in the admitting transaction');
    await cluster.serve(a2.ns, [8080, 8081]);
    assert.deepEqual(await probe(router.ns, [tcp(a2.ip, 8080), tcp(a2.ip, 8081)]), ['open', 'refused']);
  });

  it("the container sees the router's overlay address (no NAT inside the overlay)", async () => {
    const routerIp = (await router.subnet()).split('/')[0]!;
    const conn = await LongConnection.open(router.ns, a1.ip, 8080);
    try {
      assert.equal(await conn.send('hello'), `data pong:8080:${routerIp}:hello`);
    } finally {
      conn.close();
    }
  });

  it('a container is not reachable from the router without the mark (the tag is what lets it in)', async () => {
    // stopped, the agent cannot put the mark back meanwhile (device and routes stay: fail-static)
    await router.stopAgent('SIGTERM');
    await router.exec(['nft', 'delete', 'table', 'inet', 'cfnet']);
    try {
      assert.deepEqual(await probe(router.ns, [tcp(a1.ip, 8080)]), ['refused']);
    } finally {
      await router.startAgent();
      // the restarted agent claims its address back and writes the mark again
      await expectTraffic(
        'mark restored by the router agent',
        router.ns,
        [tcp(a1.ip, 8080)],
        ['open'],
        15_000,
      );
    }
  });

  it('a cell without enableOverlayIngressRules lets the router in nowhere', async () => {
    const c1 = a1.cell;
    const config = JSON.parse(await readFile(c1.configPath, 'utf8')) as Record<string, unknown>;
    await writeFile(c1.configPath, JSON.stringify({ ...config, enableOverlayIngressRules: false }));
    await c1.stopAgent('SIGTERM');
    await c1.startAgent();
    await expectTraffic(
      'router → a1:8080 refused with the setting off',
      router.ns,
      [tcp(a1.ip, 8080)],
      ['refused'],
    );
  });
});
