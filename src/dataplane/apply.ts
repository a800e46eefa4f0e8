/**
 * NftDataplane: applies cell rule sets to cfnet's nft table, one nft transaction per change.
 * - apply(next): incremental from the last applied state; full replace when there is none or when
 *   the incremental transaction fails (e.g. another writer changed the table meanwhile).
 * - Transport: `nft -f -` (a process per transaction); with `session`, incremental transactions
 *   go through one long-lived `nft -i` process instead (session.ts says why). Full replaces always
 *   use `nft -f` (a process that exits releases the old table's memory promptly).
 * - addContainer / removeContainer: the CNI path; work from the kernel's current table (read-back),
 *   so they run from a fresh process without in-memory state. Idempotent.
 * - detectDrift / repair: compare the kernel's table with the expectation; re-apply in full.
 * Applies are serialised in-process and locked across processes (proper-lockfile in stateDir).
 *
 * Longer than ~400 lines: the one owner of a cell's nft transactions (rule-set applies, CNI
 * add/remove, drift repair), all under one in-process and one cross-process lock.
 */
import { mkdir } from 'node:fs/promises';
import lockfile from 'proper-lockfile';
import { CfnetError } from '../lib/errors.js';
import { defaultLogger, type Logger } from '../lib/log.js';
import type { C2CAllow, CellConfig, CellContainer, CellRuleSet, EgressRule } from '../model/types.js';
import { CanonLearner } from './canon.js';
import {
  addC2CTo,
  addContainerTo,
  desiredState,
  emptyState,
  type TableState,
  validateConfig,
} from './desired.js';
import { atomId, type Element, ipv4Text, SET_DEFS } from './elements.js';
import { type FilterMode, SELF_CONTAINED_MODE } from './host-filter.js';
import {
  ASG_CHAIN,
  asgChainName,
  type ChainSpec,
  checkTable,
  DEFAULT_LOCK_DIR,
  DEFAULT_TABLE,
  logChainIp,
  nftLockFile,
  staticChains,
} from './layout.js';
import { applyScript, NftApplyError, type NftRunOptions, runNft } from './nft.js';
import { NftQuerySession } from './query-session.js';
import { compareStates, type DriftReport, type KernelState, parseKernelState } from './readback.js';
import { type DiffSummary, diffStates, renderStateFull } from './render.js';
import { NftSession } from './session.js';

/**
 * A container operation found its address held by another attachment in the table (ctr_addrs names
 * another handle): nothing was changed. `owner` is that handle.
 */
export class AddressTakenError extends CfnetError {
  readonly ip: string;
  readonly owner: string;

  constructor(ip: string, owner: string, handle: string) {
    super(
      'CFNET_DATAPLANE_ADDRESS_TAKEN',
      `address ${ip} belongs to ${owner} in the nft table, not to ${handle}: nothing changed`,
      { ip, owner, handle },
    );
    this.ip = ip;
    this.owner = owner;
  }
}

/** One attachment as its owner recorded it (the CNI datastore): what removeAttachment acts on. */
export interface AttachmentRef {
  /** Its handle in the table (the ctr_addrs comment). */
  handle: string;
  /** Its address; null when unknown (then found by the ctr_addrs comment). */
  ip: string | null;
  /** NetIn host ports it was given. */
  hostPorts?: readonly number[];
  /** Its ASG rule-set hash (the `asg_<hash>` chain its ctr_asg element jumps to). */
  egress?: string;
}

/** detectDrift / repair without an expectation before anything was applied. */
export class DataplaneStateError extends CfnetError {
  constructor(message: string) {
    super('CFNET_DATAPLANE_NO_STATE', message);
  }
}

export interface NftDataplaneOptions {
  /** cfnet's table (family inet); default `cfnet`. */
  table?: string;
  /** Run nft inside this network namespace (`ip netns exec`, or `nsenter` when netnsEnter). */
  netns?: string;
  /** Enter the namespace with `nsenter --net=/run/netns/<ns>` (no mount namespace: faster). */
  netnsEnter?: boolean;
  /** nft binary; default `nft`. */
  nft?: string;
  /**
   * Static chains of this filter mode (host-filter.ts). Default `nftables`: the table rejects by
   * itself; `iptables` only for a writer that keeps cfnet's iptables rules in place (the agent).
   */
  filterMode?: FilterMode;
  /** Directory for the cross-process lock; default DEFAULT_LOCK_DIR (shared with the agent and the CNI plugin). */
  stateDir?: string;
  /** Take the cross-process lock around each transaction (default true). */
  lock?: boolean;
  /**
   * Keep one `nft -i` process for incremental transactions up to `sessionMaxBytes` (for a
   * long-lived agent; call close() when done). Full replaces always run `nft -f`. Default false.
   */
  session?: boolean;
  /** Largest script sent through the session (default 1 MiB; larger ones use `nft -f`). */
  sessionMaxBytes?: number;
  logger?: Logger;
}

export interface ApplyResult {
  mode: 'full' | 'incremental' | 'noop';
  /** Wall time of the whole call (render + nft), ms. */
  ms: number;
  /** Bytes of nft script sent. */
  bytes: number;
  summary?: DiffSummary;
  /** Set when an incremental transaction failed and a full replace was done instead. */
  fallbackFrom?: NftApplyError;
}

export interface ContainerOpResult {
  changed: boolean;
  ms: number;
  /** Address the operation acted on (null when nothing was found). */
  ip: string | null;
}

export class NftDataplane {
  readonly table: string;
  readonly filterMode: FilterMode;
  private readonly statics: ChainSpec[];
  private readonly run: NftRunOptions;
  private readonly stateDir: string;
  private readonly useLock: boolean;
  private readonly log: Logger;
  private last: { rs: CellRuleSet; state: TableState } | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private dirReady = false;
  private readonly session: NftSession | null;
  private readonly querySession: NftQuerySession | null;
  private readonly sessionMaxBytes: number;
  private readonly canon: CanonLearner;

  constructor(opts: NftDataplaneOptions = {}) {
    this.table = checkTable(opts.table ?? DEFAULT_TABLE);
    this.filterMode = opts.filterMode ?? SELF_CONTAINED_MODE;
    this.statics = staticChains(this.filterMode);
    this.run = {};
    if (opts.netns !== undefined) this.run.netns = opts.netns;
    if (opts.nft !== undefined) this.run.nft = opts.nft;
    if (opts.netnsEnter) this.run.nsenter = true;
    this.stateDir = opts.stateDir ?? DEFAULT_LOCK_DIR;
    this.useLock = opts.lock ?? true;
    this.log = opts.logger ?? defaultLogger('dataplane');
    this.session = opts.session ? new NftSession(this.run) : null;
    this.canon = new CanonLearner(this.run, this.log, { filterMode: this.filterMode });
    // the CNI executor's address listings go through a long-lived `nft -j -i` as well
    this.querySession = opts.session ? new NftQuerySession(this.run) : null;
    this.sessionMaxBytes = opts.sessionMaxBytes ?? 1 << 20;
  }

  /** Ends the nft session, if any (rules stay; a later call starts a new one). */
  async close(): Promise<void> {
    await Promise.all([this.session?.close(), this.querySession?.close()]);
  }

  /**
   * The rule set last applied by this instance (a copy; null before the first apply). The diff base
   * for the next apply is derived state, so callers may reuse or mutate the objects they passed in.
   */
  current(): CellRuleSet | null {
    return this.last ? structuredClone(this.last.rs) : null;
  }

  /** Replaces the whole table with `rs` (one transaction). */
  applyFull(rs: CellRuleSet): Promise<ApplyResult> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      const state = desiredState(rs);
      const bytes = await this.full(rs, state);
      return { mode: 'full', ms: performance.now() - t0, bytes };
    });
  }

  /** Incremental update from the last applied rule set; full when none or when it fails. */
  apply(next: CellRuleSet): Promise<ApplyResult> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      const state = desiredState(next); // validates before anything is sent
      if (!this.last) {
        const bytes = await this.full(next, state);
        return { mode: 'full', ms: performance.now() - t0, bytes };
      }
      const diff = diffStates(this.last.state, state, { table: this.table });
      if (diff.script === '') {
        this.last = { rs: next, state };
        return { mode: 'noop', ms: performance.now() - t0, bytes: 0, summary: diff.summary };
      }
      try {
        await this.patch(diff.script);
        this.last = { rs: next, state };
        return {
          mode: 'incremental',
          ms: performance.now() - t0,
          bytes: diff.script.length,
          summary: diff.summary,
        };
      } catch (err) {
        if (!(err instanceof NftApplyError)) throw err;
        this.log.warn({ err: err.toJSON() }, 'incremental nft transaction failed; applying in full');
        const bytes = await this.full(next, state);
        return { mode: 'full', ms: performance.now() - t0, bytes, fallbackFrom: err };
      }
    });
  }

  /** Reads the kernel's table (`nft -j list table`). exists=false when there is none. */
  async readBack(): Promise<KernelState> {
    try {
      const { stdout } = await runNft(['-j', 'list', 'table', 'inet', this.table], undefined, this.run);
      return parseKernelState(stdout, this.table);
    } catch (err) {
      if (err instanceof NftApplyError && /No such file or directory/.test(err.stderr)) {
        return parseKernelState({ nftables: [] }, this.table);
      }
      throw err;
    }
  }

  /**
   * Which addresses the table holds, read cheaply for CNI ADD's address check: ctr_addrs (address →
   * handle) and netin_dnat (host port → address), each listed on its own (`nft -j list set|map`, a
   * few ms; the whole table costs tens of ms on a full cell). No table: both empty.
   */
  async addressUse(): Promise<{ handles: Map<string, string>; netIn: Map<number, string> }> {
    const list = async (kind: 'set' | 'map', name: string): Promise<Map<string, Element>> => {
      try {
        const args = ['list', kind, 'inet', this.table, name];
        const stdout = this.querySession
          ? await this.querySession.query(args.join(' '))
          : (await runNft(['-j', ...args], undefined, this.run)).stdout;
        return parseKernelState(stdout, this.table).sets.get(name) ?? new Map();
      } catch (err) {
        if (err instanceof NftApplyError && /No such file or directory/.test(err.stderr)) return new Map();
        throw err;
      }
    };
    const [addrs, dnat] = await Promise.all([list('set', 'ctr_addrs'), list('map', 'netin_dnat')]);
    const handles = new Map<string, string>();
    for (const e of addrs.values()) if (e.key[0]) handles.set(atomId(e.key[0]), e.comment ?? '');
    const netIn = new Map<number, string>();
    for (const e of dnat.values()) {
      const [port] = e.key;
      const [to] = e.value ?? [];
      if (port?.k === 'port' && to) netIn.set(port.v, atomId(to));
    }
    return { handles, netIn };
  }

  /** Differences between the kernel's table and `expected` (default: the last applied rule set). */
  async detectDrift(expected?: CellRuleSet): Promise<DriftReport> {
    const want = expected ? desiredState(expected) : this.last?.state;
    if (!want) throw new DataplaneStateError('no expected rule set: nothing applied yet');
    return this.compare(want);
  }

  /** The kernel's table compared canonically with `want` (every rule, in order). */
  private async compare(want: TableState): Promise<DriftReport> {
    await this.canon.learn(want.chains.values());
    return compareStates(want, await this.readBack(), this.canon, this.statics);
  }

  /**
   * Re-applies in full when the kernel's table differs from `expected` (default: the last applied
   * state, including containers added or removed through addContainer/removeContainer here).
   */
  repair(expected?: CellRuleSet): Promise<{ report: DriftReport; repaired: boolean }> {
    return this.exclusive(async () => {
      const rs = expected ?? this.last?.rs;
      const state = expected ? desiredState(expected) : this.last?.state;
      if (!rs || !state) throw new DataplaneStateError('no expected rule set: nothing applied yet');
      const report = await this.compare(state);
      if (!report.drift) return { report, repaired: false };
      this.log.warn({ report: summarise(report) }, 'nft table drifted; re-applying in full');
      await this.full(rs, state);
      return { report, repaired: true };
    });
  }

  /**
   * Adds (or updates) one container from the kernel's current table: its memberships, ASG jump,
   * tag, NetIn mappings and log chains, and `opts.c2c` (allow entries to its address; the agent
   * derives them locally); creates its ASG chain only if missing. One transaction;
   * none when the table already holds exactly this. Creates the table when it does not exist.
   *
   * `fresh`: the caller vouches that the table holds nothing of this container (the CNI ADD of a
   * just-allocated address), so its part is added without the read-back, whose cost grows with
   * the cell (~30 ms at 250 containers). Its ASG chain is written with add + flush + rules (the
   * same content, atomically). Any conflict (no table yet, a map element already there with
   * another value) fails that transaction as a whole, and the read-back path then does it exactly.
   */
  addContainer(
    container: CellContainer,
    egressRules: EgressRule[],
    config: CellConfig,
    opts: { fresh?: boolean; takeOver?: (owner: string) => boolean; c2c?: readonly C2CAllow[] } = {},
  ): Promise<ContainerOpResult> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      validateConfig(config);
      const c2c = (opts.c2c ?? []).filter((e) => e.dstIp === container.ip);
      const nextPart = emptyState();
      addContainerTo(nextPart, container, egressRules, config, 'container', 'egressRules');
      addC2CTo(nextPart, { c2c });
      if (opts.fresh) {
        const blind = diffStates(emptyState(), nextPart, { table: this.table });
        // `create`, not `add`: the transaction fails as a whole when anyone holds this address in
        // ctr_addrs already, so a fresh add can never merge into another attachment's elements
        const script = blind.script.replace(
          `add element inet ${this.table} ctr_addrs `,
          `create element inet ${this.table} ctr_addrs `,
        );
        try {
          await this.patch(script);
          if (this.last) patchState(this.last.state, emptyState(), nextPart);
          return { changed: true, ms: performance.now() - t0, ip: container.ip };
        } catch (err) {
          if (!(err instanceof NftApplyError)) throw err;
          this.log.debug({ err }, 'fresh container add conflicted; reading the table back');
        }
      }
      const kernel = await this.readBack();
      if (!kernel.exists) {
        const rs: CellRuleSet = {
          cellId: '',
          version: 0,
          containers: [container],
          asgSets: { [container.egress]: egressRules },
          c2c,
          config,
        };
        const state = desiredState(rs);
        await this.transaction(renderStateFull(state, { table: this.table, filterMode: this.filterMode }));
        return { changed: true, ms: performance.now() - t0, ip: container.ip };
      }
      const ips = new Set([container.ip]);
      for (const e of kernel.sets.get('ctr_addrs')?.values() ?? []) {
        const ip = atomId(e.key[0]!);
        // another attachment's address is taken over only when the caller says that attachment is
        // gone (a stale entry: asked now, as the agent may have applied a rule set still listing a
        // departed container since the caller last looked); otherwise its elements would become ours
        const other = e.comment !== undefined && e.comment !== container.handle;
        if (ip === container.ip && other && !(opts.takeOver?.(e.comment!) ?? false)) {
          throw new AddressTakenError(ip, e.comment!, container.handle);
        }
        if (e.comment === container.handle) ips.add(ip);
      }
      const keepC2C = new Set([container.ip]);
      const prevPart = containerPart(kernel, ips, keepC2C);
      const asg = [...nextPart.chains.keys()].find((n) => ASG_CHAIN.test(n))!;
      const existing = kernel.chains.get(asg);
      if (existing) prevPart.chains.set(asg, nextPart.chains.get(asg)!); // create only if missing
      collectUnusedAsgChains(kernel, prevPart, nextPart);
      const diff = diffStates(prevPart, nextPart, { table: this.table });
      if (diff.script === '') return { changed: false, ms: performance.now() - t0, ip: container.ip };
      await this.patch(diff.script);
      if (this.last) patchState(this.last.state, prevPart, nextPart);
      return { changed: true, ms: performance.now() - t0, ip: container.ip };
    });
  }

  /** Removes one container (by handle or address) from the kernel's table. Idempotent. */
  removeContainer(handleOrIp: string): Promise<ContainerOpResult> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      const kernel = await this.readBack();
      if (!kernel.exists) return { changed: false, ms: performance.now() - t0, ip: null };
      let ip = ipv4Text(handleOrIp);
      if (ip === null) {
        for (const e of kernel.sets.get('ctr_addrs')?.values() ?? []) {
          if (e.comment === handleOrIp) ip = atomId(e.key[0]!);
        }
      }
      if (ip === null) return { changed: false, ms: performance.now() - t0, ip: null };
      const prevPart = containerPart(kernel, new Set([ip]), new Set());
      const nextPart = emptyState();
      collectUnusedAsgChains(kernel, prevPart, nextPart);
      const diff = diffStates(prevPart, nextPart, { table: this.table });
      if (diff.script === '') return { changed: false, ms: performance.now() - t0, ip };
      await this.patch(diff.script);
      if (this.last) patchState(this.last.state, prevPart, nextPart);
      return { changed: true, ms: performance.now() - t0, ip };
    });
  }

  /**
   * Removes one attachment as its owner recorded it (the CNI datastore), not as the table labels it:
   * every element of its address whatever their comments (so it works after its ctr_addrs element
   * or a comment went missing), the NetIn mappings of its host ports that point at that address, its
   * log chains, and its ASG chain once nothing jumps to it. When ctr_addrs names another handle for
   * the address, nothing is removed (`foreignOwner` says whose it is). `ip` null: the address is
   * found by the ctr_addrs comment (an attachment without a record). Idempotent.
   */
  removeAttachment(ref: AttachmentRef): Promise<ContainerOpResult & { foreignOwner?: string }> {
    return this.exclusive(async () => {
      const t0 = performance.now();
      const kernel = await this.readBack();
      if (!kernel.exists) return { changed: false, ms: performance.now() - t0, ip: ref.ip };
      const addrs = kernel.sets.get('ctr_addrs') ?? new Map<string, Element>();
      let ip = ref.ip;
      if (ip === null) {
        for (const e of addrs.values()) if (e.comment === ref.handle) ip = atomId(e.key[0]!);
      }
      if (ip === null) return { changed: false, ms: performance.now() - t0, ip: null };
      for (const e of addrs.values()) {
        if (atomId(e.key[0]!) !== ip || e.comment === undefined || e.comment === ref.handle) continue;
        return { changed: false, ms: performance.now() - t0, ip, foreignOwner: e.comment };
      }
      const prevPart = containerPart(kernel, new Set([ip]), new Set());
      const ports = new Set(ref.hostPorts ?? []);
      const dnat = prevPart.sets.get('netin_dnat')!;
      for (const [id, e] of kernel.sets.get('netin_dnat') ?? []) {
        const [port] = e.key;
        const [to] = e.value ?? [];
        if (port?.k === 'port' && ports.has(port.v) && to && atomId(to) === ip) dnat.set(id, e);
      }
      const nextPart = emptyState();
      collectUnusedAsgChains(
        kernel,
        prevPart,
        nextPart,
        ref.egress === undefined ? [] : [asgChainName(ref.egress)],
      );
      const diff = diffStates(prevPart, nextPart, { table: this.table });
      if (diff.script === '') return { changed: false, ms: performance.now() - t0, ip };
      await this.patch(diff.script);
      if (this.last) patchState(this.last.state, prevPart, nextPart);
      return { changed: true, ms: performance.now() - t0, ip };
    });
  }

  /** Deletes cfnet's table (if present) and forgets the last applied state. */
  deleteTable(): Promise<void> {
    return this.exclusive(async () => {
      await this.transaction(`table inet ${this.table} {}\ndelete table inet ${this.table}\n`);
      this.last = null;
    });
  }

  // ------------------------------------------------------------------ internals

  private async full(rs: CellRuleSet, state: TableState): Promise<number> {
    const script = renderStateFull(state, { table: this.table, filterMode: this.filterMode });
    await this.transaction(script);
    this.last = { rs, state };
    return script.length;
  }

  private async transaction(script: string): Promise<void> {
    await applyScript(script, this.run);
  }

  /** An incremental script: through the session when it is small enough. */
  private async patch(script: string): Promise<void> {
    if (this.session && script.length <= this.sessionMaxBytes) await this.session.run(script);
    else await this.transaction(script);
  }

  /** In-process FIFO plus the cross-process lock. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      if (!this.useLock) return fn();
      const release = await this.lock();
      try {
        return await fn();
      } finally {
        await release().catch(() => undefined);
      }
    };
    const p = this.queue.then(run, run);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private async lock(): Promise<() => Promise<void>> {
    if (!this.dirReady) {
      await mkdir(this.stateDir, { recursive: true });
      this.dirReady = true;
    }
    return lockfile.lock(nftLockFile(this.stateDir, this.table, this.run.netns), {
      realpath: false,
      stale: 10_000,
      // a lock we could not refresh in time is logged, never a process crash
      onCompromised: (err) => this.log.warn({ err }, 'nft lock compromised'),
      retries: { retries: 400, factor: 1.2, minTimeout: 2, maxTimeout: 50 },
    });
  }
}

/** Every element (and per-container chain) of the kernel that belongs to one of `ips`. */
function containerPart(kernel: KernelState, ips: Set<string>, keepC2CFor: Set<string>): TableState {
  const part = emptyState();
  for (const d of SET_DEFS) {
    if (!d.containerField) continue;
    const [where, idx] = d.containerField;
    const target = part.sets.get(d.name)!;
    for (const [id, e] of kernel.sets.get(d.name) ?? []) {
      const atom = (where === 'key' ? e.key : e.value)?.[idx];
      if (!atom) continue;
      const ip = atomId(atom);
      if (!ips.has(ip)) continue;
      if (d.name.startsWith('c2c_') && keepC2CFor.has(ip)) continue;
      target.set(id, e);
    }
  }
  for (const [name, c] of kernel.chains) {
    const ip = logChainIp(name);
    if (ip !== null && ips.has(ip)) part.chains.set(name, c);
  }
  return part;
}

function asgTargets(elems: Iterable<Element>): Set<string> {
  const out = new Set<string>();
  for (const e of elems) {
    const v = e.value?.[0];
    if (v?.k === 'verdict') out.add(v.target);
  }
  return out;
}

/**
 * Adds to prevPart the ASG chains no element will reference once prevPart becomes nextPart: those
 * the removed ctr_asg elements jumped to, and `also` (a chain a record names whose element is gone).
 */
function collectUnusedAsgChains(
  kernel: KernelState,
  prevPart: TableState,
  nextPart: TableState,
  also: readonly string[] = [],
): void {
  const removed = prevPart.sets.get('ctr_asg')!;
  const stillUsed = new Set<string>();
  for (const [id, e] of kernel.sets.get('ctr_asg') ?? []) {
    if (removed.has(id)) continue;
    const v = e.value?.[0];
    if (v?.k === 'verdict') stillUsed.add(v.target);
  }
  for (const t of asgTargets(nextPart.sets.get('ctr_asg')!.values())) stillUsed.add(t);
  for (const t of new Set([...asgTargets(removed.values()), ...also])) {
    const chain = kernel.chains.get(t);
    if (chain && !stillUsed.has(t) && !nextPart.chains.has(t)) prevPart.chains.set(t, chain);
  }
}

/** Applies a part change (prev -> next) to a full state, keeping it in step with the kernel. */
function patchState(state: TableState, prevPart: TableState, nextPart: TableState): void {
  for (const [set, elems] of prevPart.sets) {
    const m = state.sets.get(set);
    if (m) for (const id of elems.keys()) m.delete(id);
  }
  for (const name of prevPart.chains.keys()) if (!nextPart.chains.has(name)) state.chains.delete(name);
  for (const [set, elems] of nextPart.sets) {
    const m = state.sets.get(set);
    if (m) for (const [id, e] of elems) m.set(id, e);
  }
  for (const [name, c] of nextPart.chains) if (!state.chains.has(name)) state.chains.set(name, c);
}

export function summarise(r: DriftReport): Record<string, unknown> {
  return {
    tableMissing: r.tableMissing,
    tableFlags: r.tableFlags,
    changedRules: r.changedRules.slice(0, 10),
    changedHeaders: r.changedHeaders,
    changedSetDecls: r.changedSetDecls,
    foreignObjects: r.foreignObjects,
    missingSets: r.missingSets.length,
    missingElements: r.missingElements.length,
    extraElements: r.extraElements.length,
    missingChains: r.missingChains.length,
    extraChains: r.extraChains.length,
    changedChains: r.changedChains.length,
  };
}
