/**
 * UAA client-credentials tokens (docs/cf-interfaces.md, "UAA tokens"): `POST <uaa>/oauth/token` with HTTP Basic client
 * authentication and `grant_type=client_credentials`. The token is cached and refreshed once
 * `refreshFraction` (default 80%) of `expires_in` has passed; concurrent callers share one in-flight
 * request; `invalidate(token)` (after a 401 from CAPI) makes the next caller fetch a new one. When a
 * refresh fails while the cached token is still valid, the cached one is used (and the failure
 * logged). The secret and the tokens are never logged.
 */
import { defaultLogger, type Logger } from '../lib/log.js';
import { CfAuthError, CfHttpStatusError, CfMalformedResponseError } from './errors.js';
import { HttpJsonClient, type TokenSource } from './http.js';
import type { TlsMaterial } from './tls-config.js';

export interface UaaClientConfig {
  /** UAA base URL, e.g. `https://uaa.service.cf.internal:8443`. */
  url: string;
  clientId: string;
  clientSecret: string;
  /** Optional space-separated subset of the client's authorities. */
  scope?: string;
  tls?: TlsMaterial;
  timeoutMs?: number;
  retries?: number;
  /** Refresh after this fraction of `expires_in`. Default 0.8. */
  refreshFraction?: number;
  logger?: Logger;
  /** Clock (ms), for tests. */
  now?: () => number;
}

interface Cached {
  token: string;
  refreshAt: number;
  expiresAt: number;
}

const TOKEN_PATH = '/oauth/token';

export class UaaClient implements TokenSource {
  /** Token requests sent to UAA (successful or not). */
  fetches = 0;
  private readonly http: HttpJsonClient;
  private readonly basic: string;
  private readonly body: string;
  private readonly refreshFraction: number;
  private readonly log: Logger;
  private readonly now: () => number;
  private cached: Cached | undefined;
  private inflight: Promise<string> | undefined;

  constructor(config: UaaClientConfig) {
    this.log = config.logger ?? defaultLogger('cf.uaa');
    this.http = new HttpJsonClient({
      service: 'uaa',
      url: config.url,
      tls: config.tls,
      timeoutMs: config.timeoutMs ?? 15_000,
      retries: config.retries ?? 2,
      logger: this.log,
    });
    this.basic = Buffer.from(
      `${encodeURIComponent(config.clientId)}:${encodeURIComponent(config.clientSecret)}`,
    ).toString('base64');
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    if (config.scope) form.set('scope', config.scope);
    this.body = form.toString();
    this.refreshFraction = Math.min(1, Math.max(0.1, config.refreshFraction ?? 0.8));
    this.now = config.now ?? Date.now;
  }

  /** A valid access token (cached; fetched or refreshed when due). */
  async token(): Promise<string> {
    const c = this.cached;
    const now = this.now();
    if (c && now < c.refreshAt) return c.token;
    try {
      return await this.fetch();
    } catch (err) {
      if (c && this.now() < c.expiresAt && c === this.cached) {
        this.log.warn({ err }, 'token refresh failed; using the cached token until it expires');
        return c.token;
      }
      throw err;
    }
  }

  /** Drop `token` if it is the cached one (it was refused); other callers' newer tokens stay. */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = undefined;
  }

  /** Fetch a new token now (shared with any fetch already in flight). */
  fetch(): Promise<string> {
    if (!this.inflight) {
      this.inflight = this.requestToken().finally(() => {
        this.inflight = undefined;
      });
    }
    return this.inflight;
  }

  close(): void {
    this.http.close();
  }

  private async requestToken(): Promise<string> {
    this.fetches += 1;
    const sentAt = this.now();
    let res: Awaited<ReturnType<HttpJsonClient['request']>>;
    try {
      res = await this.http.request({
        method: 'POST',
        path: TOKEN_PATH,
        auth: false,
        headers: {
          'Content-Type': 'application/x-www-form-urlencoded',
          Authorization: `Basic ${this.basic}`,
        },
        body: this.body,
      });
    } catch (err) {
      if (err instanceof CfHttpStatusError && err.status !== undefined && err.status < 500) {
        throw new CfAuthError({
          service: 'uaa',
          method: 'POST',
          path: TOKEN_PATH,
          status: err.status,
          reason: err.body,
        });
      }
      throw err;
    }
    const body = this.http.parseJson<Record<string, unknown>>(res, 'POST', TOKEN_PATH);
    const token = body.access_token;
    const expiresIn = body.expires_in;
    if (typeof token !== 'string' || token === '') {
      throw new CfMalformedResponseError({
        service: 'uaa',
        method: 'POST',
        path: TOKEN_PATH,
        status: res.status,
        reason: 'no access_token in the token response',
      });
    }
    if (typeof expiresIn !== 'number' || !Number.isFinite(expiresIn) || expiresIn <= 0) {
      throw new CfMalformedResponseError({
        service: 'uaa',
        method: 'POST',
        path: TOKEN_PATH,
        status: res.status,
        reason: `expires_in must be a positive number, got ${JSON.stringify(expiresIn)}`,
      });
    }
    const ttl = expiresIn * 1000;
    this.cached = { token, refreshAt: sentAt + ttl * this.refreshFraction, expiresAt: sentAt + ttl };
    this.log.info(
      { expiresIn, scope: typeof body.scope === 'string' ? body.scope : undefined },
      'obtained a client-credentials token',
    );
    return token;
  }
}
