/**
 * NftMonitor: watches cfnet's table with `nft monitor` (inside the cell's namespace) and reports
 * every transaction that touched it and was not made by one of this process's own nft processes
 * (nft.ts ownNftPids): someone else added, replaced or deleted a rule, an element, a chain, a set or
 * the table. The agent answers with a canonical comparison and a repair (well within 1 s); the
 * periodic full comparison stays as the backstop for anything the monitor could miss (it was
 * restarting, the kernel dropped events under load).
 *
 * `nft monitor` prints each change as one line (`add rule inet cfnet ctr_in …`) and ends each
 * transaction with `# new generation N by process PID (comm)`. The monitor process is restarted
 * with backoff when it exits.
 *
 * With `watchIptables`, a transaction touching iptables-nft's filter INPUT or FORWARD chain (`ip
 * filter`, where the agent keeps its rule in filterMode iptables) is reported too (`iptables`), so
 * an `iptables -F INPUT` is answered at once rather than at the next periodic check. Legacy
 * iptables is not visible to nft monitor: there the periodic check is the only one.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Logger } from '../lib/log.js';
import { checkTable } from './layout.js';
import { type NftRunOptions, nftCommand, ownNftPids } from './nft.js';

export interface ForeignChange {
  /** Process that made the change (null when nft did not say). */
  pid: number | null;
  comm: string;
  /** The first few change lines of the transaction that touched the table. */
  lines: string[];
}

export interface NftMonitorOptions extends NftRunOptions {
  table: string;
  /** Also report transactions on iptables-nft's filter INPUT/FORWARD chains (event `iptables`). */
  watchIptables?: boolean;
  logger: Logger;
  /** Whether a pid is one of ours (default: ownNftPids). */
  isOwn?: (pid: number) => boolean;
  /** Restart delay after the monitor exits (default 200 ms, doubling to 5 s). */
  restartMs?: number;
}

const GENERATION = /^# new generation \d+ by process (\d+) \(([^)]*)\)/;
/** A change to iptables-nft's filter table as a whole or to its INPUT / FORWARD chain. */
const IPTABLES_FILTER = /\bip filter(?: (?:INPUT|FORWARD)\b|\s*$| \{| handle)/;

/** Parses monitor output line by line; calls `onForeign` per foreign transaction on `table`. */
export class MonitorParser {
  private touched: string[] = [];
  private filterTouched: string[] = [];
  private readonly pattern: RegExp;

  constructor(
    table: string,
    private readonly isOwn: (pid: number) => boolean,
    private readonly onForeign: (c: ForeignChange) => void,
    /** Called per transaction touching iptables-nft's filter INPUT/FORWARD (anyone's, ours too). */
    private readonly onIptables?: (c: ForeignChange) => void,
  ) {
    checkTable(table);
    this.pattern = new RegExp(`\\binet ${table}(\\s|$)`);
  }

  line(text: string): void {
    const gen = GENERATION.exec(text);
    if (gen) {
      const pid = Number(gen[1]);
      if (this.touched.length > 0 && !this.isOwn(pid)) {
        this.onForeign({ pid, comm: gen[2] ?? '', lines: this.touched.slice(0, 5) });
      }
      if (this.filterTouched.length > 0) {
        this.onIptables?.({ pid, comm: gen[2] ?? '', lines: this.filterTouched.slice(0, 5) });
      }
      this.touched = [];
      this.filterTouched = [];
      return;
    }
    if (this.pattern.test(text) && this.touched.length < 50) this.touched.push(text.slice(0, 300));
    else if (this.onIptables && IPTABLES_FILTER.test(text) && this.filterTouched.length < 50) {
      this.filterTouched.push(text.slice(0, 300));
    }
  }

  /** The monitor ended mid-transaction: whatever touched the table counts as foreign. */
  flush(): void {
    if (this.touched.length > 0) this.onForeign({ pid: null, comm: '', lines: this.touched.slice(0, 5) });
    this.touched = [];
  }
}

export interface NftMonitorEvents {
  foreign: [ForeignChange];
  /** A transaction touched iptables-nft's filter INPUT/FORWARD (with watchIptables). */
  iptables: [ForeignChange];
  /** The monitor (re)started: changes made while it was down were not seen. */
  started: [];
}

export class NftMonitor extends EventEmitter<NftMonitorEvents> {
  private child: ChildProcessWithoutNullStreams | null = null;
  private stopped = true;
  private failures = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly opts: NftMonitorOptions) {
    super();
    checkTable(opts.table);
  }

  get running(): boolean {
    return this.child !== null;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.spawn();
  }

  private spawn(): void {
    if (this.stopped) return;
    const [cmd, argv] = nftCommand(['monitor'], this.opts);
    const child = spawn(cmd, argv, { stdio: 'pipe' });
    this.child = child;
    const parser = new MonitorParser(
      this.opts.table,
      this.opts.isOwn ?? ((p) => ownNftPids.has(p)),
      (c) => this.emit('foreign', c),
      this.opts.watchIptables ? (c) => this.emit('iptables', c) : undefined,
    );
    let buf = '';
    let started = false;
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        parser.line(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
    });
    child.stderr.on('data', () => undefined);
    child.stdin.end();
    let startedAt = 0;
    child.on('spawn', () => {
      started = true;
      startedAt = Date.now();
      this.emit('started');
    });
    child.on('error', (err) => this.opts.logger.warn({ err }, 'nft monitor could not start'));
    child.on('close', (code, signal) => {
      parser.flush();
      if (this.child === child) this.child = null;
      if (this.stopped) return;
      // a monitor that ran for a while is restarted at once; one that keeps dying backs off
      const ranMs = started ? Date.now() - startedAt : 0;
      this.failures = ranMs >= 5_000 ? 1 : this.failures + 1;
      const base = this.opts.restartMs ?? 200;
      const delay = Math.min(5_000, base * 2 ** Math.min(this.failures - 1, 5));
      this.opts.logger.warn({ code, signal, retryInMs: delay }, 'nft monitor exited; restarting');
      this.timer = setTimeout(() => {
        this.timer = null;
        this.spawn();
      }, delay);
      this.timer.unref();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const c = this.child;
    this.child = null;
    if (!c) return;
    await new Promise<void>((resolve) => {
      c.once('close', () => resolve());
      c.kill('SIGTERM');
      setTimeout(() => resolve(), 1000).unref();
    });
  }
}
