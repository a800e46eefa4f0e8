/**
 * Convergence as the demo shows it: per cell the controller's desired rule-set version, the version
 * the cell's agent reports applied, how long the desired one has been waiting (lag), and the
 * latency from the controller writing a version to the agent enforcing it. Read from the rule-set
 * store in Redis (what the controller's dashboard and metrics read) plus each agent's own socket.
 * `ConvergenceTracker` keeps the history; `renderFrame` is pure.
 */
import type { CellState, PendingJob } from '../state/convergence.js';
import type { RuleSetStore } from '../state/ruleset-store.js';

export interface CellView {
  cellId: string;
  desired: number;
  applied: number;
  /** State and lag as src/state/convergence.ts defines them (what `cfnet cells` shows). */
  state: CellState;
  lagMs: number;
  error: string;
  /** From the agent itself (null when its socket did not answer). */
  agent: { subnet: string; containers: number; rssMb: number; controllerReachable: boolean } | null;
}

export interface CellHistory {
  /** Applied-version changes seen. */
  versionsApplied: number;
  maxLagMs: number;
  /** Controller write → agent enforced (ms), one per version seen applied. */
  enforceMs: number[];
}

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
    for (const id of cellIds) this.history.set(id, { versionsApplied: 0, maxLagMs: 0, enforceMs: [] });
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

function pad(text: string, width: number, right = false): string {
  return right ? text.padStart(width) : text.padEnd(width);
}

function state(c: CellView): string {
  if (c.state === 'error') return `error: ${c.error.split('\n')[0]!.slice(0, 60)}`;
  return c.state;
}

/** The table of one snapshot plus a summary line (no colours: it also goes to logs and pipes). */
export function renderFrame(s: Snapshot, history: ReadonlyMap<string, CellHistory>): string[] {
  const head = [
    'cell',
    'subnet',
    'desired version',
    'applied version',
    'lag ms',
    'max lag',
    'applied',
    'rules for',
    'state',
  ];
  const widths = [12, 16, 16, 16, 7, 8, 8, 10, 0];
  const right = [false, false, true, true, true, true, true, true, false];
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (widths[i] ? pad(c, widths[i]!, right[i]) : c))
      .join('  ')
      .trimEnd();
  const out = [line(head)];
  for (const c of s.cells) {
    const h = history.get(c.cellId);
    out.push(
      line([
        c.cellId,
        c.agent?.subnet || '-',
        c.desired ? String(c.desired) : '-',
        c.applied ? String(c.applied) : '-',
        String(c.lagMs),
        String(h?.maxLagMs ?? 0),
        `${h?.versionsApplied ?? 0}x`,
        c.agent ? `${c.agent.containers} ctrs` : 'agent ?',
        state(c),
      ]),
    );
  }
  const ok = s.cells.filter(converged).length;
  const all = [...history.values()].flatMap((h) => h.enforceMs);
  const lat =
    all.length > 0
      ? `; controller write → enforced: p50 ${percentile(all, 0.5)} ms, p99 ${percentile(all, 0.99)} ms (${all.length} version${all.length === 1 ? '' : 's'})`
      : '';
  out.push(`converged ${ok}/${s.cells.length} cells${lat}`);
  return out;
}
