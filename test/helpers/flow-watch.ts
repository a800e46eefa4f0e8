/**
 * Continuous flow probing for fault scenarios: "nothing in force is ever dropped" is proven by
 * probing every flow of interest, over and over, for the whole scenario, and counting each probe
 * whose result differs from what the policy says.
 *
 * One long-lived prober process per source namespace (not a process per probe: a scenario sends
 * hundreds of rounds on a 2-core machine) probes all its flows concurrently every `intervalMs`
 * and prints one JSON line per round; the parent compares each result with the flow's expectation.
 *
 *   const watch = await FlowWatch.start([
 *     { name: 'x1→y1:8080', ns: x1.ns, proto: 'tcp', host: y1.ip, port: 8080, expect: 'open' },
 *     { name: 'z1→y1:8080', ns: z1.ns, proto: 'tcp', host: y1.ip, port: 8080, expect: 'closed' },
 *   ]);
 *   ... the fault ...
 *   const report = await watch.stop();
 *   assert.equal(report.failed, 0, report.summary());
 *
 * `closed` accepts any result except `open` (dropped, refused and unreachable all keep a denied
 * flow closed); `open` accepts only a reply from the echo server (startServers / Cluster.serve).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { PROBE_ONE_JS, type Probe, type ProbeResult } from './netns.js';

export interface Flow extends Probe {
  /** Shown in failures, e.g. "x1→y1:8080". */
  name: string;
  /** The namespace the probe leaves from. */
  ns: string;
  expect: 'open' | 'closed';
}

export interface FlowFailure {
  flow: string;
  /** ms since the watch started. */
  atMs: number;
  result: ProbeResult | string;
}

export interface FlowReport {
  /** Probes whose result came back. */
  sent: number;
  failed: number;
  /** Per flow: probes sent and failed. */
  perFlow: Record<string, { sent: number; failed: number }>;
  /** The first 50 failures, in order. */
  failures: FlowFailure[];
  durationMs: number;
  summary(): string;
}

const LOOP = `
const { probes, timeout, interval } = JSON.parse(process.argv[1]);
${PROBE_ONE_JS}
let stopping = false;
process.stdin.on('data', () => { stopping = true; });
process.stdin.on('end', () => { stopping = true; });
(async () => {
  while (!stopping) {
    const started = Date.now();
    const r = await Promise.all(probes.map(one));
    console.log(JSON.stringify({ at: started, r }));
    const wait = interval - (Date.now() - started);
    if (wait > 0) await new Promise((w) => setTimeout(w, wait));
  }
  process.exit(0);
})();
`;

export class FlowWatch {
  private readonly startedAt = Date.now();
  private readonly perFlow: Record<string, { sent: number; failed: number }> = {};
  private readonly failures: FlowFailure[] = [];
  private sent = 0;
  private failed = 0;

  private constructor(
    private readonly children: { child: ChildProcess; exited: Promise<void> }[],
    flows: readonly Flow[],
  ) {
    for (const f of flows) this.perFlow[f.name] = { sent: 0, failed: 0 };
  }

  /**
   * Starts probing. `intervalMs` is the round period per namespace (default 300 ms);
   * `timeoutMs` how long one probe may wait for the echo (default 1000 ms).
   */
  static async start(
    flows: readonly Flow[],
    opts: { intervalMs?: number; timeoutMs?: number } = {},
  ): Promise<FlowWatch> {
    const byNs = new Map<string, Flow[]>();
    for (const f of flows) byNs.set(f.ns, [...(byNs.get(f.ns) ?? []), f]);
    const children: { child: ChildProcess; exited: Promise<void> }[] = [];
    const watch = new FlowWatch(children, flows);
    for (const [ns, nsFlows] of byNs) {
      const cfg = JSON.stringify({
        probes: nsFlows.map(({ proto, host, port }) => ({ proto, host, port })),
        timeout: opts.timeoutMs ?? 1000,
        interval: opts.intervalMs ?? 300,
      });
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', LOOP, cfg], {
        stdio: ['pipe', 'pipe', 'inherit'],
      });
      const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        let round: { at: number; r: string[] };
        try {
          round = JSON.parse(line) as { at: number; r: string[] };
        } catch {
          return;
        }
        for (const [i, result] of round.r.entries()) watch.record(nsFlows[i]!, round.at, result);
      });
      children.push({ child, exited });
    }
    return watch;
  }

  private record(flow: Flow, at: number, result: string): void {
    const ok = flow.expect === 'open' ? result === 'open' : result !== 'open';
    const stats = this.perFlow[flow.name]!;
    stats.sent++;
    this.sent++;
    if (ok) return;
    stats.failed++;
    this.failed++;
    if (this.failures.length < 50) this.failures.push({ flow: flow.name, atMs: at - this.startedAt, result });
  }

  /** Probes counted so far (a scenario can wait until at least N rounds were seen). */
  get counted(): { sent: number; failed: number } {
    return { sent: this.sent, failed: this.failed };
  }

  /** Stops every prober (after its current round) and returns the totals. */
  async stop(): Promise<FlowReport> {
    for (const { child } of this.children) child.stdin?.end();
    await Promise.race([
      Promise.all(this.children.map((c) => c.exited)),
      new Promise((r) => setTimeout(r, 5000)),
    ]);
    for (const { child } of this.children) if (child.exitCode === null) child.kill('SIGKILL');
    const report = {
      sent: this.sent,
      failed: this.failed,
      perFlow: this.perFlow,
      failures: this.failures,
      durationMs: Date.now() - this.startedAt,
    };
    return {
      ...report,
      summary: () =>
        `${report.failed} of ${report.sent} probes failed in ${report.durationMs} ms; first failures: ` +
        JSON.stringify(report.failures.slice(0, 10)),
    };
  }
}
