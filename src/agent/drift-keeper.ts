/**
 * The drift keeper: what someone else changed is put back. `nft monitor` reports a foreign change
 * to the table (repaired within `nftWatchDelayMs` + one comparison); a periodic full comparison of
 * the table, the overlay and cfnet's iptables rules is the backstop; cfnet's iptables rules (filter
 * mode `iptables`: in INPUT and FORWARD of every usable backend; `nftables`: an earlier mode's
 * removed) are checked at start, on iptables changes and periodically.
 */
import { NftDataplane } from '../dataplane/apply.js';
import { NftMonitor } from '../dataplane/monitor.js';
import type { Runner } from '../host/index.js';
import { errorMessage } from '../lib/errors.js';
import { type AgentContext, jittered, pause } from './context.js';
import { IptablesBackends } from './iptables.js';

export interface DriftKeeperHooks {
  /** Compares the table with the rule set in force and repairs it; whether it did. */
  repairRules(trigger: string): Promise<boolean>;
  /** Repairs the VXLAN device and the overlay entries; entries changed. */
  repairOverlay(): Promise<number>;
  /** Whether a rule set is in force (an earlier mode's iptables rules are then inert). */
  rulesInForce(): boolean;
}

export class DriftKeeper {
  /** cfnet's iptables rules (null in a dry run). */
  readonly iptables: IptablesBackends | null;
  /** Why the last check of cfnet's iptables rules failed ('' when it did not). */
  iptablesError = '';
  /** At least one backend's executable runs (probed at start). */
  private iptablesPresent = false;
  /** Checks of the iptables rules run one at a time (two could both append a missing rule). */
  private iptablesChecks: Promise<unknown> = Promise.resolve();
  private iptablesTimer: NodeJS.Timeout | null = null;
  private monitor: NftMonitor | null = null;
  private rulesCheckTimer: NodeJS.Timeout | null = null;
  private rulesCheckRunning: Promise<void> | null = null;
  private rulesCheckAgain = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly hooks: DriftKeeperHooks,
    run?: Runner,
  ) {
    const c = ctx.config;
    this.iptables = ctx.dryRun
      ? null
      : new IptablesBackends({ binaries: c.iptablesBinaries, table: c.nftTable, ...(run ? { run } : {}) });
  }

  /** The periodic full comparison, every `driftCheckIntervalSeconds` (jittered; 0: never). */
  async loop(): Promise<void> {
    const every = this.ctx.config.driftCheckIntervalSeconds * 1000;
    if (every <= 0) return;
    while (!this.ctx.stopping()) {
      if (!(await pause(this.ctx, jittered(every)))) return;
      await this.checkDrift().catch((err) => this.ctx.log.error({ err }, 'drift check failed'));
    }
  }

  /**
   * Watches the table (`nft monitor`): a transaction another process made on it leads to a
   * canonical comparison and, on any difference, a repair `nftWatchDelayMs` later (changes arriving
   * meanwhile are coalesced). A restarted monitor may have missed changes: it checks once too.
   */
  startMonitor(): void {
    const { config, log, metrics } = this.ctx;
    const delay = config.nftWatchDelayMs;
    if (this.ctx.dryRun || delay <= 0 || !(this.ctx.dataplane instanceof NftDataplane)) return;
    this.monitor = new NftMonitor({
      table: config.nftTable,
      nft: config.nftBinary,
      logger: log.child({ component: 'nft-monitor' }),
      // iptables-nft's rule changes show up in nft monitor too: a flush is answered at once (legacy
      // ones do not: the periodic check repairs those)
      watchIptables:
        config.filterMode === 'iptables' && (this.iptables?.used.some((r) => r.backend === 'nft') ?? false),
    });
    let first = true;
    this.monitor.on('started', () => {
      if (!first) {
        this.rulesCheckSoon('monitor restarted');
        void this.checkIptables('monitor restarted');
      }
      first = false;
    });
    this.monitor.on('iptables', () => {
      if (this.ctx.stopping() || this.iptablesTimer) return;
      this.iptablesTimer = setTimeout(() => {
        this.iptablesTimer = null;
        void this.checkIptables('iptables change');
      }, config.nftWatchDelayMs);
    });
    this.monitor.on('foreign', (c) => {
      metrics.foreignChanges.inc();
      log.warn({ pid: c.pid, comm: c.comm, changes: c.lines }, 'nft table changed by another process');
      this.rulesCheckSoon('foreign change');
    });
    this.monitor.start();
  }

  /** Stop: no check pending. */
  clearTimers(): void {
    if (this.rulesCheckTimer) clearTimeout(this.rulesCheckTimer);
    if (this.iptablesTimer) clearTimeout(this.iptablesTimer);
  }

  /** Stop: the monitor ended, checks in progress finished. */
  async stop(): Promise<void> {
    await this.monitor?.stop();
    await this.iptablesChecks;
    await this.rulesCheckRunning;
  }

  /** A rules check after `nftWatchDelayMs`, coalesced with one pending or running. */
  private rulesCheckSoon(trigger: string): void {
    if (this.ctx.stopping() || this.rulesCheckTimer) return;
    if (this.rulesCheckRunning) {
      this.rulesCheckAgain = true;
      return;
    }
    this.rulesCheckTimer = setTimeout(() => {
      this.rulesCheckTimer = null;
      this.rulesCheckRunning = this.hooks
        .repairRules(trigger)
        .then(() => undefined)
        .catch((err) => this.ctx.log.error({ err }, 'nft drift check failed'))
        .finally(() => {
          this.rulesCheckRunning = null;
          if (this.rulesCheckAgain) {
            this.rulesCheckAgain = false;
            this.rulesCheckSoon(trigger);
          }
        });
    }, this.ctx.config.nftWatchDelayMs);
  }

  /**
   * Which configured iptables executables are used (one per backend that runs); the others are
   * logged. `required` (filterMode iptables): none usable is IptablesMissingError.
   */
  async probeIptables(required: boolean): Promise<void> {
    if (!this.iptables) return;
    const { log, config } = this.ctx;
    const { used, skipped } = await this.iptables.probe(required);
    this.iptablesPresent = used.length > 0;
    for (const s of skipped) {
      log.info(
        { binary: s.binary, reason: s.reason, filterMode: config.filterMode },
        'iptables executable skipped',
      );
    }
    log.info(
      {
        binaries: used.map((r) => r.binary),
        backends: used.map((r) => r.backend),
        filterMode: config.filterMode,
      },
      'iptables backends in use',
    );
  }

  /**
   * `iptables` mode: cfnet's rules in INPUT and FORWARD of every used backend, exactly once each (re-appended when someone
   * flushed a chain: until then cfnet's denials in those chains were not enforced). `nftables`
   * mode: once a table of that mode is in force, cfnet's rules of an earlier `iptables` mode are
   * removed (inert by then). Never touches another rule. Returns what it changed.
   */
  checkIptables(trigger: string): Promise<string[]> {
    const run = () => this.checkIptablesNow(trigger);
    const p = this.iptablesChecks.then(run, run);
    this.iptablesChecks = p.catch(() => undefined);
    return p;
  }

  private async checkIptablesNow(trigger: string): Promise<string[]> {
    if (!this.iptables || !this.iptablesPresent) return [];
    const { log, config, metrics } = this.ctx;
    try {
      let done: string[] = [];
      if (config.filterMode === 'iptables') done = await this.iptables.ensure();
      else if (this.hooks.rulesInForce()) {
        const n = await this.iptables.remove();
        if (n > 0) done = [`removed ${n} rule(s) of iptables mode`];
      }
      this.iptablesError = '';
      if (done.length > 0) {
        if (trigger !== 'start') metrics.driftRepairs.inc({ what: 'iptables' });
        const fields = { trigger, done, filterMode: config.filterMode };
        if (trigger === 'start') log.info(fields, "cfnet's iptables rules put in place");
        else log.warn(fields, "cfnet's iptables rules repaired");
      }
      return done;
    } catch (err) {
      this.iptablesError = errorMessage(err).slice(0, 2000);
      if (trigger === 'start' && config.filterMode === 'iptables') throw err;
      log.error({ trigger, err: this.iptablesError }, "checking cfnet's iptables rules failed");
      return [];
    }
  }

  /** Reads the nft table, the overlay and cfnet's iptables rules back and repairs what differs. */
  async checkDrift(): Promise<{ rules: boolean; overlay: number; iptables: string[] }> {
    const iptables = await this.checkIptables('periodic');
    const rules = await this.hooks.repairRules('periodic');
    const overlay = await this.hooks.repairOverlay();
    return { rules, overlay, iptables };
  }
}
