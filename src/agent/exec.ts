/** Running `ip` / `bridge` (no shell): argv plus optional stdin, with a timeout. */
import { spawn } from 'node:child_process';
import { CfnetError } from '../lib/errors.js';

export class CommandError extends CfnetError {
  readonly stderr: string;
  readonly exitCode: number | null;

  constructor(argv: string[], exitCode: number | null, stderr: string, input?: string) {
    super(
      'CFNET_AGENT_COMMAND',
      `${argv.join(' ')} failed (exit ${exitCode}): ${stderr.trim().split('\n')[0] ?? ''}`,
      {
        argv,
        exitCode,
        stderr: stderr.slice(0, 2000),
        ...(input !== undefined ? { input: input.slice(0, 2000) } : {}),
      },
    );
    this.stderr = stderr;
    this.exitCode = exitCode;
  }
}

export interface CommandResult {
  stdout: string;
  stderr: string;
}

export type Runner = (argv: string[], input?: string) => Promise<CommandResult>;

/** Runs argv; rejects with CommandError on a non-zero exit or after `timeoutMs` (default 30 s). */
export function runCommand(argv: string[], input?: string, timeoutMs = 30_000): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...args] = argv;
    const child = spawn(cmd!, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CommandError(argv, null, String(e), input));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString('utf8');
      const stderr = Buffer.concat(err).toString('utf8');
      if (code === 0) resolve({ stdout, stderr });
      else reject(new CommandError(argv, code, stderr || stdout, input));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/** Parses JSON output, treating empty output as an empty list. */
export function parseJsonOutput(stdout: string): unknown {
  const t = stdout.trim();
  if (t === '') return [];
  return JSON.parse(t);
}
