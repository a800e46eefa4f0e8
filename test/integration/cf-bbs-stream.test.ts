/**
 * The BBS event stream client against a local mTLS server that writes the exact bytes real BBS
 * writes (docs/cf-interfaces.md, "BBS event streams"): `HTTP/1.1 200` head with `Transfer-Encoding: chunked`, then one chunk per
 * event framed `%x;\r\n<event>\r\n` (empty chunk extension), `0\r\n\r\n` on close.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { BbsClient } from '../../src/cf/bbs-client.js';
import {
  type BbsEventStream,
  type BbsEventStreamOptions,
  encodeEventsByCellId,
  type StreamItem,
} from '../../src/cf/bbs-events.js';
import { CfConnectionError } from '../../src/cf/errors.js';
import { createCa, issueCert } from '../../src/lib/tls.js';
import { BbsDecodeError } from '../../src/model/bbs-errors.js';
import { type DecodedBbsEvent, encodeEvent, models } from '../../src/model/bbs-messages.js';
import { waitUntil } from '../helpers/wait.js';

interface Conn {
  socket: tls.TLSSocket;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer;
  nextId: number;
}

const ca = createCa({ cn: 'test CA' });
const server = issueCert(ca, {
  cn: 'bbs.service.cf.internal',
  sans: ['127.0.0.1', 'localhost'],
  usage: 'server',
});
const client = issueCert(ca, { cn: 'cfnet-controller', usage: 'client' });

function frame(bytes: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${bytes.length.toString(16)};\r\n`), bytes, Buffer.from('\r\n')]);
}

function sseEvent(id: number, name: string, data: string): Buffer {
  return Buffer.from(`id: ${id}\nevent: ${name}\ndata: ${data}\n\n`);
}

/** A fake BBS: mTLS, parses one request per connection, answers with the BBS SSE head. */
class FakeBbs {
  readonly conns: Conn[] = [];
  private waiters: ((c: Conn) => void)[] = [];
  server: tls.Server;
  port = 0;
  /** Raw socket writes for non-stream paths (path → response bytes). */
  canned = new Map<string, Buffer>();

  constructor() {
    this.server = tls.createServer({
      key: server.key,
      cert: server.cert,
      ca: ca.cert,
      requestCert: true,
      rejectUnauthorized: true,
    });
    this.server.on('secureConnection', (socket) => this.onSocket(socket));
    this.server.on('tlsClientError', () => {});
  }

  async listen(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  nextConnection(): Promise<Conn> {
    return new Promise((r) => this.waiters.push(r));
  }

  private onSocket(socket: tls.TLSSocket): void {
    let buf = Buffer.alloc(0);
    socket.on('error', () => {});
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const [reqLine, ...lines] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      if (buf.length < end + 4 + len) return;
      socket.off('data', onData);
      const [method, path] = (reqLine ?? '').split(' ');
      const conn: Conn = {
        socket,
        method: method ?? '',
        path: path ?? '',
        headers,
        body: buf.subarray(end + 4, end + 4 + len),
        nextId: 0,
      };
      const canned = this.canned.get(conn.path);
      if (canned) {
        socket.end(canned);
        return;
      }
      socket.write(
        'HTTP/1.1 200 OK\r\n' +
          'Cache-Control: no-cache, no-store, must-revalidate\r\n' +
          'Connection: keep-alive\r\n' +
          'Content-Type: text/event-stream; charset=utf-8\r\n' +
          `Date: ${new Date().toUTCString()}\r\n` +
          'Transfer-Encoding: chunked\r\n\r\n',
      );
      this.conns.push(conn);
      const w = this.waiters.shift();
      w?.(conn);
    };
    socket.on('data', onData);
  }

  send(conn: Conn, name: string, data: string): void {
    conn.socket.write(frame(sseEvent(conn.nextId++, name, data)));
  }

  /** End the stream the way BBS does. */
  end(conn: Conn): void {
    conn.socket.end('0\r\n\r\n');
  }

  close(): Promise<void> {
    for (const c of this.conns) c.socket.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

function lrpChanged(processGuid: string, index: number, cellId: string, state: string): string {
  return encodeEvent('actual_lrp_instance_changed', {
    actualLrpKey: { processGuid, index, domain: 'cf-apps' },
    actualLrpInstanceKey: { instanceGuid: `${processGuid}-${index}`, cellId },
    after: { state, actualLrpNetInfo: { address: '10.0.0.1', instanceAddress: '10.255.1.2' } },
  } as models.ActualLRPInstanceChangedEvent);
}

describe('BBS event stream over mTLS with BBS chunk framing', () => {
  const bbs = new FakeBbs();
  let bbsClient: BbsClient;
  const streams: BbsEventStream[] = [];

  before(async () => {
    await bbs.listen();
    bbsClient = new BbsClient({
      url: bbs.url,
      tls: { ca: ca.cert, cert: client.cert, key: client.key },
    });
  });
  after(async () => {
    for (const s of streams) s.close();
    bbsClient.close();
    await bbs.close();
  });

  function open(
    opts: Omit<BbsEventStreamOptions, 'url' | 'tls' | 'kind'> = {},
    kind: 'lrp' | 'task' = 'lrp',
  ) {
    const s = bbsClient.eventStream<DecodedBbsEvent>(kind, {
      backoff: { initialMs: 20, maxMs: 200 },
      ...opts,
    });
    streams.push(s);
    return s;
  }

  it("Node's own HTTP client rejects this framing (why the raw client exists)", async () => {
    const connP = bbs.nextConnection();
    const err = await new Promise<Error>((resolve) => {
      const req = https.request(`${bbs.url}/v1/events/tasks.r1`, {
        method: 'POST',
        ca: ca.cert,
        cert: client.cert,
        key: client.key,
      });
      req.on('response', (res) => {
        res.on('data', () => {});
        res.on('error', resolve);
        res.on('end', () => resolve(new Error('no error')));
      });
      req.on('error', resolve);
      req.end();
      void connP.then((c) => {
        bbs.send(c, 'task_removed', 'AAAA');
      });
    });
    assert.match(String((err as NodeJS.ErrnoException).code ?? err.message), /HPE_|chunk/i);
  });

  it('sends POST with EventsByCellId, reads and decodes events, in order', async () => {
    const stream = open({ cellId: 'cell-7' });
    const got: string[] = [];
    stream.on('event', (e) => {
      if (e.name === 'actual_lrp_instance_changed') {
        got.push(`${e.id}:${e.message.actualLrpKey?.processGuid}/${e.message.after?.state}`);
      } else got.push(`${e.id}:${e.name}`);
    });
    const connP = bbs.nextConnection();
    stream.start();
    const conn = await connP;
    await stream.waitOpen();
    assert.equal(conn.method, 'POST');
    assert.equal(conn.path, '/v1/events/lrp_instances.r1');
    assert.equal(conn.headers['content-type'], 'application/x-protobuf');
    assert.match(conn.headers['x-vcap-request-id'] ?? '', /^[0-9a-f-]{36}$/);
    assert.deepEqual(conn.body, Buffer.from(encodeEventsByCellId('cell-7')));
    assert.equal(models.EventsByCellId.decode(conn.body).cellId, 'cell-7');

    bbs.send(conn, 'actual_lrp_instance_changed', lrpChanged('pg-1', 0, 'cell-7', 'RUNNING'));
    bbs.send(
      conn,
      'desired_lrp_removed',
      encodeEvent('desired_lrp_removed', {
        desiredLrp: { processGuid: 'pg-2' },
      } as models.DesiredLRPRemovedEvent),
    );
    // a large event: several TLS records, split chunk lines
    const big = lrpChanged('x'.repeat(40_000), 3, 'cell-7', 'CRASHED');
    bbs.send(conn, 'actual_lrp_instance_changed', big);
    await waitUntil('three events', () => got.length === 3, 5000, 10);
    assert.deepEqual(got, ['0:pg-1/RUNNING', '1:desired_lrp_removed', `2:${'x'.repeat(40_000)}/CRASHED`]);
    assert.equal(stream.counters.events, 3);
    assert.equal(stream.counters.connects, 1);
    stream.close();
  });

  it('skips unknown names and undecodable payloads, counts them, and keeps going', async () => {
    const stream = open({}, 'task');
    const events: string[] = [];
    const decodeErrors: unknown[] = [];
    const unknown: string[] = [];
    stream.on('event', (e) => events.push(e.name));
    stream.on('decodeError', (d) => decodeErrors.push(d.error));
    stream.on('unknown', (u) => unknown.push(u.name));
    const connP = bbs.nextConnection();
    stream.start();
    const conn = await connP;
    assert.equal(conn.path, '/v1/events/tasks.r1');
    assert.equal(conn.body.length, 0);
    const good = encodeEvent('task_created', {
      task: { taskGuid: 't1', cellId: 'c1' },
    } as models.TaskCreatedEvent);
    const truncated = Buffer.from(good, 'base64').subarray(0, 5).toString('base64');
    bbs.send(conn, 'task_created', good);
    bbs.send(conn, 'brand_new_event', good);
    bbs.send(conn, 'task_changed', '!!not base64!!');
    bbs.send(conn, 'task_created', truncated);
    bbs.send(conn, 'task_removed', '');
    bbs.send(conn, 'task_removed', good);
    await waitUntil('two good events', () => events.length === 2, 5000, 10);
    assert.deepEqual(events, ['task_created', 'task_removed']);
    assert.deepEqual(unknown, ['brand_new_event']);
    assert.equal(decodeErrors.length, 3);
    for (const e of decodeErrors) assert.ok(e instanceof BbsDecodeError);
    assert.deepEqual(
      decodeErrors.map((e) => (e as BbsDecodeError).reason),
      ['base64', 'protobuf', 'empty'],
    );
    assert.deepEqual(
      { ...stream.counters },
      {
        events: 2,
        decodeErrors: 3,
        unknown: 1,
        reconnects: 0,
        connects: 1,
        connectFailures: 0,
        idleTimeouts: 0,
        slowConsumerDrops: 0,
      },
    );
    assert.equal(stream.connected, true);
    stream.close();
  });

  it('reconnects after the server ends the stream, and signals a re-list', async () => {
    const stream = open();
    const items: StreamItem[] = [];
    const first = bbs.nextConnection();
    const iter = (async () => {
      for await (const item of stream) {
        items.push(item);
        if (items.length === 4) break;
      }
    })();
    const c1 = await first;
    await stream.waitOpen();
    bbs.send(c1, 'actual_lrp_instance_changed', lrpChanged('a', 0, 'c', 'RUNNING'));
    await waitUntil('condition', () => items.length === 2, 5000, 10);
    const second = bbs.nextConnection();
    let reconnected = 0;
    stream.on('reconnected', () => reconnected++);
    bbs.end(c1);
    const c2 = await second;
    await waitUntil('reconnected', () => reconnected === 1, 5000, 10);
    bbs.send(c2, 'actual_lrp_instance_changed', lrpChanged('b', 1, 'c', 'CLAIMED'));
    await iter;
    assert.deepEqual(
      items.map((i) => (i.type === 'open' ? `open:${i.connection}:${i.reconnect}` : `event:${i.event.id}`)),
      ['open:1:false', 'event:0', 'open:2:true', 'event:0'],
    );
    assert.equal(stream.counters.reconnects, 1);
    assert.equal(stream.connected, false, 'leaving the loop closes the stream');
  });

  it('reconnects after an abrupt disconnect and after silence longer than the idle timeout', async () => {
    const stream = open({ idleTimeoutMs: 300 });
    const c1p = bbs.nextConnection();
    stream.start();
    const c1 = await c1p;
    await stream.waitOpen();
    const c2p = bbs.nextConnection();
    c1.socket.destroy();
    await c2p;
    await waitUntil('first reconnect', () => stream.counters.reconnects === 1, 5000, 10);
    const c3p = bbs.nextConnection();
    const started = Date.now();
    await c3p; // nothing sent on c2: the idle timer drops it
    assert.ok(Date.now() - started >= 250, 'idle drop waited for the timeout');
    await waitUntil('second reconnect', () => stream.counters.reconnects === 2, 5000, 10);
    assert.equal(stream.counters.idleTimeouts, 1);
    stream.close();
  });

  it('drops a stream whose iterator consumer falls behind, and resumes once it caught up', async () => {
    const stream = open({ maxBuffered: 10 });
    const c1p = bbs.nextConnection();
    const it = stream[Symbol.asyncIterator]();
    const c1 = await c1p;
    await stream.waitOpen();
    for (let i = 0; i < 12; i++)
      bbs.send(c1, 'actual_lrp_instance_changed', lrpChanged(`p${i}`, 0, 'c', 'RUNNING'));
    await waitUntil('slow consumer drop', () => stream.counters.slowConsumerDrops === 1, 5000, 10);
    assert.equal(stream.connected, false);
    const c2p = bbs.nextConnection();
    const seen: string[] = [];
    for (;;) {
      const r = await it.next();
      assert.equal(r.done, false);
      const item = r.value as StreamItem;
      if (item.type === 'open' && item.reconnect) break;
      seen.push(item.type);
    }
    await c2p;
    // queued when the limit was passed: the open item and 10 events; the rest was never delivered
    assert.deepEqual(seen, ['open', ...Array(10).fill('event')]);
    await it.return?.();
  });

  it('is refused without a client certificate', async () => {
    const noCert = new BbsClient({ url: bbs.url, tls: { ca: ca.cert }, connectTries: 1 });
    await assert.rejects(noCert.ping(), (err: unknown) => {
      assert.ok(err instanceof CfConnectionError);
      assert.equal(err.context.service, 'bbs');
      assert.equal(err.context.path, '/v1/ping');
      return true;
    });
    const stream = noCert.eventStream('lrp', { backoff: { initialMs: 20, maxMs: 50 } });
    streams.push(stream);
    const reasons: string[] = [];
    stream.on('disconnected', (d) => reasons.push(d.reason));
    stream.start();
    await waitUntil('two refused attempts', () => stream.counters.connectFailures >= 2, 5000, 10);
    assert.equal(stream.counters.connects, 0);
    assert.equal(stream.connected, false);
    assert.ok(reasons.length >= 2);
    const never = stream.waitOpen();
    stream.close();
    await assert.rejects(never, (e: unknown) => (e as { code?: string }).code === 'CFNET_STREAM_CLOSED');
    noCert.close();
  });

  it('BbsClient retries a refused connection (standby BBS) 3 times, 500 ms apart by default', async () => {
    // a port with nobody listening: refused
    const probe = tls.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const tlsOpts = { ca: ca.cert, cert: client.cert, key: client.key };
    const refused = new BbsClient({ url: `https://127.0.0.1:${port}`, tls: tlsOpts });
    const t0 = Date.now();
    await assert.rejects(refused.ping(), (e: unknown) => {
      assert.ok(e instanceof CfConnectionError);
      assert.equal(e.context.reason, 'ECONNREFUSED');
      assert.equal(e.context.attempts, 3);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= 1000 && took < 3000, `3 tries 500 ms apart took ${took} ms`);
    refused.close();
    // the active instance comes up while the client is retrying: the call succeeds
    const late = new BbsClient({ url: `https://127.0.0.1:${port}`, tls: tlsOpts, retryIntervalMs: 200 });
    const pong = Buffer.from(models.PingResponse.encode({ available: true }).finish());
    const standby = tls.createServer({ key: server.key, cert: server.cert, ca: ca.cert, requestCert: true });
    standby.on('secureConnection', (sock) => {
      sock.on('error', () => {});
      sock.once('data', () => {
        sock.end(
          Buffer.concat([
            Buffer.from(
              `HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: ${pong.length}\r\n\r\n`,
            ),
            pong,
          ]),
        );
      });
    });
    const call = late.ping();
    setTimeout(() => standby.listen(port, '127.0.0.1'), 250);
    assert.equal(await call, true);
    late.close();
    await new Promise<void>((r) => standby.close(() => r()));
  });

  it('BbsClient maps BBS answers: protobuf error field, 503, 404', async () => {
    const errBody = Buffer.from(
      models.CellsResponse.encode({ error: { type: 0, message: '' }, cells: [] }).finish(),
    );
    const http = (status: string, ct: string | null, body: Buffer) =>
      Buffer.concat([
        Buffer.from(
          `HTTP/1.1 ${status}\r\n${ct ? `Content-Type: ${ct}\r\n` : ''}Content-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        ),
        body,
      ]);
    bbs.canned.set('/v1/cells/list.r1', http('200 OK', 'application/x-protobuf', errBody));
    bbs.canned.set('/v1/ping', http('503 Service Unavailable', null, Buffer.alloc(0)));
    bbs.canned.set(
      '/v1/tasks/list.r3',
      http('404 Not Found', 'text/plain', Buffer.from('404 page not found')),
    );
    const { BbsError } = await import('../../src/model/bbs-errors.js');
    const { BbsUnavailableError, BbsInvalidResponseError } = await import('../../src/cf/errors.js');
    await assert.rejects(bbsClient.cells(), (e: unknown) => e instanceof BbsError && e.type === 0);
    await assert.rejects(
      bbsClient.ping(),
      (e: unknown) => e instanceof BbsUnavailableError && e.status === 503,
    );
    await assert.rejects(
      bbsClient.tasks(),
      (e: unknown) => e instanceof BbsInvalidResponseError && /status code: 404/.test(e.message),
    );
  });
});
