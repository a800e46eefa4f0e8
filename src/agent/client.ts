/**
 * The agent's client of the controller's agent API (HTTPS with mutual TLS; the controller takes
 * the cell id from the client certificate). One keep-alive https.Agent holds the connections, so a
 * long-poll and a status report do not set up TLS for every request. (node:https rather than
 * undici: it costs the agent no extra module memory.)
 *
 * Routes, bodies and answers are the wire contract in src/api, the same schemas the controller
 * uses: every answer is validated with its route's schema, and one that does not match is a
 * ControllerRequestError with apiCode `BAD_ANSWER` (an error answer carries the controller's code).
 *
 * `useCertificate` swaps the client certificate without a restart: new requests go through a new
 * https.Agent, requests in flight (a long-poll) finish on the old one, which is closed once idle.
 */
import { Agent, request } from 'node:https';
import type { z } from 'zod';
import { CertificateAnswer, type SignedCertificate } from '../api/certificate.js';
import { BAD_ANSWER, ErrorAnswer } from '../api/errors.js';
import {
  type AcquireBody,
  LeaseAnswer,
  type LeaseListing,
  LeaseListingAnswer,
  type OverlayLease,
  ReleaseAnswer,
  type ReleasedLease,
  type RenewBody,
} from '../api/lease.js';
import { cellPath, HEADERS, ROUTES } from '../api/routes.js';
import { RulesChangeAnswer, rulesQueryString, versionOfHeader } from '../api/rules.js';
import { type InventoryItem, StatusAnswer, type StatusReport } from '../api/status.js';
import { CfnetError } from '../lib/errors.js';

export type { InventoryItem, LeaseListing, OverlayLease, ReleasedLease, SignedCertificate, StatusReport };

/** One poll's outcome: the 200 answer (a change), or `unchanged` for a 304. */
export type RulesAnswer = RulesChangeAnswer | { kind: 'unchanged'; version: number };

/** A failed controller request: HTTP status (0 = no answer) and the API's error code. */
export class ControllerRequestError extends CfnetError {
  readonly status: number;
  readonly apiCode: string;

  constructor(message: string, status: number, apiCode: string, context: Record<string, unknown> = {}) {
    super('CFNET_AGENT_CONTROLLER', message, { ...context, status, apiCode });
    this.status = status;
    this.apiCode = apiCode;
  }

  /** 4xx answers other than 408/429 mean the request itself is wrong: retrying will not help. */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** One https.Agent and the requests running on it. */
interface Dispatcher {
  agent: Agent;
  inflight: number;
  retired: boolean;
}

export interface ControllerClientOptions {
  baseUrl: string;
  cellId: string;
  /** `cert`/`key` may be '' before the cell has a certificate (bootstrap with its token). */
  tls: { ca: string; cert: string; key: string; servername?: string };
  /** Local address to connect from (default: the kernel's choice). */
  localAddress?: string;
  /** Timeout of ordinary requests (default 10 s). */
  requestTimeoutMs?: number;
}

/** The answer's body as `schema` reads it, or a BAD_ANSWER error naming the first mismatch. */
function parseAnswer<T extends z.ZodType>(
  schema: T,
  r: { status: number; json: unknown },
  what: string,
): z.output<T> {
  const parsed = schema.safeParse(r.json);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  throw new ControllerRequestError(
    `${what}: unexpected answer (HTTP ${r.status})${where}: ${issue?.message ?? 'invalid'}`,
    r.status,
    BAD_ANSWER,
    { path: issue?.path.join('.') ?? '' },
  );
}

export class ControllerClient {
  readonly baseUrl: string;
  readonly cellId: string;
  private dispatcher: Dispatcher;
  private readonly retiring = new Set<Dispatcher>();
  private readonly timeoutMs: number;
  private tls: ControllerClientOptions['tls'];
  private readonly localAddress: string | undefined;

  constructor(opts: ControllerClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.cellId = opts.cellId;
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.tls = opts.tls;
    this.localAddress = opts.localAddress || undefined;
    this.dispatcher = this.makeDispatcher();
  }

  private makeDispatcher(): Dispatcher {
    const t = this.tls;
    const agent = new Agent({
      keepAlive: true,
      keepAliveMsecs: 30_000,
      maxSockets: 4,
      maxFreeSockets: 4,
      ca: t.ca,
      ...(t.cert ? { cert: t.cert } : {}),
      ...(t.key ? { key: t.key } : {}),
      minVersion: 'TLSv1.2',
      ...(t.servername ? { servername: t.servername } : {}),
      ...(this.localAddress ? { localAddress: this.localAddress } : {}),
    });
    return { agent, inflight: 0, retired: false };
  }

  /**
   * From now on requests present this certificate (and trust `ca` when given). Requests in flight
   * keep their connection; the old connections close once they are idle.
   */
  useCertificate(cert: string, key: string, ca?: string): void {
    const old = this.dispatcher;
    this.tls = { ...this.tls, cert, key, ...(ca ? { ca } : {}) };
    this.dispatcher = this.makeDispatcher();
    old.retired = true;
    if (old.inflight === 0) old.agent.destroy();
    else this.retiring.add(old);
  }

  private released(d: Dispatcher): void {
    d.inflight--;
    if (d.retired && d.inflight === 0) {
      d.agent.destroy();
      this.retiring.delete(d);
    }
  }

  /** The URL of a route for this cell. */
  private url(route: { path: string }, query = ''): string {
    return `${this.baseUrl}${cellPath(route.path, this.cellId)}${query}`;
  }

  private call(
    method: 'GET' | 'PUT' | 'POST',
    url: string,
    body: unknown,
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<{ status: number; json: unknown; headers: Record<string, unknown> }> {
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const dispatcher = this.dispatcher;
    dispatcher.inflight++;
    return new Promise<{ status: number; json: unknown; headers: Record<string, unknown> }>(
      (resolve, reject) => {
        let settled = false;
        const fail = (err: unknown) => {
          if (settled) return;
          settled = true;
          if (opts.signal?.aborted) {
            reject(opts.signal.reason ?? err);
            return;
          }
          const e = err as { message?: string; code?: string };
          reject(
            new ControllerRequestError(
              `${method} ${url}: ${e.message ?? String(err)}`,
              0,
              e.code ?? 'NO_ANSWER',
              {
                url,
              },
            ),
          );
        };
        const headers: Record<string, string | number> = { accept: 'application/json' };
        if (payload) {
          headers['content-type'] = 'application/json';
          headers['content-length'] = payload.length;
        }
        const req = request(
          url,
          { method, agent: dispatcher.agent, headers, ...(opts.signal ? { signal: opts.signal } : {}) },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (b: Buffer) => chunks.push(b));
            res.on('error', fail);
            res.on('end', () => {
              if (settled) return;
              const status = res.statusCode ?? 0;
              const text = Buffer.concat(chunks).toString('utf8');
              let json: unknown = null;
              if (text !== '') {
                try {
                  json = JSON.parse(text);
                } catch {
                  json = null;
                }
              }
              settled = true;
              if (status >= 400) {
                // an error answer of another shape (a proxy's page) keeps the HTTP status as its code
                const answer = ErrorAnswer.safeParse(json);
                const e = answer.success ? answer.data.error : undefined;
                reject(
                  new ControllerRequestError(
                    `${method} ${url}: HTTP ${status}${e?.message ? `: ${e.message}` : ''}`,
                    status,
                    e?.code ?? `HTTP_${status}`,
                    { url },
                  ),
                );
                return;
              }
              resolve({ status, json, headers: res.headers as Record<string, unknown> });
            });
          },
        );
        req.setTimeout(timeout, () =>
          req.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: 'TIMEOUT' })),
        );
        req.on('error', fail);
        req.end(payload ?? undefined);
      },
    ).finally(() => this.released(dispatcher));
  }

  /**
   * One long-poll: changes since `since`, waiting up to `waitSeconds` at the controller.
   * `unchanged` carries the controller's current version (0 when it has none for this cell).
   */
  async rules(since: number, waitSeconds: number, signal?: AbortSignal): Promise<RulesAnswer> {
    const url = this.url(ROUTES.rules, rulesQueryString({ since, wait: waitSeconds }));
    const r = await this.call('GET', url, undefined, {
      ...(signal ? { signal } : {}),
      timeoutMs: (waitSeconds + 15) * 1000,
    });
    if (r.status === 304) return { kind: 'unchanged', version: versionOfHeader(r.headers[HEADERS.version]) };
    return parseAnswer(RulesChangeAnswer, r, `GET ${url}`);
  }

  async putStatus(report: StatusReport, signal?: AbortSignal): Promise<StatusAnswer> {
    const url = this.url(ROUTES.status);
    const r = await this.call('PUT', url, report, signal ? { signal } : {});
    return parseAnswer(StatusAnswer, r, `PUT ${url}`);
  }

  /**
   * Acquire (or re-acquire) this cell's lease. `subnet` is the lease the agent held before (a hint
   * for the controller; it hands the old subnet back when the cell still owns it).
   */
  async acquireLease(
    underlayIp: string,
    vtepMac?: string,
    subnet?: string,
    singleIp = false,
  ): Promise<OverlayLease> {
    const url = this.url(ROUTES.leaseAcquire);
    const body: AcquireBody = { underlayIp };
    if (vtepMac) body.vtepMac = vtepMac;
    if (subnet) body.subnet = subnet;
    if (singleIp) body.singleIp = true;
    return parseAnswer(LeaseAnswer, await this.call('POST', url, body), `POST ${url}`);
  }

  async renewLease(subnet: string, underlayIp: string, vtepMac?: string): Promise<OverlayLease> {
    const url = this.url(ROUTES.leaseRenew);
    const body: RenewBody = { subnet, underlayIp };
    if (vtepMac) body.vtepMac = vtepMac;
    return parseAnswer(LeaseAnswer, await this.call('POST', url, body), `POST ${url}`);
  }

  async releaseLease(): Promise<boolean> {
    const url = this.url(ROUTES.leaseRelease);
    return parseAnswer(ReleaseAnswer, await this.call('POST', url, {}), `POST ${url}`).released;
  }

  /** Every live lease and the recent releases (malformed entries are dropped one by one). */
  async leases(signal?: AbortSignal): Promise<LeaseListing> {
    const url = this.url(ROUTES.leases);
    const r = await this.call('GET', url, undefined, signal ? { signal } : {});
    return parseAnswer(LeaseListingAnswer, r, `GET ${url}`);
  }

  /**
   * Asks the controller to sign `csr` for this cell: authenticated by the current certificate, or
   * (first certificate, or after it expired) by the cell's bootstrap `token`.
   */
  async requestCertificate(csr: string, token?: string): Promise<SignedCertificate> {
    const url = this.url(ROUTES.certificate);
    const r = await this.call('POST', url, token ? { csr, token } : { csr });
    return parseAnswer(CertificateAnswer, r, `POST ${url}`);
  }

  async close(): Promise<void> {
    await this.destroy();
  }

  /** Drops open connections at once (a long-poll in flight fails). */
  async destroy(): Promise<void> {
    this.dispatcher.agent.destroy();
    for (const d of this.retiring) d.agent.destroy();
    this.retiring.clear();
  }
}
