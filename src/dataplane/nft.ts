/**
 * Running nft: one process per transaction, the script fed on stdin (`nft -f -`), optionally inside
 * a network namespace (`ip netns exec <ns> nft …`). No shell is involved.
 */
import { CommandError, run } from '../host/index.js';
import { CfnetError, ValidationError } from '../lib/errors.js';

/** nft rejected a transaction (nothing of it was applied: a transaction is all-or-nothing). */
export class NftApplyError extends CfnetError {
  readonly stderr: string;
  readonly exitCode: number | null;
  /** 1-based line of the script nft complained about, when it said. */
  readonly line: number | null;
  readonly lineText: string | null;

  constructor(
    stderr: string,
    exitCode: number | null,
    script: string | undefined,
    context: Record<string, unknown>,
    line: number | null = failingLine(stderr),
  ) {
    const lineText = line !== null && script !== undefined ? (script.split('\n')[line - 1] ?? null) : null;
    const first = stderr.split('\n').find((l) => l.includes('Error')) ?? stderr.split('\n')[0] ?? '';
    super('CFNET_NFT_APPLY', `nft failed (exit ${exitCode}): ${first.trim()}`, {
      ...context,
      exitCode,
      line,
      lineText: lineText?.slice(0, 500) ?? null,
    });
    this.stderr = stderr;
    this.exitCode = exitCode;
    this.line = line;
    this.lineText = lineText;
  }
}

/** `/dev/stdin:12:5-9: Error: …` -> 12 */
export function failingLine(stderr: string): number | null {
  const m = /:(\d+):\d+(?:-\d+)?: Error/.exec(stderr);
  return m ? Number(m[1]) : null;
}

const NETNS = /^[A-Za-z0-9_.-]{1,64}$/;

/**
 * Process ids of the nft processes this process started recently (transactions, sessions,
 * probes): `nft monitor` names the process behind each generation, and a change cfnet made itself
 * is not foreign (monitor.ts). Bounded; `ip netns exec` and `nsenter` exec nft in place, so the id
 * is nft's own.
 */
export class RecentPids {
  private readonly pids = new Set<number>();
  constructor(private readonly max = 512) {}
  add(pid: number | undefined): void {
    if (pid === undefined) return;
    this.pids.delete(pid);
    this.pids.add(pid);
    if (this.pids.size > this.max) this.pids.delete(this.pids.values().next().value!);
  }
  has(pid: number): boolean {
    return this.pids.has(pid);
  }
}

export const ownNftPids = new RecentPids();

export interface NftRunOptions {
  /** Run inside this network namespace (`ip netns exec`). */
  netns?: string;
  /** Use `nsenter --net=/run/netns/<ns>` instead of `ip netns exec <ns>`. */
  nsenter?: boolean;
  /** nft binary (default `nft` on PATH). */
  nft?: string;
  /** Kill nft after this long (default 30 s). */
  timeoutMs?: number;
}

export function nftCommand(args: string[], opts: NftRunOptions = {}): [string, string[]] {
  const nft = opts.nft ?? 'nft';
  if (opts.netns !== undefined) {
    if (!NETNS.test(opts.netns)) throw new ValidationError('netns', opts.netns, 'not a namespace name');
    if (opts.nsenter) return ['nsenter', [`--net=/run/netns/${opts.netns}`, nft, ...args]];
    return ['ip', ['netns', 'exec', opts.netns, nft, ...args]];
  }
  return [nft, args];
}

export interface NftResult {
  stdout: string;
  stderr: string;
}

/** Runs nft with `args`, feeding `input` on stdin; rejects with NftApplyError on failure. */
export async function runNft(
  args: string[],
  input: string | undefined,
  opts: NftRunOptions = {},
): Promise<NftResult> {
  const [cmd, argv] = nftCommand(args, opts);
  try {
    const { stdout, stderr } = await run([cmd, ...argv], {
      input,
      timeoutMs: opts.timeoutMs,
      onSpawn: (pid) => ownNftPids.add(pid),
    });
    return { stdout, stderr };
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    throw new NftApplyError(err.stderr, err.exitCode, input, { args, netns: opts.netns });
  }
}

/** Applies one script as one transaction (`nft -f -`). */
export function applyScript(script: string, opts: NftRunOptions = {}): Promise<NftResult> {
  return runNft(['-f', '-'], script, opts);
}

/** Validates a script without applying it (`nft -c -f -`). */
export function checkScript(script: string, opts: NftRunOptions = {}): Promise<NftResult> {
  return runNft(['-c', '-f', '-'], script, opts);
}
