/**
 * NftQuerySession: one long-lived `nft -j -i` process answering read-only commands (`list set …`)
 * for the warm CNI executor, whose ADD lists two of cfnet's sets before it records an address:
 * without it each listing is an nft process started from Node (a fork that blocks the event loop,
 * plus nft's own start-up).
 *
 * Protocol, as NftSession's: the command line, then a marker line `<nonce>_<seq>` that nft rejects
 * with a syntax error on stderr after the command's own output. nft writes a command's JSON document
 * (one line) to stdout before it reads the next line, but stdout and stderr are two pipes, so the
 * answer is complete when the marker has arrived on stderr and, unless the command failed, a whole
 * line on stdout. Queries run one at a time; the process is unref'd while idle and started again
 * when it died.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NftApplyError, type NftRunOptions, nftCommand } from './nft.js';

interface Pending {
  marker: string;
  command: string;
  resolve: (stdout: string) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  markerSeen: boolean;
  failed: string | null;
}

export class NftQuerySession {
  private readonly nonce = `cfnet_query_${randomBytes(4).toString('hex')}`;
  private child: ChildProcessWithoutNullStreams | null = null;
  private stdout = '';
  private stderr = '';
  private seq = 0;
  private pending: Pending | null = null;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly opts: NftRunOptions = {}) {}

  /** Runs one read-only command (e.g. `list set inet cfnet ctr_addrs`); resolves with its JSON text. */
  query(command: string): Promise<string> {
    if (/[\n;]/.test(command)) return Promise.reject(new Error('one command per query'));
    const p = this.queue.then(() => this.send(command));
    this.queue = p.catch(() => undefined);
    return p;
  }

  /** Process id of the current nft process (tests), or null. */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  /** Ends the process (a later query starts a new one). */
  close(): Promise<void> {
    const c = this.child;
    this.child = null;
    if (!c || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => c.kill('SIGKILL'), 2000);
      c.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      c.stdin.end();
    });
  }

  private send(command: string): Promise<string> {
    const child = this.current();
    const marker = `${this.nonce}_${++this.seq}`;
    return new Promise<string>((resolve, reject) => {
      const timeoutMs = this.opts.timeoutMs ?? 30_000;
      const timer = setTimeout(() => {
        this.settle(new NftApplyError(`no answer from nft within ${timeoutMs} ms`, null, command, {}));
        child.kill('SIGKILL');
      }, timeoutMs);
      this.pending = { marker, command, resolve, reject, timer, markerSeen: false, failed: null };
      this.ref(child, true);
      child.stdin.write(`${command}\n${marker}\n`);
    });
  }

  private current(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const [cmd, argv] = nftCommand(['-j', '-i'], this.opts);
    const child = spawn(cmd, argv, { stdio: 'pipe', env: { ...process.env, HOME: '/nonexistent' } });
    this.child = child;
    this.stdout = '';
    this.stderr = '';
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      if (this.child !== child) return;
      this.stdout += d;
      this.check();
    });
    child.stderr.on('data', (d: string) => {
      if (this.child !== child) return;
      this.stderr += d;
      this.check();
    });
    child.stdin.on('error', () => undefined);
    const gone = (why: string) => {
      if (this.child === child) this.child = null;
      this.settle(new NftApplyError(why, null, this.pending?.command, {}));
    };
    child.on('error', (err) => gone(String(err)));
    child.on('exit', (code, signal) => gone(`nft query session exited (${signal ?? code})`));
    this.ref(child, false);
    return child;
  }

  /** Completes the pending query once its marker and (unless it failed) its JSON line are in. */
  private check(): void {
    const p = this.pending;
    if (!p) return;
    if (!p.markerSeen) {
      // `<marker's "Error: syntax error" line>\n<marker>\n<caret line>`, after the command's errors
      const at = this.stderr.indexOf(`\n${p.marker}\n`);
      if (at < 0) return;
      const lines = this.stderr.slice(0, at).split('\n');
      lines.pop();
      const own = lines.join('\n');
      p.markerSeen = true;
      p.failed = /\bError\b/.test(own) ? own : null;
      const rest = this.stderr.slice(at + p.marker.length + 2);
      const caret = rest.indexOf('\n');
      this.stderr = caret >= 0 ? rest.slice(caret + 1) : '';
    }
    if (p.failed !== null) {
      this.stdout = '';
      this.settle(new NftApplyError(p.failed, 1, p.command, {}));
      return;
    }
    const nl = this.stdout.indexOf('\n');
    if (nl < 0) return;
    const doc = this.stdout.slice(0, nl);
    this.stdout = this.stdout.slice(nl + 1);
    this.settle(null, doc);
  }

  private settle(err: Error | null, doc = ''): void {
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    clearTimeout(p.timer);
    if (this.child) this.ref(this.child, false);
    if (err) p.reject(err);
    else p.resolve(doc);
  }

  /** Keeps Node alive only while a query is pending. */
  private ref(child: ChildProcessWithoutNullStreams, on: boolean): void {
    for (const h of [child, child.stdin, child.stdout, child.stderr] as { ref(): void; unref(): void }[]) {
      if (on) h.ref();
      else h.unref();
    }
  }
}
