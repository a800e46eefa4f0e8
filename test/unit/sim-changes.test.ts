/**
 * The change engine: world updates and the BBS events (names and order, A.3) each named change
 * produces, asg_latest_update / policies_last_updated bumps, tags, affected cells.
 */
import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { ValidationError } from '../../src/lib/errors.js';
import { ChangeEngine } from '../../src/sim/changes.js';
import { CHURN_KINDS, runChurn } from '../../src/sim/churn.js';
import type { EventSink, LrpEvent, TaskEvent } from '../../src/sim/events.js';
import { generateWorld } from '../../src/sim/generate.js';
import type { SimWorld } from '../../src/sim/world.js';

class Recorder implements EventSink {
  lrp: LrpEvent[] = [];
  task: TaskEvent[] = [];
  emitLrp(events: LrpEvent[]): void {
    this.lrp.push(...events);
  }
  emitTask(events: TaskEvent[]): void {
    this.task.push(...events);
  }
  names(): string[] {
    return this.lrp.map((e) => e.name);
  }
}

describe('sim change engine', () => {
  let world: SimWorld;
  let rec: Recorder;
  let engine: ChangeEngine;
  let appGuid: string;

  beforeEach(() => {
    world = generateWorld(1, 'small');
    rec = new Recorder();
    engine = new ChangeEngine(world, rec, 1);
    appGuid = [...world.apps.keys()][0] as string;
  });

  it('app-start: desired created, instances created UNCLAIMED, claimed, then RUNNING', async () => {
    const before = Date.now();
    const res = await engine.apply({ kind: 'app-start', instances: 2, cellIds: ['cell-001', 'cell-002'] });
    assert.ok(res.triggeredAt >= before && res.triggeredAt <= Date.now());
    assert.deepEqual(rec.names(), [
      'desired_lrp_created',
      'actual_lrp_instance_created',
      'actual_lrp_instance_created',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_changed',
    ]);
    const states = rec.lrp.map((e) =>
      e.name === 'actual_lrp_instance_changed' ? `${e.before.state}>${e.after.state}` : '',
    );
    assert.deepEqual(states.slice(3), [
      'UNCLAIMED>CLAIMED',
      'UNCLAIMED>CLAIMED',
      'CLAIMED>RUNNING',
      'CLAIMED>RUNNING',
    ]);
    assert.deepEqual(res.affectedCells, ['cell-001', 'cell-002']);
    const pg = res.result.processGuid as string;
    const actuals = world.actualsOf(pg);
    assert.equal(actuals.length, 2);
    for (const a of actuals) {
      assert.equal(a.state, 'RUNNING');
      assert.match(a.instanceAddress, /^10\.255\.[23]\.\d+$/);
    }
    const created = rec.lrp[1];
    assert.ok(created?.name === 'actual_lrp_instance_created');
    assert.equal(created.actual.cellId, '', 'UNCLAIMED has no instance key');
  });

  it('app-crash: crashed before changed (→CRASHED), then restart as created+removed, claim, run', async () => {
    const d = world.desiredOfApp(appGuid);
    assert.ok(d);
    const victim = world.actualsOf(d.processGuid)[0];
    assert.ok(victim);
    const res = await engine.apply({ kind: 'app-crash', appGuid, index: victim.index, cellId: 'cell-002' });
    assert.deepEqual(rec.names(), [
      'actual_lrp_crashed',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_created',
      'actual_lrp_instance_removed',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_changed',
    ]);
    const [crashed, changed] = rec.lrp;
    assert.ok(crashed?.name === 'actual_lrp_crashed');
    assert.equal(crashed.before.cellId, victim.cellId, 'the crashed event carries the old instance key');
    assert.equal(crashed.after.crashCount, 1);
    assert.ok(changed?.name === 'actual_lrp_instance_changed');
    assert.equal(changed.after.state, 'CRASHED');
    assert.equal(changed.after.cellId, '', 'BBS clears the instance key of a CRASHED record');
    const now = world.actualAt(d.processGuid, victim.index);
    assert.equal(now?.state, 'RUNNING');
    assert.equal(now?.cellId, 'cell-002');
    assert.notEqual(now?.instanceGuid, victim.instanceGuid);
    assert.ok(res.affectedCells.includes(victim.cellId) && res.affectedCells.includes('cell-002'));
  });

  it('app-crash with BBS immediate restart: crashed, created (UNCLAIMED), removed (old)', async () => {
    await engine.apply({ kind: 'app-crash', appGuid, restart: 'immediate' });
    assert.deepEqual(rec.names().slice(0, 3), [
      'actual_lrp_crashed',
      'actual_lrp_instance_created',
      'actual_lrp_instance_removed',
    ]);
    const created = rec.lrp[1];
    assert.ok(created?.name === 'actual_lrp_instance_created');
    assert.equal(created.actual.state, 'UNCLAIMED');
  });

  it('app-restage: new DesiredLRP (new version, fresh egress) running before the old one is removed', async () => {
    const old = world.desiredOfApp(appGuid);
    assert.ok(old);
    const oldCount = world.actualsOf(old.processGuid).length;
    const res = await engine.apply({ kind: 'app-restage', appGuid });
    const names = rec.names();
    assert.equal(names[0], 'desired_lrp_created');
    const removedDesired = names.indexOf('desired_lrp_removed');
    const lastRunning = names.lastIndexOf('actual_lrp_instance_changed');
    assert.ok(lastRunning < removedDesired);
    assert.equal(names.filter((n) => n === 'actual_lrp_instance_removed').length, oldCount);
    assert.equal(world.desiredLrps.has(old.processGuid), false);
    const next = world.desiredOfApp(appGuid);
    assert.ok(next);
    assert.equal(res.result.processGuid, next.processGuid);
    assert.ok(next.processGuid.startsWith(`${appGuid}-`));
    assert.notEqual(next.processGuid, old.processGuid);
    assert.equal(world.actualsOf(old.processGuid).length, 0);
  });

  it('app-scale and app-stop', async () => {
    const d = world.desiredOfApp(appGuid);
    assert.ok(d);
    await engine.apply({ kind: 'app-scale', appGuid, instances: 1 });
    assert.equal(rec.names()[0], 'desired_lrp_changed');
    assert.equal(world.actualsOf(d.processGuid).length, 1);
    rec.lrp = [];
    const stop = await engine.apply({ kind: 'app-stop', appGuid });
    assert.deepEqual(rec.names(), ['desired_lrp_removed', 'actual_lrp_instance_removed']);
    assert.equal(world.desiredOfApp(appGuid), undefined);
    assert.equal(world.apps.get(appGuid)?.state, 'STOPPED');
    assert.equal(stop.affectedCells.length, 1);
  });

  it('task-run: created, running on a cell, then completed → resolving → removed', async () => {
    const res = await engine.apply({ kind: 'task-run', appGuid, durationMs: 0, cellId: 'cell-000' });
    assert.deepEqual(
      rec.task.map((e) => (e.name === 'task_changed' ? `${e.name}:${e.after.state}` : e.name)),
      [
        'task_created',
        'task_changed:Running',
        'task_changed:Completed',
        'task_changed:Resolving',
        'task_removed',
      ],
    );
    assert.deepEqual(res.affectedCells, ['cell-000']);
    assert.equal(world.tasks.has(res.result.taskGuid as string), false);
  });

  it('ASG changes bump asg_latest_update for v3 only; bind keeps updated_at', async () => {
    const g = [...world.securityGroups.values()].find((x) => !x.runningDefault && !x.stagingDefault);
    assert.ok(g);
    const t0 = world.asgLatestUpdate;
    const space = [...world.spaces.keys()].find((s) => !g.runningSpaces.has(s));
    assert.ok(space);
    const res = await engine.apply({ kind: 'asg-bind-space', guid: g.guid, spaceGuid: space });
    assert.ok(world.asgLatestUpdate > t0);
    assert.equal(world.securityGroups.get(g.guid)?.updatedAt, g.updatedAt);
    assert.ok(world.securityGroups.get(g.guid)?.runningSpaces.has(space));
    assert.deepEqual(
      res.affectedCells,
      [...world.cellsOfSpaces([space])].sort(),
      'cells of the newly bound space',
    );
    assert.ok(res.affectedCells.length > 0);
    const t1 = world.asgLatestUpdate;
    const staging = await engine.apply({
      kind: 'asg-set-global',
      guid: g.guid,
      lifecycle: 'staging',
      enabled: true,
      via: 'v2',
    });
    assert.equal(world.asgLatestUpdate, t1, 'v2 writes do not touch asg_latest_update');
    assert.equal(world.securityGroups.get(g.guid)?.stagingDefault, true);
    assert.deepEqual(staging.affectedCells, [], 'staging changes touch no running container');
    const global = await engine.apply({
      kind: 'asg-set-global',
      guid: g.guid,
      lifecycle: 'running',
      enabled: true,
    });
    assert.deepEqual(global.affectedCells, [...world.cells.keys()].sort());
    assert.equal(rec.lrp.length, 0, 'ASG changes emit no BBS events');
    await assert.rejects(
      engine.apply({
        kind: 'asg-create',
        name: 'bad',
        rules: [{ protocol: 'tcp', destination: 'nope', ports: '1' }],
      }),
      (err: unknown) => err instanceof ValidationError && err.field === 'rules[0].destination',
    );
    const created = await engine.apply({
      kind: 'asg-create',
      name: 'unchecked',
      rules: [{ protocol: 'tcp', destination: '10.0.0.9-10.0.0.1', ports: '1' }],
      validate: false,
    });
    assert.ok(world.securityGroups.has(created.result.guid as string));
  });

  it('policies: tags allocated on add, freed on last remove and reused; policies_last_updated moves', async () => {
    const [a, b] = [...world.apps.keys()] as [string, string];
    const fresh = await engine.apply({ kind: 'space-create' });
    const c = (
      await engine.apply({
        kind: 'app-start',
        spaceGuid: (fresh.result.spaceGuids as string[])[0],
        instances: 1,
      })
    ).result.appGuid as string;
    const t0 = world.policiesLastUpdated;
    const res = await engine.apply({ kind: 'policy-add', source: c, destination: a, port: 9000 });
    assert.ok(world.policiesLastUpdated > t0);
    const tag = world.tags.get(c)?.tag;
    assert.ok(tag !== undefined);
    assert.equal(res.result.sourceTag, tag);
    assert.ok(res.affectedCells.length > 0);
    await engine.apply({ kind: 'policy-remove', source: c, destination: a, port: 9000 });
    assert.equal(world.tags.has(c), false, 'tag freed');
    await engine.apply({
      kind: 'policy-add',
      source: b,
      destination: c,
      protocol: 'udp',
      ports: { start: 1, end: 2 },
    });
    assert.equal(world.tags.get(c)?.tag, tag, 'lowest free tag reused');
  });

  it('lrp-place registers a real container as RUNNING with its IP (and replaces an existing index)', async () => {
    const d = world.desiredOfApp(appGuid);
    assert.ok(d);
    const res = await engine.apply({
      kind: 'lrp-place',
      processGuid: d.processGuid,
      index: d.instances,
      instanceGuid: 'real-container-1',
      cellId: 'cell-e2e',
      instanceAddress: '10.255.77.5',
      address: '192.0.2.10',
      hostPorts: [61500, 61501],
    });
    assert.deepEqual(rec.names(), [
      'desired_lrp_changed',
      'actual_lrp_instance_created',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_changed',
    ]);
    const a = world.actualAt(d.processGuid, d.instances);
    assert.equal(a?.instanceGuid, 'real-container-1');
    assert.equal(a?.instanceAddress, '10.255.77.5');
    assert.equal(a?.address, '192.0.2.10');
    assert.deepEqual(a?.ports, [
      { containerPort: 8080, hostPort: 61500 },
      { containerPort: 2222, hostPort: 61501 },
    ]);
    assert.ok(world.cells.has('cell-e2e'));
    assert.deepEqual(res.affectedCells, ['cell-e2e']);
    rec.lrp = [];
    await engine.apply({
      kind: 'lrp-place',
      processGuid: d.processGuid,
      index: 0,
      instanceGuid: 'real-container-2',
      cellId: 'cell-e2e',
      instanceAddress: '10.255.77.6',
    });
    assert.deepEqual(rec.names(), ['actual_lrp_instance_created', 'actual_lrp_instance_removed']);
    await assert.rejects(
      engine.apply({
        kind: 'lrp-place',
        processGuid: 'nope',
        index: 0,
        instanceGuid: 'x',
        cellId: 'c',
        instanceAddress: '1.2.3.4',
      }),
      ValidationError,
    );
  });

  it('cell-subnet: the cell’s instances are recreated with addresses in its new subnet, new ones come from it', async () => {
    const on = () =>
      [...world.actualLrps.values()].filter((a) => a.cellId === 'cell-001' && a.instanceAddress);
    const old = on();
    assert.ok(old.length > 0, 'the generated world has instances on cell-001');
    assert.ok(
      old.every((a) => a.instanceAddress.startsWith('10.255.2.')),
      'generated in 10.255.2.0/24',
    );
    const others = [...world.actualLrps.values()].filter((a) => a.cellId && a.cellId !== 'cell-001');
    const res = await engine.apply({ kind: 'cell-subnet', cellId: 'cell-001', subnet: '10.255.42.0/24' });
    assert.deepEqual(res.affectedCells, ['cell-001']);
    assert.deepEqual(res.result, {
      cellId: 'cell-001',
      subnet: '10.255.42.0/24',
      readdressed: old.length,
      kept: 0,
    });
    assert.deepEqual(
      rec.names(),
      old.flatMap(() => ['actual_lrp_instance_created', 'actual_lrp_instance_removed']),
      'per instance: the new one created (RUNNING), then the old one removed',
    );
    const now = on();
    assert.equal(now.length, old.length);
    for (const a of now) {
      assert.match(a.instanceAddress, /^10\.255\.42\.\d+$/);
      assert.equal(a.state, 'RUNNING');
      assert.ok(!old.some((o) => o.instanceGuid === a.instanceGuid), 'a new instance');
    }
    assert.equal(new Set(now.map((a) => a.instanceAddress)).size, now.length, 'distinct addresses');
    assert.ok(
      now.some((a) => a.instanceAddress === '10.255.42.254'),
      'from the top of the subnet down (the cell’s real CNI containers take the bottom)',
    );
    assert.equal(world.cells.get('cell-001')?.subnet, '10.255.42.0/24');
    for (const a of others)
      assert.equal(
        world.actualAt(a.processGuid, a.index)?.instanceAddress,
        a.instanceAddress,
        'other cells untouched',
      );

    await engine.apply({ kind: 'app-start', instances: 2, cellIds: ['cell-001'] });
    assert.equal(on().length, old.length + 2);
    for (const a of on()) assert.match(a.instanceAddress, /^10\.255\.42\.\d+$/);

    // the same subnet again: every address already lies in it, nothing is recreated
    rec.lrp = [];
    const again = await engine.apply({ kind: 'cell-subnet', cellId: 'cell-001', subnet: '10.255.42.0/24' });
    assert.deepEqual(rec.names(), []);
    assert.equal(again.result.kept, old.length + 2);
    await engine.apply({ kind: 'app-start', instances: 1, cellIds: ['cell-001'] });
    assert.equal(
      new Set(on().map((a) => a.instanceAddress)).size,
      on().length,
      'kept addresses are not handed out again',
    );

    await assert.rejects(
      engine.apply({ kind: 'cell-subnet', cellId: 'nope', subnet: '10.0.0.0/24' }),
      ValidationError,
    );
    await assert.rejects(
      engine.apply({ kind: 'cell-subnet', cellId: 'cell-001', subnet: '10.0.0.0' }),
      ValidationError,
    );
    await assert.rejects(
      engine.apply({ kind: 'cell-subnet', cellId: 'cell-001', subnet: 'fd00::/64' }),
      ValidationError,
    );
  });

  it('changes apply in call order even when issued concurrently', async () => {
    const results = await Promise.all([
      engine.apply({ kind: 'space-create', name: 'one' }),
      engine.apply({ kind: 'space-create', name: 'two' }),
      engine.apply({ kind: 'space-create', name: 'three' }),
    ]);
    assert.deepEqual(
      results.map((r) => r.id),
      ['chg-000001', 'chg-000002', 'chg-000003'],
    );
    const names = [...world.spaces.values()].map((s) => s.name).slice(-3);
    assert.deepEqual(names, ['one', 'two', 'three']);
  });

  it('churn drives every kind the issue names (app, task, ASG create/update/bind/unbind/delete, policy), deterministically from its seed', async () => {
    assert.deepEqual([...CHURN_KINDS].sort(), [
      'app-crash',
      'app-restage',
      'app-scale',
      'app-start',
      'app-stop',
      'asg-bind-space',
      'asg-create',
      'asg-delete',
      'asg-unbind-space',
      'asg-update',
      'policy-add',
      'policy-remove',
      'task-run',
    ]);
    const churnOnce = async () => {
      const w = generateWorld(1, 'small');
      const e = new ChangeEngine(w, new Recorder(), 1);
      const run = runChurn(w, e, { rate: 10_000, maxChanges: 400, seed: 9 });
      const result = await run.done;
      e.stop();
      return { result, world: w };
    };
    const a = await churnOnce();
    assert.equal(a.result.failed, 0, a.result.lastError);
    assert.equal(a.result.applied, 400);
    assert.deepEqual(Object.keys(a.result.byKind).sort(), [...CHURN_KINDS].sort(), 'every kind was applied');
    const churned = [...a.world.securityGroups.values()].filter((g) => g.name.startsWith('churn-asg-'));
    assert.ok(churned.length > 0, 'created groups are in the world');
    const b = await churnOnce();
    assert.deepEqual(b.result.byKind, a.result.byKind);
    // Timestamps (since, created_at, …) are wall-clock; everything chosen by the seed must match.
    const chosen = (w: SimWorld) => ({
      apps: [...w.apps.values()].map((x) => [x.guid, x.state, x.instances, x.version]),
      actual: [...w.actualLrps.values()].map((x) => [x.processGuid, x.index, x.cellId, x.instanceAddress]),
      groups: [...w.securityGroups.values()].map((g) => [g.guid, g.name, g.rules, [...g.runningSpaces]]),
      policies: w.policies.map((p) => [p.sourceId, p.destinationId, p.protocol, p.start, p.end]),
    });
    assert.deepEqual(chosen(b.world), chosen(a.world), 'same seed → same changes → same world');
    assert.throws(
      () => runChurn(world, engine, { rate: 10, kinds: ['lrp-place'] }),
      (err: unknown) => err instanceof ValidationError && err.field === 'kinds',
    );
  });
});
