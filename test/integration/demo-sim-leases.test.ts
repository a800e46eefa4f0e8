/**
 * The demo's foundation (a lab cluster on the simulator's own cells, dry-run agents): simulated
 * containers carry addresses from the subnet their cell actually leased from the controller, as
 * CF containers do — the ones the simulator generated before any lease existed, the ones churn
 * starts later, and the rule sets the controller computes for the cells.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Cluster, REDIS_URL } from '../../src/lab/cluster.js';
import { waitUntil } from '../../src/lab/process.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { cidrToRange, ipToBigInt } from '../../src/model/ip.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';

function inCidr(ip: string, cidr: string): boolean {
  const r = cidrToRange(cidr);
  const v = ipToBigInt(ip);
  return v >= ipToBigInt(r.start) && v <= ipToBigInt(r.end);
}

describe('simulated containers in the lab take their addresses from their cell’s lease', () => {
  let cluster: Cluster;
  /** cell → the subnet the controller's lease table gives it. */
  let leases: Map<string, string>;

  before(async () => {
    cluster = await Cluster.start({
      dataplane: 'dry-run',
      simCells: true,
      cells: 3,
      seed: 11,
      sim: { seed: 11, size: 'small', cells: 3, containers: 30 },
      redisUrl: REDIS_URL,
      redisPrefix: 'cfnet-demo-leases-test',
      // /26 leases: never one of the /24s the simulator generates its cells' containers in, so
      // every container has to move into its cell's lease
      controller: { subnetPrefixLength: 26 },
    });
    const redis = createRedis(REDIS_URL, { name: 'cfnet-demo-leases-test' });
    try {
      const table = await redis.hgetall(new Keys(cluster.redisNs).leases);
      leases = new Map(
        Object.entries(table).map(([cell, json]) => [cell, (JSON.parse(json) as { subnet: string }).subnet]),
      );
    } finally {
      await closeRedis(redis);
    }
  });
  after(async () => {
    await cluster?.stop();
  });

  /** Every simulated instance on a lab cell, with the address it carries. */
  const instances = () =>
    [...cluster.sim.world.actualLrps.values()].filter((a) => a.instanceAddress && leases.has(a.cellId));

  it('the generated containers, and the ones started afterwards, lie in the lease of their cell', async () => {
    assert.deepEqual([...leases.keys()].sort(), cluster.cells.map((c) => c.id).sort(), 'a lease per cell');
    for (const c of cluster.cells)
      assert.equal(leases.get(c.id), await c.subnet(), `${c.id} holds its lease`);
    for (const c of cluster.cells)
      assert.equal(
        cluster.sim.world.cells.get(c.id)!.subnet,
        leases.get(c.id),
        `${c.id}: the simulator's subnet`,
      );
    const before = instances();
    assert.ok(before.length >= 20, `the foundation's containers are on the lab cells (${before.length})`);

    const started = await cluster.sim.apply({
      kind: 'app-start',
      instances: 6,
      cellIds: cluster.cells.map((c) => c.id),
    });
    assert.ok(started.affectedCells.length === 3, 'the new app runs on every cell');

    const all = instances();
    assert.equal(all.length, before.length + 6);
    for (const a of all)
      assert.ok(
        inCidr(a.instanceAddress, leases.get(a.cellId)!),
        `${a.processGuid}/${a.index} on ${a.cellId}: ${a.instanceAddress} in ${leases.get(a.cellId)}`,
      );
    assert.equal(new Set(all.map((a) => a.instanceAddress)).size, all.length, 'no address given twice');
  });

  it('the rule sets the controller computes name only addresses of the cell’s lease', async () => {
    const redis = createRedis(REDIS_URL, { name: 'cfnet-demo-leases-test' });
    const store = new RuleSetStore(redis, new Keys(cluster.redisNs));
    try {
      // the controller has caught up with the simulator: each cell's rule set has all its instances
      await waitUntil('every cell’s rule set holds its simulated instances', async () => {
        for (const c of cluster.cells) {
          const want = instances()
            .filter((a) => a.cellId === c.id)
            .map((a) => a.instanceAddress)
            .sort();
          const rs = await store.get(c.id);
          const have = (rs?.containers ?? []).map((x) => x.ip).filter((ip) => want.includes(ip));
          if (have.length !== want.length) return false;
        }
        return true;
      });
      for (const c of cluster.cells) {
        const rs = (await store.get(c.id))!;
        for (const x of rs.containers)
          assert.ok(
            !x.ip || inCidr(x.ip, leases.get(c.id)!),
            `${c.id}: ${x.handle} ${x.ip} in ${leases.get(c.id)}`,
          );
      }
    } finally {
      await closeRedis(redis);
    }
  });
});
