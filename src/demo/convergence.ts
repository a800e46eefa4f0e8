/**
 * Convergence as the demo shows it: per cell the controller's desired rule-set version, the version
 * the cell's agent reports applied, how long the desired one has been waiting (lag), and the
 * latency from the controller writing a version to the agent enforcing it. Read from the rule-set
 * store in Redis (what the controller's dashboard and metrics read) plus each agent's own socket.
 * `ConvergenceTracker` keeps the history; view.ts renders it.
 */
import { type CellState, overlaySummary, type PendingJob } from '../state/convergence.js';
import type { RuleSetStore } from '../state/ruleset-store.js';

export interface CellView {
  cellId: string;
  desired: number;
  applied: number;
  /** State and lag as src/state/convergence.ts defines them (what `cfnet cells` shows). */
  state: CellState;
  lagMs: number;
  error: string;
  /** The overlay as the agent reported it (`2/3 peers`, `…, no lease`; '' when not reported). */
  overlay?: string;
  /** From the agent itself (null when its socket did not answer). */
  agent: { subnet: string; containers: number; rssMb: number; controllerReachable: boolean } | null;
}

export interface CellHistory {
  /** Applied-version changes seen. */
  versionsApplied: number;
  maxLagMs: number;
  /** Controller write → agent enforced (ms), one per version seen applied. */
  enforceMs: number[];
  /** Desired versions seen, ascending (the view numbers them `#1`, `#2`…); the oldest are dropped. */
  desiredSeen: number[];
  /** How many were dropped from the front of `desiredSeen`. */
  desiredDropped: number;
}

/** Desired versions kept per cell for the view's numbering (a long demo drops the oldest). */
const DESIRED_SEEN_MAX = 256;

export interface Snapshot {
  at: number;
  cells: CellView[];
}

export function percentile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function converged(c: CellView): boolean {
  return c.state === 'converged';
}

export class ConvergenceTracker {
  readonly history = new Map<string, CellHistory>();
  private readonly lastApplied = new Map<string, number>();

  constructor(
    private readonly store: RuleSetStore,
    private readonly cellIds: readonly string[],
    private readonly agentState: (cellId: string) => Promise<Record<string, unknown>>,
    /** The reconcile queue's unfinished jobs by cell (cells with one are `pending`). */
    private readonly pending: () => Promise<ReadonlyMap<string, PendingJob>> = async () => new Map(),
  ) {
    for (const id of cellIds)
      this.history.set(id, {
        versionsApplied: 0,
        maxLagMs: 0,
        enforceMs: [],
        desiredSeen: [],
        desiredDropped: 0,
      });
  }

  /** One look at every cell; records newly applied versions and their enforce latency. */
  async poll(now = Date.now()): Promise<Snapshot> {
    const pending = await this.pending().catch(() => new Map<string, PendingJob>());
    const rows = new Map((await this.store.convergence({ now, pending })).map((r) => [r.cellId, r]));
    const cells = await Promise.all(
      this.cellIds.map(async (cellId): Promise<CellView> => {
        const r = rows.get(cellId);
        const view: CellView = {
          cellId,
          desired: r?.desired ?? 0,
          applied: r?.applied ?? 0,
          state: r?.state ?? 'no-rule-set',
          lagMs: r?.lagMs ?? 0,
          error: r?.error ?? '',
          overlay: r ? overlaySummary(r.overlay) : '',
          agent: await this.agentView(cellId),
        };
        await this.record(view);
        return view;
      }),
    );
    return { at: now, cells };
  }

  private async agentView(cellId: string): Promise<CellView['agent']> {
    try {
      const s = await this.agentState(cellId);
      const lease = s.lease as { subnet?: string } | null;
      const mem = s.memoryMb as { rss?: number } | undefined;
      return {
        subnet: lease?.subnet ?? '',
        containers: Number(s.appliedContainers ?? 0),
        rssMb: Number(mem?.rss ?? 0),
        controllerReachable: s.controllerReachable === true,
      };
    } catch {
      return null;
    }
  }

  private async record(v: CellView): Promise<void> {
    const h = this.history.get(v.cellId)!;
    h.maxLagMs = Math.max(h.maxLagMs, v.lagMs);
    // versions only grow (each is above the one before it), so the list stays sorted
    if (v.desired > (h.desiredSeen.at(-1) ?? 0)) {
      h.desiredSeen.push(v.desired);
      if (h.desiredSeen.length > DESIRED_SEEN_MAX) {
        h.desiredSeen.shift();
        h.desiredDropped++;
      }
    }
    const before = this.lastApplied.get(v.cellId);
    if (v.applied === 0 || v.applied === before) return;
    this.lastApplied.set(v.cellId, v.applied);
    h.versionsApplied++;
    if (before === undefined || v.applied !== v.desired) return;
    // both clocks are this machine's: the controller's write time (Redis TIME) and the agent's apply time
    const [meta, status] = await Promise.all([this.store.meta(v.cellId), this.store.status(v.cellId)]);
    if (meta && status && meta.version === status.appliedVersion) {
      const ms = status.appliedAt - meta.updatedAt;
      if (ms >= 0) h.enforceMs.push(ms);
    }
  }

  /** Every enforce latency recorded, all cells. */
  allEnforceMs(): number[] {
    return [...this.history.values()].flatMap((h) => h.enforceMs);
  }
}
