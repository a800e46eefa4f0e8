/**
 * What cfnet costs one Redis: sampled from Redis's own counters (`INFO`) while a benchmark runs.
 *
 *   const stats = RedisStats.start(url);   // samples every second
 *   … the measured phase …
 *   printRedisStats(await stats.stop());
 *
 * - commands/s: `total_commands_processed` delta / wall time (mean and busiest second);
 * - network bytes/s in and out: `total_net_input_bytes` / `total_net_output_bytes` deltas;
 * - CPU: `used_cpu_sys` + `used_cpu_user` delta / wall time = the share of one core Redis used
 *   (Redis executes commands on one thread: 100 % is its ceiling);
 * - memory: `used_memory` at the end and `used_memory_peak`;
 * - latency: round trip of a PING from a separate connection, sampled every 100 ms (what a
 *   command waits behind others), p50/p99/max.
 */
import type { Redis } from 'ioredis';
import { closeRedis, createRedis } from '../src/lib/redis.js';

interface Counters {
  at: number;
  commands: number;
  netIn: number;
  netOut: number;
  cpu: number;
  usedMemory: number;
  peakMemory: number;
}

export interface RedisStatsReport {
  seconds: number;
  commandsPerSec: number;
  busiestCommandsPerSec: number;
  netInBytesPerSec: number;
  netOutBytesPerSec: number;
  /** Share of one core (0-1). */
  cpuShare: number;
  busiestCpuShare: number;
  usedMemoryBytes: number;
  peakMemoryBytes: number;
  pingMs: { p50: number; p99: number; max: number };
}

function field(info: string, name: string): number {
  const m = new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info);
  return m ? Number(m[1]) : 0;
}

async function read(r: Redis): Promise<Counters> {
  const info = await r.info();
  return {
    at: Date.now(),
    commands: field(info, 'total_commands_processed'),
    netIn: field(info, 'total_net_input_bytes'),
    netOut: field(info, 'total_net_output_bytes'),
    cpu: field(info, 'used_cpu_sys') + field(info, 'used_cpu_user'),
    usedMemory: field(info, 'used_memory'),
    peakMemory: field(info, 'used_memory_peak'),
  };
}

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

export class RedisStats {
  private readonly samples: Counters[] = [];
  private readonly pings: number[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  private constructor(
    private readonly info: Redis,
    private readonly ping: Redis,
  ) {
    this.loops = [this.sampleLoop(), this.pingLoop()];
  }

  static start(url: string): RedisStats {
    return new RedisStats(
      createRedis(url, { name: 'cfnet-bench-stats' }),
      createRedis(url, { name: 'cfnet-bench-ping' }),
    );
  }

  private async sampleLoop(): Promise<void> {
    while (this.running) {
      this.samples.push(await read(this.info));
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private async pingLoop(): Promise<void> {
    while (this.running) {
      const t = process.hrtime.bigint();
      await this.ping.ping();
      this.pings.push(Number(process.hrtime.bigint() - t) / 1e6);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<RedisStatsReport> {
    this.running = false;
    await Promise.all(this.loops);
    this.samples.push(await read(this.info));
    await closeRedis(this.info);
    await closeRedis(this.ping);
    const first = this.samples[0]!;
    const last = this.samples.at(-1)!;
    const seconds = Math.max(0.001, (last.at - first.at) / 1000);
    let busiestCommands = 0;
    let busiestCpu = 0;
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1]!;
      const b = this.samples[i]!;
      const dt = Math.max(0.001, (b.at - a.at) / 1000);
      busiestCommands = Math.max(busiestCommands, (b.commands - a.commands) / dt);
      busiestCpu = Math.max(busiestCpu, (b.cpu - a.cpu) / dt);
    }
    const pings = [...this.pings].sort((x, y) => x - y);
    return {
      seconds,
      commandsPerSec: (last.commands - first.commands) / seconds,
      busiestCommandsPerSec: busiestCommands,
      netInBytesPerSec: (last.netIn - first.netIn) / seconds,
      netOutBytesPerSec: (last.netOut - first.netOut) / seconds,
      cpuShare: (last.cpu - first.cpu) / seconds,
      busiestCpuShare: busiestCpu,
      usedMemoryBytes: last.usedMemory,
      peakMemoryBytes: last.peakMemory,
      pingMs: { p50: quantile(pings, 0.5), p99: quantile(pings, 0.99), max: pings.at(-1) ?? 0 },
    };
  }
}

/** The report as a two-column table. */
export function formatRedisStats(title: string, r: RedisStatsReport): string {
  const mb = (b: number) => `${(b / 1048576).toFixed(1)} MB`;
  const rows: [string, string][] = [
    ['measured', `${r.seconds.toFixed(1)} s`],
    [
      'commands/s (mean / busiest second)',
      `${Math.round(r.commandsPerSec)} / ${Math.round(r.busiestCommandsPerSec)}`,
    ],
    ['network in / out', `${mb(r.netInBytesPerSec)}/s / ${mb(r.netOutBytesPerSec)}/s`],
    [
      'CPU, share of one core (mean / busiest second)',
      `${(r.cpuShare * 100).toFixed(1)} % / ${(r.busiestCpuShare * 100).toFixed(1)} %`,
    ],
    ['memory used (end / peak)', `${mb(r.usedMemoryBytes)} / ${mb(r.peakMemoryBytes)}`],
    [
      'PING round trip p50 / p99 / max',
      `${r.pingMs.p50.toFixed(2)} / ${r.pingMs.p99.toFixed(2)} / ${r.pingMs.max.toFixed(2)} ms`,
    ],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return [`Redis during: ${title}`, ...rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`)].join('\n');
}
