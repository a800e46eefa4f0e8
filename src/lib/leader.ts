/**
 * Leader election through Redis.
 *
 * - Acquire (Lua, atomic): `SET lease <fence>:<id> NX PX <lease>` where `<fence>` = INCR of a
 *   counter: every new leader gets a larger fencing token, and the lease value is what fenced
 *   writes compare against.
 * - Renew (Lua): PEXPIRE only if the lease still holds our value; otherwise we lost it.
 * - Release (Lua): DEL only if it holds our value (graceful stop: a standby takes over at once).
 * - The leader renews every lease/4; if no renewal succeeded for 75 % of the lease (Redis slow or
 *   unreachable) it steps down on its own, before a standby can take over.
 *   Standbys try to acquire every `retryMs` (default lease/3), jittered, so they take over within
 *   about one lease time after the leader dies.
 * The three scripts are files, ./lua/leader-*.lua.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { defaultLogger, type Logger } from './log.js';
import { defineScripts, type ScriptSpec } from './redis-scripts.js';

/** The election's Lua scripts, files in ./lua (loader: ./redis-scripts.ts). */
export const LEADER_SCRIPTS = {
  cfnetLeaderAcquire: { file: 'leader-acquire.lua', numberOfKeys: 2 },
  cfnetLeaderRenew: { file: 'leader-renew.lua', numberOfKeys: 1 },
  cfnetLeaderRelease: { file: 'leader-release.lua', numberOfKeys: 1 },
} as const satisfies Record<string, ScriptSpec>;

export const LEADER_LUA_DIR = new URL('./lua/', import.meta.url);

interface LeaderRedis extends Redis {
  cfnetLeaderAcquire(lease: string, fence: string, id: string, ms: string): Promise<string | null>;
  cfnetLeaderRenew(lease: string, value: string, ms: string): Promise<number>;
  cfnetLeaderRelease(lease: string, value: string): Promise<number>;
}

/** Leadership lease (ms): a standby takes over within about this time (the controller's `leaseMs`). */
export const DEFAULT_LEASE_MS = 10_000;

export interface LeaderElectionOptions {
  /** Key of the lease (e.g. `{cfnet}:leader`). */
  leaseKey: string;
  /** Key of the fencing counter. */
  fenceKey: string;
  /**
   * Lease time in ms.
   * @defaultValue {@link DEFAULT_LEASE_MS}
   */
  leaseMs?: number;
  /** Standby retry period in ms (default leaseMs / 3), jittered ±20 %. */
  retryMs?: number;
  /** Identity of this replica (default host-pid-random). */
  id?: string;
  logger?: Logger;
}

export interface Leadership {
  /** The lease value `<fence>:<id>`: pass it to fenced writes. */
  value: string;
  /** The fencing token (strictly increasing across leaders). */
  fence: number;
  since: number;
}

export interface LeaderEvents {
  elected: [Leadership];
  lost: [Leadership, string];
  error: [Error];
}

export class LeaderElection extends EventEmitter<LeaderEvents> {
  readonly id: string;
  readonly leaseMs: number;
  readonly retryMs: number;
  private readonly redis: LeaderRedis;
  private readonly opts: LeaderElectionOptions;
  private readonly log: Logger;
  private current: Leadership | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private lastRenew = 0;
  private busy = false;
  private watchdog: NodeJS.Timeout | null = null;

  constructor(redis: Redis, opts: LeaderElectionOptions) {
    super();
    this.opts = opts;
    this.redis = redis as LeaderRedis;
    this.leaseMs = Math.max(300, opts.leaseMs ?? DEFAULT_LEASE_MS);
    this.retryMs = Math.max(50, opts.retryMs ?? Math.floor(this.leaseMs / 3));
    this.id = opts.id ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = opts.logger ?? defaultLogger('leader');
    defineScripts(this.redis, LEADER_LUA_DIR, LEADER_SCRIPTS);
  }

  get isLeader(): boolean {
    return this.current !== null;
  }

  get leadership(): Leadership | null {
    return this.current;
  }

  /** The current leader's lease value as stored in Redis (any replica), or null. */
  async currentLeader(): Promise<string | null> {
    return this.redis.get(this.opts.leaseKey);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(0);
  }

  /**
   * Stop campaigning as if the process died (tests: "kill the leader"): no further acquire or
   * renewal, the lease is neither released nor given up here, so a standby takes over only when
   * it runs out.
   */
  abandon(): void {
    this.running = false;
  }

  /** Stop campaigning; release the lease if we hold it (so a standby takes over immediately). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.disarm();
    const cur = this.current;
    if (cur) {
      this.current = null;
      try {
        await this.redis.cfnetLeaderRelease(this.opts.leaseKey, cur.value);
      } catch (err) {
        this.log.warn({ err }, 'could not release the leadership lease');
      }
      this.emit('lost', cur, 'stopped');
    }
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), ms);
    this.timer.unref?.();
  }

  private jitter(ms: number): number {
    return Math.round(ms * (0.8 + Math.random() * 0.4));
  }

  private async tick(): Promise<void> {
    if (!this.running || this.busy) return;
    this.busy = true;
    try {
      if (this.current) await this.renew();
      else await this.tryAcquire();
    } finally {
      this.busy = false;
    }
    if (this.running) this.schedule(this.current ? Math.floor(this.leaseMs / 4) : this.jitter(this.retryMs));
  }

  private async tryAcquire(): Promise<void> {
    try {
      const value = await this.redis.cfnetLeaderAcquire(
        this.opts.leaseKey,
        this.opts.fenceKey,
        this.id,
        String(this.leaseMs),
      );
      if (!value || !this.running) {
        if (value) await this.redis.cfnetLeaderRelease(this.opts.leaseKey, value);
        return;
      }
      const fence = Number(value.slice(0, value.indexOf(':')));
      this.current = { value, fence, since: Date.now() };
      this.renewed(Date.now());
      this.log.info({ fence, id: this.id }, 'elected leader');
      this.emit('elected', this.current);
    } catch (err) {
      this.emit('error', err as Error);
    }
  }

  private async renew(): Promise<void> {
    const cur = this.current!;
    const attemptAt = Date.now();
    try {
      const ok = await this.redis.cfnetLeaderRenew(this.opts.leaseKey, cur.value, String(this.leaseMs));
      if (Number(ok) === 1) {
        if (this.current === cur) this.renewed(attemptAt);
        return;
      }
      this.stepDown(cur, 'lease lost (taken over or expired)');
    } catch (err) {
      this.emit('error', err as Error);
    }
  }

  /**
   * The lease runs until `at + leaseMs` at the earliest: if no renewal succeeds by 75 % of that,
   * step down (Redis unreachable or slow) before a standby can legitimately take over.
   */
  private renewed(at: number): void {
    this.lastRenew = at;
    this.disarm();
    const cur = this.current;
    const delay = Math.max(0, at + Math.floor(this.leaseMs * 0.75) - Date.now());
    this.watchdog = setTimeout(() => {
      if (cur && this.current === cur && this.lastRenew === at) this.stepDown(cur, 'cannot renew the lease');
    }, delay);
    this.watchdog.unref?.();
  }

  private disarm(): void {
    if (this.watchdog) clearTimeout(this.watchdog);
    this.watchdog = null;
  }

  private stepDown(cur: Leadership, reason: string): void {
    if (this.current !== cur) return;
    this.current = null;
    this.disarm();
    this.log.warn({ fence: cur.fence, reason }, 'lost leadership');
    // Giving up before the lease expires (renewals too slow): release it if it is still ours, so a
    // standby takes over at once and our own in-flight fenced writes are refused from now on.
    // Best effort: when Redis is unreachable the lease simply expires.
    this.redis.cfnetLeaderRelease(this.opts.leaseKey, cur.value).catch(() => {});
    this.emit('lost', cur, reason);
  }
}
