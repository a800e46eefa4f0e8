/**
 * BBS client and event streams against the simulator (mTLS, protobuf, BBS chunk framing): lists and
 * filters, typed errors for 503 / 404 / truncated protobuf / timeouts, events for real changes,
 * reconnect + re-list after dropped streams, malformed injected events.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BbsClient } from '../../src/cf/bbs-client.js';
import type { BbsEventStream, StreamEvent } from '../../src/cf/bbs-events.js';
import {
  BbsInvalidResponseError,
  BbsUnavailableError,
  CfConnectionError,
  CfTimeoutError,
} from '../../src/cf/errors.js';
import { BbsDecodeError } from '../../src/model/bbs-errors.js';
import { encodeEvent, longToBigInt, type models } from '../../src/model/bbs-messages.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { waitUntil } from '../helpers/wait.js';

describe('BBS client against the simulator', () => {
  let sim: SimHandle;
  let bbs: BbsClient;
  const streams: BbsEventStream[] = [];

  function stream(kind: 'lrp' | 'task', cellId?: string): BbsEventStream {
    const s = bbs.eventStream(kind, {
      backoff: { initialMs: 20, maxMs: 200 },
      ...(cellId ? { cellId } : {}),
    });
    streams.push(s);
    return s;
  }

  before(async () => {
    sim = await startSimulator({ seed: 5, size: 'small' });
    bbs = new BbsClient({
      url: sim.urls.bbs,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      requestTimeoutMs: 5000,
    });
  });
  after(async () => {
    for (const s of streams) s.close();
    bbs.close();
    await sim.stop();
  });

  it('ping, cells, actual LRPs, desired LRPs (.r3) and tasks match the foundation', async () => {
    assert.equal(await bbs.ping(), true);
    const cells = await bbs.cells();
    assert.deepEqual(cells.map((c) => c.cellId).sort(), [...sim.world.cells.keys()].sort());
    const actual = await bbs.actualLrps();
    assert.equal(actual.length, sim.world.actualLrps.size);
    const a0 = actual[0]!;
    const simA = sim.world.actualLrps.get(`${a0.actualLrpKey!.processGuid}/${a0.actualLrpKey!.index}`)!;
    assert.equal(a0.actualLrpInstanceKey?.instanceGuid, simA.instanceGuid);
    assert.equal(a0.actualLrpNetInfo?.instanceAddress, simA.instanceAddress);
    assert.equal(longToBigInt(a0.since), simA.since);
    const desired = await bbs.desiredLrps();
    assert.equal(desired.length, sim.world.desiredLrps.size);
    const d0 = desired[0]!;
    const simD = sim.world.desiredLrps.get(d0.processGuid!)!;
    assert.equal(d0.network?.properties?.policy_group_id, simD.appGuid);
    assert.equal(d0.egressRules?.length, simD.egressRules.length);
    assert.ok((d0.egressRules?.length ?? 0) > 0, 'r3 carries egress_rules');
    const tasks = await bbs.tasks();
    assert.equal(tasks.length, sim.world.tasks.size);
  });

  it('filters: cell, process guid, index 0 (sent although it is 0), app guids', async () => {
    const cellId = [...sim.world.cells.keys()][0]!;
    const onCell = await bbs.actualLrps({ cellId });
    assert.equal(onCell.length, [...sim.world.actualLrps.values()].filter((a) => a.cellId === cellId).length);
    assert.ok(onCell.every((a) => a.actualLrpInstanceKey?.cellId === cellId));
    const index0 = await bbs.actualLrps({ index: 0 });
    assert.equal(index0.length, [...sim.world.actualLrps.values()].filter((a) => a.index === 0).length);
    assert.ok(index0.length < sim.world.actualLrps.size, 'index 0 really filters');
    const app = [...sim.world.apps.values()][0]!;
    const byApp = await bbs.desiredLrps({ appGuids: [app.guid] });
    assert.ok(byApp.length >= 1);
    assert.ok(byApp.every((d) => d.processGuid!.startsWith(app.guid)));
    const pg = byApp[0]!.processGuid!;
    const byPg = await bbs.actualLrps({ processGuid: pg });
    assert.equal(byPg.length, [...sim.world.actualLrps.values()].filter((a) => a.processGuid === pg).length);
  });

  it('typed errors: 503 (migrations), non-protobuf 500, truncated protobuf, timeout', async () => {
    sim.faults.failNext('bbs', 1, 503);
    await assert.rejects(bbs.cells(), (e: unknown) => e instanceof BbsUnavailableError && e.status === 503);
    sim.faults.failNext('bbs', 1, 500, 'internal error');
    await assert.rejects(
      bbs.cells(),
      (e: unknown) =>
        e instanceof BbsInvalidResponseError && e.status === 500 && e.context.path === '/v1/cells/list.r1',
    );
    sim.faults.corruptNext('bbs', 1);
    await assert.rejects(
      bbs.actualLrps(),
      (e: unknown) => e instanceof BbsDecodeError && e.reason === 'protobuf',
    );
    const quick = new BbsClient({
      url: sim.urls.bbs,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      requestTimeoutMs: 300,
    });
    sim.faults.delayNext('bbs', 1, 1000);
    await assert.rejects(
      quick.ping(),
      (e: unknown) => e instanceof CfTimeoutError && e.context.timeoutMs === 300,
    );
    quick.close();
    assert.equal(await bbs.ping(), true, 'the client still works afterwards');
  });

  it('is refused without a client certificate: calls and the event stream', async () => {
    const anon = new BbsClient({ url: sim.urls.bbs, tls: { ca: sim.tls.caCert }, connectTries: 1 });
    await assert.rejects(anon.ping(), CfConnectionError);
    const before = sim.eventStreams();
    const s = anon.eventStream('lrp', { backoff: { initialMs: 20, maxMs: 50 } });
    streams.push(s);
    s.start();
    await waitUntil('two refused stream attempts', () => s.counters.connectFailures >= 2, 5000, 10);
    assert.equal(s.counters.connects, 0);
    assert.equal(sim.eventStreams(), before, 'the simulator never subscribed it');
    s.close();
    anon.close();
  });

  it('LRP stream: events for a real change; the cell filter is applied by BBS', async () => {
    const cells = [...sim.world.cells.keys()];
    const all = stream('lrp');
    const filtered = stream('lrp', cells[1]);
    const seenAll: StreamEvent[] = [];
    const seenFiltered: StreamEvent[] = [];
    all.on('event', (e) => seenAll.push(e));
    filtered.on('event', (e) => seenFiltered.push(e));
    all.start();
    filtered.start();
    await Promise.all([all.waitOpen(), filtered.waitOpen()]);
    const started = await sim.apply({
      kind: 'app-start',
      name: 'stream-app',
      instances: 2,
      cellIds: [cells[0]!],
    });
    const appGuid = String(started.result.appGuid);
    await waitUntil(
      'instance running event',
      () =>
        seenAll.some((e) => e.name === 'actual_lrp_instance_changed' && e.message.after?.state === 'RUNNING'),
      5000,
      10,
    );
    await waitUntil(
      'desired event',
      () => seenFiltered.some((e) => e.name === 'desired_lrp_created'),
      5000,
      10,
    );
    const created = seenAll.find((e) => e.name === 'desired_lrp_created');
    assert.ok(created && created.name === 'desired_lrp_created');
    assert.ok(created.message.desiredLrp?.processGuid?.startsWith(appGuid));
    assert.equal(created.message.desiredLrp?.network?.properties?.container_workload, 'app');
    // instance events of cell 0 never reach the subscriber of cell 1
    assert.ok(
      !seenFiltered.some((e) => e.name.startsWith('actual_lrp_instance') || e.name === 'actual_lrp_crashed'),
      'filtered stream got only desired events',
    );
    assert.equal(all.counters.decodeErrors, 0);
    all.close();
    filtered.close();
  });

  it('task stream: task_created for a task run', async () => {
    const s = stream('task');
    const seen: StreamEvent[] = [];
    s.on('event', (e) => seen.push(e));
    s.start();
    await s.waitOpen();
    const app = [...sim.world.apps.values()][0]!;
    await sim.apply({ kind: 'task-run', appGuid: app.guid, taskGuid: 'task-under-test', durationMs: 60_000 });
    await waitUntil('task_created', () => seen.some((e) => e.name === 'task_created'), 5000, 10);
    const e = seen.find((x) => x.name === 'task_created');
    assert.ok(e && e.name === 'task_created');
    assert.equal(e.message.task?.taskGuid, 'task-under-test');
    s.close();
  });

  it('dropEventStreams → reconnect with backoff, and a re-list signal; the re-list sees what was missed', async () => {
    const s = bbs.eventStream('lrp', { backoff: { initialMs: 400, maxMs: 400, jitter: 0 } });
    streams.push(s);
    const got: StreamEvent[] = [];
    s.on('event', (e) => got.push(e));
    let relisted: number | undefined;
    s.on('reconnected', () => {
      void bbs.actualLrps().then((l) => {
        relisted = l.length;
      });
    });
    s.start();
    await s.waitOpen();
    const app = [...sim.world.apps.values()][1]!;
    const sizeBefore = sim.world.actualLrps.size;
    const dropped = sim.faults.dropEventStreams();
    assert.ok(dropped >= 1);
    // a change while the stream is down: its events are lost, only the re-list can see it
    const scaled = await sim.apply({ kind: 'app-scale', appGuid: app.guid, instances: app.instances + 1 });
    const sizeAfter = sim.world.actualLrps.size;
    assert.equal(sizeAfter, sizeBefore + 1);
    await waitUntil('re-list after reconnect', () => relisted !== undefined, 5000, 10);
    assert.equal(relisted, sizeAfter);
    assert.equal(s.counters.reconnects, 1);
    assert.equal(s.connected, true);
    const pg = String(scaled.result.processGuid);
    assert.ok(
      !got.some(
        (e) =>
          e.name === 'actual_lrp_instance_created' && e.message.actualLrp?.actualLrpKey?.processGuid === pg,
      ),
      'the missed event was not delivered',
    );
    // and events flow on the new connection
    await sim.apply({ kind: 'app-scale', appGuid: app.guid, instances: app.instances + 2 });
    await waitUntil('event after reconnect', () => got.some((e) => e.connection === 2), 5000, 10);
    s.close();
  });

  it('malformed injected events are counted and skipped; the stream goes on', async () => {
    const s = stream('lrp');
    const good: StreamEvent[] = [];
    const bad: unknown[] = [];
    const unknown: string[] = [];
    s.on('event', (e) => good.push(e));
    s.on('decodeError', (d) => bad.push(d.error));
    s.on('unknown', (u) => unknown.push(u.name));
    s.start();
    await s.waitOpen();
    const valid = encodeEvent('actual_lrp_crashed', {
      actualLrpKey: { processGuid: 'pg-x', index: 1, domain: 'cf-apps' },
      actualLrpInstanceKey: { instanceGuid: 'ig-x', cellId: 'cell-x' },
      crashCount: 3,
      crashReason: 'boom',
    } as models.ActualLRPCrashedEvent);
    const truncated = Buffer.from(valid, 'base64').subarray(0, 7).toString('base64');
    sim.faults.injectEvent('lrp', { name: 'actual_lrp_instance_teleported', dataBase64: valid });
    sim.faults.injectEvent('lrp', { name: 'actual_lrp_crashed', dataBase64: 'not*base64' });
    sim.faults.injectEvent('lrp', { name: 'actual_lrp_crashed', dataBase64: truncated });
    sim.faults.injectEvent('lrp', { name: 'actual_lrp_crashed', dataBase64: valid });
    await waitUntil('the valid event', () => good.length === 1, 5000, 10);
    assert.deepEqual(unknown, ['actual_lrp_instance_teleported']);
    assert.equal(bad.length, 2);
    assert.deepEqual(
      bad.map((e) => (e as BbsDecodeError).reason),
      ['base64', 'protobuf'],
    );
    const e = good[0]!;
    assert.ok(e.name === 'actual_lrp_crashed');
    assert.equal(e.message.crashCount, 3);
    assert.equal(s.counters.decodeErrors, 2);
    assert.equal(s.counters.unknown, 1);
    assert.equal(s.counters.reconnects, 0);
    assert.equal(s.connected, true);
    s.close();
  });

  it('timeouts: a stream head slower than connectTimeoutMs, and silence past idleTimeoutMs, both reconnect', async () => {
    for (const other of streams) other.close();
    await waitUntil('earlier subscriptions closed', () => sim.eventStreams() === 0, 5000, 10);
    const s = bbs.eventStream('task', {
      connectTimeoutMs: 300,
      idleTimeoutMs: 400,
      backoff: { initialMs: 20, maxMs: 50, jitter: 0 },
    });
    streams.push(s);
    const reasons: string[] = [];
    s.on('disconnected', (d) => reasons.push(d.reason));
    sim.faults.delayNext('bbs', 1, 1500);
    const t0 = Date.now();
    s.start();
    await s.waitOpen();
    assert.equal(s.counters.connectFailures, 1, JSON.stringify(reasons));
    assert.ok(Date.now() - t0 < 1500, 'gave up on the slow head instead of waiting for it');
    // a quiet foundation: BBS sends nothing, so the idle timer drops and re-opens the stream
    await waitUntil('reconnect after silence', () => s.counters.reconnects >= 1, 5000, 10);
    assert.equal(s.counters.idleTimeouts, 1);
    assert.equal(s.counters.decodeErrors, 0);
    s.close();
  });

  it('a failed stream request (500) is retried until the stream opens', async () => {
    // nothing else may take the injected failures: every earlier subscription is gone
    for (const other of streams) other.close();
    await waitUntil('earlier subscriptions closed', () => sim.eventStreams() === 0, 5000, 10);
    sim.faults.failNext('bbs', 2, 500);
    const s = stream('task');
    const fails: (number | undefined)[] = [];
    const reasons: string[] = [];
    s.on('disconnected', (d) => {
      fails.push(d.status);
      reasons.push(d.reason);
    });
    s.start();
    await s.waitOpen();
    assert.deepEqual(fails, [500, 500], JSON.stringify({ fails, reasons, counters: s.counters }));
    assert.equal(s.counters.connectFailures, 2);
    assert.equal(s.counters.connects, 1);
  });
});
