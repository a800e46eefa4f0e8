// One conformance suite for every implementation of `WorldView` (src/rules/view.ts), the interface
// `computeCellRuleSet` reads: the leader's in-memory World, a worker's slice of one cell read back
// from Redis (WorldStore.loadCell) and the operator tools' reader (loadRedisWorld). The same world —
// containers of apps, a task, a crashed instance, a container BBS does not know (agent inventory
// only), ASGs, policies — is written once to Redis; each implementation must answer every question
// of the interface like the in-memory World does, and give the same rule set for every cell.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LeaderElection } from '../../src/lib/leader.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { canonicalJson } from '../../src/model/canonical.js';
import { ruleSetsEqual } from '../../src/model/ruleset.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { loadRedisWorld } from '../../src/ops/world-reader.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import { type InventoryEntry, snapshotOf } from '../../src/rules/records.js';
import type { WorldView } from '../../src/rules/view.js';
import { type Trigger, World } from '../../src/rules/world.js';
import { WorldStore } from '../../src/state/world-store.js';
import { waitUntil } from '../helpers/wait.js';
import { openTestRedis, type TestRedis } from './controller-helpers.js';

const T: Trigger = { kind: 'lrp', id: 'contract', at: 1 };
const CELLS = ['cell-a', 'cell-b', 'cell-c'];
const https = parseCapiRule({ protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' });
const dns = parseCapiRule({ protocol: 'udp', destination: '0.0.0.0/0', ports: '53' });
const webSnap = snapshotOf([https]);
const taskSnap = snapshotOf([https, dns]);
const INVENTORY_ONLY: InventoryEntry = {
  handle: 'agent-only',
  ip: '10.255.3.9',
  appGuid: 'app-web',
  spaceGuid: 'space-1',
  orgGuid: 'org-1',
  workload: 'app',
};

/** The world every implementation is checked against. */
function buildWorld(): World {
  const w = new World();
  w.setAsgs(
    [
      {
        guid: 'asg-https',
        name: 'https',
        rules: [https],
        runningDefault: false,
        stagingDefault: false,
        runningSpaces: ['space-1'],
        stagingSpaces: [],
      },
      {
        guid: 'asg-dns',
        name: 'dns',
        rules: [dns],
        runningDefault: true,
        stagingDefault: true,
        runningSpaces: [],
        stagingSpaces: [],
      },
    ],
    1,
    T,
  );
  const identity = (app: string, space: string) => ({ appGuid: app, spaceGuid: space, orgGuid: 'org-1' });
  w.upsertDesired(
    {
      processGuid: 'pg-web',
      ...identity('app-web', 'space-1'),
      workload: 'app',
      snapshot: webSnap.hash,
      desiredAt: 0,
    },
    webSnap,
    T,
  );
  w.upsertDesired(
    {
      processGuid: 'pg-api',
      ...identity('app-api', 'space-2'),
      workload: 'app',
      snapshot: webSnap.hash,
      desiredAt: 0,
    },
    webSnap,
    T,
  );
  CELLS.forEach((cell, ci) => {
    w.upsertInstance(
      {
        handle: `web-${ci}`,
        processGuid: 'pg-web',
        index: ci,
        cellId: cell,
        state: 'RUNNING',
        ip: `10.255.${ci + 1}.2`,
        netIn: [],
      },
      T,
    );
    w.upsertInstance(
      {
        handle: `api-${ci}`,
        processGuid: 'pg-api',
        index: ci,
        cellId: cell,
        state: ci === 2 ? 'CRASHED' : 'RUNNING',
        ip: `10.255.${ci + 1}.3`,
        netIn: ci === 0 ? [{ hostPort: 61001, containerPort: 8080 }] : [],
      },
      T,
    );
  });
  w.upsertTask(
    {
      handle: 'task-1',
      ...identity('app-web', 'space-1'),
      workload: 'task',
      cellId: 'cell-b',
      state: 'Running',
      snapshot: taskSnap.hash,
      desiredAt: 0,
    },
    taskSnap,
    T,
  );
  w.setPolicies(
    [
      {
        source: { appGuid: 'app-web', tag: 1 },
        destination: { appGuid: 'app-api', tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      },
    ],
    T,
  );
  w.setInventory('cell-c', [INVENTORY_ONLY]);
  return w;
}

const byHandle = <T extends { handle: string }>(xs: Iterable<T>) =>
  canonicalJson([...xs].sort((a, b) => a.handle.localeCompare(b.handle)));

/**
 * The contract: `make` returns a view of `reference` (and of each cell it is asked for); every
 * answer must equal the reference World's.
 */
function worldViewContract(name: string, make: () => Promise<(cellId: string) => Promise<WorldView>>) {
  describe(`WorldView contract: ${name}`, () => {
    let viewOf: (cellId: string) => Promise<WorldView>;
    const reference = buildWorld();
    before(async () => {
      viewOf = await make();
    });

    it('lists the records BBS places on each cell, active or not', async () => {
      for (const cell of CELLS) {
        const v = await viewOf(cell);
        assert.equal(byHandle(v.cellRecords(cell)), byHandle(reference.cellRecords(cell)), cell);
      }
    });

    it("gives each cell's agent inventory (containers BBS does not know included)", async () => {
      for (const cell of CELLS) {
        const v = await viewOf(cell);
        assert.equal(byHandle(v.cellInventory(cell)), byHandle(reference.cellInventory(cell)), cell);
      }
      assert.equal([...(await viewOf('cell-c')).cellInventory('cell-c')].length, 1);
    });

    it('resolves every egress snapshot a record names, and no unknown one', async () => {
      for (const cell of CELLS) {
        const v = await viewOf(cell);
        for (const r of v.cellRecords(cell)) {
          if (r.snapshot === null) continue; // a record with no egress snapshot (none to resolve)
          assert.deepEqual(v.snapshotRules(r.snapshot), reference.snapshotRules(r.snapshot), r.handle);
        }
      }
      assert.equal((await viewOf('cell-a')).snapshotRules('no-such-hash'), undefined);
    });

    it('holds the same security groups and policies', async () => {
      const v = await viewOf('cell-a');
      assert.equal(v.asgs()?.hash, reference.asgs()?.hash);
      assert.equal(v.policies().hash, reference.policies().hash);
    });

    it('yields the rule set the in-memory World yields, for every cell', async () => {
      for (const cell of CELLS) {
        const got = computeCellRuleSet(await viewOf(cell), cell, DEFAULT_CELL_CONFIG);
        const want = computeCellRuleSet(reference, cell, DEFAULT_CELL_CONFIG);
        assert.ok(ruleSetsEqual(got, want), `${cell}: ${canonicalJson(got)} != ${canonicalJson(want)}`);
        assert.ok(got.containers.length > 0, cell);
      }
    });
  });
}

describe('WorldView implementations agree (real Redis)', () => {
  let t: TestRedis;
  let leader: LeaderElection;

  before(async () => {
    t = await openTestRedis('view-contract');
    leader = new LeaderElection(t.redis, {
      leaseKey: t.keys.leader,
      fenceKey: t.keys.fence,
      leaseMs: 60_000,
    });
    leader.start();
    const fence = (await waitUntil('leadership', () => leader.leadership)).value;
    const world = buildWorld();
    world.takeChanges();
    const store = new WorldStore(t.redis, t.keys);
    await store.resync(world, fence);
    for (const cell of CELLS) await store.setInventory(cell, [...world.cellInventory(cell)]);
  });
  after(async () => {
    await leader?.stop();
    await t?.cleanup();
  });

  worldViewContract('in-memory World (the leader)', async () => {
    const w = buildWorld();
    return async () => w;
  });
  worldViewContract("a worker's slice of one cell (WorldStore.loadCell)", async () => {
    const store = new WorldStore(t.redis, t.keys);
    return async (cell) => (await store.loadCell(cell)).view;
  });
  worldViewContract("the operator tools' reader (loadRedisWorld)", async () => {
    const w = await loadRedisWorld(t.redis, t.keys);
    assert.equal(w.ready, true);
    return async () => w;
  });
});
