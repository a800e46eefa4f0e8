/**
 * Event → enforced-in-kernel latency on every affected cell, on the multi-cell e2e topology
 * (3 cells in namespaces, simulator, Redis, controller process, 3 `cfnet agent` processes, containers
 * from the real CNI plugin). A kernel watcher per cell (`nft monitor` inside the cell namespace)
 * timestamps the moment the expected element enters (or leaves) cfnet's table; the trigger time is
 * the simulator's `triggeredAt` (the change became visible to its clients) or the moment a CNI ADD
 * returned.
 *
 *   npx tsx bench/agent-latency.ts [--iterations 20] [--policy-interval-ms 1000] [--asg-check-ms 1000] [--lean]
 *
 * (--lean starts the agents with `node dist/agent/main.js` instead of `node bin/cfnet.js agent`.)
 *
 * Kinds:
 *   policy-add / policy-remove  policy server change (controller polls `policies_last_updated`
 *                               every --policy-interval-ms) → c2c element on the 3 cells running
 *                               the destination app
 *   asg-bind                    a new ASG bound to the destination app's space (controller checks
 *                               CC's `asg_latest_update` every --asg-check-ms) → the destination
 *                               containers' ASG jump (`ctr_asg`) on the 3 cells
 *   lrp-place (app start, BBS)  BBS event (stream): a running instance the agent reported without
 *                               identity gets its app from BBS → its c2c element on its cell
 *   cni-add (app start, CNI)    CNI ADD returned → the new container's c2c element (the controller
 *                               learns it from the agent's inventory report) on its cell
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { type AppRef, Cluster, type ContainerRef, waitUntil } from '../src/lab/cluster.js';

const USAGE = `Event → enforced-in-kernel latency on every affected cell (3 cells in namespaces; root).

usage: npx tsx bench/agent-latency.ts [options]
  --iterations N           changes of each kind (default 20)
  --policy-interval-ms N   controller's policy-server poll interval (default 1000)
  --asg-check-ms N         controller's CAPI asg_latest_update check interval (default 1000)
  --lean                   agents run as \`node dist/agent/main.js\` (default: \`node bin/cfnet.js agent\`)
  -h, --help               this text
`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`--${name} needs a number ≥ 0\n${USAGE}`);
    process.exit(2);
  }
  return v;
}
const ITERATIONS = arg('iterations', 20);
const POLICY_INTERVAL = arg('policy-interval-ms', 1000);
const ASG_CHECK = arg('asg-check-ms', 1000);
const ENTRY = process.argv.includes('--lean') ? 'lean' : 'cli';

interface Seen {
  line: string;
  at: number;
}

/** `nft monitor` in a cell: every element add/delete line with its arrival time. */
class KernelWatch {
  readonly seen: Seen[] = [];
  private readonly child: ChildProcess;
  private waiters: { re: RegExp; after: number; resolve: (at: number) => void }[] = [];

  constructor(ns: string) {
    this.child = spawn('ip', ['netns', 'exec', ns, 'nft', 'monitor'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    createInterface({ input: this.child.stdout! }).on('line', (line) => {
      const at = Date.now();
      if (!line.includes(' element inet cfnet ')) return;
      this.seen.push({ line, at });
      this.waiters = this.waiters.filter((w) => {
        if (at >= w.after && w.re.test(line)) {
          w.resolve(at);
          return false;
        }
        return true;
      });
    });
  }

  /** Resolves with the arrival time of the first line matching `re` at or after `after`. */
  wait(re: RegExp, after: number, timeoutMs = 30_000): Promise<number> {
    const hit = this.seen.find((s) => s.at >= after && re.test(s.line));
    if (hit) return Promise.resolve(hit.at);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${re} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        re,
        after,
        resolve: (at) => {
          clearTimeout(t);
          resolve(at);
        },
      });
    });
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function c2cRe(verb: 'add' | 'delete', tag: string, ip: string, port: number): RegExp {
  return new RegExp(`^${verb} element inet cfnet c2c_tcp \\{ .*${esc(`${tag} . ${ip} . ${port}`)}`);
}

/** D's container jumps to (another) ASG chain. */
function asgJumpRe(ip: string): RegExp {
  return new RegExp(`^add element inet cfnet ctr_asg \\{ ${esc(ip)} : (jump|goto) `);
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const cluster = await Cluster.start({
    cells: 3,
    policyIntervalMs: POLICY_INTERVAL,
    capiCheckIntervalMs: ASG_CHECK,
    logLevel: 'info',
    agentEntry: ENTRY,
  });
  const watches = cluster.cells.map((c) => new KernelWatch(c.ns));
  const samples = new Map<string, number[]>();
  const add = (kind: string, ms: number) => {
    const l = samples.get(kind) ?? [];
    l.push(ms);
    samples.set(kind, l);
  };
  try {
    console.error(`topology up in ${Date.now() - t0} ms`);
    const S: AppRef = await cluster.app('bench-src');
    const D: AppRef = await cluster.app('bench-dst');
    const src = await cluster.container(cluster.cells[0]!, S, 0);
    const dst: ContainerRef[] = [];
    for (const [i, cell] of cluster.cells.entries()) dst.push(await cluster.container(cell, D, i));
    // a first policy gives S its tag
    await cluster.sim.apply({ kind: 'policy-add', source: S.appGuid, destination: D.appGuid, port: 8000 });
    const tag = await waitUntil('source tag on cell 1', async () => {
      const t = (await cluster.cells[0]!.exec(['nft', 'list', 'map', 'inet', 'cfnet', 'ctr_tag'])).stdout;
      return new RegExp(`${esc(src.ip)} : (0x[0-9a-f]+)`).exec(t)?.[1];
    });
    await Promise.all(dst.map((d, i) => watches[i]!.wait(c2cRe('add', tag, d.ip, 8000), 0)));
    await new Promise((r) => setTimeout(r, 1000));

    // policy add/remove: every cell running D is affected
    for (let i = 0; i < ITERATIONS; i++) {
      const port = 9000 + i;
      for (const verb of ['add', 'delete'] as const) {
        const kind = verb === 'add' ? 'policy-add' : 'policy-remove';
        const ch = await cluster.sim.apply({ kind, source: S.appGuid, destination: D.appGuid, port });
        const ats = await Promise.all(
          dst.map((d, c) => watches[c]!.wait(c2cRe(verb, tag, d.ip, port), ch.triggeredAt)),
        );
        for (const at of ats) add(kind, at - ch.triggeredAt);
        // spread the changes over the poll phase
        await new Promise((r) => setTimeout(r, 137 + ((i * 211) % POLICY_INTERVAL)));
      }
    }

    // ASG bind: a new security group bound to D's space → D's containers jump to a new ASG chain
    for (let i = 0; i < ITERATIONS; i++) {
      const g = await cluster.sim.apply({
        kind: 'asg-create',
        name: `bench-asg-${i}`,
        rules: [{ protocol: 'tcp', destination: `192.0.2.${1 + (i % 250)}`, ports: String(8400 + i) }],
      });
      const ch = await cluster.sim.apply({
        kind: 'asg-bind-space',
        guid: g.result.guid as string,
        spaceGuid: D.spaceGuid,
      });
      const ats = await Promise.all(dst.map((d, c) => watches[c]!.wait(asgJumpRe(d.ip), ch.triggeredAt)));
      for (const at of ats) add('asg-bind', at - ch.triggeredAt);
      await new Promise((r) => setTimeout(r, 137 + ((i * 211) % ASG_CHECK)));
    }

    // new containers: CNI ADD → the controller learns them from the inventory → their c2c element
    for (let i = 0; i < ITERATIONS; i++) {
      const cell = cluster.cells[i % cluster.cells.length]!;
      const w = watches[i % cluster.cells.length]!;
      const c = await cluster.container(cell, D, 10 + i, { register: false });
      const done = Date.now();
      const at = await w.wait(c2cRe('add', tag, c.ip, 8000), done - 5000);
      add('cni-add', at - done);
      await cluster.sim.apply({
        kind: 'lrp-place',
        processGuid: D.processGuid,
        index: 10 + i,
        instanceGuid: c.handle,
        cellId: cell.id,
        instanceAddress: c.ip,
        address: cell.underlayIp,
      });
    }
    await new Promise((r) => setTimeout(r, 1000));

    // BBS: an instance the agent reported without identity (no Garden metadata) is placed by BBS →
    // the controller learns its app from the ActualLRP event stream → its c2c element on its cell
    for (let i = 0; i < ITERATIONS; i++) {
      const cell = cluster.cells[i % cluster.cells.length]!;
      const w = watches[i % cluster.cells.length]!;
      const c = await cluster.container(cell, D, 100 + i, { register: false, metadata: {} });
      await new Promise((r) => setTimeout(r, 300)); // the inventory report lands first
      const ch = await cluster.sim.apply({
        kind: 'lrp-place',
        processGuid: D.processGuid,
        index: 100 + i,
        instanceGuid: c.handle,
        cellId: cell.id,
        instanceAddress: c.ip,
        address: cell.underlayIp,
      });
      const at = await w.wait(c2cRe('add', tag, c.ip, 8000), ch.triggeredAt);
      add('lrp-place', at - ch.triggeredAt);
    }

    // agent-side: apply durations from the agents' logs
    const applyMs: number[] = [];
    const rss: string[] = [];
    for (const cell of cluster.cells) {
      for (const l of await cell.logLines('"rule set applied"')) {
        if (l.mode === 'incremental' && typeof l.ms === 'number') applyMs.push(l.ms);
      }
    }
    for (const pid of cluster.cells.map((c) => c.agent?.pid)) {
      if (!pid) continue;
      const m = await Cluster.rss(pid);
      rss.push(`${(m.rssKb / 1024).toFixed(1)} MB (peak ${(m.hwmKb / 1024).toFixed(1)} MB)`);
    }

    const rows = [...samples.entries()].map(([kind, xs]) => ({
      kind,
      samples: xs.length,
      p50: pct(xs, 0.5),
      p90: pct(xs, 0.9),
      p99: pct(xs, 0.99),
      max: Math.max(...xs),
    }));
    console.log(
      `\nevent → enforced in the kernel of every affected cell (ms); policy poll ${POLICY_INTERVAL} ms, ASG check ${ASG_CHECK} ms`,
    );
    console.log('| change | samples | p50 | p90 | p99 | max |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows)
      console.log(`| ${r.kind} | ${r.samples} | ${r.p50} | ${r.p90} | ${r.p99} | ${r.max} |`);
    console.log(
      `\nagent incremental nft apply (merge + render + one nft transaction through the session): n=${applyMs.length} p50=${pct(applyMs, 0.5).toFixed(1)} ms p99=${pct(applyMs, 0.99).toFixed(1)} ms`,
    );
    console.log(`agent RSS (${ENTRY} entry): ${rss.join(', ')}`);
  } finally {
    for (const w of watches) w.close();
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
