/**
 * NftSession: one long-lived `nft -i` process for the small transactions of a long-lived agent.
 * nft runs each input line as one transaction (one netlink batch, all-or-nothing, as `nft -f`).
 *
 * Why: a process per change pays for its start (~4 ms) and, when the change deletes anything, for
 * an RCU grace period (~15 ms here): the kernel flushes nf_tables' pending destroy work whenever a
 * netfilter netlink socket closes, and nft closes its socket on exit. A session keeps its socket.
 * Why scripts above `inlineMaxBytes` go through a file: nft's line editor (libedit) reads stdin one
 * byte per read(2) (~2 µs a byte), so such a script is written to a scratch file and the session is
 * sent `include "<file>"`, which nft parses as part of that one line: still one transaction, read
 * with buffered I/O, errors reported as `<file>:<line>:<col>: Error: …`.
 *
 * Protocol: a small script becomes one line (its lines joined by `; `, which nft's grammar accepts
 * as a separator). After it the session sends a marker line `<nonce>_<seq>`: a syntax error whose
 * message nft prints on stderr after the transaction's own errors, so everything before it is the
 * transaction's output. The process is unref'd while idle (it never keeps Node alive), recycled
 * after `recycleBytes` of input (libedit keeps every line in its history), and restarted on the next
 * transaction if it died. HOME points nowhere, so no history file is written.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ValidationError } from '../lib/errors.js';
import { failingLine, NftApplyError, type NftRunOptions, nftCommand, ownNftPids } from './nft.js';

export interface NftSessionOptions extends NftRunOptions {
  /** Start a new process after this many bytes of input (default 16 MiB). */
  recycleBytes?: number;
  /** Scripts longer than this go through a scratch file and `include` (default 512 bytes). */
  inlineMaxBytes?: number;
  /** Directory for those scratch files, visible to nft (default the OS temp dir). */
  scratchDir?: string;
}

/** A scratch path as it appears inside `include "…"`: nothing that could end the string. */
const SAFE_PATH = /^\/[A-Za-z0-9_./-]+$/;

/**
 * One nft process and everything that belongs to it. Why per process: a recycled (or killed)
 * process exits while its successor already runs the next transaction; its exit, late stderr and
 * errors must only ever touch its own state, never the successor's pending transaction.
 */
interface Proc {
  child: ChildProcessWithoutNullStreams;
  stderr: string;
  bytes: number;
  exited: Promise<void>;
}

interface Pending {
  proc: Proc;
  marker: RegExp;
  script: string;
  included: boolean;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

export class NftSession {
  private readonly opts: NftSessionOptions;
  private readonly nonce = `cfnet_sync_${randomBytes(4).toString('hex')}`;
  /** The process new transactions go to (null: start one on the next transaction). */
  private proc: Proc | null = null;
  /** Processes told to exit (recycled or closed) that have not exited yet. */
  private readonly retiring = new Set<Proc>();
  private seq = 0;
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  private readonly scratchDir: string;

  constructor(opts: NftSessionOptions = {}) {
    this.opts = opts;
    this.scratchDir = opts.scratchDir ?? tmpdir();
    if (!SAFE_PATH.test(this.scratchDir)) {
      throw new ValidationError('scratchDir', this.scratchDir, 'must be an absolute path of [A-Za-z0-9_./-]');
    }
  }

  /** Applies `script` as one transaction; rejects with NftApplyError (nothing applied). */
  run(script: string): Promise<void> {
    const p = this.queue.then(() => this.runNow(script));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /**
   * Ends the process (idempotent) and waits for it and any recycled one to exit; a later run()
   * starts a new one. A transaction still pending on it is rejected.
   */
  async close(): Promise<void> {
    if (this.proc) this.retire(this.proc);
    const waiting = [...this.retiring];
    // retired processes are unref'd; while close() waits for them they must keep Node alive
    for (const p of waiting) this.ref(p, true);
    await Promise.all(waiting.map((p) => p.exited));
  }

  /** Process id of the current nft process (tests), or null. */
  get pid(): number | null {
    return this.proc?.child.pid ?? null;
  }

  private async runNow(script: string): Promise<void> {
    const line = toLine(script);
    if (line === '') return;
    if (line.length <= (this.opts.inlineMaxBytes ?? 512)) return this.send(line, script, false);
    const file = join(this.scratchDir, `${this.nonce}_${this.seq + 1}.nft`);
    await writeFile(file, script, { mode: 0o600, flag: 'wx' }); // wx: never through a planted file
    try {
      await this.send(`include "${file}"`, script, true);
    } finally {
      await unlink(file).catch(() => undefined);
    }
  }

  /** Sends one input line and waits for its marker. `included`: errors name lines of the file. */
  private send(line: string, script: string, included: boolean): Promise<void> {
    const proc = this.current();
    const seq = ++this.seq;
    const marker = `${this.nonce}_${seq}`;
    return new Promise<void>((resolve, reject) => {
      const timeoutMs = this.opts.timeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        this.fail(
          proc,
          new NftApplyError(`no answer from nft within ${timeoutMs} ms`, null, script, this.ctx()),
        );
        this.retire(proc);
        proc.child.kill('SIGKILL');
      }, timeoutMs);
      // the marker's own error: `Error: …\n<marker>\n<caret line>\n`
      const re = new RegExp(`(?:^|\\n)[^\\n]*\\n${marker}\\n[^\\n]*\\n`);
      this.pending = { proc, marker: re, script, included, resolve, reject, timer };
      this.ref(proc, true);
      const input = `${line}\n${marker}\n`;
      proc.bytes += input.length;
      proc.child.stdin.write(input);
      this.check(proc);
    });
  }

  /** The live process, started if there is none. */
  private current(): Proc {
    if (this.proc) return this.proc;
    const [cmd, argv] = nftCommand(['-i'], this.opts);
    const child = spawn(cmd, argv, { stdio: 'pipe', env: { ...process.env, HOME: '/nonexistent' } });
    ownNftPids.add(child.pid);
    let onExit = (): void => undefined;
    const proc: Proc = { child, stderr: '', bytes: 0, exited: new Promise<void>((r) => (onExit = r)) };
    this.proc = proc;
    child.stdout.on('data', () => undefined); // nothing we send prints; keep the pipe drained
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      proc.stderr += d;
      this.check(proc);
    });
    child.stdin.on('error', () => undefined); // reported through 'exit'
    child.on('error', (err) => {
      // spawn failed: no 'exit' follows
      this.detach(proc);
      this.fail(proc, new NftApplyError(String(err), null, this.pending?.script, this.ctx()));
      onExit();
    });
    child.on('exit', (code, signal) => {
      this.detach(proc);
      const why = `nft session exited (${signal ?? code})${proc.stderr ? `: ${proc.stderr}` : ''}`;
      this.fail(proc, new NftApplyError(why, code, this.pending?.script, this.ctx()));
      onExit();
    });
    this.ref(proc, false);
    return proc;
  }

  /** Completes the pending transaction once its marker has arrived from its process. */
  private check(proc: Proc): void {
    const p = this.pending;
    if (!p || p.proc !== proc) return;
    const m = p.marker.exec(proc.stderr);
    if (!m) return;
    const out = proc.stderr.slice(0, m.index);
    proc.stderr = proc.stderr.slice(m.index + m[0].length);
    this.settle();
    // Recycle before resolving: the next transaction (queued behind this one) must find no process
    // and start a fresh one, never write to the one that is being ended.
    if (proc.bytes > (this.opts.recycleBytes ?? 16 << 20)) this.retire(proc);
    if (/\bError\b/.test(out)) {
      const line = p.included ? failingLine(out) : errorLine(out, p.script);
      p.reject(new NftApplyError(out, 1, p.script, this.ctx(), line));
    } else {
      p.resolve();
    }
  }

  /** Stops sending to `proc` and lets it exit (end of input); its exit then only settles itself. */
  private retire(proc: Proc): void {
    this.detach(proc);
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
    this.retiring.add(proc);
    const kill = setTimeout(() => proc.child.kill('SIGKILL'), 2000);
    kill.unref();
    void proc.exited.then(() => {
      clearTimeout(kill);
      this.retiring.delete(proc);
    });
    proc.child.stdin.end();
    this.ref(proc, false);
  }

  private detach(proc: Proc): void {
    if (this.proc === proc) this.proc = null;
  }

  /** Rejects the pending transaction if it was sent to `proc`. */
  private fail(proc: Proc, err: NftApplyError): void {
    const p = this.pending;
    if (!p || p.proc !== proc) return;
    this.settle();
    p.reject(err);
  }

  private settle(): void {
    const p = this.pending;
    if (!p) return;
    clearTimeout(p.timer);
    this.pending = null;
    this.ref(p.proc, false);
  }

  /** Keeps Node alive only while a transaction is pending. */
  private ref(proc: Proc, on: boolean): void {
    const c = proc.child;
    for (const h of [c, c.stdin, c.stdout, c.stderr] as { ref(): void; unref(): void }[]) {
      if (on) h.ref();
      else h.unref();
    }
  }

  private ctx(): Record<string, unknown> {
    return { netns: this.opts.netns, session: true };
  }
}

/** A script as one input line. */
export function toLine(script: string): string {
  return script
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ');
}

/**
 * The script line an interactive error points at: nft echoes the input line and puts carets under
 * the offending part; the caret column in the joined line maps back to a script line.
 */
export function errorLine(stderr: string, script: string): number | null {
  const lines = stderr.split('\n');
  const caret = lines.findIndex((l) => /^[ ]*\^/.test(l));
  if (caret < 0) return null;
  let col = lines[caret]!.indexOf('^');
  const parts = script.split('\n');
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!.trim();
    if (p === '') continue;
    if (col < p.length + 2) return i + 1;
    col -= p.length + 2;
  }
  return null;
}
