/**
 * Redis connections (ioredis) from a URL, with the options BullMQ and cfnet need
 * (docs/redis.md, "Connecting"):
 * - never ioredis `keyPrefix` (BullMQ refuses it; namespacing is done with key prefixes / BullMQ's
 *   `prefix`, which carry a Redis Cluster hash tag such as `{cfnet}`);
 * - `maxRetriesPerRequest: null` for connections that block (BullMQ workers, subscribers);
 * - `enableOfflineQueue: false` for producers that should fail fast instead of buffering.
 * URLs: `redis://[user:password@]host:port[/db]`, `rediss://…` for TLS. An ACL user and password
 * and the CA of a TLS server can also be given apart from the URL (`RedisAuth`), so that no secret
 * has to sit in a URL; what the URL carries wins.
 *
 * Redis Sentinel (automatic failover): `redis+sentinel://[user:password@]<master-name>[/db]?
 * sentinels=host:port,host:port,…` (`rediss+sentinel://` for TLS to the Redis servers and the
 * sentinels). The connection asks the sentinels for the current master, follows a failover without
 * a restart (it subscribes to the sentinels' `+switch-master`) and reconnects when the server it
 * talks to became a replica (`READONLY`). The credentials are the Redis servers'; add
 * `&sentinelAuth=1` when the sentinels require the same password. Every component and operator tool
 * takes such a URL wherever it takes a Redis URL.
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
  /** PEM of the CA that signed a TLS server's certificate; unset = Node's public CAs. */
  tlsCa?: string;
  /** PEM client certificate and key, for servers that require mutual TLS (`tls-auth-clients yes`). */
  tlsCert?: string;
  tlsKey?: string;
}

export const REDIS_SCHEMES = ['redis:', 'rediss:', 'redis+sentinel:', 'rediss+sentinel:'] as const;

/** Validate a Redis URL (scheme, host, db number; sentinels for a Sentinel URL) and return it parsed. */
export function parseRedisUrl(url: string, field = 'redis_url'): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ValidationError(field, url, 'must be a URL like redis://127.0.0.1:6379/0');
  }
  if (!(REDIS_SCHEMES as readonly string[]).includes(u.protocol)) {
    throw new ValidationError(
      field,
      url,
      'scheme must be redis://, rediss://, redis+sentinel:// or rediss+sentinel://',
    );
  }
  if (!u.hostname) throw new ValidationError(field, url, 'host is missing');
  const db = u.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) throw new ValidationError(field, url, 'database must be a number');
  if (isSentinelUrl(u)) sentinelsOf(u, field);
  return u;
}

export function isSentinelUrl(u: URL): boolean {
  return u.protocol.endsWith('+sentinel:');
}

/** The `sentinels=host:port,…` of a Sentinel URL (at least one, ports 1-65535). */
function sentinelsOf(u: URL, field: string): Array<{ host: string; port: number }> {
  const list = (u.searchParams.get('sentinels') ?? '').split(',').filter((x) => x !== '');
  if (list.length === 0) {
    throw new ValidationError(field, u.toString(), 'a Sentinel URL needs ?sentinels=host:port,host:port');
  }
  return list.map((hp) => {
    const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(hp);
    const port = m ? Number(m[2]) : 0;
    if (!m || port < 1 || port > 65_535) {
      throw new ValidationError(field, hp, 'each sentinel must be host:port');
    }
    return { host: m[1]!, port };
  });
}

/** ioredis options of a Sentinel URL: master name, sentinels, credentials, db, TLS. */
export function sentinelOptions(url: string): RedisOptions {
  const u = parseRedisUrl(url);
  const tls = u.protocol === 'rediss+sentinel:';
  const username = decodeURIComponent(u.username);
  const password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  const sentinelAuth = u.searchParams.get('sentinelAuth') === '1';
  return {
    sentinels: sentinelsOf(u, 'redis_url'),
    name: decodeURIComponent(u.hostname),
    role: 'master',
    ...(username ? { username } : {}),
    ...(password ? { password } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(sentinelAuth && password ? { sentinelPassword: password } : {}),
    ...(tls ? { tls: {}, sentinelTLS: {}, enableTLSForSentinelMode: true } : {}),
    // learn of a failover from the sentinels at once, not only when the old master stops answering
    failoverDetector: true,
    // a master demoted to replica answers writes with READONLY: reconnect (to the new master)
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

/**
 * ioredis options for `auth` on `url`: the user and password unless the URL carries its own, TLS
 * material for rediss:// and rediss+sentinel:// (the sentinels too) only.
 */
export function redisAuthOptions(url: string, auth: RedisAuth | undefined): RedisOptions {
  if (!auth) return {};
  const u = parseRedisUrl(url);
  const tlsUrl = u.protocol === 'rediss:' || u.protocol === 'rediss+sentinel:';
  if ((auth.tlsCa || auth.tlsCert || auth.tlsKey) && !tlsUrl) {
    throw new ValidationError(
      'redis_url',
      u.protocol,
      'TLS settings (CA, client certificate) need a rediss:// or rediss+sentinel:// URL',
    );
  }
  const tls = {
    ...(auth.tlsCa ? { ca: auth.tlsCa } : {}),
    ...(auth.tlsCert ? { cert: auth.tlsCert } : {}),
    ...(auth.tlsKey ? { key: auth.tlsKey } : {}),
  };
  const urlHasCredentials = u.username !== '' || u.password !== '';
  const sentinelAuth = isSentinelUrl(u) && u.searchParams.get('sentinelAuth') === '1';
  return {
    ...(auth.username && !urlHasCredentials ? { username: auth.username } : {}),
    ...(auth.password && !urlHasCredentials ? { password: auth.password } : {}),
    // sentinels that require the password too (`requirepass` on the sentinels; no ACL user there)
    ...(sentinelAuth && auth.password && !urlHasCredentials ? { sentinelPassword: auth.password } : {}),
    ...(tlsUrl ? { tls, ...(isSentinelUrl(u) ? { sentinelTLS: tls } : {}) } : {}),
  };
}

/**
 * ioredis auto-pipelining: the commands a process issues in one event-loop turn go out in one
 * socket write (MULTI blocks and blocking commands are left alone). For the controller's command
 * connection, where per-cell writes and reads come in bursts of thousands.
 */
export const AUTO_PIPELINING: RedisOptions = { enableAutoPipelining: true };

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
  if (isSentinelUrl(parseRedisUrl(url))) return new Redis({ ...sentinelOptions(url), ...options });
  return new Redis(url, options);
}

/** Close a connection: QUIT when connected, otherwise disconnect; never throws. */
export async function closeRedis(r: Redis | undefined | null): Promise<void> {
  if (!r) return;
  try {
    if (r.status === 'ready') await r.quit();
  } catch {
    // already gone
  }
  // QUIT ends the command connection, not a Sentinel client's subscriptions to the sentinels (its
  // failover detector), which would otherwise reconnect forever: disconnect ends everything.
  r.disconnect();
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
