/**
 * Static ASGs (`dynamicAsgs: false`, CF's `dynamic_asgs_enabled: false`): a container's egress is
 * the `egress_rules` snapshot BBS holds for its desired LRP or task, compiled by Cloud Controller at
 * desire time. A security-group change alone changes no cell; a restart (a new desired LRP, a new
 * task) brings the rules of its own desire time. Identical snapshots share one rule set.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseControllerSettings, toControllerConfig } from '../../src/controller/settings.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { type CellConfig, DEFAULT_CELL_CONFIG, type SecurityGroup } from '../../src/model/types.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import {
  type DesiredInfo,
  type EgressSnapshot,
  type InstanceInfo,
  snapshotOf,
  type TaskInfo,
} from '../../src/rules/records.js';
import { type Trigger, World } from '../../src/rules/world.js';

const T: Trigger = { kind: 'lrp', id: 'test', at: 1 };
const config: CellConfig = structuredClone(DEFAULT_CELL_CONFIG);
const STATIC = { egressSource: 'static' } as const;

const R_OLD = parseCapiRule({ protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' });
const R_NEW = parseCapiRule({ protocol: 'udp', destination: '8.8.8.8', ports: '53' });
/** What CC compiled at the first desire (before the bind) and after the bind. */
const BEFORE = snapshotOf([R_OLD]);
const AFTER = snapshotOf([R_OLD, R_NEW]);

function groups(boundToA: boolean): SecurityGroup[] {
  return [
    {
      guid: 'g-global',
      name: 'global',
      rules: [R_OLD],
      runningDefault: true,
      stagingDefault: true,
      runningSpaces: [],
      stagingSpaces: [],
    },
    {
      guid: 'g-bound',
      name: 'bound',
      rules: [R_NEW],
      runningDefault: false,
      stagingDefault: false,
      runningSpaces: boundToA ? ['space-a'] : [],
      stagingSpaces: boundToA ? ['space-a'] : [],
    },
  ];
}

function desired(pg: string, app: string, s: EgressSnapshot, desiredAt: number): DesiredInfo {
  return {
    processGuid: pg,
    appGuid: app,
    spaceGuid: 'space-a',
    orgGuid: 'org',
    workload: 'app',
    snapshot: s.hash,
    desiredAt,
  };
}

function inst(handle: string, pg: string, ip: string, index = 0): InstanceInfo {
  return { handle, processGuid: pg, index, cellId: 'cell-1', state: 'RUNNING', ip, netIn: [] };
}

function task(handle: string, s: EgressSnapshot, workload: 'task' | 'staging', desiredAt: number): TaskInfo {
  return {
    handle,
    cellId: 'cell-1',
    state: 'Running',
    appGuid: 'app-a',
    spaceGuid: 'space-a',
    orgGuid: 'org',
    workload,
    snapshot: s.hash,
    desiredAt,
  };
}

const egressOf = (w: World, handle: string) =>
  computeCellRuleSet(w, 'cell-1', config, STATIC).containers.find((c) => c.handle === handle)?.egress;

/** A cell with an app instance, a task and a staging task, all desired before the bind. */
function cell(): World {
  const w = new World();
  w.setAsgs(groups(false), 50, T);
  w.upsertDesired(desired('pg-a', 'app-a', BEFORE, 100), BEFORE, T);
  w.upsertInstance(inst('h-app', 'pg-a', '10.255.1.2'), T);
  w.upsertTask(task('h-task', BEFORE, 'task', 100), BEFORE, T);
  w.upsertTask(task('h-stg', BEFORE, 'staging', 100), BEFORE, T);
  w.setInventory('cell-1', [
    {
      handle: 'h-task',
      ip: '10.255.1.3',
      appGuid: 'app-a',
      spaceGuid: 'space-a',
      orgGuid: 'org',
      workload: 'task',
    },
    {
      handle: 'h-stg',
      ip: '10.255.1.4',
      appGuid: 'app-a',
      spaceGuid: 'space-a',
      orgGuid: 'org',
      workload: 'staging',
    },
  ]);
  return w;
}

describe('static ASGs (dynamicAsgs: false)', () => {
  it('a security-group change alone changes no rule set, while the dynamic mode follows it', () => {
    const w = cell();
    const before = computeCellRuleSet(w, 'cell-1', config, STATIC);
    w.setAsgs(groups(true), 1_000, T); // bind g-bound to space-a, listed after every desire
    assert.deepEqual(computeCellRuleSet(w, 'cell-1', config, STATIC), before, 'static: nothing moved');
    for (const h of ['h-app', 'h-task', 'h-stg']) assert.equal(egressOf(w, h), BEFORE.hash, h);
    const dynamic = computeCellRuleSet(w, 'cell-1', config);
    assert.notDeepEqual(dynamic.asgSets, before.asgSets, 'dynamic: the bind is in force');
  });

  it('a restart (a new desired LRP with a new snapshot) brings the rules compiled at its desire time', () => {
    const w = cell();
    w.setAsgs(groups(true), 1_000, T);
    // CC's restart: the new process version is a new desired LRP, its instances new containers
    w.upsertDesired(desired('pg-a2', 'app-a', AFTER, 2_000), AFTER, T);
    w.upsertInstance(inst('h-app2', 'pg-a2', '10.255.1.5'), T);
    w.removeInstance('h-app', T);
    w.removeDesired('pg-a', T);
    assert.equal(egressOf(w, 'h-app2'), AFTER.hash);
    assert.equal(egressOf(w, 'h-app'), undefined, 'the old container is gone');
    // tasks and staging keep what they were desired with; a new task brings its own snapshot
    assert.equal(egressOf(w, 'h-task'), BEFORE.hash);
    w.upsertTask(task('h-task2', AFTER, 'task', 2_100), AFTER, T);
    w.setInventory('cell-1', [
      {
        handle: 'h-task2',
        ip: '10.255.1.6',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org',
        workload: 'task',
      },
    ]);
    assert.equal(egressOf(w, 'h-task2'), AFTER.hash);
  });

  it('a crashed instance restarted by Diego keeps its desired LRP’s snapshot', () => {
    const w = cell();
    w.setAsgs(groups(true), 1_000, T);
    w.removeInstance('h-app', T);
    w.upsertInstance(inst('h-app-again', 'pg-a', '10.255.1.7'), T);
    assert.equal(egressOf(w, 'h-app-again'), BEFORE.hash, 'same desired LRP: same snapshot');
  });

  it('follows BBS when a desired LRP’s own egress_rules change (BBS’s update API cannot do that)', () => {
    const w = cell();
    w.upsertDesired(desired('pg-a', 'app-a', AFTER, 3_000), AFTER, T);
    assert.equal(egressOf(w, 'h-app'), AFTER.hash);
  });

  it('shares one rule set among containers with identical snapshots', () => {
    const w = cell();
    w.upsertDesired(desired('pg-b', 'app-b', BEFORE, 100), BEFORE, T);
    w.upsertInstance(inst('h-b', 'pg-b', '10.255.1.8'), T);
    const rs = computeCellRuleSet(w, 'cell-1', config, STATIC);
    assert.deepEqual(Object.keys(rs.asgSets), [BEFORE.hash]);
    assert.equal(rs.containers.length, 4);
  });

  it('gives a container BBS does not know no ASG rules, whatever Cloud Controller says', () => {
    const w = cell();
    w.setAsgs(groups(true), 1_000, T);
    w.setInventory('cell-1', [
      {
        handle: 'h-stray',
        ip: '10.255.1.9',
        appGuid: 'app-a',
        spaceGuid: 'space-a',
        orgGuid: 'org',
        workload: 'app',
      },
    ]);
    const rs = computeCellRuleSet(w, 'cell-1', config, STATIC);
    const stray = rs.containers.find((c) => c.handle === 'h-stray')!;
    assert.deepEqual(rs.asgSets[stray.egress], []);
    assert.notDeepEqual(computeCellRuleSet(w, 'cell-1', config).asgSets[stray.egress], []);
  });

  it('is the setting dynamicAsgs=false: static compute and no Cloud Controller polling', () => {
    const flags = {
      campaign: 'false',
      apiListen: 'off',
      capiUrl: 'https://api.example.com',
      uaaUrl: 'https://uaa.example.com',
      uaaClientId: 'network-policy',
      uaaClientSecret: 'secret-secret-secret',
    };
    const dyn = toControllerConfig(parseControllerSettings({ flags }));
    assert.equal(dyn.compute, undefined);
    assert.ok(dyn.capi);
    const stat = toControllerConfig(parseControllerSettings({ flags, env: { CFNET_DYNAMIC_ASGS: 'false' } }));
    assert.deepEqual(stat.compute, { egressSource: 'static' });
    assert.equal(stat.capi, undefined);
  });
});
