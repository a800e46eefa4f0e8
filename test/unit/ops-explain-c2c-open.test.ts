import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NameDirectory } from '../../src/model/names.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { type C2CExplanation, explain } from '../../src/ops/explain.js';
import type { RedisWorld, WorldContainer } from '../../src/ops/world-reader.js';
import type { RuleSetStore } from '../../src/state/ruleset-store.js';

const ctr = (cellId: string, appGuid: string, ip: string): WorldContainer => ({
  cellId,
  handle: `h-${appGuid}-${ip}`,
  ip,
  appGuid,
  spaceGuid: 'space',
  workload: 'app',
  fromBbs: true,
});

/** A world with app A on cell-1 and app B on cell-2, no policy at all. */
function fixture(open: boolean): { world: RedisWorld; store: RuleSetStore } {
  const containers = [ctr('cell-1', 'A', '10.255.1.2'), ctr('cell-2', 'B', '10.255.2.2')];
  const world = {
    ready: true,
    leader: 'x',
    containersOf: (app?: string) => containers.filter((c) => app === undefined || c.appGuid === app),
    policies: () => ({ from: () => [], to: () => [], tagOf: () => null }),
    names: NameDirectory.EMPTY,
  } as unknown as RedisWorld;
  const rs = (cellId: string): CellRuleSet => ({
    cellId,
    version: 3,
    containers: [],
    asgSets: {},
    c2c: [],
    config: { ...DEFAULT_CELL_CONFIG, disableContainerNetworkPolicy: open },
  });
  const store = {
    get: async (cellId: string) => rs(cellId),
    status: async () => ({ appliedVersion: 3 }),
  } as unknown as RuleSetStore;
  return { world, store };
}

describe('cfnet explain with disable_container_network_policy', () => {
  it('on: c2c between apps without a policy is allowed, and every involved cell agrees', async () => {
    const { world, store } = fixture(true);
    const x = (await explain(world, store, {
      from: 'A',
      to: 'B',
      protocol: 'tcp',
      port: 9999,
    })) as C2CExplanation;
    assert.equal(x.kind, 'c2c');
    assert.equal(x.allowed, true);
    assert.match(x.reason, /disable_container_network_policy/);
    assert.equal(x.consistent, true);
    assert.deepEqual(
      x.cells.map((c) => [c.cellId, c.role, c.agrees]),
      [
        ['cell-2', 'destination', true],
        ['cell-1', 'source', true],
      ],
    );
  });

  it('off: the same query is denied by the default deny', async () => {
    const { world, store } = fixture(false);
    const x = (await explain(world, store, {
      from: 'A',
      to: 'B',
      protocol: 'tcp',
      port: 9999,
    })) as C2CExplanation;
    assert.equal(x.allowed, false);
    assert.match(x.reason, /no c2c policy/);
    assert.equal(x.consistent, true);
  });
});
