/**
 * Failed authentications, throttled per client: every client (source address) has a budget of
 * `burst` failures that refills at `perSecond`. A client that has spent it is refused at once
 * (HTTP 429, the credential is not even compared) until a failure's worth has refilled, so a
 * guessing loop gets at most `burst + perSecond × seconds` answers however many requests it sends
 * in parallel. Successes cost nothing. Every failure is logged (client, surface, reason; never the
 * credential) and counted in `cfnet_controller_auth_failures_total{surface,outcome}`.
 */
import type { Logger } from './log.js';
import { counter, METRICS, type Registry } from './metrics.js';

export interface AuthThrottleOptions {
  /** Failures a client may make before it is throttled (default 10). */
  burst?: number;
  /** Failures per second a throttled client regains (default 1). */
  perSecond?: number;
  /** Clients tracked at most (the fullest buckets are forgotten first; default 10,000). */
  maxClients?: number;
  now?: () => number;
  logger: Logger;
  registry?: Registry;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class AuthThrottle {
  private readonly buckets = new Map<string, Bucket>();
  private readonly burst: number;
  private readonly perSecond: number;
  private readonly maxClients: number;
  private readonly now: () => number;
  private readonly log: Logger;
  private readonly failures;

  constructor(opts: AuthThrottleOptions) {
    this.burst = opts.burst ?? 10;
    this.perSecond = opts.perSecond ?? 1;
    this.maxClients = opts.maxClients ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.log = opts.logger;
    this.failures = opts.registry
      ? counter(opts.registry, METRICS.authFailures, 'Failed authentications by surface and outcome', [
          'surface',
          'outcome',
        ])
      : undefined;
  }

  private refill(client: string): Bucket {
    const now = this.now();
    const b = this.buckets.get(client) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    return b;
  }

  /**
   * May this client try a credential now? When not, the refusal is logged and counted as
   * `throttled` and the caller answers 429 without looking at the credential.
   */
  admit(client: string, surface: string): boolean {
    if (!this.buckets.has(client)) return true;
    const b = this.refill(client);
    if (b.tokens >= 1) return true;
    this.failures?.inc({ surface, outcome: 'throttled' });
    this.log.warn({ event: 'auth_throttled', surface, client }, 'authentication throttled');
    return false;
  }

  /** A credential was wrong: spend one failure of the client's budget, log and count it. */
  fail(client: string, surface: string, reason: string): void {
    const b = this.refill(client);
    b.tokens = Math.max(0, b.tokens - 1);
    this.buckets.delete(client);
    this.buckets.set(client, b);
    if (this.buckets.size > this.maxClients) this.forgetOne();
    this.failures?.inc({ surface, outcome: 'refused' });
    this.log.warn({ event: 'auth_failed', surface, client, reason }, 'authentication failed');
  }

  /** Seconds until the client may try again (for Retry-After). */
  retryAfterSeconds(client: string): number {
    const b = this.buckets.get(client);
    if (!b) return 0;
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
  }

  private forgetOne(): void {
    // the least recently failing client (Map keeps insertion order; fail() re-inserts)
    const first = this.buckets.keys().next();
    if (!first.done) this.buckets.delete(first.value);
  }
}
