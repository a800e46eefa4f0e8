/**
 * Redis for the lab: a given URL, else the local Redis on 127.0.0.1:6379 when it answers, else a
 * throwaway `redis-server` on a free loopback port (no persistence, its files in a temp dir),
 * stopped and removed by `stop()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CfnetError } from '../lib/errors.js';
import { closeRedis, createRedis } from '../lib/redis.js';
import { freePort, terminate, waitUntil } from './process.js';

export const LOCAL_REDIS_URL = 'redis://127.0.0.1:6379/0';

export class LabRedisError extends CfnetError {
  constructor(message: string) {
    super('CFNET_LAB_REDIS', message);
  }
}

export interface LabRedis {
  url: string;
  /** given = the URL asked for; local = the one on 127.0.0.1:6379; throwaway = started here. */
  source: 'given' | 'local' | 'throwaway';
  /** The throwaway server's process (null otherwise). */
  process: ChildProcess | null;
  /** The throwaway server's directory, on its command line as `--dir` (null otherwise). */
  dir: string | null;
  /** Stops a throwaway server and removes its directory; a no-op for the others. */
  stop(): Promise<void>;
}

export interface LabRedisOptions {
  /** Use exactly this Redis (error when it does not answer). */
  url?: string;
  /** Never use the local one: always start a throwaway server. */
  throwaway?: boolean;
  /** Where to look for the local one (default redis://127.0.0.1:6379/0). */
  localUrl?: string;
  /** The server program (default `redis-server` on PATH). */
  redisServer?: string;
}

/** True when a Redis answers PING at `url` within `timeoutMs`. */
export async function redisAnswers(url: string, timeoutMs = 1000): Promise<boolean> {
  const r = createRedis(url, {
    name: 'cfnet-lab-probe',
    lazyConnect: true,
    extra: { connectTimeout: timeoutMs, maxRetriesPerRequest: 0, retryStrategy: () => null },
  });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    await closeRedis(r);
  }
}

async function startThrowaway(program: string, why: string): Promise<LabRedis> {
  const dir = await mkdtemp(join(tmpdir(), 'cfnet-redis-'));
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}/0`;
  const args = ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'];
  const child = spawn(program, [...args, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-4000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const started = new Promise<void>((resolve, reject) => {
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'ENOENT'
          ? new LabRedisError(
              `${why} and ${program} is not installed: install Redis (e.g. apt-get install redis-server) or give the URL of a running one`,
            )
          : err,
      ),
    );
    child.once('spawn', () => resolve());
  });
  const stop = async () => {
    await terminate(child, 5000);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await started;
    await waitUntil(
      `${program} on port ${port}`,
      async () => {
        if (child.exitCode !== null)
          throw new LabRedisError(`${program} exited (${child.exitCode}): ${output.trim()}`);
        return redisAnswers(url, 500);
      },
      15_000,
      100,
    );
  } catch (err) {
    await stop();
    throw err instanceof LabRedisError || !(err instanceof Error) ? err : new LabRedisError(err.message);
  }
  return { url, source: 'throwaway', process: child, dir, stop };
}

/** Redis for the lab: see the module comment. */
export async function provideRedis(opts: LabRedisOptions = {}): Promise<LabRedis> {
  const none = async () => undefined;
  if (opts.url) {
    if (!(await redisAnswers(opts.url))) throw new LabRedisError(`no Redis answers at ${opts.url}`);
    return { url: opts.url, source: 'given', process: null, dir: null, stop: none };
  }
  const local = opts.localUrl ?? LOCAL_REDIS_URL;
  if (!opts.throwaway && (await redisAnswers(local))) {
    return { url: local, source: 'local', process: null, dir: null, stop: none };
  }
  const why = opts.throwaway ? 'a throwaway Redis was asked for' : `no Redis answers at ${local}`;
  return startThrowaway(opts.redisServer ?? 'redis-server', why);
}
