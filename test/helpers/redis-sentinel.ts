/**
 * Redis with Sentinel on loopback, for failover tests: one master, two replicas and three
 * sentinels (quorum 2), each its own `redis-server` process (the sentinels are `redis-server
 * --sentinel`, what Debian's redis-sentinel runs). Fast detection: a master is down after 1 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePorts, waitExit } from '../../src/lab/process.js';
import { redisAnswers } from './redis-server.js';

export const MASTER_NAME = 'cfnet';

export class SentinelRedis {
  private readonly servers = new Map<number, ChildProcess>();
  private readonly sentinels: ChildProcess[] = [];

  private constructor(
    private readonly dir: string,
    readonly serverPorts: number[],
    readonly sentinelPorts: number[],
  ) {}

  /** `redis+sentinel://cfnet/0?sentinels=…` */
  get url(): string {
    return `redis+sentinel://${MASTER_NAME}/0?sentinels=${this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}`;
  }

  static async start(): Promise<SentinelRedis> {
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-sentinel-'));
    const ports = await freePorts(6);
    const s = new SentinelRedis(dir, ports.slice(0, 3), ports.slice(3));
    const [master, ...replicas] = s.serverPorts as [number, number, number];
    await s.startServer(master);
    for (const r of replicas) await s.startServer(r, master);
    for (const [i, port] of s.sentinelPorts.entries()) {
      const conf = join(dir, `sentinel-${i}.conf`);
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master} 2`,
          `sentinel down-after-milliseconds ${MASTER_NAME} 1000`,
          `sentinel failover-timeout ${MASTER_NAME} 5000`,
          `sentinel parallel-syncs ${MASTER_NAME} 1`,
          '',
        ].join('\n'),
      );
      const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
      s.sentinels.push(child);
      await redisAnswers(port);
    }
    // replicas in sync before anything depends on them
    await s.waitReplicas(master, 2);
    return s;
  }

  private async startServer(port: number, replicaOf?: number): Promise<void> {
    const args = [
      '--bind',
      '127.0.0.1',
      '--port',
      String(port),
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
    ];
    if (replicaOf) args.push('--replicaof', '127.0.0.1', String(replicaOf));
    this.servers.set(port, spawn('redis-server', args, { stdio: 'ignore' }));
    await redisAnswers(port);
  }

  private async waitReplicas(master: number, n: number): Promise<void> {
    const c = new Redis({ port: master, host: '127.0.0.1' });
    try {
      const deadline = Date.now() + 15_000;
      while (Date.now() < deadline) {
        const info = await c.info('replication');
        const online = info.split('\n').filter((l) => /^slave\d+:.*state=online/.test(l)).length;
        if (online >= n) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`fewer than ${n} replicas online`);
    } finally {
      c.disconnect();
    }
  }

  /** The port of the current master, as the sentinels say. */
  async masterPort(): Promise<number> {
    const c = new Redis({ port: this.sentinelPorts[0]!, host: '127.0.0.1' });
    try {
      const [, port] = (await c.call('SENTINEL', 'get-master-addr-by-name', MASTER_NAME)) as [string, string];
      return Number(port);
    } finally {
      c.disconnect();
    }
  }

  /** SIGKILL of the current master (a crash: whatever it did not replicate is lost). */
  async killMaster(): Promise<number> {
    const port = await this.masterPort();
    const child = this.servers.get(port);
    child?.kill('SIGKILL');
    if (child) await waitExit(child, 5000);
    this.servers.delete(port);
    return port;
  }

  /**
   * SIGSTOP of every replica and their links cut: the master goes on accepting writes that reach
   * no replica (what a crash then loses). `resumeReplicas` lets them run again.
   */
  async pauseReplicas(): Promise<void> {
    const master = await this.masterPort();
    for (const [port, child] of this.servers) if (port !== master) child.kill('SIGSTOP');
    // and cut their links: what the master accepts from now on reaches no replica (writes
    // already in a replica's socket buffer would otherwise still arrive once it runs again)
    const c = new Redis({ port: master, host: '127.0.0.1' });
    try {
      await c.client('KILL', 'TYPE', 'replica');
    } finally {
      c.disconnect();
    }
  }

  resumeReplicas(): void {
    for (const child of this.servers.values()) child.kill('SIGCONT');
  }

  async stop(): Promise<void> {
    this.resumeReplicas();
    for (const c of [...this.servers.values(), ...this.sentinels]) c.kill('SIGKILL');
    for (const c of [...this.servers.values(), ...this.sentinels]) await waitExit(c, 5000);
    await rm(this.dir, { recursive: true, force: true });
  }
}
