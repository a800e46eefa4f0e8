/**
 * The agent's audit log, what Silk's iptables-logger job did on a cell: it reads the kernel log
 * lines of cfnet's log chains (OK_, DENY_, DENY_C2C_, OK_C2C_, DENY_ORL_: dataplane/kernel-log.ts), enriches each
 * with the container, app, space and org it is about from the rule set the agent enforces
 * (audit-record.ts), and appends it as a JSON line in Silk's format to `auditLogFile` (by default
 * Silk's /var/vcap/sys/log/iptables-logger/iptables.log).
 *
 * Which packets are logged, and how often, is the rule set's logging configuration (Silk's
 * iptables_logging, iptables_c2c_logging and the per-second limits), enforced by the kernel: this
 * module adds no filtering of its own. It never blocks the agent's loops: the source is polled
 * without blocking reads (audit-source.ts), the file is written by one write in flight at a time
 * from a bounded queue (audit-sink.ts); lines beyond the queue are dropped and counted.
 */
import { parseKernelLogLine } from '../dataplane/kernel-log.js';
import type { Logger } from '../lib/log.js';
import { counter, type Registry } from '../lib/metrics.js';
import type { CellContainer, CellRuleSet } from '../model/types.js';
import {
  type AuditDirectory,
  type AuditHost,
  type AuditTimestampFormat,
  auditRecord,
  directoryOf,
  formatAuditLine,
} from './audit-record.js';
import { AppendSink, DEFAULT_SINK_OPTIONS, type SinkOptions } from './audit-sink.js';
import { type LineSource, lineSource } from './audit-source.js';
import { AGENT_METRICS } from './metrics.js';

/** Errors of the source or the file are logged at most this often (a missing file stays missing). */
const ERROR_LOG_INTERVAL_MS = 60_000;

export interface AuditLogOptions {
  /** /dev/kmsg or a syslog file (audit-source.ts). */
  kernelLog: string;
  file: string;
  timestampFormat: AuditTimestampFormat;
  /** The cell (host_ip, host_guid); read per line, the underlay address is known after start. */
  host: () => AuditHost;
  /** The rule set in force (controller's + CNI-time containers), null before the first one. */
  ruleSet: () => CellRuleSet | null;
  /** CNI-time containers not yet in `ruleSet()` (looked up when an address is not found there). */
  localContainers?: () => Iterable<CellContainer>;
  log: Logger;
  registry: Registry;
  pollMs?: number;
  sink?: Partial<SinkOptions>;
  now?: () => number;
}

export class AuditLog {
  private readonly source: LineSource;
  private readonly sink: AppendSink;
  private readonly written;
  private readonly dropped;
  private dir: { from: CellRuleSet | null; dir: AuditDirectory } | null = null;
  /** When each kind of error was last logged. */
  private readonly lastErrorLog = new Map<string, number>();

  constructor(private readonly opts: AuditLogOptions) {
    this.written = counter(
      opts.registry,
      AGENT_METRICS.auditLinesWritten,
      'Audit lines (Silk iptables-logger format) written to the audit log file',
    );
    this.dropped = counter(
      opts.registry,
      AGENT_METRICS.auditLinesDropped,
      'Audit lines lost: queue_full, write_error, shutdown (queued at stop), kernel_overrun (kernel records overwritten before read), line_too_long',
      ['reason'],
    );
    const error = (what: string) => (err: unknown) => this.error(what, err);
    this.sink = new AppendSink(
      opts.file,
      {
        onWritten: (n) => this.written.inc(n),
        onDropped: (reason, n) => this.dropped.inc({ reason }, n),
        onError: error('audit log file'),
      },
      { ...DEFAULT_SINK_OPTIONS, ...opts.sink },
    );
    this.source = lineSource(
      opts.kernelLog,
      {
        onLine: (line) => this.handleLine(line),
        onLost: (reason, n) => this.dropped.inc({ reason }, n),
        onError: error('kernel log source'),
      },
      { pollMs: opts.pollMs ?? 200 },
    );
  }

  async start(): Promise<void> {
    await this.sink.start();
    await this.source.start();
    this.opts.log.info(
      { source: this.opts.kernelLog, file: this.opts.file, timestampFormat: this.opts.timestampFormat },
      'audit log started',
    );
  }

  async stop(): Promise<void> {
    await this.source.stop();
    await this.sink.close();
  }

  /** One kernel log line: written when it is one of cfnet's packet logs, ignored otherwise. */
  handleLine(line: string): void {
    const entry = parseKernelLogLine(line);
    if (!entry) return;
    const rec = auditRecord(entry, this.directory(), this.opts.host());
    this.sink.write(formatAuditLine(rec, this.opts.timestampFormat, (this.opts.now ?? Date.now)()));
  }

  /** The directory of the rule set in force (rebuilt when the agent applies another one). */
  private directory(): AuditDirectory {
    const rs = this.opts.ruleSet();
    if (!this.dir || this.dir.from !== rs) this.dir = { from: rs, dir: directoryOf(rs) };
    const inner = this.dir.dir;
    const local = this.opts.localContainers;
    if (!local) return inner;
    return {
      appOfTag: (tag) => inner.appOfTag(tag),
      byIp: (ip) => {
        const found = inner.byIp(ip);
        if (found) return found;
        for (const c of local()) if (c.ip === ip) return c;
        return undefined;
      },
    };
  }

  private error(what: string, err: unknown): void {
    const now = Date.now();
    if (now - (this.lastErrorLog.get(what) ?? -Infinity) < ERROR_LOG_INTERVAL_MS) return;
    this.lastErrorLog.set(what, now);
    this.opts.log.warn({ err, source: this.opts.kernelLog, file: this.opts.file }, `${what} failed`);
  }
}
