/**
 * The rules keeper: the controller's rule set (pulled: snapshots and patches), merged with the
 * CNI-time containers the agent learnt itself, admitted item by item and applied in one nft
 * transaction; failed applies retried with backoff; the saved state written (after each apply,
 * soon after CNI events, at stop). What is in force stays in force while anything fails.
 */
import { admitRuleSet, type Refusal } from '../dataplane/admit.js';
import { summarise as summariseDrift } from '../dataplane/apply.js';
import { backoffDelay } from '../lib/backoff.js';
import { errorMessage } from '../lib/errors.js';
import type { CellRuleSet, EgressRule } from '../model/types.js';
import type { OverlayLease } from './client.js';
import type { AgentContext } from './context.js';
import { AGENT_EVENTS } from './events.js';
import { type Inventory, InventoryReader } from './inventory.js';
import { type LocalContainer, mergeLocal } from './merge.js';
import { type PullUpdate, RulePuller } from './pull.js';
import { recoverFromKernel } from './recover.js';
import { withRouterIngress } from './router-ingress.js';
import { type PersistedState, StateFile } from './state.js';

export interface RulesKeeperHooks {
  /** Something the controller should hear about changed (applied version, refusals). */
  requestStatus(): void;
  /** A controller request succeeded or failed (reachability, metrics). */
  contact(ok: boolean, op: string, err?: unknown): void;
  /** The overlay part of the saved state. */
  overlayState(): { lease: OverlayLease | null; leases: OverlayLease[] };
  /** The routers' tags let in to app ports (empty unless enableOverlayIngressRules). */
  routerTags(): number[];
}

export class RulesKeeper {
  /** The controller's rule set last received (or saved). */
  base: CellRuleSet | null = null;
  /** CNI-time containers: attached here, not (yet) in the controller's rule set. */
  readonly local = new Map<string, LocalContainer>();
  /** The merged rule set in force. */
  applied: CellRuleSet | null = null;
  appliedVersion = 0;
  lastApplyError = '';
  lastApplyAt = 0;
  /** Containers, mappings and c2c entries the dataplane refused (the rest is applied). */
  refused: Refusal[] = [];
  readonly inventory: InventoryReader;
  private readonly stateFile: StateFile;
  private puller: RulePuller | null = null;
  private applyFailures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private saveTimer: NodeJS.Timeout | null = null;
  private refusedKey = '';

  constructor(
    private readonly ctx: AgentContext,
    private readonly hooks: RulesKeeperHooks,
  ) {
    this.stateFile = new StateFile(ctx.config.stateDir);
    this.inventory = new InventoryReader(ctx.config.datastore);
  }

  /** Loads the saved state: the rule set and CNI-time containers here, the rest returned. */
  async load(): Promise<PersistedState | null> {
    const { state, problem } = await this.stateFile.load(this.ctx.config.cellId);
    if (problem) this.ctx.log.warn({ problem }, 'saved state not used');
    if (!state) return null;
    this.base = state.base;
    for (const [h, rec] of Object.entries(state.local)) this.local.set(h, rec);
    return state;
  }

  /** Cells with containers never change subnet on their own (their addresses are in that subnet). */
  hasContainers(): boolean {
    return this.local.size > 0 || (this.base?.containers.length ?? 0) > 0;
  }

  /** Starts the long-poll of the controller's rule set (patches since the version in hand). */
  startPulling(): void {
    const c = this.ctx.config;
    this.puller = new RulePuller({
      source: this.ctx.client,
      cellId: c.cellId,
      waitSeconds: c.longPollTimeoutSeconds,
      minBackoffMs: c.reconnectMinMs,
      maxBackoffMs: c.reconnectMaxMs,
      logger: this.ctx.log.child({ component: 'rules' }),
      initial: this.base,
      onRuleSet: (u) => this.onRuleSet(u),
      onContact: (ok, err) => this.hooks.contact(ok, 'rules', err),
    });
    this.puller.start();
  }

  /** Stop: no retry or save pending (stop saves once itself). */
  clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.saveTimer) clearTimeout(this.saveTimer);
  }

  async stopPulling(): Promise<void> {
    await this.puller?.stop();
  }

  /** Start-up: put the saved rule set in force without a window (or leave the kernel alone). */
  async restore(): Promise<void> {
    const log = this.ctx.log;
    if (!this.base) {
      log.info('no saved rule set: the kernel table is left as it is until the controller answers');
      return;
    }
    await this.ctx.mutex.run(async () => {
      const t0 = performance.now();
      let inv: Inventory | null = null;
      try {
        inv = await this.inventory.read(true);
      } catch (err) {
        log.warn({ err }, 'datastore unreadable at start-up');
      }
      if (inv) await this.recoverUnknown(inv);
      const merged = this.merge(inv);
      const report = await this.ctx.dataplane.detectDrift(merged);
      if (report.drift) {
        const res = await this.ctx.dataplane.applyFull(merged);
        this.ctx.metrics.applies.inc({ mode: 'restore', outcome: 'ok' });
        log.info(
          {
            event: AGENT_EVENTS.savedRulesRestored,
            version: merged.version,
            ms: Math.round(res.ms),
            tableMissing: report.tableMissing,
          },
          'saved rule set restored in one nft transaction',
        );
      } else {
        log.info(
          {
            event: AGENT_EVENTS.kernelHoldsSavedRules,
            version: merged.version,
            ms: Math.round(performance.now() - t0),
          },
          'kernel already holds the saved rule set: nothing applied',
        );
      }
      this.applied = merged;
      this.appliedVersion = this.base!.version;
      this.lastApplyAt = Date.now();
      this.ctx.metrics.appliedVersion.set(this.appliedVersion);
    });
  }

  /** Datastore containers neither the controller nor the agent knows: recover them from the table. */
  private async recoverUnknown(inv: Inventory): Promise<void> {
    const known = new Set(this.base?.containers.map((c) => c.handle) ?? []);
    const unknown = inv.items.filter((i) => !known.has(i.handle) && !this.local.has(i.handle));
    if (unknown.length === 0) return;
    const rules = new Map<string, EgressRule[]>(Object.entries(this.base?.asgSets ?? {}));
    for (const l of this.local.values()) rules.set(l.container.egress, l.egressRules);
    const table = await this.ctx.dataplane.readBack();
    for (const item of unknown) {
      const rec = recoverFromKernel(table, item, rules);
      if (rec) {
        this.local.set(item.handle, rec);
        this.ctx.log.info(
          { handle: item.handle, ip: item.ip },
          'CNI-time container recovered from the kernel table',
        );
      } else {
        this.ctx.log.warn(
          { handle: item.handle, ip: item.ip },
          'container attached while the agent was down could not be recovered; the controller will supply its rules',
        );
      }
    }
  }

  /** The rule set to enforce: the controller's, CNI-time containers merged in, admitted per item. */
  private merge(inv: Inventory | null): CellRuleSet {
    const res = mergeLocal(this.base!, this.local, inv?.attached ?? null);
    const admission = admitRuleSet(withRouterIngress(res.ruleSet, this.hooks.routerTags()));
    this.noteRefusals(admission.refused);
    for (const h of res.obsolete) this.local.delete(h);
    if (res.dropped.length > 0) {
      this.ctx.log.warn(
        { dropped: res.dropped },
        'controller entries whose address belongs to another container left out',
      );
    }
    this.ctx.metrics.pendingContainers.set(res.merged.length);
    if (inv) this.ctx.metrics.localContainers.set(inv.items.length);
    return admission.ruleSet;
  }

  /** Logs refusals when they change and reports them to the controller (per container). */
  private noteRefusals(refused: Refusal[]): void {
    const key = JSON.stringify(refused);
    this.refused = refused;
    this.ctx.metrics.refused.set(refused.length);
    if (key === this.refusedKey) return;
    this.refusedKey = key;
    if (refused.length > 0) {
      this.ctx.log.warn(
        { refused: refused.slice(0, 20), count: refused.length },
        'rule-set items refused by the dataplane; the rest of the rule set is applied',
      );
    }
    this.hooks.requestStatus();
  }

  private async onRuleSet(u: PullUpdate): Promise<void> {
    this.base = u.ruleSet;
    this.ctx.metrics.polls.inc({ kind: u.kind });
    this.ctx.metrics.controllerVersion.set(u.ruleSet.version);
    await this.applyNow(u.receivedAt, u.kind);
  }

  /** Merge and apply the current rule set (one nft transaction), save and report. */
  async applyNow(receivedAt?: number, source: 'snapshot' | 'patch' | 'local' = 'local'): Promise<void> {
    if (!this.base) return;
    const { log, metrics } = this.ctx;
    await this.ctx.mutex.run(async () => {
      if (!this.base) return;
      const t0 = performance.now();
      let inv: Inventory | null = null;
      try {
        inv = await this.inventory.read();
      } catch (err) {
        log.warn({ err }, 'datastore unreadable; merging without it');
      }
      const merged = this.merge(inv);
      try {
        const res = await this.ctx.dataplane.apply(merged);
        const s = (performance.now() - t0) / 1000;
        metrics.applies.inc({ mode: res.mode, outcome: 'ok' });
        metrics.applyDuration.observe({ mode: res.mode }, s);
        if (receivedAt !== undefined) metrics.receiveToEnforce.observe((Date.now() - receivedAt) / 1000);
        this.applied = merged;
        this.appliedVersion = this.base.version;
        this.lastApplyError = '';
        this.lastApplyAt = Date.now();
        this.applyFailures = 0;
        metrics.appliedVersion.set(this.appliedVersion);
        log.info(
          {
            version: merged.version,
            event: AGENT_EVENTS.rulesApplied,
            source,
            mode: res.mode,
            ms: Math.round(res.ms * 10) / 10,
            ...(res.summary ? { summary: res.summary } : {}),
            ...(res.fallbackFrom ? { fallbackFrom: res.fallbackFrom.message } : {}),
          },
          'rule set applied',
        );
      } catch (err) {
        metrics.applies.inc({ mode: 'apply', outcome: 'error' });
        this.lastApplyError = errorMessage(err).slice(0, 4000);
        this.applyFailures++;
        log.error(
          { err: this.lastApplyError, version: merged.version, inForce: this.appliedVersion },
          'applying the rule set failed; the previous rules stay in force',
        );
        this.scheduleRetry();
      }
      await this.save().catch((err) => log.error({ err }, 'saving state failed'));
    });
    this.hooks.requestStatus();
  }

  private scheduleRetry(): void {
    if (this.ctx.stopping() || this.retryTimer) return;
    const delay = backoffDelay(this.applyFailures - 1, this.ctx.backoff);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.applyNow();
    }, delay);
  }

  /**
   * Compares the kernel's table with the rule set in force (canonically: every rule, set, element,
   * chain header) and re-applies it in full on any difference. Datastore containers the agent does
   * not know yet (a one-off CNI process attached them) are recovered from the table first, so a
   * repair never removes them.
   */
  async repair(trigger: string): Promise<boolean> {
    if (!this.base) return false;
    return this.ctx.mutex.run(async () => {
      if (!this.base) return false;
      let inv: Inventory | null = null;
      try {
        inv = await this.inventory.read(true);
        await this.recoverUnknown(inv);
      } catch {
        inv = null;
      }
      const merged = this.merge(inv);
      const { report, repaired } = await this.ctx.dataplane.repair(merged);
      if (repaired) {
        this.ctx.metrics.driftRepairs.inc({ what: 'nft' });
        this.applied = merged;
        this.appliedVersion = this.base.version;
        this.lastApplyError = '';
        this.ctx.log.warn(
          { event: AGENT_EVENTS.driftRepaired, trigger, ...summariseDrift(report) },
          'nft table drift repaired',
        );
      }
      return repaired;
    });
  }

  /** Writes the saved state (call under the mutex). */
  async save(): Promise<void> {
    await this.stateFile.save({
      cellId: this.ctx.config.cellId,
      ...this.hooks.overlayState(),
      base: this.base,
      local: Object.fromEntries(this.local),
    });
  }

  /** Saves under the mutex (after an apply in progress); a failure is logged. */
  saveNow(): Promise<void> {
    return this.ctx.mutex.run(() => this.save()).catch((err) => this.ctx.log.error({ err }, 'save failed'));
  }

  /** Saves soon (coalesces bursts of CNI events). */
  saveSoon(): void {
    if (this.saveTimer || this.ctx.stopping()) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      void this.saveNow();
    }, 200);
  }
}
