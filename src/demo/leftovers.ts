/**
 * What a running demo owns, written down so that `cfnet demo --cleanup` can remove it after the
 * demo was killed (SIGKILL, a crash, a lost machine session): a demo that ends normally, on Ctrl-C,
 * SIGTERM or SIGHUP removes everything itself and its record with it.
 *
 * One JSON record per demo process in RUNS_DIR (`<pid>.json`): its directory (the lab cluster's
 * files; every controller, agent and relay process has it on its command line), the marker in its
 * network namespaces' names (lab/netns.ts `uniqueName`: `<prefix>-<pid base 36><6 hex>-<n>`), its
 * Redis (a throwaway server: its pid and `--dir`, its working directory; a given one: the URL, whose keys of this demo
 * are deleted). A record whose process is still alive is left alone.
 */
import { mkdir, readdir, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../lab/netns.js';
import { redisAnswers } from '../lab/redis.js';
import { closeRedis, createRedis, deleteKeys } from '../lib/redis.js';

/** Where demo records are kept. */
export const RUNS_DIR = join(tmpdir(), 'cfnet-demo-runs');

/** The Redis namespace prefix of the demo's keys (lab/cluster.ts adds `-<pid>-<random>`). */
export const DEMO_REDIS_PREFIX = 'cfnet-demo';

export interface DemoRecord {
  pid: number;
  startedAt: string;
  /** The cluster's directory. */
  dir: string;
  redis: { url: string; source: 'given' | 'throwaway'; pid: number | null; dir: string | null };
}

export interface CleanupSummary {
  pid: number;
  processes: number;
  namespaces: number;
  redisKeys: number;
  redisServer: boolean;
}

export async function writeRecord(rec: DemoRecord, runsDir = RUNS_DIR): Promise<void> {
  await mkdir(runsDir, { recursive: true, mode: 0o700 });
  await writeFile(join(runsDir, `${rec.pid}.json`), `${JSON.stringify(rec)}\n`, { mode: 0o600 });
}

export async function removeRecord(pid: number, runsDir = RUNS_DIR): Promise<void> {
  await rm(join(runsDir, `${pid}.json`), { force: true });
}

/** The Redis key pattern of every key a demo process made. */
export function demoKeyPattern(pid: number): string {
  return `{${DEMO_REDIS_PREFIX}-${pid}-*`;
}

/** Does `name` belong to the demo process `pid` (lab/netns.ts `uniqueName`)? */
export function isDemoNamespace(name: string, pid: number): boolean {
  return new RegExp(`^cfe[a-z0-9]*-${pid.toString(36)}[0-9a-f]{6}-\\d+$`).test(name);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function cmdline(pid: number): Promise<string> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).replaceAll('\0', ' ');
}

async function cwd(pid: number): Promise<string> {
  return readlink(`/proc/${pid}/cwd`).catch(() => '');
}

async function processesMentioning(needle: string): Promise<number[]> {
  const pids = (await readdir('/proc')).filter((d) => /^\d+$/.test(d)).map(Number);
  const out: number[] = [];
  for (const pid of pids) if (pid !== process.pid && (await cmdline(pid)).includes(needle)) out.push(pid);
  return out;
}

function kill(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Removes what one dead demo left behind. */
async function cleanOne(rec: DemoRecord): Promise<CleanupSummary> {
  const summary: CleanupSummary = {
    pid: rec.pid,
    processes: 0,
    namespaces: 0,
    redisKeys: 0,
    redisServer: false,
  };
  for (const pid of await processesMentioning(rec.dir)) {
    kill(pid);
    summary.processes++;
  }
  const list = await run(['ip', 'netns', 'list'], { allowFail: true });
  const names = list.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => isDemoNamespace(n, rec.pid));
  for (const name of names) {
    const pids = await run(['ip', 'netns', 'pids', name], { allowFail: true });
    for (const p of pids.stdout.split(/\s+/).filter(Boolean)) {
      kill(Number(p));
      summary.processes++;
    }
    await run(['ip', 'netns', 'del', name], { allowFail: true });
    summary.namespaces++;
  }
  if (rec.redis.source === 'throwaway') {
    // only the server this demo started: that pid, working in its own --dir (redis-server
    // rewrites its command line to `redis-server host:port`, so the directory is the proof)
    if (rec.redis.pid !== null && rec.redis.dir && (await cwd(rec.redis.pid)) === rec.redis.dir) {
      kill(rec.redis.pid);
      summary.redisServer = true;
    }
    if (rec.redis.dir) await rm(rec.redis.dir, { recursive: true, force: true });
  } else if (await redisAnswers(rec.redis.url)) {
    const r = createRedis(rec.redis.url, { name: 'cfnet-demo-cleanup' });
    try {
      summary.redisKeys = await deleteKeys(r, demoKeyPattern(rec.pid));
    } finally {
      await closeRedis(r);
    }
  }
  await rm(rec.dir, { recursive: true, force: true });
  return summary;
}

/** Removes the leftovers of every demo that is no longer running; returns what each had left. */
export async function cleanupLeftovers(runsDir = RUNS_DIR): Promise<CleanupSummary[]> {
  const files = await readdir(runsDir).catch(() => [] as string[]);
  const out: CleanupSummary[] = [];
  for (const f of files.filter((n) => /^\d+\.json$/.test(n))) {
    const path = join(runsDir, f);
    let rec: DemoRecord;
    try {
      rec = JSON.parse(await readFile(path, 'utf8')) as DemoRecord;
    } catch {
      await rm(path, { force: true }); // unreadable: nothing can be done with it
      continue;
    }
    if (isAlive(rec.pid)) continue;
    out.push(await cleanOne(rec));
    await rm(path, { force: true });
  }
  return out;
}
