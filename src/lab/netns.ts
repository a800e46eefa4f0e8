/**
 * Commands and network namespaces for the lab (src/lab): run a command, run it inside a namespace,
 * namespace names unique per process, create and delete namespaces (deleting kills what runs in
 * them), addresses and sysctls. Root only, except `run`. Shared with the tests' helpers
 * (test/helpers/netns.ts re-exports these).
 */
import { randomBytes } from 'node:crypto';
import { type RunResult, run as runHost } from '../host/index.js';

export type ExecResult = RunResult;

export interface ExecOptions {
  input?: string;
  timeoutMs?: number;
  /** Do not throw on a non-zero exit. */
  allowFail?: boolean;
}

/** Runs argv (no shell) in the host namespace (src/host). Throws on failure unless allowFail. */
export function run(argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return runHost(argv, opts);
}

/** Runs argv inside namespace `ns`. */
export function exec(ns: string, argv: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return run(['ip', 'netns', 'exec', ns, ...argv], opts);
}

/** `ip -n ns …` */
export function ip(ns: string, ...args: string[]): Promise<ExecResult> {
  return run(['ip', '-n', ns, ...args]);
}

let counter = 0;

/** A namespace name unique to this process and call: `<prefix>-<pid36><rand>-<n>`. */
export function uniqueName(prefix = 'cft'): string {
  counter++;
  return `${prefix}-${process.pid.toString(36)}${randomBytes(3).toString('hex')}-${counter}`;
}

export async function createNetns(name: string): Promise<void> {
  await run(['ip', 'netns', 'add', name]);
  await ip(name, 'link', 'set', 'lo', 'up');
}

/** Kills every process in the namespace, then deletes it. Never throws. */
export async function deleteNetns(name: string): Promise<void> {
  const pids = await run(['ip', 'netns', 'pids', name], { allowFail: true });
  for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await run(['ip', 'netns', 'del', name], { allowFail: true });
}

export async function sysctlNs(ns: string, key: string, value: string): Promise<void> {
  await exec(ns, ['sysctl', '-qw', `${key}=${value}`]);
}

/**
 * Local addresses in a namespace (e.g. destinations in an "external" namespace, or the cell's
 * 169.254.0.2 service address). On `lo`: this kernel has no dummy driver.
 */
export async function localAddrs(ns: string, addrs: string[], dev = 'lo'): Promise<void> {
  for (const a of addrs) await ip(ns, 'addr', 'add', a, 'dev', dev);
}
