/**
 * The operator tools inside a controller replica (controller/extensions.ts):
 * - the event journal: every enqueue of reconcile jobs (BBS events, ASG and policy changes, agent
 *   inventories, resyncs) and every agent report whose applied version or error changed becomes
 *   an entry of the capped journal stream, written in order, off the controller's path (a slow or
 *   failing Redis never delays an enqueue; entries beyond a backlog bound are dropped and counted);
 * - the dashboard on the operator port (src/ops/dashboard), when an operator token is set.
 * This module stays light: the journal and dashboard code is loaded on first use, so `cfnet`
 * commands that never run a controller do not pay for it.
 */
import type { Redis } from 'ioredis';
import type { ControllerConfig } from '../controller/config.js';
import type { ControllerExtension, EnqueuedJob, ExtensionHost } from '../controller/extensions.js';
import type { WrittenState } from '../controller/reconcile/queue.js';
import type { Rejection } from '../controller/sources/rejections.js';
import { counter } from '../lib/metrics.js';
import type { JournalEntryInput, JournalSource } from './journal.js';

const REJECTION_SOURCES: Record<Rejection['source'], JournalSource> = {
  bbs: 'bbs',
  capi: 'capi',
  policy: 'policy-server',
  agent: 'agent',
  compute: 'controller',
};

/** A rejected input item as a journal entry (`cfnet events --type rejected`, the dashboard). */
export function rejectionEntry(r: Rejection): JournalEntryInput {
  return {
    type: 'rejected',
    source: REJECTION_SOURCES[r.source],
    subject: { guid: r.subject },
    cells: r.cell ? [r.cell] : [],
    jobIds: [],
    at: r.at,
    detail: { reason: r.reason, field: r.field, value: r.value, message: r.message },
  };
}

export interface OpsExtensionOptions {
  /** Approximate number of journal entries kept (default 10,000). */
  journalMaxLen?: number;
  /** Entries waiting to be written before new ones are dropped (default 10,000). */
  maxBacklog?: number;
}

export const JOURNAL_ENTRIES_METRIC = 'cfnet_controller_journal_entries_total';

type JournalModules = {
  journal: import('./journal.js').Journal;
  recorder: import('./recorder.js').JournalRecorder;
  redis: Redis;
};

/** Records the event journal from the controller's hooks. */
export class JournalExtension implements ControllerExtension {
  readonly name = 'journal';
  private mods: JournalModules | null = null;
  private loading: Promise<JournalModules> | null = null;
  private chain: Promise<void> = Promise.resolve();
  private backlog = 0;
  private closed = false;
  private metric: ReturnType<typeof counter<'outcome'>> | null = null;

  constructor(
    private readonly config: ControllerConfig,
    private readonly opts: OpsExtensionOptions = {},
  ) {}

  /** Resolves when every entry handed over so far is written (tests). */
  async flushed(): Promise<void> {
    let last: Promise<void> | null = null;
    while (last !== this.chain) {
      last = this.chain;
      await last;
    }
  }

  private load(): Promise<JournalModules> {
    this.loading ??= (async () => {
      const [
        { Journal },
        { JournalRecorder },
        { Keys },
        { createRedis },
        { jobOptionsOf, publishJobOptions },
      ] = await Promise.all([
        import('./journal.js'),
        import('./recorder.js'),
        import('../state/keys.js'),
        import('../lib/redis.js'),
        import('./job-options.js'),
      ]);
      const redis = createRedis(this.config.redisUrl, {
        name: 'cfnet-controller-journal',
        ...(this.config.redisAuth ? { auth: this.config.redisAuth } : {}),
      });
      redis.on('error', () => {});
      const keys = new Keys(this.config.namespace);
      const journal = new Journal(redis, keys, {
        maxLen: this.opts.journalMaxLen ?? 10_000,
      });
      // Replays by the operator tools then get this controller's attempts, backoff and retention.
      await publishJobOptions(redis, keys, jobOptionsOf(this.config)).catch(() => {});
      this.mods = { journal, recorder: new JournalRecorder(), redis };
      return this.mods;
    })();
    return this.loading;
  }

  private metricOf(host: ExtensionHost) {
    this.metric ??= counter(
      host.registry,
      JOURNAL_ENTRIES_METRIC,
      'Event journal entries by outcome (written, dropped, failed)',
      ['outcome'],
    );
    return this.metric;
  }

  /** Queue entries for writing, in order. `make` runs now (it reads the world as it is now). */
  private write(host: ExtensionHost, make: (m: JournalModules) => JournalEntryInput[]): Promise<void> | void {
    if (this.closed) return;
    const metric = this.metricOf(host);
    const ready = this.mods;
    // The world must be read at hook time: resolve the entries synchronously once loaded.
    const entries = ready ? make(ready) : null;
    if (entries && entries.length === 0) return;
    const max = this.opts.maxBacklog ?? 10_000;
    const n = entries?.length ?? 1;
    if (this.backlog + n > max) {
      metric.inc({ outcome: 'dropped' }, n);
      return;
    }
    this.backlog += n;
    this.chain = this.chain.then(async () => {
      try {
        const m = await this.load();
        const list = entries ?? make(m);
        if (list.length > 0) await m.journal.recordMany(list);
        metric.inc({ outcome: 'written' }, list.length);
      } catch (err) {
        metric.inc({ outcome: 'failed' }, n);
        host.logger.warn({ err }, 'event journal write failed');
      } finally {
        this.backlog -= n;
      }
    });
    return this.chain;
  }

  onEnqueued(jobs: readonly EnqueuedJob[], host: ExtensionHost, written: WrittenState): Promise<void> | void {
    return this.write(host, (m) => m.recorder.entriesFor(jobs, host.world(), written));
  }

  onStatus(cellId: string, status: { appliedVersion: number; error: string }, host: ExtensionHost) {
    const at = Date.now();
    return this.write(host, (m) => {
      const e = m.recorder.statusEntry(cellId, status, at);
      return e ? [e] : [];
    });
  }

  onRejected(items: readonly Rejection[], host: ExtensionHost): Promise<void> | void {
    return this.write(host, () => items.map(rejectionEntry));
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.flushed();
    if (this.mods) {
      const { closeRedis } = await import('../lib/redis.js');
      await closeRedis(this.mods.redis);
    }
  }
}

/** Serves the dashboard on the operator port. */
export class DashboardExtension implements ControllerExtension {
  readonly name = 'dashboard';
  private closeFn: (() => Promise<void>) | null = null;

  constructor(private readonly config: ControllerConfig) {}

  async operatorRoutes(app: import('fastify').FastifyInstance, host: ExtensionHost): Promise<void> {
    const { registerDashboard } = await import('./dashboard/index.js');
    const d = await registerDashboard(app, {
      redisUrl: this.config.redisUrl,
      ...(this.config.redisAuth ? { redisAuth: this.config.redisAuth } : {}),
      ...(this.config.namespace ? { namespace: this.config.namespace } : {}),
      token: this.config.operator?.token ?? null,
      queue: host.jobQueue(),
      logger: host.logger.child({ part: 'dashboard' }),
      registry: host.registry,
    });
    this.closeFn = d.close;
  }

  async close(): Promise<void> {
    await this.closeFn?.();
  }
}

/** The operator extensions of a controller replica: the event journal and the dashboard. */
export function opsExtensions(
  config: ControllerConfig,
  opts: OpsExtensionOptions = {},
): ControllerExtension[] {
  return [new JournalExtension(config, opts), new DashboardExtension(config)];
}
