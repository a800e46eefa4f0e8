import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { applyPatch, diffRuleSets, sortRuleSet } from '../../src/model/ruleset.js';
import {
  type C2CPolicy,
  type CellConfig,
  type CellRuleSet,
  DEFAULT_CELL_CONFIG,
  type EgressRule,
  type SecurityGroup,
} from '../../src/model/types.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import { MissingSnapshotError } from '../../src/rules/errors.js';
import { type DesiredInfo, type InstanceInfo, snapshotOf, type TaskInfo } from '../../src/rules/records.js';
import { type Trigger, World } from '../../src/rules/world.js';

const T: Trigger = { kind: 'lrp', id: 'test', at: 1 };
const config: CellConfig = structuredClone(DEFAULT_CELL_CONFIG);

function rule(protocol: string, destination: string, ports?: string): EgressRule {
  const r: Record<string, unknown> = { protocol, destination };
  if (ports) r.ports = ports;
  if (protocol === 'icmp') Object.assign(r, { type: -1, code: -1 });
  return parseCapiRule(r);
}

const R_GLOBAL_RUN = rule('tcp', '10.0.0.0/8', '443');
const R_GLOBAL_STG = rule('tcp', '0.0.0.0/0', '80,443');
const R_SPACE_RUN = rule('udp', '8.8.8.8', '53');
const R_SPACE_STG = rule('tcp', '1.2.3.4', '8080');
const R_OTHER_SPACE = rule('all', '192.168.0.0/16');
const R_SNAPSHOT = rule('tcp', '172.16.0.1', '5432');

function sg(guid: string, rules: EgressRule[], o: Partial<SecurityGroup> = {}): SecurityGroup {
  return {
    guid,
    name: guid,
    rules,
    runningDefault: false,
    stagingDefault: false,
    runningSpaces: [],
    stagingSpaces: [],
    ...o,
  };
}

const GROUPS: SecurityGroup[] = [
  sg('g-run', [R_GLOBAL_RUN], { runningDefault: true }),
  sg('g-stg', [R_GLOBAL_STG], { stagingDefault: true }),
  sg('s-run', [R_SPACE_RUN], { runningSpaces: ['space-a'] }),
  sg('s-stg', [R_SPACE_STG], { stagingSpaces: ['space-a'] }),
  sg('s-b', [R_OTHER_SPACE], { runningSpaces: ['space-b'] }),
];

const runA = snapshotOf([R_GLOBAL_RUN, R_SPACE_RUN]);
const stgA = snapshotOf([R_GLOBAL_STG, R_SPACE_STG]);
const runB = snapshotOf([R_GLOBAL_RUN, R_OTHER_SPACE]);
const snap = snapshotOf([R_SNAPSHOT]);

function desired(pg: string, app: string, space: string, o: Partial<DesiredInfo> = {}): DesiredInfo {
  return {
    processGuid: pg,
    appGuid: app,
    spaceGuid: space,
    orgGuid: 'org-1',
    workload: 'app',
    snapshot: snap.hash,
    desiredAt: 0,
    ...o,
  };
}

function inst(
  handle: string,
  pg: string,
  cell: string,
  ip: string,
  o: Partial<InstanceInfo> = {},
): InstanceInfo {
  return { handle, processGuid: pg, index: 0, cellId: cell, state: 'RUNNING', ip, netIn: [], ...o };
}

function task(handle: string, app: string, space: string, cell: string, o: Partial<TaskInfo> = {}): TaskInfo {
  return {
    handle,
    cellId: cell,
    state: 'Running',
    appGuid: app,
    spaceGuid: space,
    orgGuid: 'org-1',
    workload: 'task',
    snapshot: snap.hash,
    desiredAt: 0,
    ...o,
  };
}

function expected(cellId: string, rs: Omit<CellRuleSet, 'cellId' | 'version' | 'config'>): CellRuleSet {
  return sortRuleSet({ cellId, version: 0, config, ...rs });
}

describe('computeCellRuleSet', () => {
  it('gives apps, tasks and staging their running/staging groups (global + space)', () => {
    const w = new World();
    w.upsertDesired(desired('pg-a', 'app-a', 'space-a'), snap, T);
    w.upsertInstance(inst('h-app', 'pg-a', 'cell-1', '10.255.1.2'), T);
    w.upsertTask(task('h-task', 'app-a', 'space-a', 'cell-1'), snap, T);
    w.upsertTask(task('h-stg', 'app-a', 'space-a', 'cell-1', { workload: 'staging' }), snap, T);
    w.setInventory('cell-1', [
      {
        handle: 'h-task',
        ip: '10.255.1.3',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org-1',
        workload: 'task',
      },
      {
        handle: 'h-stg',
        ip: '10.255.1.4',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org-1',
        workload: 'staging',
      },
    ]);
    w.setAsgs(GROUPS, 1000, T);
    const got = computeCellRuleSet(w, 'cell-1', config);
    const base = { appGuid: 'app-a', spaceGuid: 'space-a', orgGuid: 'org-1', tag: null, netIn: [] };
    assert.deepEqual(
      got,
      expected('cell-1', {
        containers: [
          { ...base, handle: 'h-app', ip: '10.255.1.2', workload: 'app', egress: runA.hash },
          { ...base, handle: 'h-task', ip: '10.255.1.3', workload: 'task', egress: runA.hash },
          { ...base, handle: 'h-stg', ip: '10.255.1.4', workload: 'staging', egress: stgA.hash },
        ],
        asgSets: { [runA.hash]: runA.rules, [stgA.hash]: stgA.rules },
        c2c: [],
      }),
    );
    // the app's running set is exactly global running + space running, normalised
    assert.deepEqual(got.asgSets[runA.hash], snapshotOf([R_SPACE_RUN, R_GLOBAL_RUN]).rules);
    assert.equal(got.asgSets[runA.hash]!.length, 2);
  });

  it('uses only global groups for a space without bound groups and shares sets between containers', () => {
    const w = new World();
    w.upsertDesired(desired('pg-b', 'app-b', 'space-b'), snap, T);
    w.upsertDesired(desired('pg-c', 'app-c', 'space-c'), snap, T);
    w.upsertInstance(inst('h-b1', 'pg-b', 'cell-1', '10.255.1.10'), T);
    w.upsertInstance(inst('h-b2', 'pg-b', 'cell-1', '10.255.1.11', { index: 1 }), T);
    w.upsertInstance(inst('h-c', 'pg-c', 'cell-1', '10.255.1.12'), T);
    w.setAsgs(GROUPS, 1000, T);
    const got = computeCellRuleSet(w, 'cell-1', config);
    const onlyGlobal = snapshotOf([R_GLOBAL_RUN]);
    assert.deepEqual(Object.keys(got.asgSets).sort(), [onlyGlobal.hash, runB.hash].sort());
    assert.deepEqual(
      got.containers.map((c) => [c.handle, c.egress]),
      [
        ['h-b1', runB.hash],
        ['h-b2', runB.hash],
        ['h-c', onlyGlobal.hash],
      ],
    );
  });

  it('prefers the BBS snapshot when it is newer than the CAPI listing, and CAPI state otherwise', () => {
    const w = new World();
    w.upsertDesired(desired('pg-a', 'app-a', 'space-a', { desiredAt: 500 }), snap, T);
    w.upsertInstance(inst('h', 'pg-a', 'cell-1', '10.255.1.2'), T);
    // no CAPI state yet: snapshot
    assert.deepEqual(computeCellRuleSet(w, 'cell-1', config).asgSets, { [snap.hash]: snap.rules });
    // CAPI listed before the desire: snapshot still wins
    w.setAsgs(GROUPS, 400, T);
    let got = computeCellRuleSet(w, 'cell-1', config);
    assert.equal(got.containers[0]!.egress, snap.hash);
    assert.deepEqual(got.asgSets, { [snap.hash]: snap.rules });
    // listed after the desire (content changed): CAPI wins
    w.setAsgs([...GROUPS, sg('g-new', [rule('icmp', '0.0.0.0/0')], { runningSpaces: ['space-z'] })], 600, T);
    got = computeCellRuleSet(w, 'cell-1', config);
    assert.equal(got.containers[0]!.egress, runA.hash);
    assert.deepEqual(got.asgSets, { [runA.hash]: runA.rules });
    // explicit modes
    assert.equal(
      computeCellRuleSet(w, 'cell-1', config, { egressSource: 'snapshot' }).containers[0]!.egress,
      snap.hash,
    );
  });

  it('emits c2c allows for local destinations in both directions, with tags', () => {
    const w = new World();
    w.upsertDesired(desired('pg-x', 'app-x', 'space-a'), snap, T);
    w.upsertDesired(desired('pg-y', 'app-y', 'space-a'), snap, T);
    w.upsertDesired(desired('pg-z', 'app-z', 'space-a'), snap, T);
    w.upsertInstance(inst('h-x', 'pg-x', 'cell-1', '10.255.1.5'), T);
    w.upsertInstance(inst('h-y', 'pg-y', 'cell-1', '10.255.1.6'), T);
    w.upsertInstance(inst('h-y2', 'pg-y', 'cell-2', '10.255.2.6', { index: 1 }), T);
    w.upsertInstance(inst('h-z', 'pg-z', 'cell-1', '10.255.1.7'), T);
    const policies: C2CPolicy[] = [
      {
        source: { appGuid: 'app-x', tag: 1 },
        destination: { appGuid: 'app-y', tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      },
      {
        source: { appGuid: 'app-y', tag: 2 },
        destination: { appGuid: 'app-x', tag: 1, protocol: 'udp', ports: { start: 9000, end: 9010 } },
      },
      {
        source: { appGuid: 'app-w', tag: 4 },
        destination: { appGuid: 'app-y', tag: 2, protocol: 'tcp', ports: { start: 443, end: 443 } },
      },
    ];
    w.setPolicies(policies, T);
    const got = computeCellRuleSet(w, 'cell-1', config);
    assert.deepEqual(
      got.containers.map((c) => [c.handle, c.tag]),
      [
        ['h-x', 1],
        ['h-y', 2],
        ['h-z', null],
      ],
    );
    assert.deepEqual(got.c2c, [
      { srcTag: 1, dstIp: '10.255.1.6', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      { srcTag: 2, dstIp: '10.255.1.5', protocol: 'udp', ports: { start: 9000, end: 9010 } },
      { srcTag: 4, dstIp: '10.255.1.6', protocol: 'tcp', ports: { start: 443, end: 443 } },
    ]);
    // the other cell holds only the allows for its own y instance
    assert.deepEqual(computeCellRuleSet(w, 'cell-2', config).c2c, [
      { srcTag: 1, dstIp: '10.255.2.6', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      { srcTag: 4, dstIp: '10.255.2.6', protocol: 'tcp', ports: { start: 443, end: 443 } },
    ]);
  });

  it('ships every cell the tag table of all policy sources, and only of sources, as one shared table; only sources are marked', () => {
    const w = new World();
    w.upsertDesired(desired('pg-y', 'app-y', 'space-a'), snap, T);
    w.upsertInstance(inst('h-y', 'pg-y', 'cell-1', '10.255.1.6'), T);
    const policies: C2CPolicy[] = [
      {
        source: { appGuid: 'app-x', tag: 1 },
        destination: { appGuid: 'app-y', tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      },
      {
        source: { appGuid: 'app-w', tag: 4 },
        destination: { appGuid: 'app-y', tag: 2, protocol: 'tcp', ports: { start: 443, end: 443 } },
      },
    ];
    w.setPolicies(policies, T);
    const one = computeCellRuleSet(w, 'cell-1', config);
    // app-x and app-w run nowhere yet: their instances or tasks may start on any cell; app-y is a
    // destination only, so its packets need no tag
    assert.deepEqual(one.tags, { 'app-w': 4, 'app-x': 1 });
    // and a container is marked only when its app is a source: app-y's packets match no c2c entry
    assert.deepEqual(
      one.containers.map((c) => [c.handle, c.tag]),
      [['h-y', null]],
    );
    // a cell with no container at all still gets it, and every cell shares the one object
    const empty = computeCellRuleSet(w, 'cell-9', config);
    assert.equal(empty.tags, one.tags);
    assert.deepEqual(empty.containers, []);
  });

  it('changing one source tag makes a patch of that tag alone; no policy source means no table', () => {
    const pol = (tag: number): C2CPolicy => ({
      source: { appGuid: 'app-x', tag },
      destination: { appGuid: 'app-y', tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
    });
    const others: C2CPolicy[] = Array.from({ length: 50 }, (_, i) => ({
      source: { appGuid: `app-s${i}`, tag: 100 + i },
      destination: { appGuid: 'app-y', tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
    }));
    const w = new World();
    w.setPolicies([pol(1), ...others], T);
    const before = { ...computeCellRuleSet(w, 'cell-1', config), version: 1 };
    w.setPolicies([pol(7), ...others], T);
    const after = { ...computeCellRuleSet(w, 'cell-1', config), version: 2 };
    const patch = diffRuleSets(before, after);
    assert.deepEqual(patch.tags, { upsert: { 'app-x': 7 }, remove: [] });
    assert.deepEqual(applyPatch(before, patch), after);
    w.setPolicies([], T);
    assert.equal(computeCellRuleSet(w, 'cell-1', config).tags, undefined);
  });

  it('carries NetIn mappings and drops inactive or address-less containers', () => {
    const w = new World();
    w.upsertDesired(desired('pg-a', 'app-a', 'space-a'), snap, T);
    w.upsertInstance(
      inst('h-1', 'pg-a', 'cell-1', '10.255.1.2', {
        netIn: [
          { hostPort: 61002, containerPort: 61001 },
          { hostPort: 61001, containerPort: 8080 },
        ],
      }),
      T,
    );
    w.upsertInstance(inst('h-crashed', 'pg-a', 'cell-1', '10.255.1.3', { index: 1, state: 'CRASHED' }), T);
    w.upsertInstance(inst('h-claimed', 'pg-a', 'cell-1', '', { index: 2, state: 'CLAIMED' }), T);
    w.upsertTask(task('h-done', 'app-a', 'space-a', 'cell-1', { state: 'Completed' }), snap, T);
    // the agent still reports the crashed and completed containers: BBS says they are gone
    w.setInventory('cell-1', [
      {
        handle: 'h-crashed',
        ip: '10.255.1.3',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org-1',
        workload: 'app',
      },
      {
        handle: 'h-done',
        ip: '10.255.1.9',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org-1',
        workload: 'task',
      },
    ]);
    const got = computeCellRuleSet(w, 'cell-1', config);
    assert.deepEqual(
      got.containers.map((c) => [c.handle, c.netIn]),
      [
        [
          'h-1',
          [
            { hostPort: 61001, containerPort: 8080 },
            { hostPort: 61002, containerPort: 61001 },
          ],
        ],
      ],
    );
    // once the agent reports the claimed container's IP it is in
    w.setInventory('cell-1', [
      {
        handle: 'h-claimed',
        ip: '10.255.1.4',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org-1',
        workload: 'app',
      },
    ]);
    assert.deepEqual(
      computeCellRuleSet(w, 'cell-1', config).containers.map((c) => [c.handle, c.ip]),
      [
        ['h-1', '10.255.1.2'],
        ['h-claimed', '10.255.1.4'],
      ],
    );
  });

  it('keeps agent metadata for containers BBS does not know', () => {
    const w = new World();
    w.setAsgs(GROUPS, 1000, T);
    w.setInventory('cell-3', [
      {
        handle: 'ghost',
        ip: '10.255.3.9',
        appGuid: 'app-q',
        spaceGuid: 'space-a',
        orgGuid: 'o',
        workload: 'staging',
      },
    ]);
    assert.deepEqual(
      computeCellRuleSet(w, 'cell-3', config),
      expected('cell-3', {
        containers: [
          {
            handle: 'ghost',
            ip: '10.255.3.9',
            appGuid: 'app-q',
            spaceGuid: 'space-a',
            orgGuid: 'o',
            workload: 'staging',
            tag: null,
            egress: stgA.hash,
            netIn: [],
          },
        ],
        asgSets: { [stgA.hash]: stgA.rules },
        c2c: [],
      }),
    );
  });

  it('moves a container between cells', () => {
    const w = new World();
    w.upsertDesired(desired('pg-a', 'app-a', 'space-a'), snap, T);
    w.upsertInstance(inst('h', 'pg-a', 'cell-1', '10.255.1.2'), T);
    w.takeChanges();
    w.upsertInstance(inst('h', 'pg-a', 'cell-2', '10.255.2.2'), T);
    const ch = w.takeChanges();
    assert.deepEqual([...ch.cells.keys()].sort(), ['cell-1', 'cell-2']);
    assert.equal(ch.records.get('cell-1')!.get('h'), null);
    assert.equal(computeCellRuleSet(w, 'cell-1', config).containers.length, 0);
    assert.deepEqual(
      computeCellRuleSet(w, 'cell-2', config).containers.map((c) => c.ip),
      ['10.255.2.2'],
    );
  });

  it('refuses to compute with a dangling snapshot reference', () => {
    const w = new World();
    w.upsertDesired(desired('pg-a', 'app-a', 'space-a'), snap, T);
    w.upsertInstance(inst('h', 'pg-a', 'cell-1', '10.255.1.2'), T);
    const view = {
      ...w,
      cellRecords: (c: string) => w.cellRecords(c),
      cellInventory: (c: string) => w.cellInventory(c),
      snapshotRules: () => undefined,
      asgs: () => null,
      policies: () => w.policies(),
    };
    assert.throws(() => computeCellRuleSet(view, 'cell-1', config), MissingSnapshotError);
  });

  it('uses the cell config as given', () => {
    const w = new World();
    const cfg: CellConfig = { ...config, dnsServers: ['10.0.0.2'] };
    assert.deepEqual(computeCellRuleSet(w, 'cell-9', cfg), {
      cellId: 'cell-9',
      version: 0,
      containers: [],
      asgSets: {},
      c2c: [],
      config: cfg,
    });
  });
});
