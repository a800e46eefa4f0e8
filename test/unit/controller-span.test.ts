import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { type C2CPolicy, DEFAULT_CELL_CONFIG, type SecurityGroup } from '../../src/model/types.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import { AsgIndex } from '../../src/rules/indexes.js';
import { type DesiredInfo, snapshotOf, type TaskInfo } from '../../src/rules/records.js';
import { diffAsgs } from '../../src/rules/span.js';
import { StaticView } from '../../src/rules/view.js';
import { type Trigger, World } from '../../src/rules/world.js';

const T: Trigger = { kind: 'asg', id: 't', at: 1 };
const r1 = parseCapiRule({ protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' });
const r2 = parseCapiRule({ protocol: 'udp', destination: '8.8.8.8', ports: '53' });
const snap = snapshotOf([r1]);

function sg(guid: string, o: Partial<SecurityGroup> = {}): SecurityGroup {
  return {
    guid,
    name: guid,
    rules: [r1],
    runningDefault: false,
    stagingDefault: false,
    runningSpaces: [],
    stagingSpaces: [],
    ...o,
  };
}

function pol(src: string, st: number, dst: string, dt: number, port = 8080): C2CPolicy {
  return {
    source: { appGuid: src, tag: st },
    destination: { appGuid: dst, tag: dt, protocol: 'tcp', ports: { start: port, end: port } },
  };
}

/**
 * cell-1: app-a (space-a), app-b (space-b)
 * cell-2: app-a (space-a), task of app-c (space-c)
 * cell-3: app-b (space-b)
 * cell-4: agent-only container of app-d (space-d)
 */
function world(): World {
  const w = new World();
  const d = (pg: string, app: string, space: string, at = 0): DesiredInfo => ({
    processGuid: pg,
    appGuid: app,
    spaceGuid: space,
    orgGuid: 'o',
    workload: 'app',
    snapshot: snap.hash,
    desiredAt: at,
  });
  w.upsertDesired(d('pg-a', 'app-a', 'space-a'), snap, T);
  w.upsertDesired(d('pg-b', 'app-b', 'space-b'), snap, T);
  const i = (h: string, pg: string, cell: string, index: number) =>
    w.upsertInstance(
      {
        handle: h,
        processGuid: pg,
        index,
        cellId: cell,
        state: 'RUNNING',
        ip: `10.255.0.${index + 2}`,
        netIn: [],
      },
      T,
    );
  i('a0', 'pg-a', 'cell-1', 0);
  i('a1', 'pg-a', 'cell-2', 1);
  i('b0', 'pg-b', 'cell-1', 0);
  i('b1', 'pg-b', 'cell-3', 1);
  w.upsertTask(
    {
      handle: 't-c',
      cellId: 'cell-2',
      state: 'Running',
      appGuid: 'app-c',
      spaceGuid: 'space-c',
      orgGuid: 'o',
      workload: 'task',
      snapshot: snap.hash,
      desiredAt: 0,
    },
    snap,
    T,
  );
  w.setInventory('cell-4', [
    {
      handle: 'ghost',
      ip: '10.255.4.2',
      appGuid: 'app-d',
      spaceGuid: 'space-d',
      orgGuid: 'o',
      workload: 'app',
    },
  ]);
  w.setAsgs(
    [
      sg('glob', { runningDefault: true }),
      sg('sa', { runningSpaces: ['space-a'] }),
      sg('sb', { stagingSpaces: ['space-b'] }),
    ],
    100,
    T,
  );
  w.setPolicies([pol('app-a', 1, 'app-b', 2)], T);
  w.takeChanges();
  return w;
}

function cellsAfter(w: World, fn: (w: World) => unknown): string[] {
  fn(w);
  return [...w.takeChanges().cells.keys()].sort();
}

const BASE = [
  sg('glob', { runningDefault: true }),
  sg('sa', { runningSpaces: ['space-a'] }),
  sg('sb', { stagingSpaces: ['space-b'] }),
];

describe('span: security groups', () => {
  it('the first listing touches every cell (agent-only ones included)', () => {
    const w = new World();
    w.setInventory('cell-9', [
      { handle: 'x', ip: '10.255.9.2', appGuid: 'a', spaceGuid: 's', orgGuid: 'o', workload: 'app' },
    ]);
    assert.deepEqual(
      cellsAfter(w, (x) => x.setAsgs(BASE, 1, T)),
      ['cell-9'],
    );
    assert.deepEqual(cellsAfter(world(), (x) => x.setAsgs([], 200, T)).length, 4);
  });

  it('binding a group to a space touches only that space’s cells', () => {
    const next = [...BASE.slice(0, 2), sg('sb', { stagingSpaces: ['space-b'], runningSpaces: ['space-c'] })];
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setAsgs(next, 200, T)),
      ['cell-2'],
    );
  });

  it('changing a space group’s rules touches the cells of every space it is bound to, old and new', () => {
    const next = [BASE[0]!, sg('sa', { rules: [r2], runningSpaces: ['space-d'] }), BASE[2]!];
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setAsgs(next, 200, T)),
      ['cell-1', 'cell-2', 'cell-4'],
    );
  });

  it('unbinding touches the unbound space; staging bindings count too', () => {
    const next = [BASE[0]!, BASE[1]!, sg('sb')];
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setAsgs(next, 200, T)),
      ['cell-1', 'cell-3'],
    );
  });

  it('a global group change touches every cell; deleting a global group too', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) =>
        w.setAsgs([sg('glob', { runningDefault: true, rules: [r2] }), BASE[1]!, BASE[2]!], 200, T),
      ),
      ['cell-1', 'cell-2', 'cell-3', 'cell-4'],
    );
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setAsgs(BASE.slice(1), 200, T)),
      ['cell-1', 'cell-2', 'cell-3', 'cell-4'],
    );
    assert.deepEqual(
      cellsAfter(world(), (w) =>
        w.setAsgs(
          [BASE[0]!, sg('sa', { runningSpaces: ['space-a'], stagingDefault: true }), BASE[2]!],
          200,
          T,
        ),
      ),
      ['cell-1', 'cell-2', 'cell-3', 'cell-4'],
    );
  });

  it('a renamed group or an identical listing touches nothing', () => {
    const w = world();
    assert.deepEqual(
      cellsAfter(w, (x) => x.setAsgs([{ ...BASE[0]!, name: 'renamed' }, BASE[2]!, BASE[1]!], 200, T)),
      [],
    );
    assert.equal(w.asgs()!.stateAt, 200, 'an identical listing confirms the state at its time');
  });

  it('a new group bound to an unknown space touches nothing', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setAsgs([...BASE, sg('new', { runningSpaces: ['space-zz'] })], 200, T)),
      [],
    );
  });

  it('containers desired after the previous listing switch to CAPI state: their cells are touched', () => {
    const w = world();
    w.upsertDesired(
      {
        processGuid: 'pg-a',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'o',
        workload: 'app',
        snapshot: snapshotOf([r2]).hash,
        desiredAt: 150,
      },
      snapshotOf([r2]),
      T,
    );
    w.takeChanges();
    assert.deepEqual(
      cellsAfter(w, (x) => x.setAsgs([...BASE, sg('new', { runningSpaces: ['space-zz'] })], 200, T)),
      ['cell-1', 'cell-2'],
    );
  });

  it('a check confirming the groups switches containers desired since the last state time', () => {
    const w = world();
    const s2 = snapshotOf([r2]);
    w.upsertDesired(
      {
        processGuid: 'pg-b',
        appGuid: 'app-b',
        spaceGuid: 'space-b',
        orgGuid: 'o',
        workload: 'app',
        snapshot: s2.hash,
        desiredAt: 150,
      },
      s2,
      T,
    );
    w.takeChanges();
    assert.equal(w.confirmAsgs(120, T), 0, 'desired after the check: keeps its snapshot');
    assert.equal(w.asgs()!.stateAt, 120);
    w.takeChanges();
    assert.equal(w.confirmAsgs(200, T), 2);
    const ch = w.takeChanges();
    assert.deepEqual([...ch.cells.keys()].sort(), ['cell-1', 'cell-3']);
    assert.equal(ch.asgStateAt, 200);
    assert.equal(ch.asg, undefined, 'groups unchanged: only the state time is written');
    assert.equal(w.confirmAsgs(300, T), 0, 'nothing left to switch');
    assert.equal(w.takeChanges().asgStateAt, 300, 'the state time is written even when no cell switches');
    assert.equal(w.confirmAsgs(300, T), 0);
    assert.equal(w.takeChanges().asgStateAt, undefined, 'an unchanged state time is not written again');
  });

  it('a container placed after a check that switched nothing: workers decide as the leader does', () => {
    // Regression (CI flake): the leader moved its state time on a check that touched no cell but did
    // not write it; a container whose desire the leader saw before that check but whose instance it
    // placed after was then computed by workers from the older stored state time (its BBS snapshot)
    // while the leader held it as switched, so no later check touched its cell again.
    const w = world();
    let stored = w.asgs()!.stateAt;
    const persist = () => {
      const ch = w.takeChanges();
      stored = ch.asg?.stateAt ?? ch.asgStateAt ?? stored;
      return ch;
    };
    const s2 = snapshotOf([r2]);
    w.upsertDesired(
      {
        processGuid: 'pg-new',
        appGuid: 'app-new',
        spaceGuid: 'space-a',
        orgGuid: 'o',
        workload: 'app',
        snapshot: s2.hash,
        desiredAt: 150,
      },
      s2,
      T,
    );
    persist();
    assert.equal(w.confirmAsgs(200, T), 0, 'no instance yet: no cell to switch');
    persist();
    w.upsertInstance(
      {
        handle: 'n0',
        processGuid: 'pg-new',
        index: 0,
        cellId: 'cell-3',
        state: 'RUNNING',
        ip: '10.255.3.9',
        netIn: [],
      },
      T,
    );
    assert.deepEqual([...persist().cells.keys()], ['cell-3']);
    // what a worker computes from the stored world vs what the leader's world says
    const records = new Map([['cell-3', [...w.cellRecords('cell-3')]]]);
    const snaps = new Map([...w.allSnapshots()]);
    const view = new StaticView(records, new Map(), snaps, w.asgs()!.withStateAt(stored), w.policies());
    const worker = computeCellRuleSet(view, 'cell-3', DEFAULT_CELL_CONFIG);
    const leader = computeCellRuleSet(w, 'cell-3', DEFAULT_CELL_CONFIG);
    assert.deepEqual(worker, leader);
    assert.equal(stored, 200);
    const egress = worker.containers.find((c) => c.handle === 'n0')!.egress;
    assert.notEqual(egress, s2.hash, 'desired before the confirmed state time: CAPI state, not the snapshot');
  });

  it('diffAsgs reports the changed groups', () => {
    const a = new AsgIndex(BASE, 1);
    const b = new AsgIndex([BASE[0]!, sg('sa', { runningSpaces: ['space-a', 'space-x'] })], 2);
    const d = diffAsgs(a, b);
    assert.deepEqual(d.changedGroups, ['sa', 'sb']);
    assert.deepEqual([...d.spaces].sort(), ['space-b', 'space-x']);
    assert.equal(d.all, false);
  });
});

describe('span: policies', () => {
  it('a new policy touches the destination’s cells; every cell when its source is a new policy source', () => {
    // app-b becomes a source: every cell's tag table gains it (an instance of app-b may start anywhere)
    assert.deepEqual(
      cellsAfter(world(), (w) =>
        w.setPolicies([pol('app-a', 1, 'app-b', 2), pol('app-b', 2, 'app-a', 1, 9000)], T),
      ),
      ['cell-1', 'cell-2', 'cell-3', 'cell-4'],
    );
    // app-a is a source already: only the cells running the destination app-b (cell-1, cell-3)
    assert.deepEqual(
      cellsAfter(world(), (w) =>
        w.setPolicies([pol('app-a', 1, 'app-b', 2), pol('app-a', 1, 'app-b', 2, 9000)], T),
      ),
      ['cell-1', 'cell-3'],
    );
  });

  it('a new policy source puts the cells enforcing the policy first in queue order', () => {
    const w = world();
    w.setPolicies([pol('app-a', 1, 'app-b', 2), pol('app-c', 3, 'app-b', 2, 9000)], T);
    const order = [...w.takeChanges().cells.keys()];
    // app-b runs on cell-1 and cell-3 (the new allow entries), app-c on cell-2 (its new tag)
    assert.deepEqual(order.slice(0, 3).sort(), ['cell-1', 'cell-2', 'cell-3']);
    assert.deepEqual(order.slice(3), ['cell-4']);
  });

  it('removing the last policy touches every cell (its source leaves the tag table)', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setPolicies([], T)),
      ['cell-1', 'cell-2', 'cell-3', 'cell-4'],
    );
  });

  it('a port change touches only the destination cells; an identical list nothing', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setPolicies([pol('app-a', 1, 'app-b', 2, 9999)], T)),
      ['cell-1', 'cell-3'],
    );
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setPolicies([pol('app-a', 1, 'app-b', 2)], T)),
      [],
    );
  });

  it('a tag change of a source touches every cell (the tag table changes)', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setPolicies([pol('app-a', 7, 'app-b', 2)], T)),
      ['cell-1', 'cell-2', 'cell-3', 'cell-4'],
    );
  });

  it('a tag change of a destination-only app touches its cells only', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) => w.setPolicies([pol('app-a', 1, 'app-b', 8)], T)),
      ['cell-1', 'cell-3'],
    );
  });

  it('an agent-only destination is found through the inventory index', () => {
    assert.deepEqual(
      cellsAfter(world(), (w) =>
        w.setPolicies([pol('app-a', 1, 'app-b', 2), pol('app-a', 1, 'app-d', 5)], T),
      ),
      ['cell-4'],
    );
  });
});

describe('span: BBS changes', () => {
  it('a desired LRP change that affects rules touches the cells running it; one that does not, nothing', () => {
    const w = world();
    const base: DesiredInfo = {
      processGuid: 'pg-a',
      appGuid: 'app-a',
      spaceGuid: 'space-a',
      orgGuid: 'o',
      workload: 'app',
      snapshot: snap.hash,
      desiredAt: 0,
    };
    assert.deepEqual(
      cellsAfter(w, (x) => x.upsertDesired({ ...base, desiredAt: 99 }, snap, T)),
      [],
    );
    assert.deepEqual(
      cellsAfter(w, (x) => x.upsertDesired({ ...base, spaceGuid: 'space-q' }, snap, T)),
      ['cell-1', 'cell-2'],
    );
    assert.deepEqual([...w.cellsOfSpace('space-q')].sort(), ['cell-1', 'cell-2']);
    assert.deepEqual([...w.cellsOfSpace('space-a')], []);
  });

  it('an instance event touches its own cell; crashing removes it from the app index', () => {
    const w = world();
    assert.deepEqual(
      cellsAfter(w, (x) =>
        x.upsertInstance(
          {
            handle: 'b1',
            processGuid: 'pg-b',
            index: 1,
            cellId: 'cell-3',
            state: 'CRASHED',
            ip: '10.255.0.3',
            netIn: [],
          },
          T,
        ),
      ),
      ['cell-3'],
    );
    assert.deepEqual([...w.cellsOfApp('app-b')], ['cell-1']);
    assert.deepEqual(
      cellsAfter(w, (x) => x.removeInstance('a0', T)),
      ['cell-1'],
    );
    assert.deepEqual(
      cellsAfter(w, (x) => x.removeInstance('nope', T)),
      [],
    );
  });

  it('a listing applied in event-loop turns ends exactly as one applied at once', async () => {
    const listingOf = (w: World) => ({
      desired: [
        ...['pg-a'].map((pg) => ({ info: w.desiredInfo(pg)!, snapshot: snap })),
        {
          info: { ...w.desiredInfo('pg-b')!, processGuid: 'pg-z', appGuid: 'app-z' },
          snapshot: snap,
        },
      ],
      instances: [
        ...[...w.handles()].filter((h) => h !== 'b1').map((h) => w.instance(h)!),
        {
          handle: 'z0',
          processGuid: 'pg-z',
          index: 0,
          cellId: 'cell-3',
          state: 'RUNNING',
          ip: '10.255.0.9',
          netIn: [],
        },
      ],
      tasks: [] as Array<{ info: TaskInfo; snapshot: typeof snap }>,
    });
    const once = world();
    once.replaceBbs(listingOf(once), T);
    const turns = world();
    await turns.replaceBbsInTurns(listingOf(turns), T, 1);
    assert.deepEqual([...turns.allRecords()], [...once.allRecords()]);
    assert.deepEqual(turns.counts, once.counts);
    const a = once.takeChanges();
    const b = turns.takeChanges();
    assert.deepEqual([...b.cells.keys()].sort(), [...a.cells.keys()].sort());
    assert.deepEqual([...a.cells.keys()].sort(), ['cell-2', 'cell-3'], 'b1 and the task gone, z0 new');
    assert.deepEqual([...turns.cellsOfApp('app-z')], ['cell-3']);
  });

  it('a task event touches its cell; a re-list with the same content touches nothing', () => {
    const w = world();
    assert.deepEqual(
      cellsAfter(w, (x) => x.removeTask('t-c', T)),
      ['cell-2'],
    );
    const w2 = world();
    const listing = {
      desired: ['pg-a', 'pg-b'].map((pg) => ({ info: w2.desiredInfo(pg)!, snapshot: snap })),
      instances: [...w2.handles()].map((h) => w2.instance(h)!),
      tasks: [{ info: w2.task('t-c')!, snapshot: snap }],
    };
    assert.deepEqual(
      cellsAfter(w2, (x) => x.replaceBbs(listing, T)),
      [],
    );
    listing.instances = listing.instances.filter((i) => i.handle !== 'b1');
    assert.deepEqual(
      cellsAfter(w2, (x) => x.replaceBbs(listing, T)),
      ['cell-3'],
    );
  });

  it('removing a desired LRP keeps its identity for instances still running', () => {
    const w = world();
    assert.deepEqual(
      cellsAfter(w, (x) => x.removeDesired('pg-a', T)),
      [],
    );
    assert.equal(
      w.cellRecords('cell-1') && [...w.cellRecords('cell-1')].find((r) => r.handle === 'a0')!.appGuid,
      'app-a',
    );
    w.removeInstance('a0', T);
    w.removeInstance('a1', T);
    assert.equal(w.desiredInfo('pg-a'), undefined);
    assert.equal(w.snapshotRules(snap.hash) !== undefined, true, 'still referenced by pg-b and the task');
  });

  it('snapshots are written when first referenced and deleted when no longer referenced', () => {
    const w = new World();
    const s2 = snapshotOf([r2]);
    const d: DesiredInfo = {
      processGuid: 'p',
      appGuid: 'a',
      spaceGuid: 's',
      orgGuid: 'o',
      workload: 'app',
      snapshot: s2.hash,
      desiredAt: 0,
    };
    w.upsertDesired(d, s2, T);
    assert.deepEqual([...w.takeChanges().snapshots.keys()], [s2.hash]);
    w.upsertDesired({ ...d, snapshot: snap.hash }, snap, T);
    const ch = w.takeChanges();
    assert.equal(ch.snapshots.get(s2.hash), null);
    assert.deepEqual(ch.snapshots.get(snap.hash), snap.rules);
  });
});
