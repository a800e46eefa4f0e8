/**
 * Platform event → rule set published, under churn, measured from outside the controller:
 * - the simulator (this process) serves a generated foundation (default: medium) and applies a
 *   steady stream of random changes (app start/stop/scale/crash, c2c policy add/remove);
 * - the controller runs as its own process (`node bin/cfnet.js controller --config …` from a fresh
 *   install of this working copy), with the default poll intervals (policy server 1 s);
 * - this process follows every publication on the rule-set channel, reads the published rule set
 *   and, for every change, finds the first version of each affected cell that shows it: the new
 *   instances present and the gone ones absent, the policy's c2c entries present or absent.
 *   Latency = that version's publication time (Redis clock) − the moment the simulator made the
 *   change visible (BBS events sent / policy stored). A change counts when all its cells show it.
 * Changes on an app with a change still in flight are skipped (so each one's effect is
 * unambiguous); crashes restart at once (BBS's immediate restart).
 *
 *   npx tsx bench/controller-latency.ts [small|medium|large] [changes/s] [seconds]
 * Redis: REDIS_URL, else 127.0.0.1:6379 when it answers, else a throwaway redis-server.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LabController } from '../src/lab/controller.js';
import { labInstall, removeInstalls } from '../src/lab/install.js';
import { provideRedis } from '../src/lab/redis.js';
import { closeRedis, createRedis, deleteKeys } from '../src/lib/redis.js';
import { createCa, issueCert } from '../src/lib/tls.js';
import type { CellRuleSet } from '../src/model/types.js';
import type { SimChange, SimChangeKind } from '../src/sim/changes.js';
import { randomChange } from '../src/sim/churn.js';
import { type SimHandle, startSimulator } from '../src/sim/index.js';
import { Prng } from '../src/sim/prng.js';
import type { FoundationSize } from '../src/sim/world.js';
import { Keys } from '../src/state/keys.js';
import { percentile, printTable } from './controller-fixtures.js';

if (process.argv.includes('--help')) {
  console.log(
    'usage: npx tsx bench/controller-latency.ts [small|medium|large] [changes/s] [seconds]\n  Redis: REDIS_URL, else 127.0.0.1:6379 when it answers, else a throwaway redis-server',
  );
  process.exit(0);
}

const size = (process.argv[2] ?? 'medium') as FoundationSize;
const rate = Number(process.argv[3] ?? 20);
const seconds = Number(process.argv[4] ?? 30);
const BBS_KINDS: SimChangeKind[] = ['app-start', 'app-stop', 'app-scale', 'app-crash'];
const POLICY_KINDS: SimChangeKind[] = ['policy-add', 'policy-remove'];

type Check = (rs: CellRuleSet) => boolean;

interface Pending {
  kind: SimChangeKind;
  triggeredAt: number;
  apps: string[];
  /** Cells still to show the change, with their check. */
  cells: Map<string, Check>;
  worst: number;
}

/** Running instances (guid → cell, ip) of an app's current process. */
function runningOf(sim: SimHandle, appGuid: string): Map<string, { cell: string; ip: string }> {
  const d = sim.world.desiredOfApp(appGuid);
  const out = new Map<string, { cell: string; ip: string }>();
  if (!d) return out;
  for (const a of sim.world.actualsOf(d.processGuid)) {
    if (a.state === 'RUNNING' && a.instanceGuid && a.cellId && a.instanceAddress)
      out.set(a.instanceGuid, { cell: a.cellId, ip: a.instanceAddress });
  }
  return out;
}

/** Per cell: these handles present, those absent. */
function instanceChecks(
  before: Map<string, { cell: string }>,
  after: Map<string, { cell: string }>,
): Map<string, Check> {
  const want = new Map<string, { present: string[]; absent: string[] }>();
  const at = (cell: string) => {
    let w = want.get(cell);
    if (!w) {
      w = { present: [], absent: [] };
      want.set(cell, w);
    }
    return w;
  };
  for (const [h, { cell }] of after) if (before.get(h)?.cell !== cell) at(cell).present.push(h);
  for (const [h, { cell }] of before) if (after.get(h)?.cell !== cell) at(cell).absent.push(h);
  const checks = new Map<string, Check>();
  for (const [cell, w] of want) {
    checks.set(cell, (rs) => {
      const handles = new Set(rs.containers.map((c) => c.handle));
      return w.present.every((h) => handles.has(h)) && w.absent.every((h) => !handles.has(h));
    });
  }
  return checks;
}

function policyChecks(
  sim: SimHandle,
  ch: Extract<SimChange, { kind: 'policy-add' | 'policy-remove' }>,
  srcTag: number,
  present: boolean,
): Map<string, Check> {
  const ports = ch.ports ?? { start: ch.port ?? 8080, end: ch.port ?? 8080 };
  const protocol = ch.protocol ?? 'tcp';
  const byCell = new Map<string, string[]>();
  for (const { cell, ip } of runningOf(sim, ch.destination).values()) {
    byCell.set(cell, [...(byCell.get(cell) ?? []), ip]);
  }
  const checks = new Map<string, Check>();
  for (const [cell, ips] of byCell) {
    checks.set(cell, (rs) => {
      const found = new Set(
        rs.c2c
          .filter(
            (e) =>
              e.srcTag === srcTag &&
              e.protocol === protocol &&
              e.ports.start === ports.start &&
              e.ports.end === ports.end,
          )
          .map((e) => e.dstIp),
      );
      return present ? ips.every((ip) => found.has(ip)) : ips.every((ip) => !found.has(ip));
    });
  }
  return checks;
}

const redis = await provideRedis(process.env.REDIS_URL ? { url: process.env.REDIS_URL } : {});
const dir = await mkdtemp(join(tmpdir(), 'cfnet-bench-latency-'));
const ns = `{cfnet-bench-lat-${randomBytes(4).toString('hex')}}`;
const keys = new Keys(ns);
const conn = createRedis(redis.url, { name: 'bench-latency' });
const sub = createRedis(redis.url, { role: 'blocking', name: 'bench-latency-sub' });
let controller: LabController | null = null;
let sim: SimHandle | null = null;
try {
  const tSim = performance.now();
  sim = await startSimulator({ seed: 1, size, certDir: join(dir, 'sim') });
  const simMs = performance.now() - tSim;
  const install = await labInstall();
  const ca = createCa({ cn: 'bench CA' });
  const server = issueCert(ca, { cn: 'cfnet-controller', sans: ['localhost', '127.0.0.1'] });
  await mkdir(join(dir, 'controller'), { recursive: true });
  controller = new LabController({
    install,
    dir: join(dir, 'controller'),
    sim,
    redisUrl: redis.url,
    namespace: ns,
    apiTls: { ca: ca.cert, cert: server.cert, key: server.key },
    logLevel: 'info',
    // production defaults for what is measured (the lab shortens them for its tests)
    settings: {
      instanceId: 'bench',
      leaseMs: 10_000,
      policyPollIntervalMs: 1000,
      asgCheckIntervalMs: 5000,
      asgFullListIntervalMs: 300_000,
      jobBackoffMs: 500,
    },
  });

  // Follow publications: latest rule set per cell, and the pending changes per cell.
  const latest = new Map<string, CellRuleSet>();
  const pendingByCell = new Map<string, Set<Pending>>();
  const done: Array<{ kind: SimChangeKind; ms: number }> = [];
  const busyApps = new Set<string>();
  let publications = 0;
  let lastPublication = Date.now();
  const settle = (p: Pending, cell: string, at: number) => {
    p.cells.delete(cell);
    pendingByCell.get(cell)?.delete(p);
    p.worst = Math.max(p.worst, at - p.triggeredAt);
    if (p.cells.size === 0) {
      done.push({ kind: p.kind, ms: p.worst });
      for (const a of p.apps) busyApps.delete(a);
    }
  };
  let reading = Promise.resolve();
  sub.on('message', (_ch: string, msg: string) => {
    const cell = msg.slice(0, msg.indexOf(' '));
    publications++;
    lastPublication = Date.now();
    reading = reading.then(async () => {
      const [v, body, at] = await conn.hmget(keys.ruleSet(cell), 'version', 'snapshot', 'updatedAt');
      if (!v || !body) return;
      const rs = { ...(JSON.parse(body) as CellRuleSet), version: Number(v) };
      if ((latest.get(cell)?.version ?? 0) >= rs.version) return;
      latest.set(cell, rs);
      for (const p of [...(pendingByCell.get(cell) ?? [])]) {
        if (p.cells.get(cell)!(rs)) settle(p, cell, Number(at));
      }
    });
  });
  await sub.subscribe(keys.ruleSetChannel);

  const tCtl = performance.now();
  await controller.start();
  const cellCount = sim.world.cells.size;
  while ((await conn.scard(keys.ruleSetCells)) < cellCount || Date.now() - lastPublication < 2000) {
    await new Promise((r) => setTimeout(r, 200));
  }
  const readyMs = performance.now() - tCtl;
  await reading;

  // Churn.
  const rng = new Prng(7);
  const kinds = [...BBS_KINDS, ...BBS_KINDS, ...POLICY_KINDS];
  const track = (p: Pending) => {
    for (const [cell, check] of [...p.cells]) {
      const cur = latest.get(cell);
      if (cur && check(cur)) p.cells.delete(cell); // already so: nothing to publish there
    }
    if (p.cells.size === 0) return false;
    for (const a of p.apps) busyApps.add(a);
    for (const cell of p.cells.keys()) {
      let s = pendingByCell.get(cell);
      if (!s) {
        s = new Set();
        pendingByCell.set(cell, s);
      }
      s.add(p);
    }
    return true;
  };
  const all: Pending[] = [];
  let skipped = 0;
  const t0 = Date.now();
  const load0 = loadavg()[0]!;
  for (let i = 0; Date.now() - t0 < seconds * 1000; i++) {
    const next = t0 + (i * 1000) / rate;
    if (next > Date.now()) await new Promise((r) => setTimeout(r, next - Date.now()));
    const kind = rng.pick(kinds);
    let ch = randomChange(sim.world, rng, kind);
    if (!ch) continue;
    if (ch.kind === 'app-crash') ch = { ...ch, restart: 'immediate' };
    const apps =
      ch.kind === 'policy-add' || ch.kind === 'policy-remove'
        ? [ch.source, ch.destination]
        : 'appGuid' in ch && ch.appGuid
          ? [ch.appGuid]
          : [];
    if (apps.some((a) => busyApps.has(a))) {
      skipped++;
      continue;
    }
    let p: Pending;
    if (ch.kind === 'policy-add' || ch.kind === 'policy-remove') {
      const before = sim.world.tags.get(ch.source)?.tag ?? 0;
      const r = await sim.apply(ch);
      if (ch.kind === 'policy-add' && r.result.changed === false) continue;
      const tag = ch.kind === 'policy-add' ? Number(r.result.sourceTag) : before;
      p = {
        kind: ch.kind,
        triggeredAt: r.triggeredAt,
        apps,
        cells: policyChecks(sim, ch, tag, ch.kind === 'policy-add'),
        worst: 0,
      };
    } else {
      const app = apps[0];
      const before = app ? runningOf(sim, app) : new Map();
      const r = await sim.apply(ch);
      const after = app ? runningOf(sim, app) : new Map();
      p = { kind: ch.kind, triggeredAt: r.triggeredAt, apps, cells: instanceChecks(before, after), worst: 0 };
    }
    await reading;
    if (track(p)) all.push(p);
  }
  const churnMs = Date.now() - t0;
  // let the last changes arrive (policy polls are 1 s apart)
  const deadline = Date.now() + 15_000;
  while (all.some((p) => p.cells.size > 0) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const load1 = loadavg()[0]!;
  const unresolved = all.filter((p) => p.cells.size > 0).length;

  const rows: Array<Record<string, string | number>> = [];
  const group = (label: string, ks: SimChangeKind[]) => {
    const ms = done
      .filter((d) => ks.includes(d.kind))
      .map((d) => d.ms)
      .sort((a, b) => a - b);
    rows.push({
      changes: label,
      measured: ms.length,
      'p50 ms': percentile(ms, 0.5).toFixed(0),
      'p90 ms': percentile(ms, 0.9).toFixed(0),
      'p99 ms': percentile(ms, 0.99).toFixed(0),
      'max ms': (ms.at(-1) ?? Number.NaN).toFixed(0),
    });
  };
  group('BBS: app start/stop/scale/crash', BBS_KINDS);
  for (const k of BBS_KINDS) group(`  ${k}`, [k]);
  group('policy add/remove (1 s poll)', POLICY_KINDS);
  printTable(
    `event → rule set published — ${size} foundation (${cellCount} cells, ${sim.world.actualLrps.size} instances), ` +
      `${rate} changes/s for ${(churnMs / 1000).toFixed(0)} s, ${cpus().length} CPUs, load ${load0.toFixed(1)} → ${load1.toFixed(1)}`,
    rows,
  );
  console.log(
    `simulator start ${simMs.toFixed(0)} ms; controller start → every cell published ${readyMs.toFixed(0)} ms; ` +
      `${all.length} changes tracked, ${skipped} skipped (app busy), ${unresolved} not seen within 15 s; ${publications} publications`,
  );
} finally {
  await controller?.kill('SIGTERM').catch(() => {});
  await sim?.stop();
  await deleteKeys(conn, keys.pattern).catch(() => {});
  await closeRedis(sub);
  await closeRedis(conn);
  await redis.stop();
  await removeInstalls();
  await rm(dir, { recursive: true, force: true });
}
