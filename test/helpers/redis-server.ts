/**
 * A private redis-server for fault tests: its own port and directory, no persistence (as the
 * `cfnet-redis` job was shipped: a restart comes back empty), killable and restartable on the same
 * port. Never the shared Redis on 6379: other tests run beside the fault suite.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, waitExit } from '../../src/lab/process.js';

/** Resolves once a redis-server answers PING on 127.0.0.1:`port` (refused until it listens). */
export async function redisAnswers(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    c.on('error', () => {});
    try {
      await c.connect();
      await c.ping();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`redis-server on ${port} did not start`);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      c.disconnect();
    }
  }
}

export class RedisServer {
  private child: ChildProcess | null = null;

  private constructor(
    readonly port: number,
    private readonly dir: string,
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  static async start(): Promise<RedisServer> {
    const r = new RedisServer(await freePort(), await mkdtemp(join(tmpdir(), 'cfnet-fault-redis-')));
    await r.restart();
    return r;
  }

  /** Starts (again) on the same port, empty. */
  async restart(): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--bind',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        this.dir,
      ],
      { stdio: 'ignore' },
    );
    this.child = child;
    await redisAnswers(this.port);
  }

  /** A crash: SIGKILL, data gone. */
  async kill(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null) return;
    c.kill('SIGKILL');
    await waitExit(c, 5000);
  }

  /** Every key of every database gone (an operator's FLUSHALL). */
  async flushAll(): Promise<void> {
    const c = new Redis(this.url, { maxRetriesPerRequest: 1 });
    c.on('error', () => {});
    try {
      await c.flushall();
    } finally {
      c.disconnect();
    }
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
