/** Shared pieces of the controller integration tests: a per-run Redis namespace and cleanup. */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ControllerOptions } from '../../src/controller/settings.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import type { SimHandle } from '../../src/sim/index.js';
import { Keys } from '../../src/state/keys.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';

/** A unique namespace (own hash tag) per test run, so parallel runs never collide. */
export function testNamespace(label: string): string {
  return `{cfnet-test-${label}-${process.pid}-${randomBytes(4).toString('hex')}}`;
}

export interface TestRedis {
  redis: Redis;
  keys: Keys;
  ns: string;
  /** Delete every key of the namespace (BullMQ's included) and close connections. */
  cleanup(): Promise<void>;
}

export async function openTestRedis(label: string): Promise<TestRedis> {
  const ns = testNamespace(label);
  const redis = createRedis(REDIS_URL, { name: `cfnet-test-${label}` });
  await redis.ping();
  const keys = new Keys(ns);
  return {
    redis,
    keys,
    ns,
    async cleanup() {
      await deleteKeys(redis, keys.pattern);
      await closeRedis(redis);
    },
  };
}

/** A controller's CF sources pointed at a simulator (mTLS client certificate, UAA client), polling every `pollMs`. */
export function simSources(
  sim: SimHandle,
  pollMs: number,
  fullListIntervalMs = 10 * pollMs,
): Pick<ControllerOptions, 'bbs' | 'capi' | 'policy'> {
  const mtls = { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey };
  return {
    bbs: { url: sim.urls.bbs, tls: mtls },
    capi: {
      url: sim.urls.capi,
      tls: { ca: sim.tls.caCert },
      uaa: {
        url: sim.urls.uaa,
        clientId: sim.uaaClient.id,
        clientSecret: sim.uaaClient.secret,
        tls: { ca: sim.tls.caCert },
      },
      internal: { url: sim.urls.ccInternal, tls: mtls },
      checkIntervalMs: pollMs,
      fullListIntervalMs,
    },
    policy: { url: sim.urls.policyServer, tls: mtls, intervalMs: pollMs },
  };
}
