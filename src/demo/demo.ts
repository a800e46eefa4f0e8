/**
 * `cfnet demo`: a whole cfnet foundation on this machine, with nothing installed by hand.
 *
 *  1. Redis: a throwaway `redis-server` (default), or the URL given with --redis: a demo never
 *     writes into a Redis it was not pointed at, such as someone else's on 127.0.0.1:6379;
 *  2. the lab foundation (src/lab): simulator, `cfnet controller`, one `cfnet agent` per simulated
 *     cell — in network namespaces with containers made through the real CNI plugin when root,
 *     otherwise agents with a dry-run dataplane;
 *  3. churn from the simulator (apps starting, scaling, crashing, ASG and policy changes);
 *  4. convergence per cell, live: desired vs applied rule-set version, lag, write → enforce latency;
 *  5. at the end (--duration, Ctrl-C, SIGTERM, SIGHUP): churn stops, the final state is shown, and
 *     everything the demo created is removed (processes, namespaces, Redis keys or the throwaway
 *     Redis, files). What a killed demo leaves, `cfnet demo --cleanup` removes (leftovers.ts).
 * The exit status is 0 when every cell converged (or the demo was interrupted), 1 otherwise.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clearScreenDown, moveCursor } from 'node:readline';
import { type AppRef, Cluster, type StopSummary } from '../lab/cluster.js';
import { reconcileView } from '../lab/reconcile-view.js';
import { type LabRedis, provideRedis } from '../lab/redis.js';
import { errorMessage } from '../lib/errors.js';
import { closeRedis, createRedis } from '../lib/redis.js';
import type { ChurnRun } from '../sim/index.js';
import { Keys } from '../state/keys.js';
import { RuleSetStore } from '../state/ruleset-store.js';
import { ConvergenceTracker, converged, type Snapshot } from './convergence.js';
import { chooseDataplane, type DataplaneChoice } from './environment.js';
import { DEMO_REDIS_PREFIX, removeRecord, writeRecord } from './leftovers.js';
import { churnHeader, renderFrame, viewWidth } from './view.js';

export interface DemoOptions {
  /** Seconds of churn; 0 = until Ctrl-C. */
  durationS: number;
  cells: number;
  /** Churn changes per second (0 = no churn). */
  churnRate: number;
  seed: number;
  dataplane: DataplaneChoice;
  /** 'throwaway' (a redis-server started for the demo), or a redis:// URL to use. */
  redis: string;
  /** Refresh period of the table (seconds); default 1 on a terminal, 5 otherwise. */
  intervalS?: number;
  /** Containers per cell made through the real CNI plugin (kernel dataplane). */
  containers: number;
  /** After --duration: how long to wait for every cell to converge (seconds). */
  settleS: number;
  keepLogs: boolean;
}

export interface DemoIo {
  write(text: string): void;
  /** Redraw the table in place (a terminal). */
  tty: boolean;
  /** The terminal's width now (it may be resized), undefined when not a terminal. */
  columns?: () => number | undefined;
  /** Calls `fn` on Ctrl-C / SIGTERM / SIGHUP (terminal closed); returns a function removing the handler. */
  onInterrupt(fn: () => void): () => void;
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export function processIo(): DemoIo {
  return {
    write: (t) => process.stdout.write(t),
    tty: process.stdout.isTTY === true,
    columns: () => (process.stdout.isTTY ? process.stdout.columns : undefined),
    onInterrupt: (fn) => {
      for (const s of STOP_SIGNALS) process.on(s, fn);
      return () => {
        for (const s of STOP_SIGNALS) process.off(s, fn);
      };
    },
  };
}

const POLL_MS = 250;

/** Waits `ms` or until `wake` is called. */
function sleeper(): { sleep(ms: number): Promise<void>; wake(): void } {
  let wakeUp: (() => void) | null = null;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          wakeUp = null;
          resolve();
        }
        wakeUp = done;
      }),
    wake: () => wakeUp?.(),
  };
}

export async function runDemo(opts: DemoOptions, io: DemoIo = processIo()): Promise<number> {
  const say = (line = '') => io.write(`${line}\n`);
  const { dataplane, why } = chooseDataplane(opts.dataplane);
  const timer = sleeper();
  let interrupted = false;
  let cleaning = false;
  const offInterrupt = io.onInterrupt(() => {
    if (cleaning) {
      say('cfnet demo: still removing what it created, a moment…');
      return;
    }
    if (!interrupted) say('\ncfnet demo: interrupted; stopping churn and cleaning up');
    interrupted = true;
    timer.wake();
  });

  let redis: LabRedis | null = null;
  let dir: string | null = null;
  let recorded = false;
  let cluster: Cluster | null = null;
  let churn: ChurnRun | null = null;
  let store: { close(): Promise<void>; tracker: ConvergenceTracker } | null = null;
  let code = 0;
  try {
    say(`cfnet demo: ${opts.cells} cells, ${dataplane} dataplane (${why})`);
    redis = await provideRedis(opts.redis === 'throwaway' ? { throwaway: true } : { url: opts.redis });
    const redisWhat = { given: 'as given', local: 'the local one', throwaway: 'a throwaway redis-server' };
    say(`  redis       ${redis.url} (${redisWhat[redis.source]})`);
    dir = await mkdtemp(join(tmpdir(), 'cfnet-demo-'));
    await writeRecord({
      pid: process.pid,
      startedAt: new Date().toISOString(),
      dir,
      redis: {
        url: redis.url,
        source: redis.source === 'throwaway' ? 'throwaway' : 'given',
        pid: redis.process?.pid ?? null,
        dir: redis.dir,
      },
    });
    recorded = true;
    if (interrupted) return 0;
    say('  starting    simulator, controller and agents…');
    const t0 = Date.now();
    cluster = await Cluster.start({
      dataplane,
      simCells: true,
      cells: opts.cells,
      seed: opts.seed,
      sim: { seed: opts.seed, size: 'small', cells: opts.cells, containers: 10 * opts.cells },
      redisUrl: redis.url,
      redisPrefix: DEMO_REDIS_PREFIX,
      logLevel: 'info',
      keepLogs: opts.keepLogs,
      dir,
    });
    const app =
      dataplane === 'kernel' && opts.containers > 0 ? await addContainers(cluster, opts.containers) : null;
    const envFile = await writeEnvFile(cluster, redis.url);
    printInfo(say, cluster, dataplane, Date.now() - t0, opts, envFile, app?.appGuid ?? null);
    if (interrupted) return 0;

    const conn = createRedis(redis.url, { name: 'cfnet-demo-view' });
    const c = cluster;
    const jobs = reconcileView(conn, cluster.redisNs);
    const tracker = new ConvergenceTracker(
      new RuleSetStore(conn, new Keys(cluster.redisNs)),
      cluster.cells.map((x) => x.id),
      (id) => c.cells.find((x) => x.id === id)!.agentState(),
      () => jobs.pending(),
    );
    store = {
      tracker,
      close: async () => {
        await jobs.close().catch(() => {});
        await closeRedis(conn);
      },
    };
    if (opts.churnRate > 0) churn = cluster.sim.runChurn({ rate: opts.churnRate, seed: opts.seed });

    const started = Date.now();
    const end = opts.durationS > 0 ? started + opts.durationS * 1000 : Number.POSITIVE_INFINITY;
    const view = new LiveView(io, (opts.intervalS ?? (io.tty ? 1 : 5)) * 1000);
    let last: Snapshot = await tracker.poll();
    while (!interrupted && Date.now() < end) {
      view.show(frame(last, tracker, started, churn, opts.durationS, viewWidth(io.columns?.())));
      await timer.sleep(Math.max(0, Math.min(POLL_MS, end - Date.now())));
      if (interrupted) break;
      const next = await tracker.poll();
      // A terminal's Ctrl-C reaches the agents and the controller too (same process group): a poll
      // that ends after it may see them stopping, so the final frame keeps the one from before.
      if (!interrupted) last = next;
    }
    churn?.stop();
    if (!interrupted) {
      // churn stopped: every cell must reach its last desired version
      const settleEnd = Date.now() + opts.settleS * 1000;
      while (!interrupted && !last.cells.every(converged) && Date.now() < settleEnd) {
        view.show(
          frame(
            last,
            tracker,
            started,
            churn,
            opts.durationS,
            viewWidth(io.columns?.()),
            'churn stopped; settling',
          ),
        );
        await timer.sleep(POLL_MS);
        if (interrupted) break;
        const next = await tracker.poll();
        if (!interrupted) last = next;
      }
    }
    view.final(frame(last, tracker, started, churn, opts.durationS, viewWidth(io.columns?.()), 'final'));
    const ok = last.cells.filter(converged).length;
    if (ok === last.cells.length) {
      say(`result: converged, all ${ok} cells enforce their desired rule set`);
    } else if (interrupted) {
      say(`result: interrupted with ${ok}/${last.cells.length} cells converged`);
    } else {
      say(
        `result: NOT converged, ${ok}/${last.cells.length} cells within ${opts.settleS} s after churn stopped`,
      );
      code = 1;
    }
  } catch (err) {
    say(`cfnet demo: ${errorMessage(err)}`);
    code = 1;
  } finally {
    cleaning = true;
    churn?.stop();
    await store?.close().catch(() => undefined);
    const removed: StopSummary | null = cluster ? await cluster.stop().catch(() => null) : null;
    await redis?.stop().catch(() => undefined);
    // a cluster that never started leaves its directory to us
    if (dir && !removed && !opts.keepLogs)
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    if (recorded) await removeRecord(process.pid).catch(() => undefined);
    if (removed) {
      const what = [
        `${removed.processes} processes`,
        ...(removed.namespaces > 0 ? [`${removed.namespaces} network namespaces`] : []),
        `${removed.redisKeys} Redis keys`,
        ...(redis?.source === 'throwaway' ? ['the throwaway redis-server'] : []),
        opts.keepLogs ? 'files kept' : 'temporary files',
      ];
      say(`cleaned up: ${what.join(', ')}`);
    }
    offInterrupt();
  }
  return code;
}

/** The app whose containers the demo makes through the CNI plugin (c2c to itself on 8080). */
const DEMO_APP = 'demo-web';

/**
 * An env file that points the operator tools (`cfnet cells`, `rules`, `explain`, `events`) at the
 * demo's Redis and namespace: `. <file>` in a shell.
 */
async function writeEnvFile(cluster: Cluster, redisUrl: string): Promise<string> {
  const file = join(cluster.dir, 'env');
  const quote = (v: string) => `'${v.replaceAll("'", "'\\''")}'`;
  await writeFile(
    file,
    `export CFNET_REDIS_URL=${quote(redisUrl)}\nexport CFNET_REDIS_NAMESPACE=${quote(cluster.redisNs)}\n`,
  );
  return file;
}

/** Containers of one demo app on every cell, through the real CNI plugin; they may talk on 8080. */
async function addContainers(cluster: Cluster, perCell: number): Promise<AppRef> {
  const app = await cluster.app(DEMO_APP);
  let index = 0;
  for (const cell of cluster.cells) {
    for (let i = 0; i < perCell; i++) await cluster.container(cell, app, index++);
  }
  await cluster.sim.apply({ kind: 'policy-add', source: app.appGuid, destination: app.appGuid, port: 8080 });
  return app;
}

function printInfo(
  say: (l?: string) => void,
  cluster: Cluster,
  dataplane: string,
  upMs: number,
  opts: DemoOptions,
  envFile: string,
  appGuid: string | null,
): void {
  const sim = cluster.sim;
  say(`  up in       ${(upMs / 1000).toFixed(1)} s`);
  say(
    `  simulator   admin ${sim.urls.admin} (e.g. cfnet sim change policy-add --admin ${sim.urls.admin} --json '{…}')`,
  );
  say(`  controller  agent API ${cluster.controllerUrl}, metrics ${cluster.operatorUrl}/metrics`);
  say(`  dashboard   ${cluster.operatorUrl}/dashboard`);
  if (cluster.operatorToken) say(`  token       ${cluster.operatorToken}`);
  say(`  redis keys  ${cluster.redisNs}*`);
  const cells = cluster.cells.map((c) => (c.ns ? `${c.id} (netns ${c.ns})` : c.id)).join(', ');
  say(`  cells       ${cells}`);
  if (dataplane === 'kernel')
    say(
      `  containers  ${opts.containers} per cell through the real CNI plugin, in their own network namespaces`,
    );
  else say('  containers  none of its own (dry run: the agents render and report, the kernel is untouched)');
  say(`  files       ${cluster.dir} (${opts.keepLogs ? 'kept' : 'removed at exit'})`);
  // the operator tools against this demo: the env file names its Redis and namespace
  const first = cluster.cells[0]!.id;
  say(`  tools       . ${envFile}   then, in that shell:`);
  say('                cfnet cells');
  say(`                cfnet rules --cell ${first}`);
  if (appGuid)
    say(
      `                cfnet explain --from ${DEMO_APP} --to ${DEMO_APP} --port 8080   (or its guid ${appGuid})`,
    );
  say('                cfnet events');
  say(
    `  churn       ${opts.churnRate > 0 ? `${opts.churnRate} changes/s (seed ${opts.seed})` : 'off'}; ${
      opts.durationS > 0 ? `stops after ${opts.durationS} s` : 'Ctrl-C stops'
    } and removes everything`,
  );
  say();
}

/** The churn line and the table, every line at most `width` characters (see view.ts). */
function frame(
  s: Snapshot,
  tracker: ConvergenceTracker,
  started: number,
  churn: ChurnRun | null,
  durationS: number,
  width: number,
  phase?: string,
): string[] {
  const head = churnHeader(
    {
      elapsedS: Math.round((s.at - started) / 1000),
      durationS,
      ...(phase ? { phase } : {}),
      churn: churn?.status() ?? null,
    },
    width,
  );
  return [head, ...renderFrame(s, tracker.history, width)];
}

/** Shows frames: redrawn in place on a terminal, appended (at most once per interval) otherwise. */
class LiveView {
  private lines = 0;
  private lastAt = 0;

  constructor(
    private readonly io: DemoIo,
    private readonly intervalMs: number,
  ) {}

  show(frame: string[]): void {
    const now = Date.now();
    if (now - this.lastAt < this.intervalMs) return;
    this.lastAt = now;
    this.draw(frame);
  }

  final(frame: string[]): void {
    this.draw(frame);
    this.lines = 0;
  }

  private draw(frame: string[]): void {
    if (this.io.tty && this.lines > 0) {
      moveCursor(process.stdout, 0, -this.lines);
      clearScreenDown(process.stdout);
    }
    this.io.write(`${frame.join('\n')}\n${this.io.tty ? '' : '\n'}`);
    this.lines = frame.length;
  }
}
