/**
 * Reconciles through BullMQ on local Redis (127.0.0.1:6379 or REDIS_URL), with the generated
 * foundation written into Redis as the leader would (fenced world, then one job per cell):
 * - world resync (full write) time;
 * - all cells enqueued: first computation (every rule set written), a no-op round (unchanged),
 *   and a round where a global ASG change rewrites every cell; reconciles per second;
 * - single event through Redis: one instance moves, the world write and the reconcile of one cell
 *   (load slice, compute, compare, CAS write), directly and through the queue (enqueue → done).
 * Workers run in this process (`concurrency` jobs at once). Keys live under a unique namespace
 * that is deleted at the end.
 *
 *   npx tsx bench/controller-queue.ts [small|medium|large] [concurrency] [processes]
 * `processes` > 1 starts that many minus one extra worker processes (bench/controller-queue-worker.ts),
 * like more controller replicas sharing the queue. With `--no-local-workers` the three full rounds
 * run in `processes` worker processes and none in this one (which holds the whole world, as a
 * leader does): a controller with `workerProcesses` set. The single events run in this process.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { ReconcileQueue } from '../src/controller/reconcile/queue.js';
import { Reconciler } from '../src/controller/reconcile/reconciler.js';
import { ReconcileWorkers } from '../src/controller/reconcile/worker.js';
import { LeaderElection } from '../src/lib/leader.js';
import { closeRedis, createRedis, deleteKeys } from '../src/lib/redis.js';
import { DEFAULT_CELL_CONFIG } from '../src/model/types.js';
import type { Trigger, World } from '../src/rules/world.js';
import { generateWorld } from '../src/sim/generate.js';
import type { FoundationSize } from '../src/sim/world.js';
import { Keys } from '../src/state/keys.js';
import { RuleSetStore } from '../src/state/ruleset-store.js';
import { WorldStore } from '../src/state/world-store.js';
import { percentile, printTable, securityGroupsOf, worldFromSim } from './controller-fixtures.js';
import { formatRedisStats, RedisStats } from './redis-stats.js';

if (process.argv.includes('--help')) {
  console.log(
    'usage: npx tsx bench/controller-queue.ts [small|medium|large] [concurrency] [processes] [--redis-stats] [--no-local-workers]\n  Redis: REDIS_URL (default redis://127.0.0.1:6379/0); --redis-stats samples Redis during the global ASG change; --no-local-workers runs the full rounds in `processes` worker processes only; WORKER_NODE_ARGS: node options of the worker processes',
  );
  process.exit(0);
}

const positional = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const size = (positional[0] ?? 'medium') as FoundationSize;
const concurrency = Number(positional[1] ?? 8);
const processes = Math.max(1, Number(positional[2] ?? 1));
const localWorkers = !process.argv.includes('--no-local-workers');
// worker processes besides this one: all of them when this process runs none in the rounds
const children = localWorkers ? processes - 1 : processes;
// node options of the worker processes (e.g. '--cpu-prof --cpu-prof-dir=DIR', '--max-semi-space-size=64')
const workerNodeArgs = (process.env.WORKER_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const ns = `{cfnet-bench-${randomBytes(4).toString('hex')}}`;
const keys = new Keys(ns);
const redis = createRedis(url);
const workerConn = createRedis(url, { role: 'blocking' });
const queueConn = createRedis(url);

const sim = generateWorld(1, size);
const world: World = worldFromSim(sim);
const cells = [...sim.cells.keys()];
const config = { ...DEFAULT_CELL_CONFIG, overlayNetwork: sim.overlayNetwork };
const worldStore = new WorldStore(redis, keys);
const store = new RuleSetStore(redis, keys);
const reconciler = new Reconciler(worldStore, store, { config });
const T = (kind: Trigger['kind'], id: string): Trigger => ({ kind, id, at: Date.now() });
const rows: Array<Record<string, string | number>> = [];

const leader = new LeaderElection(redis, { leaseKey: keys.leader, fenceKey: keys.fence, leaseMs: 60_000 });
leader.start();
while (!leader.leadership) await new Promise((r) => setTimeout(r, 10));
const fence = leader.leadership.value;
const hasRecords = (c: string) => {
  for (const _ of world.cellRecords(c)) return true;
  return false;
};

try {
  let t = performance.now();
  await worldStore.resync(world, fence);
  rows.push({
    step: 'world resync into Redis (fenced)',
    ms: (performance.now() - t).toFixed(0),
    note: `${cells.length} cells`,
  });

  const outcomes: Record<string, number> = {};
  let done = 0;
  let waiters: Array<() => void> = [];
  const jobTimes = new Map<string, number>();
  const jobLat: number[] = [];
  const workers = new ReconcileWorkers(workerConn, reconciler, {
    prefix: ns,
    concurrency,
    onResult: (cell, r) => {
      outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
      done++;
      const at = jobTimes.get(cell);
      if (at !== undefined) {
        jobLat.push(performance.now() - at);
        jobTimes.delete(cell);
      }
      for (const w of waiters) w();
    },
  });
  const queue = new ReconcileQueue(queueConn, { prefix: ns });
  if (localWorkers) workers.start();
  const extra = [];
  const childPeaks: number[] = [];
  // this process's peak heap during the rounds (it holds the whole world, as a leader does)
  let peakHeap = 0;
  const sampler = setInterval(() => {
    peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
  }, 250);
  for (let i = 0; i < children; i++) {
    const child = spawn(
      process.execPath,
      [
        ...workerNodeArgs,
        '--import',
        'tsx',
        new URL('./controller-queue-worker.ts', import.meta.url).pathname,
        ns,
        String(concurrency),
        sim.overlayNetwork,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.stdout.on('data', (d: Buffer) => {
      const m = /peak-heap (\d+)/.exec(d.toString());
      if (m) childPeaks.push(Number(m[1]));
    });
    extra.push(child);
  }
  // Results of jobs run by other processes are seen through the store's change channel.
  const sub = createRedis(url, { role: 'blocking' });
  if (children > 0) {
    await sub.subscribe(keys.ruleSetChannel);
    sub.on('message', () => {
      /* counted through the queue below */
    });
  }
  const queueDone = async () => {
    // with several processes, wait for the queue to drain instead of counting local results (the
    // completed count is no measure: only the last `keepCompleted` jobs are kept)
    for (;;) {
      const c = await queue.counts();
      if (!c.waiting && !c.active && !c.delayed && !c.prioritized) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  const until = async (n: number) => {
    while (done < n) await new Promise<void>((r) => waiters.push(r));
    waiters = [];
  };
  const round = async (label: string) => {
    for (const k of Object.keys(outcomes)) delete outcomes[k];
    const start = done;
    const t0 = performance.now();
    await queue.enqueueCells(cells, T('replay', label));
    if (children > 0) await queueDone();
    else await until(start + cells.length);
    const ms = performance.now() - t0;
    rows.push({
      step: label,
      ms: ms.toFixed(0),
      note: `${((cells.length / ms) * 1000).toFixed(0)} reconciles/s; ${children > 0 ? `${processes} processes` : JSON.stringify(outcomes)}`,
    });
  };
  await round('all cells, first computation (every rule set written)');
  await round('all cells again, nothing changed (compare only)');
  const groups = securityGroupsOf(sim);
  const global = groups.find((g) => g.runningDefault)!;
  world.setAsgs(
    groups.map((g) => (g === global ? { ...g, rules: g.rules.slice(1) } : g)),
    Date.now(),
    T('asg', 'bench'),
  );
  const ch = world.takeChanges();
  t = performance.now();
  await worldStore.write(ch, fence, hasRecords);
  rows.push({
    step: 'global ASG change: world write',
    ms: (performance.now() - t).toFixed(1),
    note: `${ch.cells.size} cells touched`,
  });
  // what a full recompute of every cell costs Redis (the global ASG change rewrites every rule set)
  const redisStats = process.argv.includes('--redis-stats') ? RedisStats.start(url) : null;
  await round('global ASG change: all cells rewritten');
  const redisReport = await redisStats?.stop();

  clearInterval(sampler);
  const exits = extra.map((child) => new Promise((r) => child.once('exit', r)));
  for (const child of extra) child.kill('SIGTERM');
  await Promise.all(exits);
  rows.push({
    step: 'peak heap during the rounds, MB',
    ms: [peakHeap, ...childPeaks].map((b) => (b / 2 ** 20).toFixed(0)).join(' / '),
    note: `this process${childPeaks.length > 0 ? ' / each worker process' : ''}`,
  });
  await closeRedis(sub);
  if (!localWorkers) workers.start();
  await new Promise((r) => setTimeout(r, 500));
  // single events, one cell each: direct reconcile and through the queue
  const direct: number[] = [];
  const writes: number[] = [];
  const handles = [...world.handles()];
  for (let i = 0; i < 200; i++) {
    const h = handles[(i * 7919) % handles.length]!;
    const inst = world.instance(h)!;
    world.upsertInstance({ ...inst, state: inst.state === 'RUNNING' ? 'CRASHED' : 'RUNNING' }, T('lrp', h));
    const c = world.takeChanges();
    const t1 = performance.now();
    await worldStore.write(c, fence, hasRecords);
    const t2 = performance.now();
    await reconciler.reconcile(inst.cellId);
    direct.push(performance.now() - t2);
    writes.push(t2 - t1);
  }
  direct.sort((a, b) => a - b);
  writes.sort((a, b) => a - b);
  jobLat.length = 0;
  for (let i = 0; i < 200; i++) {
    const h = handles[(i * 104729) % handles.length]!;
    const inst = world.instance(h)!;
    world.upsertInstance({ ...inst, state: inst.state === 'RUNNING' ? 'CRASHED' : 'RUNNING' }, T('lrp', h));
    const c = world.takeChanges();
    const start = done;
    jobTimes.set(inst.cellId, performance.now());
    await worldStore.write(c, fence, hasRecords);
    await queue.enqueue(c.cells);
    await until(start + 1);
  }
  jobLat.sort((a, b) => a - b);
  rows.push({
    step: 'single event: world write (p50 / p99)',
    ms: `${percentile(writes, 0.5).toFixed(2)} / ${percentile(writes, 0.99).toFixed(2)}`,
    note: '',
  });
  rows.push({
    step: 'single event: reconcile one cell, direct (p50 / p99)',
    ms: `${percentile(direct, 0.5).toFixed(2)} / ${percentile(direct, 0.99).toFixed(2)}`,
    note: 'load slice + compute + CAS write + publish',
  });
  rows.push({
    step: 'single event: world write → job done via BullMQ (p50 / p99)',
    ms: `${percentile(jobLat, 0.5).toFixed(2)} / ${percentile(jobLat, 0.99).toFixed(2)}`,
    note: '',
  });
  printTable(
    `reconcile throughput — ${size} foundation, ${cpus().length} CPUs, ${processes} worker process(es)${localWorkers ? '' : ' (none in the world-holding process)'} × concurrency ${concurrency}, Redis ${url}`,
    rows,
  );
  if (redisReport)
    console.log(
      `\n${formatRedisStats(`the global ASG change: ${cells.length} cells recomputed and rewritten`, redisReport)}`,
    );
  await workers.close();
  await queue.close();
} finally {
  await leader.stop();
  await deleteKeys(redis, keys.pattern);
  for (const r of [redis, workerConn, queueConn]) await closeRedis(r);
}
