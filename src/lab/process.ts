/**
 * Small process and polling helpers of the lab: is a child alive, wait for its exit, wait for a
 * condition, wait for a line on its stdout, GET over a unix socket, resident memory of a process.
 */
import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';

export function alive(child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null;
}

/** Resolves true once `child` exited, false after `ms`. */
export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (!alive(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

/** SIGTERM, then SIGKILL when it has not exited after `graceMs`. */
export async function terminate(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (!alive(child)) return;
  child.kill('SIGTERM');
  if (!(await waitExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitExit(child, 5000);
  }
}

/** Polls `fn` until it returns a truthy value (returned); throws after `timeoutMs`. */
export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | false | null | undefined> | T | false | null | undefined,
  timeoutMs = 20_000,
  intervalMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown = null;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms: ${what}${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/**
 * Resolves with the first stdout line of `child` that `match` accepts (every line is also given
 * to `onLine`); rejects when the child exits first or after `timeoutMs`.
 */
export function waitForLine(
  child: ChildProcess,
  what: string,
  match: (line: string) => boolean,
  opts: { timeoutMs?: number; onLine?: (line: string) => void } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const t = setTimeout(() => reject(new Error(`${what}: nothing after ${timeoutMs} ms`)), timeoutMs);
    const onExit = (code: number | null, signal: string | null) => {
      clearTimeout(t);
      reject(new Error(`${what}: the process exited (${code ?? signal})`));
    };
    child.once('exit', onExit);
    let done = false;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      opts.onLine?.(line);
      if (!done && match(line)) {
        done = true;
        clearTimeout(t);
        child.off('exit', onExit);
        resolve(line);
      }
    });
  });
}

/** GET `path` over the unix socket `socket`: status and body text. */
export function getUnix(
  socket: string,
  path: string,
  timeoutMs = 5000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path, method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (b: Buffer) => chunks.push(b));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${socket} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Where {@link freePorts} looks: below Linux's default ephemeral range (32768–60999), so a port it
 * hands out is not taken meanwhile as the local port of some outgoing connection (the kernel picks
 * those from the ephemeral range), and above the well-known services.
 */
const FREE_PORT_RANGE = { low: 20_000, high: 32_000 } as const;

/** Listens on `port` and closes again: whether nothing holds it on 127.0.0.1 right now. */
function bindable(port: number): Promise<ReturnType<typeof createServer> | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/**
 * `count` distinct TCP ports free on 127.0.0.1 right now (for programs that cannot listen on port
 * 0). All are held until the last is found, so they differ from each other; they lie outside the
 * ephemeral range, so client connections of concurrently running tests do not take them before the
 * caller's program binds them.
 */
export async function freePorts(count: number): Promise<number[]> {
  const held: ReturnType<typeof createServer>[] = [];
  const ports: number[] = [];
  try {
    for (let tries = 0; ports.length < count; tries++) {
      if (tries > 1000)
        throw new Error(`no ${count} free ports in ${FREE_PORT_RANGE.low}-${FREE_PORT_RANGE.high}`);
      const port =
        FREE_PORT_RANGE.low + Math.floor(Math.random() * (FREE_PORT_RANGE.high - FREE_PORT_RANGE.low));
      if (ports.includes(port)) continue;
      const s = await bindable(port);
      if (!s) continue;
      held.push(s);
      ports.push(port);
    }
    return ports;
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** One TCP port free on 127.0.0.1 right now; see {@link freePorts}. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

/** Resident set size (kB) of a process and its peak. */
export async function rss(pid: number): Promise<{ rssKb: number; hwmKb: number }> {
  const t = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(t)?.[1] ?? 0);
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
}
