/**
 * The status keeper: what the agent tells the controller (applied version, apply error, refusals,
 * the overlay's health read back from the kernel, dry run, the datastore inventory when it changed
 * or every tenth heartbeat), reported soon after a change and every `statusIntervalSeconds`
 * otherwise, retried with backoff; the controller's reachability; and the agent's state as
 * `/v1/state` and the readiness check show it.
 */
import type { OverlayHealth } from '../api/status.js';
import type { Refusal } from '../dataplane/admit.js';
import { backoffDelay } from '../lib/backoff.js';
import type { CellRuleSet } from '../model/types.js';
import type { InventoryItem, OverlayLease } from './client.js';
import { type AgentContext, jittered, pause } from './context.js';
import { type InventoryReader, inventoryKey } from './inventory.js';

export interface AgentStatus {
  cellId: string;
  lease: OverlayLease | null;
  peers: number;
  appliedVersion: number;
  /** Containers in the rule set in force (controller's and CNI-time ones). */
  appliedContainers: number;
  controllerVersion: number;
  lastApplyError: string;
  lastApplyAt: number;
  cniOnlyContainers: string[];
  controllerReachable: boolean;
  lastContactAt: number;
  executorSocket: string | null;
  /** True when nothing is written to the kernel (`--dry-run`). */
  dryRun: boolean;
  /** Containers, mappings and c2c entries the dataplane refused (the rest is applied). */
  refused: Refusal[];
  /** process.memoryUsage() in MB. */
  memoryMb: Record<string, number>;
}

/** What the status is made of (the other keepers' state, read when reported). */
export interface StatusSources {
  rules: {
    readonly appliedVersion: number;
    readonly lastApplyError: string;
    readonly lastApplyAt: number;
    readonly refused: Refusal[];
    readonly applied: CellRuleSet | null;
    readonly base: CellRuleSet | null;
    readonly local: ReadonlyMap<string, unknown>;
    readonly inventory: InventoryReader;
  };
  overlay: {
    readonly lease: OverlayLease | null;
    readonly leases: OverlayLease[];
    readonly subnetWritten: boolean;
    /** The overlay read back from the kernel against the lease list (null: unreadable). */
    health(): Promise<OverlayHealth | null>;
  };
  /** The hosted CNI executor's socket (null when none is hosted). */
  executorSocket(): string | null;
  /** Why cfnet's iptables rules could not be checked ('' when they could). */
  iptablesError(): string;
  /** The iptables backends in use. */
  iptablesBackends(): string[];
}

export class StatusKeeper {
  private controllerReachable = false;
  private lastContactAt = 0;
  private statusDirty = false;
  private reportedInventory = '';
  private heartbeats = 0;
  private statusWake: (() => void) | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly s: StatusSources,
  ) {}

  /** A controller request succeeded or failed (`op`: which loop). */
  contact(ok: boolean, op: string, err?: unknown): void {
    this.controllerReachable = ok;
    this.ctx.metrics.controllerUp.set(ok ? 1 : 0);
    if (ok) this.lastContactAt = Date.now();
    else this.ctx.metrics.controllerErrors.inc({ op });
    if (!ok && err) this.ctx.log.debug({ op, err }, 'controller request failed');
  }

  /** Report soon (coalesced with a report in flight). */
  requestStatus(): void {
    this.statusDirty = true;
    this.statusWake?.();
  }

  /** The next report carries the inventory even when it did not change. */
  reportInventoryAgain(): void {
    this.reportedInventory = '';
    this.requestStatus();
  }

  /** Stop: a loop waiting for the next report ends its wait. */
  wake(): void {
    this.statusWake?.();
  }

  async loop(): Promise<void> {
    const { ctx } = this;
    let failures = 0;
    const interval = ctx.config.statusIntervalSeconds * 1000;
    while (!ctx.stopping()) {
      if (!this.statusDirty) {
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            this.statusWake = null;
            this.heartbeats++;
            resolve();
          }, jittered(interval));
          this.statusWake = () => {
            clearTimeout(t);
            this.statusWake = null;
            resolve();
          };
        });
        if (ctx.stopping()) return;
      }
      this.statusDirty = false;
      try {
        await this.reportOnce(this.heartbeats % 10 === 9);
        failures = 0;
      } catch (err) {
        if (ctx.stopping()) return;
        ctx.metrics.statusReports.inc({ outcome: 'error' });
        this.contact(false, 'status', err);
        this.statusDirty = true;
        const delay = backoffDelay(failures++, ctx.backoff);
        ctx.log.debug({ err, retryInMs: delay }, 'status report failed');
        if (!(await pause(ctx, delay))) return;
      }
    }
  }

  private async reportOnce(forceInventory: boolean): Promise<void> {
    const r = this.s.rules;
    let items: InventoryItem[] | null = null;
    let key = this.reportedInventory;
    try {
      const inv = await r.inventory.read();
      key = inventoryKey(inv.items);
      this.ctx.metrics.localContainers.set(inv.items.length);
      if (forceInventory || key !== this.reportedInventory) items = inv.items;
    } catch (err) {
      this.ctx.log.warn({ err }, 'datastore unreadable; status without inventory');
    }
    const overlay = await this.s.overlay.health().catch((err: unknown) => {
      this.ctx.log.warn({ err }, 'overlay health unknown; status without it');
      return null;
    });
    const body = {
      appliedVersion: r.appliedVersion,
      appliedAt: r.lastApplyAt || Date.now(),
      statusIntervalSeconds: this.ctx.config.statusIntervalSeconds,
      ...(r.lastApplyError ? { error: r.lastApplyError } : {}),
      ...(r.refused.length > 0 ? { refused: r.refused.slice(0, 10_000) } : {}),
      ...(items ? { containers: items.slice(0, 10_000) } : {}),
      ...(overlay ? { overlay } : {}),
      dryRun: this.ctx.dryRun,
    };
    await this.ctx.client.putStatus(body, this.ctx.signal);
    this.contact(true, 'status');
    this.ctx.metrics.statusReports.inc({ outcome: 'ok' });
    if (items) this.reportedInventory = key;
  }

  /** The agent's state (`/v1/state`, `cfnet agent status`). */
  status(): AgentStatus {
    const { rules, overlay } = this.s;
    const cellId = this.ctx.config.cellId;
    return {
      cellId,
      lease: overlay.lease,
      peers: overlay.leases.filter((l) => l.cellId !== cellId).length,
      appliedVersion: rules.appliedVersion,
      appliedContainers: rules.applied?.containers.length ?? 0,
      controllerVersion: rules.base?.version ?? 0,
      lastApplyError: rules.lastApplyError,
      lastApplyAt: rules.lastApplyAt,
      cniOnlyContainers: [...rules.local.keys()].sort(),
      controllerReachable: this.controllerReachable,
      lastContactAt: this.lastContactAt,
      executorSocket: this.s.executorSocket(),
      dryRun: this.ctx.dryRun,
      refused: rules.refused,
      memoryMb: Object.fromEntries(
        Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round((v / 1048576) * 10) / 10]),
      ),
    };
  }

  /** Readiness (the metrics server's /readyz): lease held, executor up, rules and iptables fine. */
  readiness(executorOk: boolean): { ok: boolean; checks: Record<string, unknown> } {
    const { rules, overlay } = this.s;
    const checks = {
      lease: { ok: overlay.lease !== null && overlay.subnetWritten, subnet: overlay.lease?.subnet ?? null },
      executor: { ok: executorOk },
      rules: { ok: rules.lastApplyError === '', appliedVersion: rules.appliedVersion },
      iptables: {
        ok: this.s.iptablesError() === '',
        filterMode: this.ctx.config.filterMode,
        backends: this.s.iptablesBackends(),
      },
    };
    return { ok: Object.values(checks).every((c) => c.ok), checks };
  }
}
