/**
 * Sequential TCP connects from inside a network namespace, timed one by one, and their tally: what
 * bench/filter-mode.ts and bench/c2c-connect.ts measure a path through cfnet's table with. A
 * module, not a command.
 */
import { exec } from '../test/helpers/netns.js';
import { percentile } from './controller-fixtures.js';

/** Connect, then close at once, `n` times; prints per-connect ns and the outcomes as JSON. */
const CLIENT = `
const net = require('node:net');
const { host, port, n } = JSON.parse(process.argv[1]);
const lat = []; const out = {};
(async () => {
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const r = await new Promise((res) => {
      const s = net.connect({ host, port });
      s.on('connect', () => { s.destroy(); res('open'); });
      s.on('error', (e) => res(e.code));
    });
    lat.push(Number(process.hrtime.bigint() - t0));
    out[r] = (out[r] || 0) + 1;
  }
  console.log(JSON.stringify({ lat, out }));
})();
`;

export interface ConnectResult {
  /** Each connect's time, ns. */
  lat: number[];
  /** Outcome ('open' or the error code) → count. */
  out: Record<string, number>;
}

/** `n` sequential connects to host:port from a node process in namespace `ns`. */
export async function sequentialConnects(
  ns: string,
  host: string,
  port: number,
  n: number,
): Promise<ConnectResult> {
  const r = await exec(ns, [process.execPath, '-e', CLIENT, JSON.stringify({ host, port, n })]);
  return JSON.parse(r.stdout.trim()) as ConnectResult;
}

/** Connect results gathered per key over rounds, summarised as a table row each. */
export class ConnectTally {
  private readonly lat = new Map<string, number[]>();
  private readonly outcomes = new Map<string, Record<string, number>>();

  add(key: string, res: ConnectResult): void {
    this.lat.set(key, [...(this.lat.get(key) ?? []), ...res.lat]);
    const o = this.outcomes.get(key) ?? {};
    for (const [k, v] of Object.entries(res.out)) o[k] = (o[k] ?? 0) + v;
    this.outcomes.set(key, o);
  }

  /** Outcomes, connects per second over the summed connect time, p50 and p99 in µs. */
  row(key: string): { outcome: string; 'connects/s': number; 'p50 µs': number; 'p99 µs': number } {
    const xs = [...this.lat.get(key)!].sort((a, b) => a - b);
    const total = xs.reduce((s, x) => s + x, 0);
    return {
      outcome: Object.entries(this.outcomes.get(key)!)
        .map(([k, v]) => `${k}:${v}`)
        .join(' '),
      'connects/s': Math.round(xs.length / (total / 1e9)),
      'p50 µs': Math.round(percentile(xs, 0.5) / 1000),
      'p99 µs': Math.round(percentile(xs, 0.99) / 1000),
    };
  }
}
