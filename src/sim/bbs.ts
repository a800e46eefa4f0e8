/**
 * Simulated Diego BBS: mTLS, every route POST with protobuf bodies, handled failures as HTTP 200
 * with an `error` field, plain 404 for unknown routes, and the SSE event streams written on the
 * hijacked socket with BBS's own chunk framing (`<hex>;\r\n<event>\r\n`, `0\r\n\r\n` at close).
 */
import type { Socket } from 'node:net';
import { models } from '../model/bbs-messages.js';
import {
  type ActualEncoder,
  cellMessage,
  ERROR_FIELD,
  embed,
  encodeDesired,
  encodeLrpEvent,
  encodeTaskEvent,
  listResponse,
  listResponseLength,
  listResponsePieces,
  PAYLOAD_FIELD,
  routingInfoMessage,
  schedulingInfoMessage,
  taskMessage,
} from './bbs-encode.js';
import { type EventSink, eventCellId, type LrpEvent, type TaskEvent } from './events.js';
import type { FaultState, RawEvent } from './faults.js';
import { type Ctx, Router, type RunningService, sendBytes, sendText, startService } from './http.js';
import type { SimActualLrp, SimDesiredLrp, SimWorld } from './world.js';

const PROTO = 'application/x-protobuf';
/** Events a subscriber may have queued before it is dropped as a slow consumer (BBS hub). */
export const SLOW_CONSUMER_LIMIT = 1024;

const ErrorType = models.Error.Type;

// ---- SSE wire format (docs/cf-interfaces.md, "BBS event streams") ----

/** The response head BBS writes itself once it has hijacked the connection for an event stream. */
export function eventStreamHead(date = new Date()): string {
  return (
    'HTTP/1.1 200 OK\r\n' +
    'Cache-Control: no-cache, no-store, must-revalidate\r\n' +
    'Connection: keep-alive\r\n' +
    'Content-Type: text/event-stream; charset=utf-8\r\n' +
    `Date: ${date.toUTCString()}\r\n` +
    'Transfer-Encoding: chunked\r\n\r\n'
  );
}

/** One SSE event in one chunk with an empty chunk extension (`<hex>;\r\n`), as BBS frames it. */
export function frameEvent(id: number, name: string, dataBase64: string): string {
  const text = `id: ${id}\nevent: ${name}\ndata: ${dataBase64}\n\n`;
  return `${Buffer.byteLength(text).toString(16)};\r\n${text}\r\n`;
}

/** The chunk that ends a stream (BBS closes the stream this way; a dropped one lacks it). */
export const END_OF_STREAM = '0\r\n\r\n';

// ---- SSE subscribers ----

class Subscriber {
  private nextId = 0;
  private queue: string[] = [];
  private waitingDrain = false;
  closed = false;

  constructor(
    readonly socket: Socket,
    readonly stream: 'lrp' | 'task',
    readonly cellId: string,
    private readonly limit: number,
    private readonly onClose: (s: Subscriber) => void,
  ) {
    socket.on('close', () => this.markClosed());
    socket.on('error', () => this.markClosed());
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.onClose(this);
  }

  send(name: string, dataBase64: string): void {
    if (this.closed) return;
    const chunk = frameEvent(this.nextId++, name, dataBase64);
    if (this.waitingDrain) {
      this.queue.push(chunk);
      if (this.queue.length > this.limit) this.close();
      return;
    }
    if (!this.socket.write(chunk)) this.waitForDrain();
  }

  private waitForDrain(): void {
    this.waitingDrain = true;
    this.socket.once('drain', () => {
      this.waitingDrain = false;
      while (this.queue.length > 0 && !this.closed) {
        const next = this.queue.shift() as string;
        if (!this.socket.write(next)) {
          this.waitForDrain();
          return;
        }
      }
    });
  }

  /** End the stream the way the BBS handler does: the terminating chunk, then close. */
  close(): void {
    if (this.closed) return;
    this.queue = [];
    this.socket.end(END_OF_STREAM);
    this.markClosed();
  }

  /** Cut the connection without the terminating chunk. */
  drop(): void {
    if (this.closed) return;
    this.socket.destroy();
    this.markClosed();
  }
}

/** Fans events out to subscribers; encodes each event once. */
export class EventHub implements EventSink {
  private readonly subscribers = new Set<Subscriber>();
  /** Events emitted per stream (for tests and the admin summary). */
  readonly emitted = { lrp: 0, task: 0 };

  constructor(
    private readonly world: SimWorld,
    private readonly actuals: ActualEncoder,
    /** Queued events after which a subscriber that does not read is dropped. */
    private readonly bufferLimit = SLOW_CONSUMER_LIMIT,
  ) {}

  get count(): number {
    return this.subscribers.size;
  }

  subscribe(socket: Socket, stream: 'lrp' | 'task', cellId: string): Subscriber {
    const s = new Subscriber(socket, stream, cellId, this.bufferLimit, (x) => this.subscribers.delete(x));
    this.subscribers.add(s);
    return s;
  }

  emitLrp(events: LrpEvent[]): void {
    for (const e of events) {
      this.emitted.lrp++;
      let data: string | undefined;
      const cell = eventCellId(e);
      for (const s of this.subscribers) {
        if (s.stream !== 'lrp') continue;
        if (s.cellId && cell !== null && cell !== s.cellId) continue;
        data ??= Buffer.from(encodeLrpEvent(this.world, this.actuals, e)).toString('base64');
        s.send(e.name, data);
      }
    }
  }

  emitTask(events: TaskEvent[]): void {
    for (const e of events) {
      this.emitted.task++;
      let data: string | undefined;
      for (const s of this.subscribers) {
        if (s.stream !== 'task') continue;
        data ??= Buffer.from(encodeTaskEvent(this.world, e)).toString('base64');
        s.send(e.name, data);
      }
    }
  }

  inject(stream: 'lrp' | 'task', event: RawEvent): number {
    let n = 0;
    for (const s of this.subscribers) {
      if (s.stream !== stream) continue;
      s.send(event.name, event.dataBase64);
      n++;
    }
    return n;
  }

  dropAll(): number {
    const all = [...this.subscribers];
    for (const s of all) s.drop();
    return all.length;
  }

  closeAll(): void {
    for (const s of [...this.subscribers]) s.close();
  }
}

// ---- server ----

export interface BbsOptions {
  host: string;
  port: number;
  tls: { cert: string; key: string; clientCa: string };
  world: SimWorld;
  hub: EventHub;
  actuals: ActualEncoder;
  faults: FaultState;
}

function errorBytes(type: number, message: string): Uint8Array {
  return models.Error.encode({ type, message }).finish();
}

/** A response message carrying only `error` (field 1). */
function sendError(ctx: Ctx, type: number, message: string): void {
  sendBytes(ctx, 200, embed(ERROR_FIELD, errorBytes(type, message)), PROTO);
}

const invalidRequest = (ctx: Ctx) =>
  sendError(ctx, ErrorType.InvalidRequest, 'the request received is invalid');
const notFound = (ctx: Ctx) =>
  sendError(ctx, ErrorType.ResourceNotFound, 'the requested resource could not be found');

/**
 * Send a list response built from already-encoded messages (a snapshot: the array is taken before
 * the first byte is written). Pieces share one buffer, so each is written only once the previous
 * one was handed to the socket; a client that goes away ends the loop.
 */
async function sendList(ctx: Ctx, messages: Uint8Array[]): Promise<void> {
  if (ctx.corrupt) {
    sendBytes(ctx, 200, listResponse(messages), PROTO);
    return;
  }
  const { res } = ctx;
  res.writeHead(200, { 'Content-Type': PROTO, 'Content-Length': String(listResponseLength(messages)) });
  for (const piece of listResponsePieces(messages)) {
    const written = await new Promise<boolean>((resolve) => {
      const onClose = () => resolve(false);
      res.once('close', onClose);
      res.write(piece, (err) => {
        res.off('close', onClose);
        resolve(!err);
      });
    });
    if (!written) return;
  }
  res.end();
}

function decode<T>(ctx: Ctx, codec: { decode(b: Uint8Array): T }): T | null {
  try {
    return codec.decode(ctx.body);
  } catch {
    invalidRequest(ctx);
    return null;
  }
}

export function startBbs(opts: BbsOptions): Promise<RunningService> {
  const { world, hub, actuals } = opts;
  const router = new Router();

  /** `render` returns the message bytes of one DesiredLRP (full, scheduling or routing info). */
  const desiredList = (ctx: Ctx, render: (d: SimDesiredLrp) => Uint8Array) => {
    const r = decode(ctx, models.DesiredLRPsRequest);
    if (!r) return;
    const pgs = r.processGuids.length ? new Set(r.processGuids) : null;
    const appGuids = r.appGuids.length ? r.appGuids : null;
    const items: Uint8Array[] = [];
    for (const d of world.desiredLrps.values()) {
      if (r.domain && d.domain !== r.domain) continue;
      if (pgs && !pgs.has(d.processGuid)) continue;
      if (appGuids && !appGuids.some((g) => d.processGuid.startsWith(g))) continue;
      items.push(render(d));
    }
    return sendList(ctx, items);
  };
  const desiredGet = (ctx: Ctx, render: (d: SimDesiredLrp) => Uint8Array) => {
    const r = decode(ctx, models.DesiredLRPByProcessGuidRequest);
    if (!r) return;
    const d = world.desiredLrps.get(r.processGuid);
    if (!d) return notFound(ctx);
    sendBytes(ctx, 200, embed(PAYLOAD_FIELD, render(d)), PROTO);
  };
  const full = (d: SimDesiredLrp) => encodeDesired(world, d);
  const scheduling = (d: SimDesiredLrp) =>
    models.DesiredLRPSchedulingInfo.encode(schedulingInfoMessage(d)).finish();

  router.on('POST', '/v1/ping', (ctx) =>
    sendBytes(ctx, 200, models.PingResponse.encode({ available: true }).finish(), PROTO),
  );
  router.on('POST', '/v1/domains/list', (ctx) =>
    sendBytes(ctx, 200, models.DomainsResponse.encode({ domains: ['cf-apps', 'cf-tasks'] }).finish(), PROTO),
  );
  router.on('POST', '/v1/cells/list.r1', (ctx) =>
    sendBytes(
      ctx,
      200,
      models.CellsResponse.encode({ cells: [...world.cells.values()].map(cellMessage) }).finish(),
      PROTO,
    ),
  );
  router.on('POST', '/v1/actual_lrps/list', (ctx) => {
    const r = decode(ctx, models.ActualLRPsRequest);
    if (!r) return;
    const hasIndex = r.index !== null && r.index !== undefined;
    let source: Iterable<SimActualLrp> = world.actualLrps.values();
    if (r.processGuid) source = world.actualsOf(r.processGuid);
    const items: Uint8Array[] = [];
    for (const a of source) {
      if (r.domain && a.domain !== r.domain) continue;
      if (r.cellId && a.cellId !== r.cellId) continue;
      if (hasIndex && a.index !== r.index) continue;
      items.push(actuals.encode(a));
    }
    return sendList(ctx, items);
  });
  router.on('POST', '/v1/actual_lrps/list_by_process_guids', (ctx) => {
    const r = decode(ctx, models.ActualLRPsByProcessGuidsRequest);
    if (!r) return;
    const items: Uint8Array[] = [];
    for (const pg of r.processGuids) for (const a of world.actualsOf(pg)) items.push(actuals.encode(a));
    return sendList(ctx, items);
  });
  for (const v of ['r3', 'r2']) {
    router.on('POST', `/v1/desired_lrps/list.${v}`, (ctx) => desiredList(ctx, full));
    router.on('POST', `/v1/desired_lrps/get_by_process_guid.${v}`, (ctx) => desiredGet(ctx, full));
  }
  router.on('POST', '/v1/desired_lrp_scheduling_infos/list', (ctx) => desiredList(ctx, scheduling));
  router.on('POST', '/v1/desired_lrp_scheduling_infos/get_by_process_guid', (ctx) =>
    desiredGet(ctx, scheduling),
  );
  router.on('POST', '/v1/desired_lrp_routing_infos/list', (ctx) =>
    desiredList(ctx, (d) => models.DesiredLRP.encode(routingInfoMessage(d)).finish()),
  );
  for (const v of ['r3', 'r2']) {
    router.on('POST', `/v1/tasks/list.${v}`, (ctx) => {
      const r = decode(ctx, models.TasksRequest);
      if (!r) return;
      const tasks = [...world.tasks.values()].filter(
        (t) => (!r.domain || t.domain === r.domain) && (!r.cellId || t.cellId === r.cellId),
      );
      sendBytes(
        ctx,
        200,
        models.TasksResponse.encode({ tasks: tasks.map((t) => taskMessage(world, t)) }).finish(),
        PROTO,
      );
    });
    router.on('POST', `/v1/tasks/get_by_task_guid.${v}`, (ctx) => {
      const r = decode(ctx, models.TaskByGuidRequest);
      if (!r) return;
      const t = world.tasks.get(r.taskGuid);
      if (!t) return notFound(ctx);
      sendBytes(ctx, 200, models.TaskResponse.encode({ task: taskMessage(world, t) }).finish(), PROTO);
    });
  }

  const subscribe = (ctx: Ctx, stream: 'lrp' | 'task') => {
    let cellId = '';
    if (stream === 'lrp') {
      const r = decode(ctx, models.EventsByCellId);
      if (!r) return;
      cellId = r.cellId;
    }
    const socket = ctx.req.socket;
    // Hijack: from here on the handler owns the connection and writes HTTP itself.
    socket.write(eventStreamHead());
    socket.setTimeout(0);
    socket.setNoDelay(true);
    hub.subscribe(socket, stream, cellId);
  };
  router.on('POST', '/v1/events/lrp_instances.r1', (ctx) => subscribe(ctx, 'lrp'));
  router.on('POST', '/v1/events/tasks.r1', (ctx) => subscribe(ctx, 'task'));

  return startService({
    name: 'bbs',
    host: opts.host,
    port: opts.port,
    tls: opts.tls,
    router,
    faults: opts.faults,
    onFault: (ctx, d) => {
      const status = d.kind === 'fail' ? d.status : 503;
      ctx.res.writeHead(status, { 'Content-Length': '0' });
      ctx.res.end();
    },
    notFound: (ctx) => sendText(ctx, 404, '404 page not found\n'),
  });
}
