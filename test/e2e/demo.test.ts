/**
 * `cfnet demo` as a user runs it (`node bin/cfnet.js demo`, after `npm run build`), as a real
 * process: it must report every cell converging under churn and leave nothing behind — no network
 * namespace, no process, no Redis key, no file, no throwaway redis-server.
 * - kernel dataplane (root here): cells in namespaces, containers through the real CNI plugin,
 *   a throwaway Redis by default: the Redis on 127.0.0.1:6379 (with data of its own) is not touched;
 * - dry-run dataplane with a throwaway redis-server;
 * - Ctrl-C as a terminal sends it (SIGINT to the process group) in the default until-Ctrl-C mode,
 *   and SIGHUP (the terminal closed);
 * - `cfnet demo --cleanup` after the demo was killed (SIGKILL: nothing of its own cleanup ran);
 * - a clear error, and nothing started, when a throwaway Redis is needed but redis-server is absent.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REDIS_URL } from '../../src/lab/cluster.js';
import { REPO } from '../../src/lab/install.js';
import { run } from '../../src/lab/netns.js';
import { redisAnswers } from '../../src/lab/redis.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';

interface DemoRun {
  code: number | null;
  stdout: string;
  stderr: string;
  pid: number;
}

function demo(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 90_000,
  onSpawn?: (pid: number) => unknown,
): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'cfnet.js'), 'demo', ...args], {
      cwd: REPO,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid !== undefined) onSpawn?.(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const t = setTimeout(() => child.kill('SIGINT'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, pid: child.pid! });
    });
  });
}

/**
 * Runs the demo without --duration, as `npm run demo` does, in its own process group, and presses
 * Ctrl-C once `ready(stdout)` holds: SIGINT to the whole group, as a terminal sends it (the agents,
 * the controller and the simulator get it too, not only the demo).
 */
function demoUntilCtrlC(
  args: string[],
  ready: (stdout: string) => boolean,
  timeoutMs = 90_000,
  signal: NodeJS.Signals = 'SIGINT',
): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'cfnet.js'), 'demo', ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let pressed = false;
    const ctrlC = () => {
      if (pressed) return;
      pressed = true;
      process.kill(-child.pid!, signal);
    };
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (ready(stdout)) ctrlC();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const t = setTimeout(ctrlC, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, pid: child.pid! });
    });
  });
}

/**
 * Runs the demo until its first frame, then SIGKILLs the demo process alone (not its group): its
 * controller, agents and Redis live on, as after an OOM kill or `kill -9`.
 */
function demoKilledAlone(args: string[], timeoutMs = 90_000): Promise<DemoRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin', 'cfnet.js'), 'demo', ...args], {
      cwd: REPO,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    const kill = () => child.kill('SIGKILL');
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
      if (frames(stdout).length >= 1) kill();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    const t = setTimeout(kill, timeoutMs);
    child.on('error', reject);
    // 'exit', not 'close': the orphaned controller and agents still hold the demo's stdout
    child.on('exit', (code) => {
      clearTimeout(t);
      child.stdout.destroy();
      child.stderr.destroy();
      resolve({ code, stdout, stderr, pid: child.pid! });
    });
  });
}

/** The value printed after `label` in the demo's header (`  label   value`). */
function header(out: string, label: string): string {
  const m = new RegExp(`^ {2}${label} +(.+)$`, 'm').exec(out);
  assert.ok(m, `the demo prints its ${label}:\n${out}`);
  return m[1]!;
}

/** Every frame's rows: cell → [applied count, state] per frame. */
function frames(out: string): { churn: number; rows: Map<string, { applied: number; state: string }> }[] {
  return out
    .split(/\n(?=t=\d+s)/)
    .filter((b) => /^t=\d+s/.test(b))
    .map((block) => {
      const churn = Number(/churn: (\d+) changes/.exec(block)?.[1] ?? 0);
      const rows = new Map<string, { applied: number; state: string }>();
      for (const l of block.split('\n')) {
        const m = /^(cell-\d+)\s.*?\s(\d+)x\s+(?:\d+ ctrs|agent \?)\s+(.+)$/.exec(l);
        if (m) rows.set(m[1]!, { applied: Number(m[2]), state: m[3]! });
      }
      return { churn, rows };
    });
}

/** Processes whose command line mentions `needle`. */
async function processesMentioning(needle: string): Promise<string[]> {
  const out: string[] = [];
  for (const pid of (await readdir('/proc')).filter((d) => /^\d+$/.test(d))) {
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    if (cmd.includes(needle) && Number(pid) !== process.pid) out.push(`${pid}: ${cmd.replaceAll('\0', ' ')}`);
  }
  return out;
}

async function redisKeys(url: string, pattern: string): Promise<string[]> {
  const r = createRedis(url, { name: 'cfnet-demo-test' });
  try {
    return await r.keys(pattern);
  } finally {
    await closeRedis(r);
  }
}

/** Converged at the end, under churn that reached every cell, and everything removed. */
async function assertConvergedAndClean(r: DemoRun, cells: number, redisUrl: string): Promise<void> {
  assert.equal(r.code, 0, `exit status 0\n${r.stdout}\n${r.stderr}`);
  const all = frames(r.stdout);
  assert.ok(all.length >= 2, `frames shown:\n${r.stdout}`);
  const last = all.at(-1)!;
  assert.equal(last.rows.size, cells, `a row per cell in the final frame:\n${r.stdout}`);
  for (const [cell, row] of last.rows) {
    assert.equal(row.state, 'converged', `${cell} converged:\n${r.stdout}`);
    assert.ok(row.applied >= 2, `${cell} applied rule sets changed by the churn:\n${r.stdout}`);
  }
  assert.ok(last.churn > 0, 'churn ran');
  assert.match(
    r.stdout,
    new RegExp(`^converged ${cells}/${cells} cells; controller write → enforced: p50 \\d+ ms`, 'm'),
  );
  assert.match(
    r.stdout,
    new RegExp(`^result: converged, all ${cells} cells enforce their desired rule set$`, 'm'),
  );
  assert.match(header(r.stdout, 'dashboard'), /^http:\/\/127\.0\.0\.1:\d+\/dashboard$/);

  // nothing left behind
  const files = header(r.stdout, 'files').split(' ')[0]!;
  assert.equal(existsSync(files), false, `${files} removed`);
  assert.deepEqual(await processesMentioning(files), [], 'no process of the demo is left');
  const prefix = header(r.stdout, 'redis keys');
  assert.match(prefix, /^\{cfnet-demo-\d+-[0-9a-f]+\}\*$/);
  if (await redisAnswers(redisUrl))
    assert.deepEqual(await redisKeys(redisUrl, prefix), [], 'no Redis key is left');
  const ours = `-${r.pid.toString(36)}`;
  const left = (await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.includes(ours));
  assert.deepEqual(left, [], 'no network namespace of the demo is left');
}

describe('cfnet demo (node bin/cfnet.js demo, a real process)', () => {
  it('kernel dataplane: cells in namespaces, CNI containers, a throwaway Redis; converges, removes everything, leaves the Redis on 6379 untouched', async () => {
    assert.ok(existsSync(join(REPO, 'dist', 'cli', 'main.js')), 'npm run build first');
    // the machine's Redis holds someone's data; the demo must neither write nor delete there
    const local = createRedis(REDIS_URL, { name: 'cfnet-demo-test-canary' });
    const canary = `cfnet-demo-test-canary-${process.pid}`;
    const oldEvents = ((await local.config('GET', 'notify-keyspace-events')) as string[])[1] ?? '';
    await local.set(canary, "someone else's data");
    await local.config('SET', 'notify-keyspace-events', 'KA');
    const watcher = local.duplicate();
    const touched: string[] = [];
    watcher.on('pmessage', (_p: string, channel: string) => touched.push(channel));
    let r: DemoRun;
    try {
      r = await demo(['--duration', '12', '--interval', '3', '--cells', '3'], process.env, 90_000, (pid) =>
        watcher.psubscribe(`__keyspace@*__:*cfnet-demo-${pid}-*`),
      );
      assert.equal(await local.get(canary), "someone else's data");
    } finally {
      await local.config('SET', 'notify-keyspace-events', oldEvents);
      await local.del(canary);
      await closeRedis(watcher);
      await closeRedis(local);
    }
    assert.deepEqual(touched, [], 'no key of the demo was written into the Redis on 6379');
    assert.match(r.stdout, /^cfnet demo: 3 cells, kernel dataplane/m);
    const redis = header(r.stdout, 'redis');
    assert.match(redis, /^redis:\/\/127\.0\.0\.1:\d+\/0 \(a throwaway redis-server\)$/);
    assert.notEqual(redis.split(' ')[0], REDIS_URL);
    // the operator tools' env file and commands are printed
    const tools = header(r.stdout, 'tools');
    assert.match(tools, /^\. \S+\/env {3}then, in that shell:$/);
    assert.match(
      r.stdout,
      /^ +cfnet explain --from demo-web --to demo-web --port 8080 {3}\(or its guid [0-9a-f-]{36}\)$/m,
    );
    const nsNames = [...header(r.stdout, 'cells').matchAll(/netns (\S+)\)/g)].map((m) => m[1]!);
    assert.equal(nsNames.length, 3, 'a namespace per cell');
    assert.match(r.stdout, /^ {2}containers {2}2 per cell through the real CNI plugin/m);
    assert.match(r.stdout, /^cleaned up: 7 processes, 10 network namespaces, \d+ Redis keys/m);
    await assertConvergedAndClean(r, 3, redis.split(' ')[0]!);
    const list = (await run(['ip', 'netns', 'list'])).stdout;
    for (const ns of nsNames) assert.ok(!list.includes(ns), `${ns} deleted`);
  });

  it('dry-run dataplane with a throwaway redis-server: converges, stops the server', async () => {
    const r = await demo([
      '--duration',
      '6',
      '--interval',
      '2',
      '--dataplane',
      'dry-run',
      '--redis',
      'throwaway',
    ]);
    assert.match(r.stdout, /^cfnet demo: 3 cells, dry-run dataplane/m);
    const redis = header(r.stdout, 'redis');
    assert.match(redis, /^redis:\/\/127\.0\.0\.1:\d+\/0 \(a throwaway redis-server\)$/);
    const url = redis.split(' ')[0]!;
    assert.notEqual(url, REDIS_URL);
    assert.match(r.stdout, /^cleaned up: 4 processes, \d+ Redis keys, the throwaway redis-server/m);
    await assertConvergedAndClean(r, 3, url);
    assert.equal(await redisAnswers(url), false, 'the throwaway Redis is stopped');
    assert.deepEqual(await processesMentioning(`--port\0${new URL(url).port}`), [], 'no redis-server left');
  });

  it('Ctrl-C (SIGINT to the whole process group) stops the churn and removes everything', async () => {
    // Ctrl-C once the churn has reached every cell at least twice.
    const r = await demoUntilCtrlC(['--cells', '2', '--containers', '1', '--interval', '1'], (out) => {
      const last = frames(out).at(-1);
      return !!last && last.rows.size === 2 && [...last.rows.values()].every((row) => row.applied >= 2);
    });
    assert.equal(r.code, 0, `exit status 0\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^cfnet demo: 2 cells, kernel dataplane/m);
    assert.match(r.stdout, /^ {2}churn {7}2 changes\/s \(seed 1\); Ctrl-C stops and removes everything$/m);
    assert.match(r.stdout, /^cfnet demo: interrupted; stopping churn and cleaning up$/m);
    assert.match(r.stdout, /^t=\d+s \(final\) /m);
    // The final frame is the last one seen before Ctrl-C: every agent still there.
    const last = frames(r.stdout).at(-1)!;
    assert.equal(last.rows.size, 2, r.stdout);
    for (const [cell, row] of last.rows) assert.ok(row.applied >= 2, `${cell}: ${r.stdout}`);
    assert.doesNotMatch(r.stdout.slice(r.stdout.indexOf('(final)')), /agent \?/, 'no agent shown as gone');
    assert.match(r.stdout, /^result: (converged, all 2 cells|interrupted with \d\/2 cells converged)/m);
    assert.match(
      r.stdout,
      /^cleaned up: \d+ processes, \d+ network namespaces, \d+ Redis keys, the throwaway redis-server, temporary files$/m,
    );
    // nothing left behind
    const files = header(r.stdout, 'files').split(' ')[0]!;
    assert.equal(existsSync(files), false, `${files} removed`);
    assert.deepEqual(await processesMentioning(files), [], 'no process of the demo is left');
    const url = header(r.stdout, 'redis').split(' ')[0]!;
    assert.equal(await redisAnswers(url), false, 'the throwaway Redis is stopped');
    const nsNames = [...header(r.stdout, 'cells').matchAll(/netns (\S+)\)/g)].map((m) => m[1]!);
    assert.equal(nsNames.length, 2);
    const list = (await run(['ip', 'netns', 'list'])).stdout;
    for (const ns of nsNames) assert.ok(!list.includes(ns), `${ns} deleted`);
    const ours = `-${r.pid.toString(36)}`;
    assert.deepEqual(
      list.split('\n').filter((l) => l.includes(ours)),
      [],
      'no network namespace of the demo',
    );
  });

  it('SIGHUP (the terminal closed) stops the demo and removes everything, as Ctrl-C does', async () => {
    const r = await demoUntilCtrlC(
      ['--cells', '2', '--dataplane', 'dry-run', '--interval', '1'],
      (out) => frames(out).length >= 2,
      90_000,
      'SIGHUP',
    );
    assert.equal(r.code, 0, `exit status 0\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^cfnet demo: interrupted; stopping churn and cleaning up$/m);
    assert.match(
      r.stdout,
      /^cleaned up: \d+ processes, \d+ Redis keys, the throwaway redis-server, temporary files$/m,
    );
    const files = header(r.stdout, 'files').split(' ')[0]!;
    assert.equal(existsSync(files), false, `${files} removed`);
    assert.deepEqual(await processesMentioning(files), [], 'no process of the demo is left');
    assert.equal(
      await redisAnswers(header(r.stdout, 'redis').split(' ')[0]!),
      false,
      'the throwaway Redis is stopped',
    );
  });

  it('cfnet demo --cleanup removes what a killed demo left: processes, namespaces, the throwaway Redis, files', async () => {
    // SIGKILL to the demo process alone: none of its own cleanup runs, its children live on
    const orphaned = await demoKilledAlone(['--cells', '2', '--containers', '1', '--interval', '1']);
    const files = header(orphaned.stdout, 'files').split(' ')[0]!;
    const url = header(orphaned.stdout, 'redis').split(' ')[0]!;
    const ours = `-${orphaned.pid.toString(36)}`;
    const namespaces = async () =>
      (await run(['ip', 'netns', 'list'])).stdout.split('\n').filter((l) => l.includes(ours));
    assert.ok(existsSync(files), 'the killed demo left its files');
    assert.ok((await processesMentioning(files)).length > 0, 'and its processes');
    assert.ok((await namespaces()).length > 0, 'and its namespaces');
    assert.equal(await redisAnswers(url), true, 'and its throwaway Redis');

    const cleanup = await demo(['--cleanup']);
    assert.equal(cleanup.code, 0, cleanup.stderr);
    assert.match(
      cleanup.stdout,
      new RegExp(
        `^demo ${orphaned.pid}: removed \\d+ processes, \\d+ network namespaces, 0 Redis keys, its throwaway redis-server, its files$`,
        'm',
      ),
    );
    assert.equal(existsSync(files), false, `${files} removed`);
    assert.deepEqual(await processesMentioning(files), [], 'no process of the demo is left');
    assert.deepEqual(await namespaces(), [], 'no network namespace of the demo is left');
    assert.equal(await redisAnswers(url), false, 'the throwaway Redis is stopped');
    // nothing more to do the second time
    assert.match((await demo(['--cleanup'])).stdout, /^no leftovers of a demo found$/m);
  });

  it('a throwaway Redis without redis-server installed: a clear error, nothing started', async () => {
    const r = await demo(['--redis', 'throwaway', '--duration', '5'], {
      ...process.env,
      PATH: '/nonexistent',
    });
    assert.equal(r.code, 1);
    assert.match(
      r.stdout,
      /redis-server is not installed: install Redis \(e\.g\. apt-get install redis-server\)/,
    );
    assert.doesNotMatch(r.stdout, /starting {4}simulator/);
    assert.doesNotMatch(r.stdout, /cleaned up/);
  });

  it('bad options are refused before anything starts', async () => {
    for (const args of [
      ['--cells', '1'],
      ['--redis', 'http://x'],
      ['--redis', 'auto'],
      ['--dataplane', 'fast'],
    ]) {
      const r = await demo(args);
      assert.equal(r.code, 2, args.join(' '));
      assert.match(r.stderr, /cfnet demo: .*option '--/, args.join(' '));
      assert.match(r.stderr, /\(see 'cfnet demo --help'\)/, args.join(' '));
      assert.equal(r.stdout, '', `${args.join(' ')}: nothing started`);
    }
  });
});
