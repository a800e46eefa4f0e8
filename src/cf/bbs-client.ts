/**
 * Diego BBS client (docs/cf-interfaces.md, the BBS sections): HTTP/1.1 over mTLS, protobuf bodies, every route a
 * POST. A response is HTTP 200 `application/x-protobuf`; a present `error` field (even with type 0)
 * is a `BbsError`; 503 → `BbsUnavailableError` (migrations); `X-Cf-Routererror` → `BbsError`
 * RouterError; other non-protobuf answers (404 unknown route, …) → `BbsInvalidResponseError`.
 * Like the Go client, a refused connection (standby BBS) is retried: 3 tries, 500 ms apart. Each
 * request has a timeout (`CfTimeoutError`) and an `X-Vcap-Request-Id`.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { sleep } from '../lib/backoff.js';
import { defaultLogger, type Logger } from '../lib/log.js';
import { BbsError } from '../model/bbs-errors.js';
import {
  type ActualLRP,
  type CellPresence,
  type DecodedBbsEvent,
  type DesiredLRP,
  decodeMessage,
  models,
  type Task,
} from '../model/bbs-messages.js';
import {
  type BbsEventKind,
  BbsEventStream,
  type BbsEventStreamOptions,
  type DecodedEvent,
  type EventDecoder,
} from './bbs-events.js';
import {
  BbsInvalidResponseError,
  BbsUnavailableError,
  CfConnectionError,
  type CfRequestContext,
  CfTimeoutError,
} from './errors.js';
import { type ResolvedTls, resolveTls, type TlsMaterial } from './tls-config.js';

export interface BbsClientConfig {
  /** e.g. `https://bbs.service.cf.internal:8889`. */
  url: string;
  /** CA, client certificate and key (`*.bbs.ca_cert`, `client_cert`, `client_key`). */
  tls?: TlsMaterial;
  /** Whole-request timeout. Default 30 s. */
  requestTimeoutMs?: number;
  /** Tries when the connection is refused (standby BBS). Default 3. */
  connectTries?: number;
  /** Pause between those tries. Default 500 ms. */
  retryIntervalMs?: number;
  /** Keep-alive sockets per host. Default 8. */
  maxSockets?: number;
  /** Largest response accepted. Default 1 GiB. */
  maxResponseBytes?: number;
  logger?: Logger;
}

export interface ActualLrpFilter {
  domain?: string;
  cellId?: string;
  processGuid?: string;
  /** Sent even when 0 (`oneof optional_index`). */
  index?: number;
}

export interface DesiredLrpFilter {
  domain?: string;
  processGuids?: string[];
  /** Prefix match on process guid: finds web processes only (docs/cf-interfaces.md, "BBS routes cfnet uses"). */
  appGuids?: string[];
}

export interface TaskFilter {
  domain?: string;
  cellId?: string;
}

interface Decoder<T> {
  decode(r: Uint8Array): T;
}

const PROTOBUF = 'application/x-protobuf';

export const BBS_ROUTES = {
  ping: '/v1/ping',
  actualLrps: '/v1/actual_lrps/list',
  desiredLrps: '/v1/desired_lrps/list.r3',
  tasks: '/v1/tasks/list.r3',
  cells: '/v1/cells/list.r1',
} as const;

interface RawAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class BbsClient {
  readonly url: URL;
  private readonly tls: ResolvedTls;
  private readonly agent: http.Agent;
  private readonly requestTimeoutMs: number;
  private readonly connectTries: number;
  private readonly retryIntervalMs: number;
  private readonly maxResponseBytes: number;
  private readonly log: Logger;

  constructor(config: BbsClientConfig) {
    this.url = new URL(config.url);
    this.tls = resolveTls(config.tls);
    this.requestTimeoutMs = config.requestTimeoutMs ?? 30_000;
    this.connectTries = Math.max(1, config.connectTries ?? 3);
    this.retryIntervalMs = config.retryIntervalMs ?? 500;
    this.maxResponseBytes = config.maxResponseBytes ?? 1024 * 1024 * 1024;
    this.log = config.logger ?? defaultLogger('cf.bbs');
    const maxSockets = config.maxSockets ?? 8;
    this.agent =
      this.url.protocol === 'https:'
        ? new https.Agent({
            keepAlive: true,
            maxSockets,
            ca: this.tls.ca,
            cert: this.tls.cert,
            key: this.tls.key,
            rejectUnauthorized: this.tls.rejectUnauthorized,
            ...(this.tls.servername ? { servername: this.tls.servername } : {}),
          })
        : new http.Agent({ keepAlive: true, maxSockets });
  }

  /** `POST /v1/ping` → `available`. */
  async ping(): Promise<boolean> {
    const res = await this.call(BBS_ROUTES.ping, new Uint8Array(0), models.PingResponse, 'PingResponse');
    return res.available === true;
  }

  /** `POST /v1/actual_lrps/list`; empty filter = every instance. */
  async actualLrps(filter: ActualLrpFilter = {}): Promise<ActualLRP[]> {
    const req: models.ActualLRPsRequest.$Properties = {};
    if (filter.domain) req.domain = filter.domain;
    if (filter.cellId) req.cellId = filter.cellId;
    if (filter.processGuid) req.processGuid = filter.processGuid;
    if (filter.index !== undefined) req.index = filter.index;
    const body = models.ActualLRPsRequest.encode(req).finish();
    const res = await this.call(BBS_ROUTES.actualLrps, body, models.ActualLRPsResponse, 'ActualLRPsResponse');
    return res.actualLrps ?? [];
  }

  /** `POST /v1/desired_lrps/list.r3` (full DesiredLRPs: egress_rules, network, metric_tags). */
  async desiredLrps(filter: DesiredLrpFilter = {}): Promise<DesiredLRP[]> {
    const body = models.DesiredLRPsRequest.encode({
      domain: filter.domain ?? '',
      processGuids: filter.processGuids ?? [],
      appGuids: filter.appGuids ?? [],
    }).finish();
    const res = await this.call(
      BBS_ROUTES.desiredLrps,
      body,
      models.DesiredLRPsResponse,
      'DesiredLRPsResponse',
    );
    return res.desiredLrps ?? [];
  }

  /** `POST /v1/tasks/list.r3`. */
  async tasks(filter: TaskFilter = {}): Promise<Task[]> {
    const body = models.TasksRequest.encode({
      domain: filter.domain ?? '',
      cellId: filter.cellId ?? '',
    }).finish();
    const res = await this.call(BBS_ROUTES.tasks, body, models.TasksResponse, 'TasksResponse');
    return res.tasks ?? [];
  }

  /** `POST /v1/cells/list.r1`. */
  async cells(): Promise<CellPresence[]> {
    const res = await this.call(BBS_ROUTES.cells, new Uint8Array(0), models.CellsResponse, 'CellsResponse');
    return res.cells ?? [];
  }

  /** An event stream on this BBS with the same TLS material (not started: call `start()`). */
  eventStream<E extends DecodedEvent = DecodedBbsEvent>(
    kind: BbsEventKind,
    opts: Omit<BbsEventStreamOptions<E>, 'url' | 'tls' | 'kind'> & { decode?: EventDecoder<E> } = {},
  ): BbsEventStream<E> {
    return new BbsEventStream<E>({
      url: this.url.href,
      tls: { ...this.tls },
      kind,
      logger: this.log,
      ...opts,
    });
  }

  /** Release keep-alive sockets. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * POST `body` to `path`, decode the answer with `codec`, throw `BbsError` when its `error` field
   * is present.
   */
  async call<T extends object>(path: string, body: Uint8Array, codec: Decoder<T>, what: string): Promise<T> {
    const requestId = randomUUID();
    const ctx: CfRequestContext = { service: 'bbs', method: 'POST', path, requestId };
    const started = Date.now();
    const answer = await this.postWithRetry(path, body, requestId, ctx);
    const status = answer.status;
    const routerError = answer.headers['x-cf-routererror'];
    if (routerError) {
      throw new BbsError(
        { type: models.Error.Type.RouterError, message: String(routerError) },
        { ...ctx, status },
      );
    }
    if (status === 503) throw new BbsUnavailableError({ ...ctx, status });
    const contentType = String(answer.headers['content-type'] ?? '');
    if (status !== 200 || !contentType.startsWith(PROTOBUF)) {
      const reason =
        status !== 200
          ? `Invalid Response with status code: ${status}`
          : `content type ${JSON.stringify(contentType)} is not ${PROTOBUF}`;
      throw new BbsInvalidResponseError({
        ...ctx,
        status,
        reason,
        body: answer.body.subarray(0, 200).toString('utf8'),
      });
    }
    const msg = decodeMessage(codec, answer.body, what, { ...ctx, status });
    this.log.debug({ path, requestId, bytes: answer.body.length, ms: Date.now() - started }, 'bbs call');
    const error = (msg as { error?: models.Error.$Properties | null }).error;
    if (error != null) throw new BbsError(error, { ...ctx, status });
    return msg;
  }

  private async postWithRetry(
    path: string,
    body: Uint8Array,
    requestId: string,
    ctx: CfRequestContext,
  ): Promise<RawAnswer> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.post(path, body, requestId, ctx);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ECONNREFUSED' && attempt < this.connectTries) {
          this.log.warn({ path, attempt, requestId }, 'bbs refused the connection (standby?), retrying');
          await sleep(this.retryIntervalMs);
          continue;
        }
        if (err instanceof CfTimeoutError) throw err;
        throw new CfConnectionError(
          { ...ctx, reason: code ?? (err as Error).message, attempts: attempt },
          { cause: err },
        );
      }
    }
  }

  private post(path: string, body: Uint8Array, requestId: string, ctx: CfRequestContext): Promise<RawAnswer> {
    const url = new URL(path, this.url);
    const mod = url.protocol === 'https:' ? https : http;
    return new Promise<RawAnswer>((resolve, reject) => {
      let done = false;
      const req = mod.request(url, {
        method: 'POST',
        agent: this.agent,
        headers: {
          'Content-Type': PROTOBUF,
          'Content-Length': String(body.length),
          'X-Vcap-Request-Id': requestId,
        },
      });
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        req.destroy();
        reject(new CfTimeoutError({ ...ctx, timeoutMs: this.requestTimeoutMs }));
      }, this.requestTimeoutMs);
      const finish = (fn: () => void): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        fn();
      };
      req.on('error', (err) => finish(() => reject(err)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.maxResponseBytes) {
            req.destroy();
            finish(() =>
              reject(
                new BbsInvalidResponseError({
                  ...ctx,
                  status: res.statusCode,
                  reason: `response larger than ${this.maxResponseBytes} bytes`,
                }),
              ),
            );
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          finish(() =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          ),
        );
        res.on('error', (err) => finish(() => reject(err)));
        res.on('aborted', () => finish(() => reject(new Error('response aborted'))));
      });
      req.end(body);
    });
  }
}
