/**
 * Simulated UAA: `POST /oauth/token` with the client_credentials grant (credentials by HTTP Basic
 * or as form parameters), JWT access tokens signed HS256 with a per-run key, OAuth2 error bodies.
 * The token store is shared with the simulated Cloud Controller, which validates bearer tokens.
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { FaultState } from './faults.js';
import {
  type Ctx,
  parseForm,
  Router,
  type RunningService,
  sendJson,
  sendText,
  startService,
} from './http.js';

export interface UaaClient {
  id: string;
  secret: string;
  /** Authorities granted to client_credentials tokens. */
  scopes: string[];
}

export type TokenCheck = { ok: true; scopes: string[]; clientId: string } | { ok: false; reason: string };

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

export class TokenStore {
  private readonly key = randomBytes(32);
  private readonly live = new Map<string, { exp: number; scopes: string[]; clientId: string }>();

  /** Issue a JWT; returns it with its jti. */
  issue(
    clientId: string,
    scopes: string[],
    ttlSeconds: number,
    issuer: string,
  ): { token: string; jti: string } {
    const jti = randomUUID().replace(/-/g, '');
    const iat = Math.floor(Date.now() / 1000);
    const exp = iat + ttlSeconds;
    const aud = [...new Set(scopes.map((s) => s.split('.')[0] as string)), clientId];
    const header = { alg: 'HS256', kid: 'sim-key-1', typ: 'JWT' };
    const payload = {
      jti,
      sub: clientId,
      authorities: scopes,
      scope: scopes,
      client_id: clientId,
      cid: clientId,
      azp: clientId,
      grant_type: 'client_credentials',
      rev_sig: 'sim',
      iat,
      exp,
      iss: issuer,
      zid: 'uaa',
      aud,
    };
    const unsigned = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
    const sig = createHmac('sha256', this.key).update(unsigned).digest();
    this.live.set(jti, { exp: exp * 1000, scopes, clientId });
    return { token: `${unsigned}.${b64url(sig)}`, jti };
  }

  /** Validate a bearer token: signature, known jti, not expired. */
  check(token: string): TokenCheck {
    const parts = token.split('.');
    if (parts.length !== 3) return { ok: false, reason: 'malformed token' };
    const [h, p, s] = parts as [string, string, string];
    const expected = createHmac('sha256', this.key).update(`${h}.${p}`).digest();
    const got = Buffer.from(s, 'base64url');
    if (got.length !== expected.length || !timingSafeEqual(got, expected)) {
      return { ok: false, reason: 'invalid signature' };
    }
    let jti: string;
    try {
      jti = String((JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as { jti?: unknown }).jti);
    } catch {
      return { ok: false, reason: 'malformed token' };
    }
    const entry = this.live.get(jti);
    if (!entry) return { ok: false, reason: 'token revoked' };
    if (Date.now() >= entry.exp) return { ok: false, reason: 'token expired' };
    return { ok: true, scopes: entry.scopes, clientId: entry.clientId };
  }

  /** Invalidate every token issued so far. */
  expireAll(): void {
    this.live.clear();
  }

  get size(): number {
    return this.live.size;
  }
}

export interface UaaOptions {
  host: string;
  port: number;
  tls: { cert: string; key: string };
  clients: UaaClient[];
  tokens: TokenStore;
  tokenTtlSeconds: number;
  faults: FaultState;
}

function oauthError(ctx: Ctx, status: number, error: string, description: string): void {
  const headers: Record<string, string> = { 'Cache-Control': 'no-store', Pragma: 'no-cache' };
  if (status === 401) headers['WWW-Authenticate'] = `Basic realm="UAA/client", error="${error}"`;
  sendJson(ctx, status, { error, error_description: description }, headers);
}

function basicCredentials(header: string | undefined): { id: string; secret: string } | null {
  if (!header) return null;
  const m = /^basic\s+(.+)$/i.exec(header.trim());
  if (!m) return null;
  const decoded = Buffer.from(m[1] as string, 'base64').toString('utf8');
  const at = decoded.indexOf(':');
  if (at < 0) return null;
  return { id: decodeURIComponent(decoded.slice(0, at)), secret: decodeURIComponent(decoded.slice(at + 1)) };
}

export function startUaa(opts: UaaOptions): Promise<RunningService> {
  const router = new Router();
  let issuer = '';
  router.on('POST', '/oauth/token', (ctx) => {
    const form = parseForm(ctx.body);
    for (const [k, v] of ctx.url.searchParams) if (!form.has(k)) form.set(k, v);
    const basic = basicCredentials(ctx.req.headers.authorization);
    const creds =
      basic ??
      (form.get('client_id')
        ? { id: form.get('client_id') ?? '', secret: form.get('client_secret') ?? '' }
        : null);
    if (!creds) {
      oauthError(ctx, 401, 'unauthorized', 'Full authentication is required to access this resource');
      return;
    }
    const client = opts.clients.find((c) => c.id === creds.id);
    if (!client || client.secret !== creds.secret) {
      oauthError(ctx, 401, 'unauthorized', 'Bad credentials');
      return;
    }
    const grant = form.get('grant_type');
    if (grant !== 'client_credentials') {
      if (!grant) oauthError(ctx, 400, 'invalid_request', 'Missing grant type');
      else oauthError(ctx, 400, 'unsupported_grant_type', `Unsupported grant type: ${grant}`);
      return;
    }
    let scopes = client.scopes;
    const requested = form.get('scope');
    if (requested?.trim()) {
      const want = requested.trim().split(/\s+/);
      const invalid = want.filter((s) => !client.scopes.includes(s));
      if (invalid.length > 0) {
        oauthError(
          ctx,
          400,
          'invalid_scope',
          `Invalid scope: ${invalid.join(' ')}. Did you know that you can get default scopes by simply sending no value?`,
        );
        return;
      }
      scopes = want;
    }
    const { token, jti } = opts.tokens.issue(client.id, scopes, opts.tokenTtlSeconds, issuer);
    const opaque = form.get('token_format') === 'opaque';
    sendJson(
      ctx,
      200,
      {
        access_token: opaque ? jti : token,
        token_type: 'bearer',
        expires_in: opts.tokenTtlSeconds,
        scope: scopes.join(' '),
        jti,
      },
      { 'Cache-Control': 'no-store', Pragma: 'no-cache' },
    );
  });
  router.on('GET', '/healthz', (ctx) => sendText(ctx, 200, 'ok'));
  router.on('GET', '/login', (ctx) =>
    sendJson(ctx, 200, {
      app: { version: '77.0.0' },
      links: { uaa: issuer, login: issuer },
      zone_name: 'uaa',
    }),
  );
  return startService({
    name: 'uaa',
    host: opts.host,
    port: opts.port,
    tls: { cert: opts.tls.cert, key: opts.tls.key },
    router,
    faults: opts.faults,
    onFault: (ctx, d) => {
      if (d.kind === 'rate-limit') {
        oauthError(ctx, 429, 'too_many_requests', 'Rate limit exceeded');
        return;
      }
      oauthError(ctx, d.status, 'server_error', 'Internal Server Error');
    },
    faultBodyType: 'application/json;charset=UTF-8',
    notFound: (ctx) => oauthError(ctx, 404, 'not_found', 'Not Found'),
  }).then((svc) => {
    issuer = `${svc.url}/oauth/token`;
    return svc;
  });
}
