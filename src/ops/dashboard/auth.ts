/**
 * Operator authentication of the dashboard: the operator token (a setting of the controller) is
 * given once on the login page and exchanged for a session cookie, or sent on every request as
 * `Authorization: Bearer <token>` (scripts). The cookie is `<expiry>.<HMAC(expiry)>` keyed by a
 * hash of the token: any replica with the same token accepts it, changing the token ends every
 * session, and the token itself never travels again. HttpOnly, SameSite=Strict, Path=/dashboard.
 * SameSite does not stop another port of the same host (same site), so state-changing requests are
 * also checked for their origin (index.ts).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { parse as parseCookies, serialize as serializeCookie } from 'cookie';
import type { FastifyRequest } from 'fastify';

export const SESSION_COOKIE = 'cfnet_operator';
export const COOKIE_PATH = '/dashboard';
/** Shortest operator token accepted (a guessable token would be no protection). */
export const MIN_TOKEN_LENGTH = 16;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

export class OperatorAuth {
  private readonly tokenDigest: Buffer;
  private readonly key: Buffer;

  constructor(
    token: string,
    private readonly ttlMs = 12 * 3600_000,
  ) {
    this.tokenDigest = digest(token);
    this.key = digest(`cfnet-dashboard-session\u0000${token}`);
  }

  /** Constant-time comparison of a candidate with the token. */
  checkToken(candidate: unknown): boolean {
    if (typeof candidate !== 'string' || candidate === '') return false;
    return timingSafeEqual(digest(candidate), this.tokenDigest);
  }

  private mac(expiry: string): string {
    return createHmac('sha256', this.key).update(expiry).digest('base64url');
  }

  /** A fresh session value. */
  issue(now = Date.now()): string {
    const expiry = String(now + this.ttlMs);
    return `${expiry}.${this.mac(expiry)}`;
  }

  /** Is a session value genuine and not expired? */
  verify(value: unknown, now = Date.now()): boolean {
    if (typeof value !== 'string') return false;
    const dot = value.indexOf('.');
    if (dot <= 0) return false;
    const expiry = value.slice(0, dot);
    if (!/^\d{1,16}$/.test(expiry) || Number(expiry) <= now) return false;
    const given = Buffer.from(value.slice(dot + 1));
    const want = Buffer.from(this.mac(expiry));
    return given.length === want.length && timingSafeEqual(given, want);
  }

  /** Which credential a request presents (`token`, `session`), or null when none. */
  presented(req: FastifyRequest): 'token' | 'session' | null {
    const h = req.headers.authorization;
    if (typeof h === 'string' && /^Bearer /i.test(h)) return 'token';
    return parseCookies(req.headers.cookie ?? '')[SESSION_COOKIE] !== undefined ? 'session' : null;
  }

  /** The request carries the token (Bearer) or a valid session cookie. */
  authorized(req: FastifyRequest, now = Date.now()): boolean {
    const h = req.headers.authorization;
    if (typeof h === 'string' && /^Bearer /i.test(h)) return this.checkToken(h.slice(7).trim());
    const cookies = parseCookies(req.headers.cookie ?? '');
    return this.verify(cookies[SESSION_COOKIE], now);
  }

  /** Set-Cookie value of a new session (`secure` when served over HTTPS). */
  sessionCookie(secure: boolean, now = Date.now()): string {
    return serializeCookie(SESSION_COOKIE, this.issue(now), {
      httpOnly: true,
      sameSite: 'strict',
      path: COOKIE_PATH,
      maxAge: Math.floor(this.ttlMs / 1000),
      secure,
    });
  }

  static clearCookie(): string {
    return serializeCookie(SESSION_COOKIE, '', {
      httpOnly: true,
      sameSite: 'strict',
      path: COOKIE_PATH,
      maxAge: 0,
    });
  }
}
