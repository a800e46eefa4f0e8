/**
 * BBS event streams (docs/cf-interfaces.md, "BBS event streams"): `POST /v1/events/lrp_instances.r1` (body `EventsByCellId`)
 * and `POST /v1/events/tasks.r1`, as SSE over mTLS with BBS's chunk framing (`<hex>;\r\n`, which
 * Node's HTTP parser rejects). The `eventsource` package parses the SSE text; its `fetch` is
 * `rawFetch` (raw `tls.connect`, own chunk decoder).
 *
 * Behaviour:
 * - every `data:` line is decoded with `decode(name, base64)` (default: `decodeEvent` of
 *   `src/model/bbs-messages.ts`); unknown event names are skipped and counted; an undecodable payload is
 *   counted, reported (`decodeError` listener, warn log) and the stream goes on;
 * - stream end, a connection error, a non-200 answer, or silence longer than `idleTimeoutMs` →
 *   reconnect with exponential backoff and jitter (our own; the package's fixed 3 s retry is not
 *   used); each successful reconnect emits `reconnected` (and an `open` item with
 *   `reconnect: true` in the iterator) so the consumer re-lists: BBS event ids are per connection,
 *   nothing is resumable (list-then-watch);
 * - as an async iterator, at most `maxBuffered` items wait for the consumer; beyond that the
 *   connection is dropped (like BBS's own slow-consumer rule), and a new one is opened once the
 *   consumer has drained half of the queue, followed by the re-list signal.
 *
 * Longer than ~400 lines: the SSE framing state machine and the decoding of every BBS event kind.
 */
import { EventEmitter } from 'node:events';
import { EventSource } from 'eventsource';
import { type BackoffOptions, backoffDelay, DEFAULT_BACKOFF } from '../lib/backoff.js';
import { CfnetError } from '../lib/errors.js';
import { defaultLogger, type Logger } from '../lib/log.js';
import { type DecodedBbsEvent, decodeEvent, models } from '../model/bbs-messages.js';
import { rawFetch } from './raw-http.js';
import { type ResolvedTls, resolveTls, type TlsMaterial } from './tls-config.js';

export type BbsEventKind = 'lrp' | 'task';

export const BBS_EVENT_PATHS: Record<BbsEventKind, string> = {
  lrp: '/v1/events/lrp_instances.r1',
  task: '/v1/events/tasks.r1',
};

export interface DecodedEvent {
  name: string;
  message: unknown;
}

/** Decode one SSE event; null for a name it does not know; throws on an undecodable payload. */
export type EventDecoder<E extends DecodedEvent = DecodedBbsEvent> = (
  name: string,
  dataBase64: string,
) => E | null;

/** A decoded event (`name` discriminates `message`) with where and when it arrived. */
export type StreamEvent<E extends DecodedEvent = DecodedBbsEvent> = E & {
  /** SSE `id:` (per connection counter, from 0). */
  id: string;
  /** 1 for the first connection, +1 per reconnect. */
  connection: number;
  receivedAt: number;
};

export type StreamItem<E extends DecodedEvent = DecodedBbsEvent> =
  | { type: 'event'; event: StreamEvent<E> }
  | { type: 'open'; connection: number; reconnect: boolean };

export interface BbsEventStreamOptions<E extends DecodedEvent = DecodedBbsEvent> {
  /** BBS base URL, e.g. `https://bbs.service.cf.internal:8889`. */
  url: string;
  tls?: TlsMaterial;
  kind: BbsEventKind;
  /** LRP stream only: subscribe to one cell's instance events ('' or absent = all cells). */
  cellId?: string;
  /** Reconnect when nothing arrived for this long (BBS sends no heartbeats). 0 = never. Default 300 s. */
  idleTimeoutMs?: number;
  /** Time allowed to connect and receive the response head. Default 10 s. */
  connectTimeoutMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** A connection that lived this long (or delivered an event) resets the backoff. Default 5 s. */
  stableAfterMs?: number;
  /** Async-iterator queue limit (slow consumer). Default 10,000. */
  maxBuffered?: number;
  decode?: EventDecoder<E>;
  logger?: Logger;
}

export interface BbsEventStreamCounters {
  /** Events decoded and delivered. */
  events: number;
  /** Payloads that did not decode (bad base64, empty, truncated protobuf). */
  decodeErrors: number;
  /** Events with a name the decoder does not know (skipped). */
  unknown: number;
  /** Successful connections after the first one. */
  reconnects: number;
  /** Successful connections (200 + text/event-stream). */
  connects: number;
  /** Attempts that failed before the stream opened. */
  connectFailures: number;
  /** Connections dropped for silence. */
  idleTimeouts: number;
  /** Connections dropped because the iterator's consumer fell behind. */
  slowConsumerDrops: number;
}

export interface DecodeErrorInfo {
  name: string;
  id: string;
  error: unknown;
  dataLength: number;
}

export interface DisconnectInfo {
  reason: string;
  status?: number;
  /** Delay before the next attempt (undefined when closed for good or paused for the consumer). */
  retryInMs?: number;
}

interface StreamEvents<E extends DecodedEvent> {
  event: [StreamEvent<E>];
  open: [{ connection: number; reconnect: boolean }];
  reconnected: [{ connection: number }];
  decodeError: [DecodeErrorInfo];
  unknown: [{ name: string; id: string }];
  disconnected: [DisconnectInfo];
}

/** Serialize `EventsByCellId{cell_id}` with the generated code; empty for all cells. */
export function encodeEventsByCellId(cellId: string | undefined): Uint8Array {
  if (!cellId) return new Uint8Array(0);
  return models.EventsByCellId.encode({ cellId }).finish();
}

/** `EventSource` that hands every message event (whatever its name) to one callback. */
class CatchAllEventSource extends EventSource {
  onAny: ((ev: MessageEvent) => void) | undefined;
  override dispatchEvent(ev: Event): boolean {
    if (ev.type !== 'open' && ev.type !== 'error' && ev instanceof MessageEvent) {
      this.onAny?.(ev);
      return true;
    }
    return super.dispatchEvent(ev);
  }
}

export class BbsEventStream<E extends DecodedEvent = DecodedBbsEvent> extends EventEmitter<StreamEvents<E>> {
  readonly counters: BbsEventStreamCounters = {
    events: 0,
    decodeErrors: 0,
    unknown: 0,
    reconnects: 0,
    connects: 0,
    connectFailures: 0,
    idleTimeouts: 0,
    slowConsumerDrops: 0,
  };

  private readonly url: URL;
  private readonly tls: ResolvedTls;
  private readonly body: Uint8Array;
  private readonly idleTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  private readonly backoff: BackoffOptions;
  private readonly stableAfterMs: number;
  private readonly maxBuffered: number;
  private readonly decode: EventDecoder<E>;
  private readonly log: Logger;

  private es: CatchAllEventSource | undefined;
  private attempt = 0;
  private connection = 0;
  private failures = 0;
  private openedAt = 0;
  private eventsThisConnection = 0;
  private isOpen = false;
  private closed = false;
  private started = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private pausedForConsumer = false;
  private queue: StreamItem<E>[] = [];
  private waiter: ((r: IteratorResult<StreamItem<E>>) => void) | undefined;
  private iterating = false;
  private openWaiters: { resolve: () => void; reject: (err: Error) => void }[] = [];

  constructor(opts: BbsEventStreamOptions<E>) {
    super();
    this.url = new URL(BBS_EVENT_PATHS[opts.kind], opts.url);
    this.tls = resolveTls(opts.tls);
    this.body = opts.kind === 'lrp' ? encodeEventsByCellId(opts.cellId) : new Uint8Array(0);
    this.idleTimeoutMs = opts.idleTimeoutMs ?? 300_000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 10_000;
    this.backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
    this.stableAfterMs = opts.stableAfterMs ?? 5_000;
    this.maxBuffered = opts.maxBuffered ?? 10_000;
    this.decode = opts.decode ?? (decodeEvent as unknown as EventDecoder<E>);
    this.log = (opts.logger ?? defaultLogger('cf.bbs-events')).child({
      stream: opts.kind,
      path: this.url.pathname,
    });
  }

  /** True while a connection is open. */
  get connected(): boolean {
    return this.isOpen;
  }

  /** Open the first connection (idempotent). */
  start(): this {
    if (this.started || this.closed) return this;
    this.started = true;
    this.connect();
    return this;
  }

  /** Resolve once a connection is open (the moment to (re-)list); rejects if the stream is closed first. */
  waitOpen(): Promise<void> {
    if (this.isOpen) return Promise.resolve();
    if (this.closed) return Promise.reject(new CfnetError('CFNET_STREAM_CLOSED', 'event stream is closed'));
    return new Promise((resolve, reject) => this.openWaiters.push({ resolve, reject }));
  }

  /** Stop for good: closes the connection, cancels reconnects, ends any iterator. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.idleTimer);
    this.es?.close();
    this.es = undefined;
    this.isOpen = false;
    const openWaiters = this.openWaiters;
    this.openWaiters = [];
    for (const w of openWaiters)
      w.reject(new CfnetError('CFNET_STREAM_CLOSED', 'event stream closed before it opened'));
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: undefined, done: true });
    }
  }

  /**
   * Events and open signals in order. `{type:'open', reconnect:true}` means "re-list now". Leaving
   * the loop (break/return) closes the stream.
   */
  [Symbol.asyncIterator](): AsyncIterator<StreamItem<E>> {
    this.iterating = true;
    this.start();
    return {
      next: () => {
        const item = this.queue.shift();
        if (item) {
          this.maybeResumeForConsumer();
          return Promise.resolve({ value: item, done: false });
        }
        if (this.closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.waiter = resolve;
        });
      },
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private push(item: StreamItem<E>): void {
    if (!this.iterating) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w({ value: item, done: false });
      return;
    }
    this.queue.push(item);
    if (this.queue.length > this.maxBuffered && !this.pausedForConsumer) {
      this.counters.slowConsumerDrops += 1;
      this.pausedForConsumer = true;
      this.log.warn(
        { queued: this.queue.length },
        'consumer is too slow, dropping the stream until it catches up',
      );
      this.dropConnection('slow consumer', undefined, false);
    }
  }

  private maybeResumeForConsumer(): void {
    if (this.pausedForConsumer && this.queue.length <= this.maxBuffered / 2 && !this.closed) {
      this.pausedForConsumer = false;
      this.scheduleReconnect();
    }
  }

  private connect(): void {
    if (this.closed) return;
    this.attempt += 1;
    const attempt = this.attempt;
    this.eventsThisConnection = 0;
    this.openedAt = 0;
    const es = new CatchAllEventSource(this.url, {
      fetch: rawFetch({
        method: 'POST',
        body: this.body,
        headers: { 'Content-Type': 'application/x-protobuf' },
        tls: this.tls,
        headTimeoutMs: this.connectTimeoutMs,
        onRequest: (requestId) => this.log.debug({ requestId, attempt }, 'connecting'),
      }) as unknown as typeof fetch,
    });
    this.es = es;
    es.onopen = () => {
      if (this.es !== es) return;
      this.connection += 1;
      this.isOpen = true;
      this.openedAt = Date.now();
      this.counters.connects += 1;
      const reconnect = this.connection > 1;
      if (reconnect) this.counters.reconnects += 1;
      this.log.info({ connection: this.connection, reconnect }, 'event stream open');
      this.armIdle();
      this.emit('open', { connection: this.connection, reconnect });
      if (reconnect) this.emit('reconnected', { connection: this.connection });
      this.push({ type: 'open', connection: this.connection, reconnect });
      const waiters = this.openWaiters;
      this.openWaiters = [];
      for (const w of waiters) w.resolve();
    };
    es.onerror = (ev) => {
      if (this.es !== es) return;
      const reason = ev.message ?? 'stream ended';
      this.dropConnection(reason, ev.code, true);
    };
    es.onAny = (ev) => {
      if (this.es !== es) return;
      this.onMessage(ev);
    };
  }

  private onMessage(ev: MessageEvent): void {
    this.armIdle();
    const name = ev.type;
    const id = ev.lastEventId;
    const data = typeof ev.data === 'string' ? ev.data : String(ev.data);
    let decoded: E | null;
    try {
      decoded = this.decode(name, data);
    } catch (error) {
      this.counters.decodeErrors += 1;
      this.log.warn(
        { event: name, id, dataLength: data.length, err: error },
        'undecodable bbs event skipped',
      );
      this.emit('decodeError', { name, id, error, dataLength: data.length });
      return;
    }
    if (decoded === null) {
      this.counters.unknown += 1;
      this.log.debug({ event: name, id }, 'unknown bbs event skipped');
      this.emit('unknown', { name, id });
      return;
    }
    this.counters.events += 1;
    this.eventsThisConnection += 1;
    const event = { ...decoded, id, connection: this.connection, receivedAt: Date.now() } as StreamEvent<E>;
    this.emit('event', event);
    this.push({ type: 'event', event });
  }

  private armIdle(): void {
    if (this.idleTimeoutMs <= 0) return;
    if (this.idleTimer) {
      this.idleTimer.refresh();
      return;
    }
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (!this.isOpen || this.closed) return;
      this.counters.idleTimeouts += 1;
      this.dropConnection(`no event for ${this.idleTimeoutMs} ms`, undefined, true);
    }, this.idleTimeoutMs);
    this.idleTimer.unref?.();
  }

  private dropConnection(reason: string, status: number | undefined, reconnect: boolean): void {
    const wasOpen = this.isOpen;
    const es = this.es;
    this.es = undefined;
    // Closed after the current dispatch: the package arms its own 3 s retry timer right after
    // calling onerror, and close() is what clears it.
    if (es) queueMicrotask(() => es.close());
    this.isOpen = false;
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.closed) return;
    if (!wasOpen) this.counters.connectFailures += 1;
    const lived = this.openedAt > 0 ? Date.now() - this.openedAt : 0;
    if (wasOpen && (lived >= this.stableAfterMs || this.eventsThisConnection > 0)) this.failures = 0;
    if (!reconnect || this.pausedForConsumer) {
      this.log.warn({ reason, status }, 'event stream closed');
      this.emit('disconnected', { reason, ...(status !== undefined ? { status } : {}) });
      return;
    }
    const delay = this.scheduleReconnect();
    this.log.warn(
      { reason, status, retryInMs: delay, failures: this.failures },
      'event stream lost, reconnecting',
    );
    this.emit('disconnected', { reason, ...(status !== undefined ? { status } : {}), retryInMs: delay });
  }

  private scheduleReconnect(): number {
    clearTimeout(this.reconnectTimer);
    const delay = backoffDelay(this.failures, this.backoff);
    this.failures += 1;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
    return delay;
  }
}

/** Convenience: create and start a stream. */
export function openBbsEventStream<E extends DecodedEvent = DecodedBbsEvent>(
  opts: BbsEventStreamOptions<E>,
): BbsEventStream<E> {
  return new BbsEventStream(opts).start();
}
