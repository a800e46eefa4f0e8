/**
 * Fan-out: one controller process serving 2,500 long-polling agents; one change that touches every
 * cell (an update of the globally bound running ASG) delivered to all of them.
 *
 * - The simulator runs a foundation of --agents cells (--per-cell containers each).
 * - One real `cfnet agent` runs in a network namespace as cell-0000 (lean entry by default, or
 *   `bin/cfnet.js agent` with --cli), with --real-containers extra instances placed on its cell so
 *   its rule set is realistic; its receive time is when the new rule reaches its kernel table (`nft
 *   monitor` in its namespace).
 * - The other cells are simulated agents: the agent's own ControllerClient + RulePuller (long-poll,
 *   snapshot then patches, applyPatch) in this process, one mTLS client certificate each (cell id
 *   in the CN), without a dataplane.
 *
 *   npx tsx bench/fanout-agents.ts [--agents 2500] [--per-cell 4] [--changes 3]
 *                                  [--capi-check-ms 250] [--real-containers 200] [--cli]
 *                                  [--agent-node-options '--max-semi-space-size=2']
 *
 * The real agent runs with the production intervals (lease renewal every 30 s, drift check every
 * 60 s), so its memory is what a cell would see.
 *
 * Latency = receipt (or kernel enforcement, for the real agent) − the simulator's `triggeredAt`; it
 * includes the controller's CAPI change check (`asg_latest_update` every --capi-check-ms), the
 * recomputation of every cell and the long-poll wake-ups. "spread" is last − first receipt.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ControllerClient } from '../src/agent/client.js';
import { RulePuller } from '../src/agent/pull.js';
import { Cluster, waitUntil } from '../src/lab/cluster.js';
import { createLogger } from '../src/lib/log.js';
import { closeRedis, createRedis } from '../src/lib/redis.js';
import type { CellRuleSet } from '../src/model/types.js';
import type { CcRule } from '../src/sim/index.js';
import { Keys } from '../src/state/keys.js';
import { RuleSetStore } from '../src/state/ruleset-store.js';
import { formatRedisStats, RedisStats } from './redis-stats.js';

const USAGE = `Fan-out: one change touching every cell delivered to N long-polling agents (1 real agent in a
namespace, the others simulated in this process); controller and agent RSS. Root.

usage: npx tsx bench/fanout-agents.ts [options]
  --agents N                cells / agents (default 2500)
  --per-cell N              simulated containers per cell (default 4)
  --changes N               changes to deliver (default 3)
  --capi-check-ms N         controller's CAPI asg_latest_update check interval (default 250)
  --real-containers N       extra instances on the real agent's cell (default 200)
  --worker-concurrency N    the controller's workerConcurrency (default 8)
  --worker-processes N      the controller's workerProcesses (default 0: reconciles in its own process)
  --cli                     real agent as \`node bin/cfnet.js agent\` (default: \`node dist/agent/main.js\`)
  --agent-node-options S    node options of the real agent, e.g. '--max-semi-space-size=2'
  --redis-stats             sample Redis (INFO: commands/s, network, CPU share, memory; PING
                            latency) during the changes and print a table
  --cpu-prof DIR            CPU-profile the controller: a .cpuprofile per 2 s (named by the end
                            time, ms since the epoch) into DIR; each change's window is printed
  -h, --help                this text
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
const AGENTS = arg('agents', 2500);
const PER_CELL = arg('per-cell', 4);
const CHANGES = arg('changes', 3);
const CAPI_CHECK = arg('capi-check-ms', 250);
const REAL_CONTAINERS = arg('real-containers', 200);
const WORKER_CONCURRENCY = arg('worker-concurrency', 8);
const WORKER_PROCESSES = arg('worker-processes', 0);
const ENTRY = process.argv.includes('--cli') ? 'cli' : 'lean';
const NODE_OPTIONS = (() => {
  const i = process.argv.indexOf('--agent-node-options');
  return i >= 0 ? (process.argv[i + 1] ?? '').split(' ').filter(Boolean) : [];
})();

const log = createLogger('fanout', { level: 'silent' });

/**
 * `node --cpu-prof` is not allowed in NODE_OPTIONS and the lab starts the controller itself, so a
 * preload (inherited through NODE_OPTIONS, active only in the controller) runs the inspector's
 * profiler and writes a profile every 2 s: the segments inside a change's window are its profile.
 */
const PROFILE_PRELOAD = `if (process.argv.includes('controller') && process.env.CFNET_PROF_DIR) {
  const inspector = require('node:inspector');
  const fs = require('node:fs');
  const path = require('node:path');
  const s = new inspector.Session();
  s.connect();
  const start = () => { s.post('Profiler.enable'); s.post('Profiler.setSamplingInterval', { interval: 500 }); s.post('Profiler.start'); };
  const dump = (restart) => s.post('Profiler.stop', (err, res) => {
    if (!err && res) fs.writeFileSync(path.join(process.env.CFNET_PROF_DIR, 'ctl-' + process.pid + '-' + Date.now() + '.cpuprofile'), JSON.stringify(res.profile));
    if (restart) start();
  });
  start();
  setInterval(() => dump(true), 2000).unref();
  process.on('exit', () => dump(false));
}
`;
const PROFILE_DIR = (() => {
  const i = process.argv.indexOf('--cpu-prof');
  return i >= 0 ? (process.argv[i + 1] ?? '') : '';
})();
if (PROFILE_DIR !== '') {
  mkdirSync(PROFILE_DIR, { recursive: true });
  const preload = join(PROFILE_DIR, 'profile-controller.cjs');
  writeFileSync(preload, PROFILE_PRELOAD);
  process.env.CFNET_PROF_DIR = PROFILE_DIR;
  process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`.trim();
}

function pct(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

/**
 * CPU seconds (user + system) a process has used (/proc/<pid>/stat, 100 ticks/s), with its live
 * children's (the controller's worker processes; the bench process has none).
 */
async function cpuSeconds(pid: number, withChildren = false): Promise<number> {
  const f = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  let total = (Number(f[11]) + Number(f[12])) / 100;
  if (withChildren) {
    const children = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
    for (const c of children.split(' ').filter((x) => x !== '')) total += await cpuSeconds(Number(c));
  }
  return total;
}

function cellName(i: number): string {
  return `cell-${String(i).padStart(AGENTS > 1000 ? 4 : 3, '0')}`;
}

function hasPort(rs: CellRuleSet, port: number): boolean {
  for (const rules of Object.values(rs.asgSets)) {
    for (const r of rules) if (r.ports.some((p) => p.start === port)) return true;
  }
  return false;
}

interface SimAgent {
  cell: string;
  client: ControllerClient;
  puller: RulePuller;
  got: Map<number, number>;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const realCell = cellName(0);
  const cluster = await Cluster.start({
    cells: 1,
    cellIds: [realCell],
    agentEntry: ENTRY,
    agentNodeOptions: NODE_OPTIONS,
    agent: { leasePollIntervalSeconds: 30, driftCheckIntervalSeconds: 60 },
    logLevel: 'warn',
    capiCheckIntervalMs: CAPI_CHECK,
    sim: {
      seed: 11,
      size: 'large',
      cells: AGENTS,
      containers: AGENTS * PER_CELL,
      apps: Math.max(10, Math.round((AGENTS * PER_CELL) / 10)),
      spaces: 100,
      asgs: 20,
      asgRules: 200,
      policies: 2000,
      tasks: 0,
    },
    // controller settings (CONTROLLER_SETTINGS keys)
    controller: {
      overlayNetwork: '10.32.0.0/11',
      workerConcurrency: WORKER_CONCURRENCY,
      workerProcesses: WORKER_PROCESSES,
      jobBackoffMs: 100,
    },
  });
  const agents: SimAgent[] = [];
  let monitor: ChildProcess | null = null;
  try {
    console.error(`topology up in ${Date.now() - t0} ms (controller pid ${cluster.controller?.pid})`);
    const sim = cluster.sim;
    const real = cluster.cells[0]!;

    // a realistic rule set for the real agent: more instances on its cell
    const simCell = sim.world.cells.get(realCell)!;
    const [net] = simCell.subnet.split('/') as [string];
    const base = net.split('.').map(Number) as [number, number, number, number];
    const apps = [...sim.world.apps.values()].filter((a) => a.state === 'STARTED');
    for (let i = 0; i < REAL_CONTAINERS; i++) {
      const app = apps[i % apps.length]!;
      const desired = sim.world.desiredOfApp(app.guid)!;
      const n = 300 + i;
      await sim.apply({
        kind: 'lrp-place',
        processGuid: desired.processGuid,
        index: desired.instances + 1000 + i,
        instanceGuid: `fan0-${String(i).padStart(4, '0')}-4000-8000-000000000000`,
        cellId: realCell,
        instanceAddress: `${base[0]}.${base[1]}.${base[2] + (n >> 8)}.${n & 255}`,
        address: real.underlayIp,
      });
    }

    // simulated agents: certificates from the cluster CA with one shared key
    const key = cluster.clientTls('key-holder').key;
    const tc = Date.now();
    for (let i = 1; i < AGENTS; i++) {
      const cell = cellName(i);
      const client = new ControllerClient({
        baseUrl: cluster.controllerUrl,
        cellId: cell,
        tls: cluster.clientTls(cell, key),
      });
      const got = new Map<number, number>();
      const a: SimAgent = { cell, client, got, puller: null as unknown as RulePuller };
      a.puller = new RulePuller({
        source: client,
        cellId: cell,
        waitSeconds: 50,
        minBackoffMs: 500,
        maxBackoffMs: 10_000,
        logger: log,
        onRuleSet: async (u) => {
          for (let k = 0; k < CHANGES; k++) {
            const port = 5300 + k;
            if (!got.has(port) && hasPort(u.ruleSet, port)) got.set(port, u.receivedAt);
          }
        },
      });
      agents.push(a);
    }
    console.error(`${agents.length} client certificates in ${Date.now() - tc} ms`);
    for (let i = 0; i < agents.length; i += 250) {
      for (const a of agents.slice(i, i + 250)) a.puller.start();
      await new Promise((r) => setTimeout(r, 200));
    }
    await waitUntil(
      'every simulated agent holds its snapshot',
      () => agents.every((a) => a.puller.current() !== null),
      180_000,
      500,
    );
    await waitUntil(
      'the real agent applied its rule set',
      async () => (await real.agentState()).appliedVersion !== 0,
      60_000,
    );
    console.error(`all ${AGENTS} agents hold a rule set after ${Date.now() - t0} ms`);
    await new Promise((r) => setTimeout(r, 3000));

    monitor = spawn('ip', ['netns', 'exec', real.ns, 'nft', 'monitor'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const realSeen = new Map<number, number>();
    createInterface({ input: monitor.stdout! }).on('line', (line) => {
      const m = /dport (53\d\d)\b/.exec(line);
      if (m && !realSeen.has(Number(m[1]))) realSeen.set(Number(m[1]), Date.now());
    });
    await new Promise((r) => setTimeout(r, 300));

    const dns = [...sim.world.securityGroups.values()].find((g) => g.name === 'dns')!;
    const conn = createRedis(cluster.redisUrl, { name: 'cfnet-fanout-bench' });
    const store = new RuleSetStore(conn, new Keys(cluster.redisNs));
    const ctlPid = cluster.controller!.pid!;
    const results: {
      port: number;
      lat: number[];
      spread: number;
      missing: number;
      realMs: number;
      written: number[];
      delivered: number[];
      ctlCpu: number;
      benchCpu: number;
    }[] = [];
    let rules: CcRule[] = [...dns.rules];
    const redisStats = process.argv.includes('--redis-stats') ? RedisStats.start(cluster.redisUrl) : null;
    for (let k = 0; k < CHANGES; k++) {
      const port = 5300 + k;
      rules = [...rules, { protocol: 'tcp', destination: '10.0.0.53', ports: String(port) }];
      const [ctl0, self0] = [await cpuSeconds(ctlPid, true), await cpuSeconds(process.pid)];
      const ch = await sim.apply({ kind: 'asg-update', guid: dns.guid, rules });
      try {
        await waitUntil(
          `change ${k + 1} delivered to every agent`,
          () => agents.every((a) => a.got.has(port)) && realSeen.has(port),
          60_000,
          50,
        );
      } catch (err) {
        console.error(String(err));
      }
      const [ctl1, self1] = [await cpuSeconds(ctlPid, true), await cpuSeconds(process.pid)];
      if (PROFILE_DIR !== '') {
        console.error(
          `cpu-prof: change ${k + 1} from ${ch.triggeredAt} to ${Date.now()} (ms since the epoch)`,
        );
      }
      // where the time went: the controller writing each cell's rule set (Redis clock, this machine),
      // then the long-poll answer reaching the agent
      const metas = new Map(
        await Promise.all(agents.map(async (a) => [a.cell, await store.meta(a.cell)] as const)),
      );
      const written = [...metas.values()].flatMap((m) => (m ? [m.updatedAt - ch.triggeredAt] : []));
      const delivered = agents.flatMap((a) => {
        const m = metas.get(a.cell);
        return a.got.has(port) && m ? [a.got.get(port)! - m.updatedAt] : [];
      });
      const times = agents.flatMap((a) => (a.got.has(port) ? [a.got.get(port)!] : []));
      const realAt = realSeen.get(port);
      const lat = times.map((t) => t - ch.triggeredAt);
      if (realAt !== undefined) lat.push(realAt - ch.triggeredAt);
      results.push({
        port,
        lat,
        spread: Math.max(...times) - Math.min(...times),
        missing: AGENTS - lat.length,
        realMs: realAt === undefined ? Number.NaN : realAt - ch.triggeredAt,
        written,
        delivered,
        ctlCpu: ctl1 - ctl0,
        benchCpu: self1 - self0,
      });
      await new Promise((r) => setTimeout(r, 2000));
    }

    const redisReport = await redisStats?.stop();
    const ctl = await Cluster.rss(cluster.controller!.pid!);
    const ag = await Cluster.rss(real.agent!.pid!);
    const self = await Cluster.rss(process.pid);
    const rs = JSON.parse(await readFile(`${real.stateDir}/agent-state.json`, 'utf8')) as {
      base: CellRuleSet;
    };
    console.log(
      `\n${AGENTS} agents (1 real in a namespace + ${AGENTS - 1} in-process long-poll clients), one controller process; change = update of the global running ASG "dns" (touches every cell); CAPI check every ${CAPI_CHECK} ms`,
    );
    console.log(
      '| change | agents reached | p50 ms | p90 ms | p99 ms | max ms | spread ms | real agent (kernel) ms |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const [i, r] of results.entries()) {
      console.log(
        `| ${i + 1} | ${r.lat.length}/${AGENTS} | ${pct(r.lat, 0.5)} | ${pct(r.lat, 0.9)} | ${pct(r.lat, 0.99)} | ${Math.max(...r.lat)} | ${r.spread} | ${r.realMs} |`,
      );
    }
    const mb = (kb: number) => (kb / 1024).toFixed(1);
    console.log('\n| process | RSS MB | peak RSS MB |');
    console.log('|---|---|---|');
    console.log(`| controller | ${mb(ctl.rssKb)} | ${mb(ctl.hwmKb)} |`);
    console.log(
      `| real agent (${ENTRY === 'lean' ? 'node' : 'node bin/cfnet.js agent'}${NODE_OPTIONS.length ? ` ${NODE_OPTIONS.join(' ')}` : ''}${ENTRY === 'lean' ? ' dist/agent/main.js' : ''}; ${rs.base.containers.length} containers, ${Object.keys(rs.base.asgSets).length} ASG sets, ${rs.base.c2c.length} c2c entries) | ${mb(ag.rssKb)} | ${mb(ag.hwmKb)} |`,
    );
    console.log(`| bench process (${AGENTS - 1} simulated agents) | ${mb(self.rssKb)} | ${mb(self.hwmKb)} |`);
    const mem = (await real.agentState()).memoryMb as Record<string, number>;
    console.log(
      `\nreal agent memory (MB): ${Object.entries(mem)
        .map(([k, v]) => `${k} ${v}`)
        .join(', ')}`,
    );
    console.log('\nwhere the time went (ms after the trigger; CPU seconds used during the change)');
    console.log(
      '| change | rule set written p50 | written p99 | last written | write → received p50 | p99 | controller CPU s | bench CPU s |',
    );
    console.log('|---|---|---|---|---|---|---|---|');
    for (const [i, r] of results.entries()) {
      console.log(
        `| ${i + 1} | ${pct(r.written, 0.5)} | ${pct(r.written, 0.99)} | ${Math.max(...r.written)} | ${pct(r.delivered, 0.5)} | ${pct(r.delivered, 0.99)} | ${r.ctlCpu.toFixed(1)} | ${r.benchCpu.toFixed(1)} |`,
      );
    }
    const polls = agents.reduce((n, a) => n + a.puller.counts.errors, 0);
    console.log(`\nsimulated agents' failed polls during the run: ${polls}`);
    if (redisReport)
      console.log(`\n${formatRedisStats(`${CHANGES} changes to every one of ${AGENTS} cells`, redisReport)}`);
    await closeRedis(conn);
  } finally {
    monitor?.kill('SIGKILL');
    await Promise.all(agents.map((a) => a.puller.stop()));
    await Promise.all(agents.map((a) => a.client.close()));
    await cluster.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
