/**
 * The one runner for host commands (ip, bridge, nft, iptables, nsenter, …): argv only, never a
 * shell; optional stdin; a timeout after which the process is killed; a typed CommandError carrying
 * argv, exit code and stderr. Everything that spawns a short-lived host command goes through here.
 */
import { spawn } from 'node:child_process';
import { CfnetError } from '../lib/errors.js';

/** Default time a command may take before it is killed (SIGKILL). */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** A host command failed: it could not start, exited non-zero, or was killed after its timeout. */
export class CommandError extends CfnetError {
  readonly argv: string[];
  readonly stderr: string;
  /** null: the command did not start or was killed. */
  readonly exitCode: number | null;
  /** It ran past its timeout and was killed. */
  readonly timedOut: boolean;

  constructor(
    argv: string[],
    exitCode: number | null,
    stderr: string,
    input?: string,
    opts: { timedOut?: boolean; cause?: unknown } = {},
  ) {
    super(
      'CFNET_HOST_COMMAND',
      `${argv.join(' ')} failed (exit ${exitCode}): ${stderr.trim().split('\n')[0] ?? ''}`,
      {
        argv,
        exitCode,
        stderr: stderr.slice(0, 2000),
        ...(opts.timedOut ? { timedOut: true } : {}),
        ...(input !== undefined ? { input: input.slice(0, 2000) } : {}),
      },
      opts.cause !== undefined ? { cause: opts.cause } : undefined,
    );
    this.argv = argv;
    this.stderr = stderr;
    this.exitCode = exitCode;
    this.timedOut = opts.timedOut ?? false;
  }
}

export interface RunOptions {
  /** Written to stdin, which is then closed (empty when absent). */
  input?: string;
  /** Kill the command after this long (default DEFAULT_TIMEOUT_MS). */
  timeoutMs?: number;
  /**
   * Resolve on a non-zero exit or a timeout instead of rejecting (see `code`, null when killed);
   * a failure to start still rejects.
   */
  allowFail?: boolean;
  /** The command's whole environment (default: this process's). */
  env?: Record<string, string>;
  /** Called with the child's pid once it is started (nft's own-pid bookkeeping). */
  onSpawn?: (pid: number | undefined) => void;
}

export interface RunResult {
  /** Exit code; null when killed. */
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs argv. Rejects with CommandError when it cannot start or (unless `allowFail`) when it exits
 * non-zero or is killed after its timeout; the error's stderr falls back to stdout when empty.
 */
export function run(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, {
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(opts.env ? { env: opts.env } : {}),
    });
    opts.onSpawn?.(child.pid);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(argv, null, String(e), opts.input, { cause: e }));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0 || opts.allowFail) resolve({ code, stdout, stderr });
      else if (timedOut) {
        reject(new CommandError(argv, null, `killed after ${timeoutMs} ms`, opts.input, { timedOut: true }));
      } else reject(new CommandError(argv, code, stderr || stdout, opts.input));
    });
    // the command may exit before reading all of its input; its exit status reports the failure
    child.stdin.on('error', () => undefined);
    child.stdin.end(opts.input ?? '');
  });
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

/** The injectable form the agent's components take (tests pass fakes). */
export type Runner = (argv: string[], input?: string) => Promise<CommandResult>;

/** Runs argv, rejecting with CommandError on any failure (the default Runner). */
export async function runCommand(
  argv: string[],
  input?: string,
  timeoutMs = DEFAULT_TIMEOUT_MS,
): Promise<CommandResult> {
  const { stdout, stderr } = await run(argv, { input, timeoutMs });
  return { stdout, stderr };
}

/** Parses JSON output, treating empty output as an empty list. */
export function parseJsonOutput(stdout: string): unknown {
  const t = stdout.trim();
  if (t === '') return [];
  return JSON.parse(t);
}
