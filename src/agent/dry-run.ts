/**
 * Dry-run stand-ins for the two kernel writers of the agent (`cfnet agent --dry-run`): everything
 * up to the kernel runs for real (lease, long-poll, merge, validation, nft rendering and diffing,
 * overlay diffing, status reports), but no nft transaction, VXLAN device, route, neighbour or FDB
 * entry is written. What a kernel would hold is kept in memory, so "applied" versions, incremental
 * diffs and drift checks behave as on a real cell. For demos and laptops without root.
 */

import { type FilterMode, SELF_CONTAINED_MODE } from '../dataplane/host-filter.js';
import {
  type ApplyResult,
  type ChainSpec,
  type ContainerOpResult,
  compareStates,
  DataplaneStateError,
  type DriftReport,
  desiredState,
  diffStates,
  emptyCanon,
  emptyState,
  expectedHeader,
  type KernelState,
  type NftDataplane,
  renderStateFull,
  staticChains,
  type TableState,
} from '../dataplane/index.js';
import { CfnetError } from '../lib/errors.js';
import type { CellRuleSet } from '../model/types.js';
import { cloneOverlay, diffOverlay, emptyOverlay, type OverlayState } from './overlay.js';
import type { VtepSpec, Vxlan } from './vxlan.js';

/** What the agent needs of its nft dataplane. */
export type AgentDataplane = Pick<
  NftDataplane,
  | 'apply'
  | 'applyFull'
  | 'detectDrift'
  | 'repair'
  | 'readBack'
  | 'addContainer'
  | 'removeContainer'
  | 'removeAttachment'
  | 'addressUse'
  | 'close'
>;

/** What the agent needs of its VXLAN device. */
export type OverlayDevice = Pick<Vxlan, 'ensureDevice' | 'sync' | 'readKernel'>;

/** An operation that would change the kernel outside a rule set (the CNI path) in dry-run mode. */
export class DryRunError extends CfnetError {
  constructor(message: string) {
    super('CFNET_AGENT_DRY_RUN', message);
  }
}

/** Renders and diffs like NftDataplane; the "kernel" is the last rendered state. */
export class DryRunDataplane implements AgentDataplane {
  private state: TableState | null = null;
  private rules: CellRuleSet | null = null;

  private readonly statics: ChainSpec[];

  /** `filterMode`: whose static chains the stand-in kernel holds (as NftDataplane's option). */
  constructor(
    readonly table: string,
    readonly filterMode: FilterMode = SELF_CONTAINED_MODE,
  ) {
    this.statics = staticChains(filterMode);
  }

  async close(): Promise<void> {}

  async applyFull(rs: CellRuleSet): Promise<ApplyResult> {
    const t0 = performance.now();
    const next = desiredState(rs);
    const bytes = renderStateFull(next, { table: this.table, filterMode: this.filterMode }).length;
    this.state = next;
    this.rules = rs;
    return { mode: 'full', ms: performance.now() - t0, bytes };
  }

  async apply(rs: CellRuleSet): Promise<ApplyResult> {
    if (!this.state) return this.applyFull(rs);
    const t0 = performance.now();
    const next = desiredState(rs);
    const diff = diffStates(this.state, next, { table: this.table });
    this.state = next;
    this.rules = rs;
    return {
      mode: diff.script === '' ? 'noop' : 'incremental',
      ms: performance.now() - t0,
      bytes: diff.script.length,
      summary: diff.summary,
    };
  }

  async readBack(): Promise<KernelState> {
    const s = this.state ?? emptyState();
    const statics = this.statics;
    // the stand-in kernel holds base chains exactly as rendered (rules compare by count and marker)
    const headers = new Map([...s.chains.values(), ...statics].map((c) => [c.name, expectedHeader(c.hook)]));
    return {
      sets: s.sets,
      chains: s.chains,
      exists: this.state !== null,
      staticChains: new Map(statics.map((c) => [c.name, c])),
      unknownSets: [],
      unparsed: [],
      canon: { ...emptyCanon(), headers },
    };
  }

  async detectDrift(expected?: CellRuleSet): Promise<DriftReport> {
    const want = expected ? desiredState(expected) : this.state;
    if (!want) throw new DataplaneStateError('no expected rule set: nothing applied yet');
    return compareStates(want, await this.readBack(), undefined, this.statics);
  }

  async repair(expected?: CellRuleSet): Promise<{ report: DriftReport; repaired: boolean }> {
    const rs = expected ?? this.rules;
    if (!rs) throw new DataplaneStateError('no expected rule set: nothing applied yet');
    const report = await this.detectDrift(rs);
    if (report.drift) await this.applyFull(rs);
    return { report, repaired: report.drift };
  }

  addContainer(): Promise<ContainerOpResult> {
    return Promise.reject(new DryRunError('dry run: containers are not attached (no CNI executor)'));
  }

  removeContainer(): Promise<ContainerOpResult> {
    return Promise.reject(new DryRunError('dry run: containers are not detached (no CNI executor)'));
  }

  removeAttachment(): Promise<ContainerOpResult> {
    return this.removeContainer();
  }

  /** Nothing is in a dry run's kernel. */
  addressUse(): Promise<{ handles: Map<string, string>; netIn: Map<number, string> }> {
    return Promise.resolve({ handles: new Map(), netIn: new Map() });
  }
}

/** Diffs overlay entries like Vxlan.sync and remembers the device spec; runs no `ip`/`bridge`. */
export class DryRunOverlay implements OverlayDevice {
  private device = '';
  private known: OverlayState = emptyOverlay();

  constructor(readonly dev: string) {}

  async ensureDevice(spec: VtepSpec): Promise<string[]> {
    const text = JSON.stringify(spec);
    if (text === this.device) return [];
    const done = this.device === '' ? 'created (dry run)' : 'updated (dry run)';
    this.device = text;
    return [done];
  }

  async sync(desired: OverlayState): Promise<number> {
    const d = diffOverlay(this.known, desired, this.dev);
    this.known = cloneOverlay(desired);
    return d.changes;
  }

  /** What a kernel would hold: the entries last synced. */
  async readKernel(): Promise<OverlayState> {
    return cloneOverlay(this.known);
  }
}
