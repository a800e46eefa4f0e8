/**
 * Connections of the operator tools: one Redis client that fails fast (a CLI must not hang or
 * retry while Redis is down), and over it the controller's key layout, reconcile queue, rule-set
 * store and event journal in the same namespace. Nothing here writes anything but reconcile keys
 * (replays, retries), queue state (pause/resume, cleaning finished jobs) and the journal.
 */
import type { Redis } from 'ioredis';
import { ReconcileQueue } from '../controller/reconcile/queue.js';
import { errorMessage } from '../lib/errors.js';
import { closeRedis, createRedis, type RedisAuth } from '../lib/redis.js';
import { DEFAULT_NAMESPACE, Keys } from '../state/keys.js';
import { RuleSetStore } from '../state/ruleset-store.js';
import { ControllerUnavailableError, classifyRedisError, RedisUnreachableError } from './errors.js';
import { Journal } from './journal.js';
import { QueueAdmin } from './queue-admin.js';

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379/0';

export interface OpsConnectOptions {
  redisUrl?: string;
  /** ACL user, password, TLS CA beside the URL. */
  auth?: RedisAuth;
  namespace?: string;
  /** Give up connecting after this long (default 3 s). */
  connectTimeoutMs?: number;
  /** Give up on one command after this long (default 15 s). */
  commandTimeoutMs?: number;
}

export interface OpsContext {
  url: string;
  redis: Redis;
  keys: Keys;
  queue: ReconcileQueue;
  admin: QueueAdmin;
  store: RuleSetStore;
  journal: Journal;
  /** A second connection for blocking reads (XREAD BLOCK), opened on first use. */
  blocking(): Promise<Redis>;
  close(): Promise<void>;
}

/** A Redis client that does not retry: the first failure is the answer. */
export async function connectRedis(
  url: string,
  opts: { connectTimeoutMs?: number; commandTimeoutMs?: number; name?: string; auth?: RedisAuth } = {},
): Promise<Redis> {
  const redis = createRedis(url, {
    name: opts.name ?? 'cfnet-ops',
    ...(opts.auth ? { auth: opts.auth } : {}),
    lazyConnect: true,
    extra: {
      connectTimeout: opts.connectTimeoutMs ?? 3000,
      ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
      retryStrategy: () => null,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: true,
    },
  });
  let lastError = '';
  // Failures surface as command errors; this keeps ioredis from printing unhandled 'error' events.
  redis.on('error', (err: Error) => {
    lastError = err.message;
  });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    redis.disconnect();
    const msg = errorMessage(err);
    throw new RedisUnreachableError(
      url,
      lastError && !msg.includes(lastError) ? `${msg} (${lastError})` : msg,
    );
  }
  return redis;
}

export async function openOps(opts: OpsConnectOptions = {}): Promise<OpsContext> {
  const url = opts.redisUrl ?? DEFAULT_REDIS_URL;
  const keys = new Keys(opts.namespace ?? DEFAULT_NAMESPACE);
  const redis = await connectRedis(url, {
    ...(opts.auth ? { auth: opts.auth } : {}),
    ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
    commandTimeoutMs: opts.commandTimeoutMs ?? 15_000,
  });
  const queue = new ReconcileQueue(redis, { prefix: keys.ns });
  queue.queue.on('error', () => {});
  let blocking: Redis | null = null;
  return {
    url,
    redis,
    keys,
    queue,
    admin: new QueueAdmin(queue.queue),
    store: new RuleSetStore(redis, keys),
    journal: new Journal(redis, keys),
    async blocking() {
      if (!blocking) {
        blocking = await connectRedis(url, {
          ...(opts.auth ? { auth: opts.auth } : {}),
          ...(opts.connectTimeoutMs !== undefined ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
          name: 'cfnet-ops-follow',
        });
      }
      return blocking;
    },
    async close() {
      await queue.close().catch(() => {});
      blocking?.disconnect();
      await closeRedis(redis);
    },
  };
}

/** Run `fn` with an open context, always closing it; connection failures become RedisUnreachableError. */
export async function withOps<T>(opts: OpsConnectOptions, fn: (ctx: OpsContext) => Promise<T>): Promise<T> {
  const ctx = await openOps(opts);
  try {
    return await fn(ctx);
  } catch (err) {
    throw classifyRedisError(err, ctx.url);
  } finally {
    await ctx.close();
  }
}

/**
 * Throws ControllerUnavailableError (exit 4) unless a controller is or was at work in the
 * namespace: a leader holds it, or wrote its publish state or the world. That is what a wrong
 * --redis-namespace lacks, told apart from an empty foundation; a leader that lost its Redis data
 * and waits for a source still counts (its publish state says why nothing is published).
 */
export async function requireController(ctx: OpsContext): Promise<void> {
  if ((await ctx.redis.exists(ctx.keys.ready, ctx.keys.leader, ctx.keys.publishState)) > 0) return;
  throw new ControllerUnavailableError(
    `no controller in namespace ${JSON.stringify(ctx.keys.ns)}: no leader, no world written (is the controller running, and is --redis-namespace right?)`,
  );
}
