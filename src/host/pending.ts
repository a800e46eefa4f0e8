/**
 * A host command started ahead of its input: CNI ADD starts its `ip -batch -` processes before it
 * knows the address (or takes them ready-made from the executor's IpPool), so their start-up, ~4 ms
 * each and mostly dynamic linking, stays off the critical path. `run` feeds the rest and waits.
 */
import { spawn } from 'node:child_process';
import { CommandError, DEFAULT_TIMEOUT_MS, type RunResult } from './run.js';

export interface PendingCommand {
  /** Writes part of the input now, keeping stdin open (the rest comes with `run`). */
  feed(text: string): void;
  /** Writes `input`, closes stdin and resolves with the outcome (never rejects on a non-zero exit). */
  run(input: string, timeoutMs?: number): Promise<RunResult>;
  /** Lets the process end without doing anything (stdin closed); a no-op after `run`. */
  cancel(): void;
  /** Still waiting for input (not run, cancelled or exited). */
  readonly ready: boolean;
  /** The process id (undefined when it could not be started). */
  readonly pid: number | undefined;
}

/** How long a started process may wait for its input before it is killed (a bug, not a path). */
const PENDING_IDLE_MS = 120_000;

/**
 * Starts argv now (no shell); `idleMs` null: wait for input indefinitely (pools cancel on close).
 * `run` rejects with CommandError only when the command could not be started or was already run.
 */
export function startCommand(argv: string[], idleMs: number | null = PENDING_IDLE_MS): PendingCommand {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let spawnError: Error | null = null;
  let used = false;
  let exited = false;
  let timer = idleMs === null ? undefined : setTimeout(() => child.kill('SIGKILL'), idleMs);
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => undefined);
  const closed = new Promise<number | null>((resolve) => {
    child.on('error', (e) => {
      spawnError = e;
      exited = true;
      resolve(null);
    });
    child.on('close', (code) => {
      exited = true;
      resolve(code);
    });
  });
  void closed.then(() => clearTimeout(timer));
  return {
    pid: child.pid,
    get ready() {
      return !used && !exited;
    },
    feed: (text) => {
      if (!used) child.stdin.write(text);
    },
    run: async (input, timeoutMs = DEFAULT_TIMEOUT_MS) => {
      if (used) throw new CommandError(argv, null, 'already run', input);
      used = true;
      clearTimeout(timer);
      timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.stdin.end(input);
      const code = await closed;
      clearTimeout(timer);
      if (spawnError) {
        const e = spawnError as Error;
        throw new CommandError(argv, null, `cannot run ${argv[0]}: ${e.message}`, input, { cause: e });
      }
      return {
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
    },
    cancel: () => {
      if (used) return;
      used = true;
      child.stdin.end();
    },
  };
}
