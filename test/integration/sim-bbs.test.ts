/**
 * The simulated BBS over real mTLS with plain node:https / node:tls (not the cfnet clients):
 * client-certificate enforcement, protobuf list responses that match the world, BBS error
 * conventions, and the SSE streams' exact byte framing and event order.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createCa, issueCert } from '../../src/lib/tls.js';
import { decodeEvent, longToBigInt, models } from '../../src/model/bbs-messages.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { waitUntil } from '../helpers/wait.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A raw event-stream subscription: every byte the server writes, and parsers for them. */
class RawStream {
  raw = Buffer.alloc(0);
  closed = false;
  constructor(readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => {
      this.raw = Buffer.concat([this.raw, d]);
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  get head(): string {
    const i = this.raw.indexOf('\r\n\r\n');
    return i < 0 ? '' : this.raw.subarray(0, i).toString('latin1');
  }

  get bodyBytes(): Buffer {
    const i = this.raw.indexOf('\r\n\r\n');
    return i < 0 ? Buffer.alloc(0) : this.raw.subarray(i + 4);
  }

  /** Parse BBS framing strictly: `<hex>;\r\n<data>\r\n` … optionally `0\r\n\r\n`. */
  chunks(): { data: string[]; terminated: boolean; rest: number } {
    const body = this.bodyBytes;
    const data: string[] = [];
    let off = 0;
    for (;;) {
      const lineEnd = body.indexOf('\r\n', off);
      if (lineEnd < 0) break;
      const line = body.subarray(off, lineEnd).toString('latin1');
      if (line === '0') {
        assert.equal(body.subarray(lineEnd, lineEnd + 4).toString('latin1'), '\r\n\r\n');
        return { data, terminated: true, rest: body.length - lineEnd - 4 };
      }
      assert.match(line, /^[0-9a-f]+;$/, `chunk-size line ${JSON.stringify(line)}`);
      const len = Number.parseInt(line.slice(0, -1), 16);
      const start = lineEnd + 2;
      if (body.length < start + len + 2) break;
      data.push(body.subarray(start, start + len).toString('utf8'));
      assert.equal(body.subarray(start + len, start + len + 2).toString('latin1'), '\r\n');
      off = start + len + 2;
    }
    return { data, terminated: false, rest: body.length - off };
  }

  events(): { id: string; name: string; data: string }[] {
    return this.chunks().data.map((text) => {
      const m = /^id: (\d+)\nevent: ([^\n]+)\ndata: ([^\n]*)\n\n$/.exec(text);
      assert.ok(m, `SSE text ${JSON.stringify(text)}`);
      return { id: m[1] as string, name: m[2] as string, data: m[3] as string };
    });
  }
}

describe('simulated BBS (plain node:https / node:tls)', () => {
  let sim: SimHandle;
  const sockets: tls.TLSSocket[] = [];
  const url = () => new URL(sim.urls.bbs);

  before(async () => {
    sim = await startSimulator({ seed: 11, size: 'small', eventBufferLimit: 64 });
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await sim.stop();
  });

  function post(path: string, body: Uint8Array = new Uint8Array(), creds = true): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${sim.urls.bbs}${path}`,
        {
          method: 'POST',
          ca: sim.tls.caCert,
          ...(creds ? { cert: sim.tls.clientCert, key: sim.tls.clientKey } : {}),
          servername: 'bbs.service.cf.internal',
          headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': String(body.length) },
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async function subscribe(path: string, body: Uint8Array = new Uint8Array()): Promise<RawStream> {
    const socket = tls.connect({
      host: url().hostname,
      port: Number(url().port),
      ca: sim.tls.caCert,
      cert: sim.tls.clientCert,
      key: sim.tls.clientKey,
      servername: 'bbs.service.cf.internal',
    });
    sockets.push(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    const stream = new RawStream(socket);
    const before = sim.eventStreams();
    socket.write(
      `POST ${path} HTTP/1.1\r\nHost: bbs.service.cf.internal\r\nContent-Type: application/x-protobuf\r\n` +
        `X-Vcap-Request-Id: test\r\nContent-Length: ${body.length}\r\n\r\n`,
    );
    socket.write(body);
    await waitUntil('stream headers', () => stream.head !== '' && sim.eventStreams() > before, 5000, 10);
    return stream;
  }

  it('refuses a TLS client without a certificate, or with one from another CA', async () => {
    await assert.rejects(post('/v1/ping', undefined, false));
    const other = createCa({ cn: 'other CA' });
    const rogue = issueCert(other, { cn: 'rogue', usage: 'client' });
    await assert.rejects(
      new Promise((resolve, reject) => {
        const req = https.request(
          `${sim.urls.bbs}/v1/ping`,
          {
            method: 'POST',
            ca: sim.tls.caCert,
            cert: rogue.cert,
            key: rogue.key,
            servername: 'localhost',
            agent: false,
          },
          resolve,
        );
        req.on('error', reject);
        req.end();
      }),
    );
    const ok = await post('/v1/ping');
    assert.equal(ok.status, 200);
    assert.equal(ok.headers['content-type'], 'application/x-protobuf');
    assert.equal(models.PingResponse.decode(ok.body).available, true);
  });

  it('list responses decode with the generated code and match the world', async () => {
    const world = sim.world;
    const actual = models.ActualLRPsResponse.decode((await post('/v1/actual_lrps/list')).body);
    assert.equal(actual.error, null);
    assert.equal(actual.actualLrps.length, world.actualLrps.size);
    for (const a of actual.actualLrps) {
      const w = world.actualAt(a.actualLrpKey?.processGuid ?? '', a.actualLrpKey?.index ?? -1);
      assert.ok(w, 'known instance');
      assert.equal(a.actualLrpInstanceKey?.instanceGuid, w.instanceGuid);
      assert.equal(a.actualLrpInstanceKey?.cellId, w.cellId);
      assert.equal(a.actualLrpNetInfo?.instanceAddress, w.instanceAddress);
      assert.equal(a.actualLrpNetInfo?.address, w.address);
      assert.equal(a.state, 'RUNNING');
      assert.equal(a.routable, true);
      assert.equal(longToBigInt(a.since), w.since);
      assert.ok(longToBigInt(a.since) > 2n ** 53n);
      assert.equal(a.metricTags?.process_instance_id, w.instanceGuid);
      assert.deepEqual(
        a.actualLrpNetInfo?.ports?.map((p) => [p.containerPort, p.hostPort]),
        w.ports.map((p) => [p.containerPort, p.hostPort]),
      );
    }

    const desired = models.DesiredLRPsResponse.decode((await post('/v1/desired_lrps/list.r3')).body);
    assert.equal(desired.desiredLrps.length, world.desiredLrps.size);
    for (const d of desired.desiredLrps) {
      const w = world.desiredLrps.get(d.processGuid ?? '');
      assert.ok(w);
      const egress = d.egressRules ?? [];
      assert.equal(egress.length, w.egressRules.length);
      assert.ok(egress.length > 0);
      assert.ok(egress.every((r) => (r.annotations ?? []).every((x) => x.startsWith('security_group_id:'))));
      assert.equal(d.network?.properties?.policy_group_id, w.appGuid);
      assert.equal(d.network?.properties?.container_workload, 'app');
      assert.deepEqual(d.ports, [8080, 2222]);
      assert.equal(
        d.metricTags?.process_instance_id?.dynamic,
        models.MetricTagValue.DynamicValue.INSTANCE_GUID,
      );
      assert.deepEqual(
        JSON.parse(Buffer.from(d.routes?.routes?.['cf-router'] ?? []).toString())[0].port,
        8080,
      );
    }
    // .r2 is an alias; scheduling infos carry no egress rules / network.
    const r2 = models.DesiredLRPsResponse.decode((await post('/v1/desired_lrps/list.r2')).body);
    assert.equal(r2.desiredLrps.length, desired.desiredLrps.length);
    const schedRaw = (await post('/v1/desired_lrp_scheduling_infos/list')).body;
    const sched = models.DesiredLRPSchedulingInfosResponse.decode(schedRaw);
    assert.equal(sched.desiredLrpSchedulingInfos.length, world.desiredLrps.size);
    assert.equal(sched.desiredLrpSchedulingInfos[0]?.desiredLrpResource?.memoryMb, 256);
    assert.equal(schedRaw.includes('security_group_id:'), false, 'no egress rules in scheduling infos');

    const tasks = models.TasksResponse.decode((await post('/v1/tasks/list.r3')).body);
    assert.equal(tasks.tasks.length, world.tasks.size);
    assert.ok(tasks.tasks.every((t) => t.state === models.Task.State.Running && t.cellId !== ''));
    const cells = models.CellsResponse.decode((await post('/v1/cells/list.r1')).body);
    assert.deepEqual(cells.cells.map((c) => c.cellId).sort(), [...world.cells.keys()].sort());
    const domains = models.DomainsResponse.decode((await post('/v1/domains/list')).body);
    assert.deepEqual(domains.domains, ['cf-apps', 'cf-tasks']);
  });

  it('filters: cell_id, process_guid, explicit index 0, app_guids prefix', async () => {
    const world = sim.world;
    const cell = 'cell-001';
    const byCell = models.ActualLRPsResponse.decode(
      (await post('/v1/actual_lrps/list', models.ActualLRPsRequest.encode({ cellId: cell }).finish())).body,
    );
    assert.equal(
      byCell.actualLrps.length,
      [...world.actualLrps.values()].filter((a) => a.cellId === cell).length,
    );
    assert.ok(byCell.actualLrps.every((a) => a.actualLrpInstanceKey?.cellId === cell));

    const d = [...world.desiredLrps.values()][0];
    assert.ok(d);
    const index0 = models.ActualLRPsResponse.decode(
      (
        await post(
          '/v1/actual_lrps/list',
          models.ActualLRPsRequest.encode({ processGuid: d.processGuid, index: 0 }).finish(),
        )
      ).body,
    );
    assert.equal(index0.actualLrps.length, 1);
    assert.equal(index0.actualLrps[0]?.actualLrpKey?.index ?? 0, 0);
    const all = models.ActualLRPsResponse.decode(
      (
        await post(
          '/v1/actual_lrps/list',
          models.ActualLRPsRequest.encode({ processGuid: d.processGuid }).finish(),
        )
      ).body,
    );
    assert.equal(all.actualLrps.length, d.instances);

    const byApp = models.DesiredLRPsResponse.decode(
      (
        await post(
          '/v1/desired_lrps/list.r3',
          models.DesiredLRPsRequest.encode({ appGuids: [d.appGuid] }).finish(),
        )
      ).body,
    );
    assert.deepEqual(
      byApp.desiredLrps.map((x) => x.processGuid),
      [d.processGuid],
    );
    const got = models.DesiredLRPResponse.decode(
      (
        await post(
          '/v1/desired_lrps/get_by_process_guid.r3',
          models.DesiredLRPByProcessGuidRequest.encode({ processGuid: d.processGuid }).finish(),
        )
      ).body,
    );
    assert.equal(got.desiredLrp?.processGuid, d.processGuid);
  });

  it('errors: 200 + Error field for not-found and unparsable bodies; plain 404 for unknown routes', async () => {
    const nf = await post(
      '/v1/desired_lrps/get_by_process_guid.r3',
      models.DesiredLRPByProcessGuidRequest.encode({ processGuid: 'nope' }).finish(),
    );
    assert.equal(nf.status, 200);
    const nfMsg = models.DesiredLRPResponse.decode(nf.body);
    assert.equal(nfMsg.error?.type, models.Error.Type.ResourceNotFound);
    assert.equal(nfMsg.error?.message, 'the requested resource could not be found');
    const task = models.TaskResponse.decode(
      (
        await post(
          '/v1/tasks/get_by_task_guid.r3',
          models.TaskByGuidRequest.encode({ taskGuid: 'nope' }).finish(),
        )
      ).body,
    );
    assert.equal(task.error?.type, models.Error.Type.ResourceNotFound);

    const bad = await post('/v1/actual_lrps/list', Buffer.from([0x12, 0x7f, 0x01]));
    assert.equal(bad.status, 200);
    const badMsg = models.ActualLRPsResponse.decode(bad.body);
    assert.equal(badMsg.error?.type, models.Error.Type.InvalidRequest);
    assert.equal(badMsg.error?.message, 'the request received is invalid');

    const unknown = await post('/v1/nope');
    assert.equal(unknown.status, 404);
    assert.notEqual(unknown.headers['content-type'], 'application/x-protobuf');
  });

  it('SSE: BBS chunk framing byte for byte, per-connection ids from 0, events in BBS order, cell filter', async () => {
    const world = sim.world;
    const all = await subscribe('/v1/events/lrp_instances.r1');
    const app = [...world.apps.values()][1];
    assert.ok(app);
    const d = world.desiredOfApp(app.guid);
    assert.ok(d);
    const victim = world.actualsOf(d.processGuid)[0];
    assert.ok(victim);
    const other = [...world.cells.keys()].find((c) => c !== victim.cellId) as string;
    const filtered = await subscribe(
      '/v1/events/lrp_instances.r1',
      models.EventsByCellId.encode({ cellId: victim.cellId }).finish(),
    );

    assert.match(all.head, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(all.head, /\r\nTransfer-Encoding: chunked(\r\n|$)/);
    assert.match(all.head, /\r\nContent-Type: text\/event-stream; charset=utf-8(\r\n|$)/);
    assert.match(all.head, /\r\nCache-Control: no-cache, no-store, must-revalidate(\r\n|$)/);
    assert.match(all.head, /\r\nConnection: keep-alive(\r\n|$)/);
    assert.doesNotMatch(all.head, /Content-Length/i);

    const applied = await sim.apply({
      kind: 'app-crash',
      appGuid: app.guid,
      index: victim.index,
      cellId: other,
    });
    assert.ok(applied.triggeredAt <= Date.now());
    await waitUntil('six events', () => all.events().length >= 6, 5000, 10);
    const events = all.events();
    assert.deepEqual(
      events.map((e) => e.id),
      ['0', '1', '2', '3', '4', '5'],
    );
    assert.deepEqual(
      events.map((e) => e.name),
      [
        'actual_lrp_crashed',
        'actual_lrp_instance_changed',
        'actual_lrp_instance_created',
        'actual_lrp_instance_removed',
        'actual_lrp_instance_changed',
        'actual_lrp_instance_changed',
      ],
    );
    // The first chunk, byte for byte.
    const first = events[0];
    assert.ok(first);
    const text = `id: 0\nevent: actual_lrp_crashed\ndata: ${first.data}\n\n`;
    assert.equal(
      all.bodyBytes
        .subarray(0, Buffer.byteLength(text) + 5 + Buffer.byteLength(text).toString(16).length)
        .toString(),
      `${Buffer.byteLength(text).toString(16)};\r\n${text}\r\n`,
    );
    // Payloads are standard base64 of the protobuf messages.
    const crashed = decodeEvent(first.name, first.data);
    assert.ok(crashed?.name === 'actual_lrp_crashed');
    assert.equal(crashed.message.actualLrpInstanceKey?.instanceGuid, victim.instanceGuid);
    assert.equal(crashed.message.crashCount, 1);
    const changed = decodeEvent('actual_lrp_instance_changed', events[1]?.data ?? '');
    assert.ok(changed?.name === 'actual_lrp_instance_changed');
    assert.equal(changed.message.before?.state, 'RUNNING');
    assert.equal(changed.message.after?.state, 'CRASHED');
    assert.equal(changed.message.actualLrpInstanceKey?.cellId, victim.cellId);
    const running = decodeEvent('actual_lrp_instance_changed', events[5]?.data ?? '');
    assert.ok(running?.name === 'actual_lrp_instance_changed');
    assert.equal(running.message.after?.state, 'RUNNING');
    assert.equal(running.message.actualLrpInstanceKey?.cellId, other);
    assert.equal(
      running.message.after?.actualLrpNetInfo?.instanceAddress,
      world.actualAt(d.processGuid, victim.index)?.instanceAddress,
    );

    // Filtered on the old cell: only the events keyed to it (crashed, changed→CRASHED); desired events pass.
    await sim.apply({ kind: 'app-scale', appGuid: app.guid, instances: d.instances });
    await waitUntil('filtered events', () => filtered.events().length >= 3, 5000, 10);
    assert.deepEqual(
      filtered.events().map((e) => `${e.id}:${e.name}`),
      ['0:actual_lrp_crashed', '1:actual_lrp_instance_changed', '2:desired_lrp_changed'],
    );
    assert.equal(all.events().at(-1)?.name, 'desired_lrp_changed');
    all.socket.destroy();
    filtered.socket.destroy();
    await waitUntil('subscriptions gone', () => sim.eventStreams() === 0, 5000, 10);
  });

  it('task stream, injected raw events, dropEventStreams (abrupt, no terminating chunk)', async () => {
    const tasks = await subscribe('/v1/events/tasks.r1');
    const lrp = await subscribe('/v1/events/lrp_instances.r1');
    const app = [...sim.world.apps.keys()][0] as string;
    await sim.apply({ kind: 'task-run', appGuid: app, durationMs: 0 });
    await waitUntil('task events', () => tasks.events().length >= 5, 5000, 10);
    assert.deepEqual(
      tasks.events().map((e) => e.name),
      ['task_created', 'task_changed', 'task_changed', 'task_changed', 'task_removed'],
    );
    const created = decodeEvent('task_created', tasks.events()[0]?.data ?? '');
    assert.ok(created?.name === 'task_created');
    assert.equal(created.message.task?.state, models.Task.State.Pending);
    assert.equal(created.message.task?.taskDefinition?.network?.properties?.container_workload, 'task');

    assert.equal(sim.faults.injectEvent('lrp', { name: 'bogus_event', dataBase64: '!!not base64!!' }), 1);
    await waitUntil('injected event', () => lrp.events().length >= 1, 5000, 10);
    assert.deepEqual(lrp.events()[0], { id: '0', name: 'bogus_event', data: '!!not base64!!' });

    const dropped = sim.faults.dropEventStreams();
    assert.ok(dropped >= 2);
    await waitUntil('streams closed', () => tasks.closed && lrp.closed, 5000, 10);
    assert.equal(tasks.chunks().terminated, false);
    assert.equal(lrp.chunks().terminated, false);
    assert.equal(sim.eventStreams(), 0);
  });

  it('drops a slow consumer once its buffer exceeds the limit, ending the stream with 0\\r\\n\\r\\n', async () => {
    const slow = await subscribe('/v1/events/lrp_instances.r1');
    slow.socket.pause();
    const payload = Buffer.alloc(48 * 1024, 7).toString('base64');
    let sent = 0;
    while (sim.eventStreams() > 0 && sent < 5000) {
      sim.faults.injectEvent('lrp', { name: 'filler', dataBase64: payload });
      sent++;
      if (sent % 50 === 0) await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(sim.eventStreams(), 0, `still subscribed after ${sent} events`);
    slow.socket.resume();
    await waitUntil('slow stream closed', () => slow.closed, 10_000, 10);
    const { terminated, data, rest } = slow.chunks();
    assert.equal(terminated, true);
    assert.equal(rest, 0);
    assert.ok(data.length < sent, 'events were discarded');
  });
});
