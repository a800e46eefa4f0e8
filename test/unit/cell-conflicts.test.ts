/**
 * Per-cell conflicts never block a cell. The controller resolves them deterministically while
 * computing (two containers on one host port or one address, a handle the dataplane refuses) and
 * reports each; the agent admits its rule set container by container, so whatever still gets
 * through is refused by itself and the rest of the cell is applied.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { admitRuleSet } from '../../src/dataplane/admit.js';
import { desiredState } from '../../src/dataplane/desired.js';
import { type CellContainer, type CellRuleSet, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { type CellConflict, computeCellRuleSet } from '../../src/rules/compute.js';
import { type InstanceInfo, snapshotOf } from '../../src/rules/records.js';
import { type Trigger, World } from '../../src/rules/world.js';
import { container, ruleSetOf } from '../helpers/fixtures.js';

const T: Trigger = { kind: 'lrp', id: 'test', at: 1 };
const snap = snapshotOf([]);

function world(instances: InstanceInfo[], inventory: string[] = []): World {
  const w = new World();
  w.upsertDesired(
    {
      processGuid: 'pg',
      appGuid: 'app',
      spaceGuid: 'space',
      orgGuid: 'org',
      workload: 'app',
      snapshot: snap.hash,
      desiredAt: 0,
    },
    snap,
    T,
  );
  for (const i of instances) w.upsertInstance(i, T);
  w.setInventory(
    'cell-1',
    inventory.map((h) => ({
      handle: h,
      ip: instances.find((i) => i.handle === h)!.ip,
      appGuid: 'app',
      spaceGuid: 'space',
      orgGuid: 'org',
      workload: 'app',
    })),
  );
  return w;
}

const inst = (handle: string, ip: string, hostPort?: number): InstanceInfo => ({
  handle,
  processGuid: 'pg',
  index: 0,
  cellId: 'cell-1',
  state: 'RUNNING',
  ip,
  netIn: hostPort ? [{ hostPort, containerPort: 8080 }] : [],
});

function compute(w: World): { rs: CellRuleSet; conflicts: CellConflict[] } {
  const conflicts: CellConflict[] = [];
  const rs = computeCellRuleSet(w, 'cell-1', DEFAULT_CELL_CONFIG, { onConflict: (c) => conflicts.push(c) });
  return { rs, conflicts };
}

describe('controller: per-cell conflicts', () => {
  it('two instances on one host port: the first by handle keeps it, the other loses that mapping; the cell renders', () => {
    const { rs, conflicts } = compute(
      world([inst('b-second', '10.255.0.3', 61001), inst('a-first', '10.255.0.2', 61001)]),
    );
    assert.deepEqual(
      rs.containers.map((c) => [c.handle, c.netIn.length]),
      [
        ['a-first', 1],
        ['b-second', 0],
      ],
    );
    assert.deepEqual(conflicts, [
      {
        cellId: 'cell-1',
        reason: 'host-port-conflict',
        handle: 'b-second',
        winner: 'a-first',
        field: 'netIn.hostPort',
        value: 61001,
      },
    ]);
    desiredState(rs);
  });

  it('a container the agent reports attached wins over one only BBS knows, whatever the handles', () => {
    const { rs, conflicts } = compute(
      world([inst('a-stale', '10.255.0.2', 61001), inst('z-attached', '10.255.0.3', 61001)], ['z-attached']),
    );
    assert.deepEqual(rs.containers.find((c) => c.handle === 'z-attached')?.netIn, [
      { hostPort: 61001, containerPort: 8080 },
    ]);
    assert.equal(conflicts[0]?.handle, 'a-stale');
  });

  it('two instances on one address: the later is left out; a refused handle or address is left out', () => {
    const w = world([
      inst('a', '10.255.0.2'),
      inst('b', '10.255.0.2'),
      inst('c/d', '10.255.0.4'),
      inst('e', '::1'),
    ]);
    const { rs, conflicts } = compute(w);
    assert.deepEqual(
      rs.containers.map((c) => c.handle),
      ['a'],
    );
    assert.deepEqual(conflicts.map((c) => [c.handle, c.reason]).sort(), [
      ['b', 'address-conflict'],
      ['c/d', 'invalid-handle'],
      ['e', 'invalid-address'],
    ]);
    desiredState(rs);
  });
});

describe('agent: admission container by container', () => {
  const c = container;
  const rs = (containers: CellContainer[], extra: Partial<CellRuleSet> = {}): CellRuleSet =>
    ruleSetOf(containers, {
      version: 3,
      asgSets: {
        h: [],
        broken: [{ protocol: 'tcp', destinations: [], ports: [{ start: 9, end: 1 }], log: false }],
      },
      ...extra,
    });

  it('a valid rule set is admitted unchanged', () => {
    const set = rs([c('a', '10.255.0.2'), c('b', '10.255.0.3')]);
    const a = admitRuleSet(set);
    assert.equal(a.ruleSet, set);
    assert.deepEqual(a.refused, []);
  });

  it('each bad container is refused by itself; the rest renders', () => {
    const a = admitRuleSet(
      rs(
        [
          c('good', '10.255.0.2', { netIn: [{ hostPort: 61001, containerPort: 8080 }] }),
          c('evil";flush ruleset;"', '10.255.0.3'),
          c('x'.repeat(129), '10.255.0.4'),
          c('same-ip', '10.255.0.2'),
          c('port-taker', '10.255.0.5', { netIn: [{ hostPort: 61001, containerPort: 8080 }] }),
          c('no-asg', '10.255.0.6', { egress: 'missing' }),
          c('bad-asg', '10.255.0.7', { egress: 'broken' }),
          c('good', '10.255.0.8'),
        ],
        {
          c2c: [
            { srcTag: 5, dstIp: '10.255.0.2', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
            { srcTag: 5, dstIp: '10.255.0.2', protocol: 'tcp', ports: { start: 9000, end: 8000 } },
          ],
        },
      ),
    );
    assert.deepEqual(
      a.ruleSet.containers.map((x) => [x.handle, x.netIn.length]),
      [
        ['good', 1],
        ['port-taker', 0],
      ],
    );
    assert.deepEqual(
      a.refused.map((r) => r.handle),
      [
        'evil";flush ruleset;"',
        'x'.repeat(128),
        'same-ip',
        'port-taker',
        'no-asg',
        'bad-asg',
        'good',
        'c2c[1]',
      ],
    );
    assert.match(
      a.refused.find((r) => r.handle === 'port-taker')!.reason,
      /host port 61001 already mapped for good/,
    );
    assert.match(a.refused.at(-1)!.reason, /^c2c\[1\]\.ports/);
    assert.equal(a.ruleSet.c2c.length, 1);
    desiredState(a.ruleSet);
  });

  it('an invalid cell config refuses the whole rule set (nothing is per container about it)', () => {
    assert.throws(() =>
      admitRuleSet(rs([c('a', '10.255.0.2')], { config: { ...DEFAULT_CELL_CONFIG, overlayNetwork: 'x' } })),
    );
  });
});
