/**
 * Redis connections (ioredis) from a URL, with the options BullMQ and cfnet need
 * (cni-nftables-libraries.md §5):
 * - never ioredis `keyPrefix` (BullMQ refuses it; namespacing is done with key prefixes / BullMQ's
 *   `prefix`, which carry a Redis Cluster hash tag such as `{cfnet}`);
 * - `maxRetriesPerRequest: null` for connections that block (BullMQ workers, subscribers);
 * - `enableOfflineQueue: false` for producers that should fail fast instead of buffering.
 * URLs: `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS. An ACL user and password
 * and the CA of a TLS server can also be given apart from the URL (`RedisAuth`), so that no secret
 * has to sit in a URL; what the URL carries wins.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { ValidationError } from './errors.js';

export type RedisRole =
  /** Plain commands (reads, writes, Lua): retries a few times, queues while reconnecting. */
  | 'client'
  /** BullMQ Worker / QueueEvents / blocking commands / pub-sub subscriber. */
  | 'blocking'
  /** BullMQ Queue producer: fail fast while disconnected. */
  | 'producer';

export interface RedisConnectOptions {
  role?: RedisRole;
  /** CLIENT SETNAME, visible in `CLIENT LIST` (e.g. `cfnet-controller-worker`). */
  name?: string;
  /** Do not connect until the first command (default false). */
  lazyConnect?: boolean;
  /** ACL user, password and TLS trust (see RedisAuth). */
  auth?: RedisAuth;
  /** Extra ioredis options (keyPrefix is rejected). */
  extra?: RedisOptions;
}

/** Credentials and TLS trust of a Redis connection, beside its URL. */
export interface RedisAuth {
  /** ACL user (Redis 6+); unset = `default`. */
  username?: string;
  password?: string;
  /** PEM of the CA that signed a rediss:// server's certificate; unset = Node's public CAs. */
  tlsCa?: string;
  /** PEM client certificate and key, for servers that require mutual TLS (`tls-auth-clients yes`). */
  tlsCert?: string;
  tlsKey?: string;
}

/** ioredis options for `auth` on `url` (TLS material only for rediss://). */
export function redisAuthOptions(url: string, auth: RedisAuth | undefined): RedisOptions {
  if (!auth) return {};
  const u = parseRedisUrl(url);
  const tls = auth.tlsCa || auth.tlsCert || auth.tlsKey;
  if (tls && u.protocol !== 'rediss:') {
    throw new ValidationError(
      'redis_url',
      u.protocol,
      'TLS settings (CA, client certificate) need a rediss:// URL',
    );
  }
  return {
    ...(auth.username ? { username: auth.username } : {}),
    ...(auth.password ? { password: auth.password } : {}),
    ...(u.protocol === 'rediss:'
      ? {
          tls: {
            ...(auth.tlsCa ? { ca: auth.tlsCa } : {}),
            ...(auth.tlsCert ? { cert: auth.tlsCert } : {}),
            ...(auth.tlsKey ? { key: auth.tlsKey } : {}),
          },
        }
      : {}),
  };
}

/** Validate a Redis URL (scheme, host, db number) and return it parsed. */
export function parseRedisUrl(url: string, field = 'redis_url'): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ValidationError(field, url, 'must be a URL like redis://127.0.0.1:6379/0');
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new ValidationError(field, url, 'scheme must be redis:// or rediss://');
  }
  if (!u.hostname) throw new ValidationError(field, url, 'host is missing');
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new ValidationError(field, url, 'database must be a number');
  return u;
}

/** The ioredis options for a role (exported for BullMQ `connection` objects and tests). */
export function redisOptionsFor(role: RedisRole): RedisOptions {
  const retryStrategy = (times: number) => Math.min(100 * 2 ** Math.min(times, 8), 5_000);
  switch (role) {
    case 'blocking':
      return { maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy };
    case 'producer':
      return { maxRetriesPerRequest: 3, enableOfflineQueue: false, retryStrategy };
    default:
      return { maxRetriesPerRequest: 3, retryStrategy };
  }
}

/** Open an ioredis connection. */
export function createRedis(url: string, opts: RedisConnectOptions = {}): Redis {
  parseRedisUrl(url);
  if (opts.extra && 'keyPrefix' in opts.extra) {
    throw new ValidationError(
      'keyPrefix',
      opts.extra.keyPrefix,
      'ioredis keyPrefix breaks BullMQ; use key prefixes',
    );
  }
  const options: RedisOptions = {
    ...redisOptionsFor(opts.role ?? 'client'),
    lazyConnect: opts.lazyConnect ?? false,
    ...(opts.name ? { connectionName: opts.name } : {}),
    ...redisAuthOptions(url, opts.auth),
    ...opts.extra,
  };
  return new Redis(url, options);
}

/** Close a connection: QUIT when connected, otherwise disconnect; never throws. */
export async function closeRedis(r: Redis | undefined | null): Promise<void> {
  if (!r) return;
  try {
    if (r.status === 'ready') await r.quit();
    else r.disconnect();
  } catch {
    r.disconnect();
  }
}

/**
 * Delete every key matching `pattern` (SCAN + UNLINK in batches). For tests and operator resets
 * of one namespace: never FLUSHALL a shared Redis.
 */
export async function deleteKeys(r: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let n = 0;
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) n += await r.unlink(...keys);
  } while (cursor !== '0');
  return n;
}
