/**
 * The HTTP layer under the CAPI, UAA and policy-server clients (axios): per-request deadline,
 * retries with backoff for 5xx, timeouts and connection errors (all requests here are reads or
 * idempotent), `Retry-After` on 429, an optional bearer token with one refresh-and-retry on 401, and
 * typed errors carrying service, method, path and status. Bodies are returned as text: callers parse
 * them (some, like `policies_last_updated`, must never pass through a JS number).
 *
 * Nothing secret is logged: log lines carry method, path, status and timing only, and errors keep a
 * summary of axios' error (never its config, which holds the Authorization header).
 */
import http from 'node:http';
import https from 'node:https';
import axios, { type AxiosInstance, isAxiosError } from 'axios';
import { type BackoffOptions, backoffDelay, parseRetryAfter, sleep } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import {
  CfAuthError,
  CfConnectionError,
  CfHttpStatusError,
  CfMalformedResponseError,
  CfRateLimitedError,
  type CfRequestContext,
  type CfService,
  CfTimeoutError,
} from './errors.js';
import { type ResolvedTls, resolveTls, type TlsMaterial } from './tls-config.js';

/** What hands out bearer tokens (the UAA client). */
export interface TokenSource {
  token(): Promise<string>;
  /** Forget `token` (it was refused); the next `token()` fetches a new one. */
  invalidate(token: string): void;
}

export interface HttpClientConfig {
  service: CfService;
  /** Base URL; request paths are appended to it. */
  url: string;
  tls?: TlsMaterial;
  /** Deadline of one attempt, head and body. Default 30 s. */
  timeoutMs?: number;
  /** Extra attempts after a 5xx, a timeout or a connection error. Default 3. */
  retries?: number;
  backoff?: Partial<BackoffOptions>;
  /** How many 429s one request waits out. Default 5. */
  rateLimitWaits?: number;
  /** Longest `Retry-After` honoured (longer ones are capped). Default 60 s. */
  maxRetryAfterMs?: number;
  /** Largest response accepted. Default 512 MiB. */
  maxResponseBytes?: number;
  auth?: TokenSource;
  logger: Logger;
}

export interface HttpRequest {
  method?: 'GET' | 'POST' | 'PUT';
  /** Path (and query) relative to the base URL, e.g. `/v3/security_groups?per_page=5000`. */
  path: string;
  headers?: Record<string, string>;
  body?: string;
  /** Statuses returned to the caller instead of raised (e.g. 404 for asg_latest_update). */
  accept?: number[];
  /** Send the bearer token (default: when an auth source is configured). */
  auth?: boolean;
  /** Do not retry (e.g. non-idempotent calls). */
  noRetry?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string>;
  text: string;
}

export interface HttpStats {
  requests: number;
  retries: number;
  rateLimited: number;
  unauthorized: number;
}

const BACKOFF: BackoffOptions = { initialMs: 200, maxMs: 5_000, factor: 2, jitter: 0.5 };

/** Summary of a transport error, safe to keep and log (no request config, no headers). */
export function errorSummary(err: unknown): { code?: string; message: string } {
  if (isAxiosError(err)) {
    const out: { code?: string; message: string } = { message: err.message };
    if (err.code) out.code = err.code;
    return out;
  }
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    return code ? { code, message: err.message } : { message: err.message };
  }
  return { message: String(err) };
}

function pathOnly(p: string): string {
  const q = p.indexOf('?');
  return q >= 0 ? p.slice(0, q) : p;
}

function headersOf(h: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (h && typeof h === 'object') {
    for (const [k, v] of Object.entries(h as Record<string, unknown>)) {
      if (v !== undefined && v !== null) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
    }
  }
  return out;
}

/** A short, token-free excerpt of an error body (CC v2/v3, UAA OAuth or policy-server format). */
export function errorBodyExcerpt(text: string): string {
  try {
    const j = JSON.parse(text) as Record<string, unknown>;
    const errors = j.errors;
    if (Array.isArray(errors) && errors[0] && typeof errors[0] === 'object') {
      const e = errors[0] as Record<string, unknown>;
      return [e.title, e.detail].filter((x) => typeof x === 'string').join(': ');
    }
    const parts = [j.error_code, j.error, j.description, j.error_description].filter(
      (x) => typeof x === 'string',
    );
    if (parts.length > 0) return parts.join(': ');
  } catch {
    // not JSON
  }
  return text.slice(0, 200).replace(/\s+/g, ' ').trim();
}

export class HttpJsonClient {
  readonly service: CfService;
  readonly baseUrl: string;
  readonly stats: HttpStats = { requests: 0, retries: 0, rateLimited: 0, unauthorized: 0 };
  private readonly axios: AxiosInstance;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoff: BackoffOptions;
  private readonly rateLimitWaits: number;
  private readonly maxRetryAfterMs: number;
  private readonly auth: TokenSource | undefined;
  private readonly log: Logger;
  private readonly agent: http.Agent;

  constructor(config: HttpClientConfig) {
    this.service = config.service;
    this.baseUrl = config.url.replace(/\/+$/, '');
    this.timeoutMs = config.timeoutMs ?? 30_000;
    this.retries = config.retries ?? 3;
    this.backoff = { ...BACKOFF, ...config.backoff };
    this.rateLimitWaits = config.rateLimitWaits ?? 5;
    this.maxRetryAfterMs = config.maxRetryAfterMs ?? 60_000;
    this.auth = config.auth;
    this.log = config.logger;
    const tls: ResolvedTls = resolveTls(config.tls);
    this.agent = this.baseUrl.startsWith('https:')
      ? new https.Agent({
          keepAlive: true,
          maxSockets: 16,
          ca: tls.ca,
          cert: tls.cert,
          key: tls.key,
          rejectUnauthorized: tls.rejectUnauthorized,
          ...(tls.servername ? { servername: tls.servername } : {}),
        })
      : new http.Agent({ keepAlive: true, maxSockets: 16 });
    this.axios = axios.create({
      baseURL: this.baseUrl,
      httpAgent: this.agent,
      httpsAgent: this.agent,
      proxy: false,
      maxRedirects: 0,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
      maxContentLength: config.maxResponseBytes ?? 512 * 1024 * 1024,
      maxBodyLength: 16 * 1024 * 1024,
    });
  }

  /** Release keep-alive sockets. */
  close(): void {
    this.agent.destroy();
  }

  /** GET `path` and parse its body as JSON (`CfMalformedResponseError` when it is not). */
  async getJson<T = unknown>(
    path: string,
    extra: Omit<HttpRequest, 'path'> = {},
  ): Promise<{ status: number; body: T }> {
    const res = await this.request({ ...extra, path });
    return { status: res.status, body: this.parseJson<T>(res, extra.method ?? 'GET', path) };
  }

  parseJson<T>(res: HttpResponse, method: string, path: string): T {
    try {
      return JSON.parse(res.text) as T;
    } catch (err) {
      throw new CfMalformedResponseError({
        service: this.service,
        method,
        path: pathOnly(path),
        status: res.status,
        reason: `body is not valid JSON (${(err as Error).message})`,
      });
    }
  }

  /** One logical request, with retries. Returns 2xx (and `accept`ed) answers; raises the rest. */
  async request(req: HttpRequest): Promise<HttpResponse> {
    const method = req.method ?? 'GET';
    const ctx: CfRequestContext = { service: this.service, method, path: pathOnly(req.path) };
    const useAuth = (req.auth ?? true) && this.auth !== undefined;
    let failures = 0;
    let rateLimited = 0;
    let refreshed = false;
    for (;;) {
      const token = useAuth ? await this.auth!.token() : undefined;
      const started = Date.now();
      let res: HttpResponse;
      try {
        res = await this.once(method, req, token);
      } catch (err) {
        const timedOut = err instanceof CfTimeoutError;
        const summary = timedOut ? { message: err.message } : errorSummary(err);
        if (!req.noRetry && failures < this.retries) {
          const delay = backoffDelay(failures, this.backoff);
          failures += 1;
          this.stats.retries += 1;
          this.log.warn(
            { ...ctx, attempt: failures, retryInMs: delay, error: summary },
            'request failed, retrying',
          );
          await sleep(delay);
          continue;
        }
        if (timedOut) throw new CfTimeoutError({ ...ctx, timeoutMs: this.timeoutMs, attempts: failures + 1 });
        throw new CfConnectionError({
          ...ctx,
          reason: summary.code ?? summary.message,
          attempts: failures + 1,
        });
      }
      const status = res.status;
      const ms = Date.now() - started;
      if ((status >= 200 && status < 300) || req.accept?.includes(status)) {
        this.log.debug({ ...ctx, status, ms, bytes: res.text.length }, 'request');
        return res;
      }
      const sctx = { ...ctx, status };
      if (status === 401 && useAuth) {
        this.stats.unauthorized += 1;
        if (!refreshed) {
          refreshed = true;
          this.log.info(sctx, 'token refused, refreshing it once');
          this.auth!.invalidate(token!);
          continue;
        }
        throw new CfAuthError({
          ...sctx,
          reason: errorBodyExcerpt(res.text) || 'unauthorized after a token refresh',
        });
      }
      if (status === 429) {
        this.stats.rateLimited += 1;
        const after = parseRetryAfter(res.headers['retry-after']) ?? backoffDelay(rateLimited, this.backoff);
        const wait = Math.min(after, this.maxRetryAfterMs);
        if (!req.noRetry && rateLimited < this.rateLimitWaits) {
          rateLimited += 1;
          this.log.warn(
            { ...sctx, retryInMs: wait, waits: rateLimited },
            'rate limited, waiting for Retry-After',
          );
          await sleep(wait);
          continue;
        }
        throw new CfRateLimitedError({ ...sctx, retryAfterMs: wait });
      }
      if (status >= 500 && !req.noRetry && failures < this.retries) {
        const delay = backoffDelay(failures, this.backoff);
        failures += 1;
        this.stats.retries += 1;
        this.log.warn({ ...sctx, attempt: failures, retryInMs: delay }, 'server error, retrying');
        await sleep(delay);
        continue;
      }
      throw new CfHttpStatusError(sctx, errorBodyExcerpt(res.text));
    }
  }

  private async once(method: string, req: HttpRequest, token: string | undefined): Promise<HttpResponse> {
    this.stats.requests += 1;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, this.timeoutMs);
    try {
      const headers: Record<string, string> = { Accept: 'application/json', ...req.headers };
      if (token !== undefined) headers.Authorization = `bearer ${token}`;
      const res = await this.axios.request<string>({
        method,
        url: req.path,
        headers,
        data: req.body,
        signal: controller.signal,
      });
      return {
        status: res.status,
        headers: headersOf(res.headers),
        text: typeof res.data === 'string' ? res.data : '',
      };
    } catch (err) {
      if (timedOut) {
        throw new CfTimeoutError({
          service: this.service,
          method,
          path: pathOnly(req.path),
          timeoutMs: this.timeoutMs,
        });
      }
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
}
