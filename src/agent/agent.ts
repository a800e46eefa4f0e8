/**
 * The cell agent (one per Diego cell, docs/agent.md). Start-up order, chosen so that a restart
 * never opens or cuts traffic:
 *  1. load the saved state (lease, leases, controller rule set, CNI-time containers);
 *  2. rules: in `iptables` filter mode, cfnet's iptables rules in INPUT and FORWARD of every
 *     usable iptables backend first (its denials are confirmed there, after operators' rules:
 *     iptables.ts); then if the kernel table
 *     already equals the saved rule set (read-back), apply nothing; otherwise replace it in one nft
 *     transaction. Never a flush, never an empty table;
 *  3. overlay: keep the VXLAN device if it matches, program the saved leases (diffed);
 *  4. serve: the warm CNI executor and the local socket, the metrics endpoint;
 *  5. background: lease renewal + leases of the other cells, the rule-set long-poll (patches
 *     since the saved version), status reports, drift repair: `nft monitor` reports a foreign
 *     change to the table (repaired within `nftWatchDelayMs` + one comparison), and a periodic
 *     full comparison of the table, the overlay and cfnet's iptables rules is the backstop.
 * The rule set is admitted container by container (dataplane/admit.ts): what the dataplane
 * cannot enforce is refused by itself and reported, the rest of the cell's rule set is applied.
 * With `dryRun` the nft table and the VXLAN device are stand-ins that render and diff but write
 * nothing (dry-run.ts), and no CNI executor is hosted: the agent needs no root.
 * While the controller is unreachable everything in force stays in force (fail-static); requests
 * are retried with exponential backoff and jitter. `stop()` (SIGTERM) drains: stops polling,
 * closes the executor socket, waits for an apply in progress, saves state. Rules stay.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { backoffDelay, sleep } from '../cf/backoff.js';
import type { CniEvent } from '../cni/agent-client.js';
import type { NetConfig } from '../cni/config.js';
import { nftDataplaneFactory } from '../cni/dataplane.js';
import { type CniExecutor, startCniExecutor } from '../cni/executor.js';
import type { ContainerDataplane } from '../cni/plugin/index.js';
import { admitRuleSet, type Refusal } from '../dataplane/admit.js';
import { type AttachmentRef, NftDataplane, summarise as summariseDrift } from '../dataplane/apply.js';
import { NftMonitor } from '../dataplane/monitor.js';
import { CfnetError, errorMessage, ValidationError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { createRegistry, type Registry } from '../lib/metrics.js';
import type { CellContainer, CellRuleSet, EgressRule } from '../model/types.js';
import { ControllerClient, ControllerRequestError, type InventoryItem, type OverlayLease } from './client.js';
import type { AgentConfig } from './config.js';
import { type AgentDataplane, DryRunDataplane, DryRunOverlay, type OverlayDevice } from './dry-run.js';
import type { Runner } from './exec.js';
import { AgentIdentity } from './identity.js';
import { type Inventory, InventoryReader, inventoryKey } from './inventory.js';
import { IptablesBackends } from './iptables.js';
import { type LocalContainer, localC2C, mergeLocal } from './merge.js';
import { type AgentMetrics, agentMetrics } from './metrics.js';
import { Mutex } from './mutex.js';
import { desiredOverlay, mergePeerLeases, vtepIpOf, vtepMacOf } from './overlay.js';
import { type PullUpdate, RulePuller } from './pull.js';
import { recoverFromKernel } from './recover.js';
import { type RunningHttp, startLocalServer, startMetricsServer } from './servers.js';
import { StateFile, writeFileAtomic } from './state.js';
import { detectUnderlay, type Underlay, VXLAN_OVERHEAD, Vxlan } from './vxlan.js';

export interface AgentOptions {
  config: AgentConfig;
  logger?: Logger;
  registry?: Registry;
  /** TLS material instead of reading caCert/clientCert/clientKey files. */
  tls?: { ca: string; cert: string; key: string };
  /** Render and report, change nothing in the kernel (see dry-run.ts). */
  dryRun?: boolean;
  /** Runner of host commands other than nft, ip and bridge (iptables; tests inject one). */
  run?: Runner;
}

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

/** Reads a PEM file (without loading node-forge, which lib/tls.ts needs for issuing). */
function readPem(field: string, path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError(field, path, `cannot read: ${(err as Error).message}`);
  }
  if (!/-----BEGIN [A-Z0-9 ]+-----/.test(text))
    throw new ValidationError(field, path, 'file holds no PEM block');
  return text;
}

/** A PEM file that may not exist yet (null then); other problems are errors. */
function readPemIfPresent(field: string, path: string): string | null {
  try {
    readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
  }
  return readPem(field, path);
}

function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.9 + 0.2 * random()));
}

export class CellAgent {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly registry: Registry;
  readonly metrics: AgentMetrics;
  readonly dataplane: AgentDataplane;
  readonly dryRun: boolean;
  private readonly client: ControllerClient;
  /** Key, CSR and renewal of the cell certificate (with bootstrapTokenFile; else null). */
  private readonly identity: AgentIdentity | null;
  private readonly stateFile: StateFile;
  private readonly inventory: InventoryReader;
  private readonly vxlan: OverlayDevice;
  private readonly mutex = new Mutex();
  private readonly life = new AbortController();
  private puller: RulePuller | null = null;
  private underlay: Underlay | null = null;
  private lease: OverlayLease | null = null;
  private leases: OverlayLease[] = [];
  private base: CellRuleSet | null = null;
  private readonly local = new Map<string, LocalContainer>();
  private applied: CellRuleSet | null = null;
  private appliedVersion = 0;
  private lastApplyError = '';
  private lastApplyAt = 0;
  private applyFailures = 0;
  private retryTimer: NodeJS.Timeout | null = null;
  private controllerReachable = false;
  private lastContactAt = 0;
  private executor: CniExecutor | null = null;
  private localServer: RunningHttp | null = null;
  private metricsServer: RunningHttp | null = null;
  private loops: Promise<void>[] = [];
  private stopping = false;
  private started = false;
  private subnetWritten = false;
  // status reporting
  private statusDirty = false;
  private reportedInventory = '';
  private heartbeats = 0;
  private statusWake: (() => void) | null = null;
  private saveTimer: NodeJS.Timeout | null = null;
  // admission and drift watch
  private refused: Refusal[] = [];
  private refusedKey = '';
  private monitor: NftMonitor | null = null;
  private rulesCheckTimer: NodeJS.Timeout | null = null;
  private rulesCheckRunning: Promise<void> | null = null;
  private rulesCheckAgain = false;
  // cfnet's iptables rules (filter mode; null in a dry run)
  private readonly iptables: IptablesBackends | null;
  /** At least one backend's executable runs (probed at start). */
  private iptablesPresent = false;
  private iptablesError = '';
  /** Checks of the iptables rules run one at a time (two could both append a missing rule). */
  private iptablesChecks: Promise<unknown> = Promise.resolve();
  private iptablesTimer: NodeJS.Timeout | null = null;

  constructor(opts: AgentOptions) {
    this.config = opts.config;
    const c = opts.config;
    this.log = opts.logger ?? createLogger('agent', { level: c.logLevel });
    this.registry = opts.registry ?? createRegistry({ labels: { component: 'agent', cell: c.cellId } });
    this.metrics = agentMetrics(this.registry);
    // With a bootstrap token the certificate may not exist yet: AgentIdentity gets one at start.
    const optional = (field: string, path: string) =>
      c.bootstrapTokenFile ? (readPemIfPresent(field, path) ?? '') : readPem(field, path);
    const tls = opts.tls ?? {
      ca: readPem('caCert', c.caCert),
      cert: optional('clientCert', c.clientCert),
      key: optional('clientKey', c.clientKey),
    };
    this.client = new ControllerClient({
      baseUrl: c.controllerUrl,
      cellId: c.cellId,
      tls: { ...tls, ...(c.controllerServerName ? { servername: c.controllerServerName } : {}) },
      ...(c.controllerSourceAddress ? { localAddress: c.controllerSourceAddress } : {}),
    });
    // only a certificate the agent obtained itself is renewed (static files may be read-only)
    this.identity =
      opts.tls || !c.bootstrapTokenFile
        ? null
        : new AgentIdentity({
            cellId: c.cellId,
            certFile: c.clientCert,
            keyFile: c.clientKey,
            tokenFile: c.bootstrapTokenFile,
            client: this.client,
            logger: this.log.child({ component: 'identity' }),
            metrics: this.metrics,
            minBackoffMs: c.reconnectMinMs,
            maxBackoffMs: c.reconnectMaxMs,
          });
    this.dryRun = opts.dryRun ?? false;
    this.dataplane = this.dryRun
      ? new DryRunDataplane(c.nftTable, c.filterMode)
      : new NftDataplane({
          table: c.nftTable,
          filterMode: c.filterMode,
          nft: c.nftBinary,
          stateDir: c.cniStateDir,
          // one long-lived nft process for incremental changes: no process start per change
          session: true,
          logger: this.log.child({ component: 'dataplane' }),
        });
    this.iptables = this.dryRun
      ? null
      : new IptablesBackends({
          binaries: c.iptablesBinaries,
          table: c.nftTable,
          ...(opts.run ? { run: opts.run } : {}),
        });
    this.stateFile = new StateFile(c.stateDir);
    this.inventory = new InventoryReader(c.datastore);
    this.vxlan = this.dryRun
      ? new DryRunOverlay(c.vtepName)
      : new Vxlan(c.vtepName, this.log.child({ component: 'vxlan' }));
  }

  // ------------------------------------------------------------------ life cycle

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const c = this.config;
    this.log.info(
      {
        cellId: c.cellId,
        controller: c.controllerUrl,
        vtep: c.vtepName,
        vni: c.vni,
        table: c.nftTable,
        filterMode: c.filterMode,
        stateDir: c.stateDir,
        dryRun: this.dryRun,
      },
      'cell agent starting',
    );
    // before any nft table of this mode is written: its pending denials need the iptables rule
    if (this.iptables && c.filterMode === 'iptables') {
      await this.probeIptables(true);
      await this.checkIptables('start');
    }
    // a dry run with a given address needs no interface holding it (nothing is sent from it)
    this.underlay =
      this.dryRun && c.underlayIp
        ? { ip: c.underlayIp, interface: c.underlayInterface || 'dry-run', mtu: 1500 }
        : await detectUnderlay({ ip: c.underlayIp, interface: c.underlayInterface });
    const { state, problem } = await this.stateFile.load(c.cellId);
    if (problem) this.log.warn({ problem }, 'saved state not used');
    if (state) {
      this.lease = state.lease;
      this.leases = state.leases;
      this.base = state.base;
      for (const [h, rec] of Object.entries(state.local)) this.local.set(h, rec);
      this.log.info(
        {
          lease: state.lease?.subnet ?? null,
          version: state.base?.version ?? null,
          peers: state.leases.length,
        },
        'saved state loaded',
      );
    }
    await this.restoreRules();
    if (this.iptables && c.filterMode === 'nftables') {
      await this.probeIptables(false);
      await this.checkIptables('start');
    }
    if (this.lease) {
      try {
        await this.adoptLease(this.lease, 'saved');
        await this.syncOverlay(true);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'restoring the overlay from saved state failed');
      }
    }
    if (c.agentSocket) {
      this.localServer = await startLocalServer({
        socket: c.agentSocket,
        logger: this.log,
        onEvent: (e) => this.onCniEvent(e, false),
        state: () => this.status(),
      });
    }
    if (c.executorSocket && this.dryRun) {
      this.log.info('dry run: no CNI executor is hosted (it would attach containers)');
    } else if (c.executorSocket) {
      this.executor = await startCniExecutor({
        socket: c.executorSocket,
        logger: this.log.child({ component: 'cni' }),
        dataplane: this.executorDataplane(),
        notify: (e) => this.onCniEvent(e, true),
      });
    }
    if (c.metricsPort > 0) {
      this.metricsServer = await startMetricsServer({
        host: c.metricsAddress,
        port: c.metricsPort,
        registry: this.registry,
        ready: () => this.readiness(),
      });
    }
    if (this.identity) {
      // everything below talks to the controller; what is in force stays in force meanwhile
      await this.identity.ready(this.life.signal);
      this.loops.push(this.identity.run(this.life.signal));
    }
    this.puller = new RulePuller({
      source: this.client,
      cellId: c.cellId,
      waitSeconds: c.longPollTimeoutSeconds,
      minBackoffMs: c.reconnectMinMs,
      maxBackoffMs: c.reconnectMaxMs,
      logger: this.log.child({ component: 'rules' }),
      initial: this.base,
      onRuleSet: (u) => this.onRuleSet(u),
      onContact: (ok, err) => this.contact(ok, 'rules', err),
    });
    this.puller.start();
    this.startMonitor();
    this.loops.push(this.leaseLoop(), this.statusLoop(), this.driftLoop());
    this.requestStatus();
    this.log.info(
      {
        executor: this.executor?.socket ?? null,
        agentSocket: c.agentSocket || null,
        metrics: this.metricsServer?.address,
      },
      'cell agent running',
    );
  }

  /**
   * Drain: stop polling and timers, close the executor socket (in-flight CNI calls finish), wait for
   * an apply in progress, save the state. Rules, routes and the VXLAN device stay as they are.
   */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('cell agent draining (rules stay in force)');
    this.life.abort(new Error('agent stopping'));
    this.statusWake?.();
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.saveTimer) clearTimeout(this.saveTimer);
    if (this.rulesCheckTimer) clearTimeout(this.rulesCheckTimer);
    if (this.iptablesTimer) clearTimeout(this.iptablesTimer);
    await this.monitor?.stop();
    await this.iptablesChecks;
    await this.rulesCheckRunning;
    await this.puller?.stop();
    await this.executor?.close().catch((err) => this.log.warn({ err: errorMessage(err) }, 'executor close'));
    await this.localServer?.close().catch(() => undefined);
    // a loop may be inside a controller request (up to its timeout): do not wait for it past 2 s;
    // the state is saved either way
    await Promise.race([Promise.allSettled(this.loops), sleep(2000)]);
    await this.mutex
      .run(() => this.save())
      .catch((err) => this.log.error({ err: errorMessage(err) }, 'save failed'));
    await this.dataplane
      .close()
      .catch((err) => this.log.warn({ err: errorMessage(err) }, 'nft session close'));
    await this.metricsServer?.close().catch(() => undefined);
    await this.client.destroy();
    this.log.info('cell agent stopped');
  }

  status(): AgentStatus {
    return {
      cellId: this.config.cellId,
      lease: this.lease,
      peers: this.leases.filter((l) => l.cellId !== this.config.cellId).length,
      appliedVersion: this.appliedVersion,
      appliedContainers: this.applied?.containers.length ?? 0,
      controllerVersion: this.base?.version ?? 0,
      lastApplyError: this.lastApplyError,
      lastApplyAt: this.lastApplyAt,
      cniOnlyContainers: [...this.local.keys()].sort(),
      controllerReachable: this.controllerReachable,
      lastContactAt: this.lastContactAt,
      executorSocket: this.executor?.socket ?? null,
      dryRun: this.dryRun,
      refused: this.refused,
      memoryMb: Object.fromEntries(
        Object.entries(process.memoryUsage()).map(([k, v]) => [k, Math.round((v / 1048576) * 10) / 10]),
      ),
    };
  }

  private readiness(): { ok: boolean; checks: Record<string, unknown> } {
    const checks = {
      lease: { ok: this.lease !== null && this.subnetWritten, subnet: this.lease?.subnet ?? null },
      executor: { ok: this.executor !== null || !this.config.executorSocket || this.dryRun },
      rules: { ok: this.lastApplyError === '', appliedVersion: this.appliedVersion },
      iptables: {
        ok: this.iptablesError === '',
        filterMode: this.config.filterMode,
        backends: this.iptables?.used.map((r) => r.backend) ?? [],
      },
    };
    return { ok: Object.values(checks).every((c) => c.ok), checks };
  }

  private contact(ok: boolean, op: string, err?: unknown): void {
    this.controllerReachable = ok;
    this.metrics.controllerUp.set(ok ? 1 : 0);
    if (ok) this.lastContactAt = Date.now();
    else this.metrics.controllerErrors.inc({ op });
    if (!ok && err) this.log.debug({ op, err: errorMessage(err) }, 'controller request failed');
  }

  private async pause(ms: number): Promise<boolean> {
    try {
      await sleep(ms, this.life.signal);
      return true;
    } catch {
      return false;
    }
  }

  // ------------------------------------------------------------------ rules

  /** Start-up: put the saved rule set in force without a window (or leave the kernel alone). */
  private async restoreRules(): Promise<void> {
    if (!this.base) {
      this.log.info('no saved rule set: the kernel table is left as it is until the controller answers');
      return;
    }
    await this.mutex.run(async () => {
      const t0 = performance.now();
      let inv: Inventory | null = null;
      try {
        inv = await this.inventory.read(true);
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'datastore unreadable at start-up');
      }
      if (inv) await this.recoverUnknown(inv);
      const merged = this.merge(inv);
      const report = await this.dataplane.detectDrift(merged);
      if (report.drift) {
        const res = await this.dataplane.applyFull(merged);
        this.metrics.applies.inc({ mode: 'restore', outcome: 'ok' });
        this.log.info(
          { version: merged.version, ms: Math.round(res.ms), tableMissing: report.tableMissing },
          'saved rule set restored in one nft transaction',
        );
      } else {
        this.log.info(
          { version: merged.version, ms: Math.round(performance.now() - t0) },
          'kernel already holds the saved rule set: nothing applied',
        );
      }
      this.applied = merged;
      this.appliedVersion = this.base!.version;
      this.lastApplyAt = Date.now();
      this.metrics.appliedVersion.set(this.appliedVersion);
    });
  }

  /** Datastore containers neither the controller nor the agent knows: recover them from the table. */
  private async recoverUnknown(inv: Inventory): Promise<void> {
    const known = new Set(this.base?.containers.map((c) => c.handle) ?? []);
    const unknown = inv.items.filter((i) => !known.has(i.handle) && !this.local.has(i.handle));
    if (unknown.length === 0) return;
    const rules = new Map<string, EgressRule[]>(Object.entries(this.base?.asgSets ?? {}));
    for (const l of this.local.values()) rules.set(l.container.egress, l.egressRules);
    const table = await this.dataplane.readBack();
    for (const item of unknown) {
      const rec = recoverFromKernel(table, item, rules);
      if (rec) {
        this.local.set(item.handle, rec);
        this.log.info(
          { handle: item.handle, ip: item.ip },
          'CNI-time container recovered from the kernel table',
        );
      } else {
        this.log.warn(
          { handle: item.handle, ip: item.ip },
          'container attached while the agent was down could not be recovered; the controller will supply its rules',
        );
      }
    }
  }

  /** The rule set to enforce: the controller's, CNI-time containers merged in, admitted per item. */
  private merge(inv: Inventory | null): CellRuleSet {
    const res = mergeLocal(this.base!, this.local, inv?.attached ?? null);
    const admission = admitRuleSet(res.ruleSet);
    this.noteRefusals(admission.refused);
    for (const h of res.obsolete) this.local.delete(h);
    if (res.dropped.length > 0) {
      this.log.warn(
        { dropped: res.dropped },
        'controller entries whose address belongs to another container left out',
      );
    }
    this.metrics.pendingContainers.set(res.merged.length);
    if (inv) this.metrics.localContainers.set(inv.items.length);
    return admission.ruleSet;
  }

  /** Logs refusals when they change and reports them to the controller (per container). */
  private noteRefusals(refused: Refusal[]): void {
    const key = JSON.stringify(refused);
    this.refused = refused;
    this.metrics.refused.set(refused.length);
    if (key === this.refusedKey) return;
    this.refusedKey = key;
    if (refused.length > 0) {
      this.log.warn(
        { refused: refused.slice(0, 20), count: refused.length },
        'rule-set items refused by the dataplane; the rest of the rule set is applied',
      );
    }
    this.requestStatus();
  }

  private async onRuleSet(u: PullUpdate): Promise<void> {
    this.base = u.ruleSet;
    this.metrics.polls.inc({ kind: u.kind });
    this.metrics.controllerVersion.set(u.ruleSet.version);
    await this.applyNow(u.receivedAt, u.kind);
  }

  /** Merge and apply the current rule set (one nft transaction), save and report. */
  private async applyNow(
    receivedAt?: number,
    source: 'snapshot' | 'patch' | 'local' = 'local',
  ): Promise<void> {
    if (!this.base) return;
    await this.mutex.run(async () => {
      if (!this.base) return;
      const t0 = performance.now();
      let inv: Inventory | null = null;
      try {
        inv = await this.inventory.read();
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'datastore unreadable; merging without it');
      }
      const merged = this.merge(inv);
      try {
        const res = await this.dataplane.apply(merged);
        const s = (performance.now() - t0) / 1000;
        this.metrics.applies.inc({ mode: res.mode, outcome: 'ok' });
        this.metrics.applyDuration.observe({ mode: res.mode }, s);
        if (receivedAt !== undefined) this.metrics.receiveToEnforce.observe((Date.now() - receivedAt) / 1000);
        this.applied = merged;
        this.appliedVersion = this.base.version;
        this.lastApplyError = '';
        this.lastApplyAt = Date.now();
        this.applyFailures = 0;
        this.metrics.appliedVersion.set(this.appliedVersion);
        this.log.info(
          {
            version: merged.version,
            source,
            mode: res.mode,
            ms: Math.round(res.ms * 10) / 10,
            ...(res.summary ? { summary: res.summary } : {}),
            ...(res.fallbackFrom ? { fallbackFrom: res.fallbackFrom.message } : {}),
          },
          'rule set applied',
        );
      } catch (err) {
        this.metrics.applies.inc({ mode: 'apply', outcome: 'error' });
        this.lastApplyError = errorMessage(err).slice(0, 4000);
        this.applyFailures++;
        this.log.error(
          { err: this.lastApplyError, version: merged.version, inForce: this.appliedVersion },
          'applying the rule set failed; the previous rules stay in force',
        );
        this.scheduleRetry();
      }
      await this.save().catch((err) => this.log.error({ err: errorMessage(err) }, 'saving state failed'));
    });
    this.requestStatus();
  }

  private scheduleRetry(): void {
    if (this.stopping || this.retryTimer) return;
    const delay = backoffDelay(this.applyFailures - 1, {
      initialMs: this.config.reconnectMinMs,
      maxMs: this.config.reconnectMaxMs,
      factor: 2,
      jitter: 0.5,
    });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.applyNow();
    }, delay);
  }

  private async save(): Promise<void> {
    await this.stateFile.save({
      cellId: this.config.cellId,
      lease: this.lease,
      leases: this.leases,
      base: this.base,
      local: Object.fromEntries(this.local),
    });
  }

  /** Saves soon (coalesces bursts of CNI events). */
  private saveSoon(): void {
    if (this.saveTimer || this.stopping) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = null;
      void this.mutex
        .run(() => this.save())
        .catch((err) => this.log.error({ err: errorMessage(err) }, 'save failed'));
    }, 200);
  }

  // ------------------------------------------------------------------ CNI

  /**
   * The dataplane the hosted executor uses: the agent's own NftDataplane (so its view of the table
   * stays exact), with each container change serialised with rule-set applies and recorded as a
   * CNI-time container. A config naming another table or lock directory gets its own dataplane.
   */
  private executorDataplane(): (cfg: NetConfig) => ContainerDataplane {
    const other = nftDataplaneFactory(this.log.child({ component: 'cni-dataplane' }));
    const own: ContainerDataplane = {
      addContainer: (plain: CellContainer, egressRules: EgressRule[], cellConfig, opts) =>
        this.mutex.run(async () => {
          // c2c identity from the rule set in hand (tag table, same-app entries): in place in the
          // admitting transaction, before ADD returns, with no controller round trip
          const { container, c2c } = localC2C(this.base, plain);
          this.local.set(container.handle, { container, egressRules, addedAt: Date.now() });
          if (container.tag !== null) this.metrics.cniLocalTags.inc();
          try {
            // the read-back path: the agent's own diff base stays exact
            return await this.dataplane.addContainer(container, egressRules, cellConfig, {
              ...(opts?.takeOver ? { takeOver: opts.takeOver } : {}),
              ...(c2c.length > 0 ? { c2c } : {}),
            });
          } catch (err) {
            this.local.delete(container.handle);
            throw err;
          }
        }),
      removeAttachment: (ref: AttachmentRef) =>
        this.mutex.run(async () => {
          this.local.delete(ref.handle);
          return this.dataplane.removeAttachment(ref);
        }),
      addressUse: () => this.dataplane.addressUse(),
      readBack: () => this.dataplane.readBack(),
    };
    let warned = false;
    return (cfg) => {
      if (cfg.nftTable === this.config.nftTable && cfg.stateDir === this.config.cniStateDir) return own;
      if (!warned) {
        warned = true;
        this.log.warn(
          { nftTable: cfg.nftTable, stateDir: cfg.stateDir },
          'CNI config names another nft table or state dir than the agent: its containers are not merged',
        );
      }
      return other(cfg);
    };
  }

  /** A CNI ADD/DEL: remember CNI-time containers, report the inventory. */
  async onCniEvent(e: CniEvent, inProcess: boolean): Promise<void> {
    if (e.type === 'add') {
      if (e.container && e.container.handle === e.handle) {
        this.local.set(e.handle, {
          container: e.container,
          egressRules: e.egressRules ?? [],
          addedAt: Date.now(),
        });
      }
      // A plugin process outside the agent changed the table: bring the agent's view back in step.
      if (!inProcess && this.base) await this.applyNow();
    } else {
      this.local.delete(e.handle);
    }
    this.log.info({ type: e.type, handle: e.handle, ip: e.ip, inProcess }, 'CNI event');
    this.saveSoon();
    this.requestStatus();
  }

  // ------------------------------------------------------------------ lease and overlay

  private async leaseLoop(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      try {
        const l = await this.renewOrAcquire();
        this.contact(true, 'lease');
        await this.adoptLease(l, 'controller');
        const listing = await this.client.leases(this.life.signal);
        const peers = mergePeerLeases(this.leases, listing.leases, listing.released, Date.now());
        if (peers.retained.length > 0) {
          this.log.info(
            { retained: peers.retained },
            'peers missing from the lease listing kept until their leases expire',
          );
        }
        this.leases = peers.leases;
        await this.syncOverlay(false);
        this.saveSoon();
        failures = 0;
        if (!(await this.pause(jittered(this.config.leasePollIntervalSeconds * 1000)))) return;
      } catch (err) {
        if (this.stopping) return;
        this.contact(false, 'lease', err);
        const delay = backoffDelay(failures++, {
          initialMs: this.config.reconnectMinMs,
          maxMs: this.config.reconnectMaxMs,
          factor: 2,
          jitter: 0.5,
        });
        const conflict = err instanceof ControllerRequestError && err.apiCode === 'CFNET_LEASE_CONFLICT';
        if (conflict) this.metrics.leaseConflicts.inc();
        const fields = { err, retryInMs: delay, lease: this.lease?.subnet ?? null };
        if (conflict) {
          this.log.error(
            fields,
            "the controller says another live cell holds this cell's subnet; keeping it (an operator resolves this: cfnet leases move)",
          );
        } else {
          this.log.warn(fields, 'lease renewal failed; keeping the overlay as it is');
        }
        if (!(await this.pause(delay))) return;
      }
    }
  }

  /**
   * Renews the held lease; when the controller does not know it (Redis lost its data) or records
   * another subnet, claims the held subnet back. Without a lease (first start) acquires a fresh one.
   */
  private async renewOrAcquire(): Promise<OverlayLease> {
    const ip = this.underlay!.ip;
    if (this.lease) {
      try {
        return await this.client.renewLease(this.lease.subnet, ip);
      } catch (err) {
        if (!(err instanceof ControllerRequestError) || (err.status !== 404 && err.status !== 409)) throw err;
        this.log.warn(
          { err, subnet: this.lease.subnet },
          'lease not renewable (the controller lost or moved it); claiming the held subnet',
        );
        // the controller may have lost every inventory with the leases: report ours again
        this.reportedInventory = '';
        this.requestStatus();
        return this.client.acquireLease(ip, undefined, this.lease.subnet);
      }
    }
    return this.client.acquireLease(ip);
  }

  /** Cells with containers never change subnet on their own (their addresses are in that subnet). */
  private hasContainers(): boolean {
    return this.local.size > 0 || (this.base?.containers.length ?? 0) > 0;
  }

  /** Makes `l` the cell's lease: VXLAN device, subnet file for the CNI plugin. */
  private async adoptLease(l: OverlayLease, source: 'saved' | 'controller'): Promise<void> {
    const prev = this.lease;
    if (prev && prev.subnet !== l.subnet) {
      if (l.moved !== 'operator' && this.hasContainers()) {
        this.metrics.leaseConflicts.inc();
        throw new CfnetError(
          'CFNET_AGENT_LEASE_MOVE_REFUSED',
          `the controller offered subnet ${l.subnet} but this cell holds ${prev.subnet} and has containers on it`,
          { held: prev.subnet, offered: l.subnet },
        );
      }
      this.log.error(
        { old: prev.subnet, new: l.subnet, moved: l.moved ?? 'no containers' },
        'the cell lease moved to another subnet: containers on the old subnet lose overlay connectivity',
      );
    }
    const u = this.underlay!;
    const mtu = this.config.vtepMtu > 0 ? this.config.vtepMtu : u.mtu - VXLAN_OVERHEAD;
    const done = await this.vxlan.ensureDevice({
      name: this.config.vtepName,
      vni: this.config.vni,
      port: this.config.vtepPort,
      underlayIp: u.ip,
      underlayInterface: u.interface,
      mtu,
      subnet: l.subnet,
      mac: l.vtepMac || vtepMacOf(l.subnet),
    });
    if (done.length > 0)
      this.log.info({ dev: this.config.vtepName, done, source }, 'VXLAN device configured');
    this.lease = l;
    await this.writeSubnetFile(l.subnet);
    if (!prev || prev.subnet !== l.subnet) this.log.info({ subnet: l.subnet, source }, 'cell lease held');
  }

  private async writeSubnetFile(subnet: string): Promise<void> {
    const text = `${JSON.stringify({ subnet, gateway: vtepIpOf(subnet) })}\n`;
    const cur = await readFile(this.config.subnetFile, 'utf8').catch(() => null);
    if (cur !== text) await writeFileAtomic(this.config.subnetFile, text, 0o644);
    this.subnetWritten = true;
  }

  /** Programs the other cells' leases (only the difference reaches the kernel). */
  private async syncOverlay(readKernel: boolean): Promise<number> {
    if (!this.lease) return 0;
    const d = desiredOverlay(this.leases, {
      cellId: this.config.cellId,
      subnet: this.lease.subnet,
      underlayIp: this.underlay!.ip,
    });
    for (const s of d.skipped) this.log.warn(s, 'lease not programmed');
    const n = await this.vxlan.sync(d.state, { readKernel });
    this.metrics.overlayPeers.set(d.state.routes.size);
    if (n > 0) {
      this.metrics.overlayChanges.inc(n);
      this.log.info({ changes: n, peers: d.state.routes.size, readKernel }, 'overlay entries updated');
    }
    return n;
  }

  // ------------------------------------------------------------------ drift

  private async driftLoop(): Promise<void> {
    const every = this.config.driftCheckIntervalSeconds * 1000;
    if (every <= 0) return;
    while (!this.stopping) {
      if (!(await this.pause(jittered(every)))) return;
      await this.checkDrift().catch((err) =>
        this.log.error({ err: errorMessage(err) }, 'drift check failed'),
      );
    }
  }

  /**
   * Watches the table (`nft monitor`): a transaction another process made on it leads to a
   * canonical comparison and, on any difference, a repair `nftWatchDelayMs` later (changes arriving
   * meanwhile are coalesced). A restarted monitor may have missed changes: it checks once too.
   */
  private startMonitor(): void {
    const delay = this.config.nftWatchDelayMs;
    if (this.dryRun || delay <= 0 || !(this.dataplane instanceof NftDataplane)) return;
    this.monitor = new NftMonitor({
      table: this.config.nftTable,
      nft: this.config.nftBinary,
      logger: this.log.child({ component: 'nft-monitor' }),
      // iptables-nft's rule changes show up in nft monitor too: a flush is answered at once (legacy
      // ones do not: the periodic check repairs those)
      watchIptables:
        this.config.filterMode === 'iptables' &&
        (this.iptables?.used.some((r) => r.backend === 'nft') ?? false),
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
      if (this.stopping || this.iptablesTimer) return;
      this.iptablesTimer = setTimeout(() => {
        this.iptablesTimer = null;
        void this.checkIptables('iptables change');
      }, this.config.nftWatchDelayMs);
    });
    this.monitor.on('foreign', (c) => {
      this.metrics.foreignChanges.inc();
      this.log.warn({ pid: c.pid, comm: c.comm, changes: c.lines }, 'nft table changed by another process');
      this.rulesCheckSoon('foreign change');
    });
    this.monitor.start();
  }

  /** A rules check after `nftWatchDelayMs`, coalesced with one pending or running. */
  private rulesCheckSoon(trigger: string): void {
    if (this.stopping || this.rulesCheckTimer) return;
    if (this.rulesCheckRunning) {
      this.rulesCheckAgain = true;
      return;
    }
    this.rulesCheckTimer = setTimeout(() => {
      this.rulesCheckTimer = null;
      this.rulesCheckRunning = this.checkRules(trigger)
        .then(() => undefined)
        .catch((err) => this.log.error({ err: errorMessage(err) }, 'nft drift check failed'))
        .finally(() => {
          this.rulesCheckRunning = null;
          if (this.rulesCheckAgain) {
            this.rulesCheckAgain = false;
            this.rulesCheckSoon(trigger);
          }
        });
    }, this.config.nftWatchDelayMs);
  }

  /**
   * Compares the kernel's table with the rule set in force (canonically: every rule, set, element,
   * chain header) and re-applies it in full on any difference. Datastore containers the agent does
   * not know yet (a one-off CNI process attached them) are recovered from the table first, so a
   * repair never removes them.
   */
  async checkRules(trigger = 'periodic'): Promise<boolean> {
    if (!this.base) return false;
    return this.mutex.run(async () => {
      if (!this.base) return false;
      let inv: Inventory | null = null;
      try {
        inv = await this.inventory.read(true);
        await this.recoverUnknown(inv);
      } catch {
        inv = null;
      }
      const merged = this.merge(inv);
      const { report, repaired } = await this.dataplane.repair(merged);
      if (repaired) {
        this.metrics.driftRepairs.inc({ what: 'nft' });
        this.applied = merged;
        this.appliedVersion = this.base.version;
        this.lastApplyError = '';
        this.log.warn({ trigger, ...summariseDrift(report) }, 'nft table drift repaired');
      }
      return repaired;
    });
  }

  /**
   * Which configured iptables executables are used (one per backend that runs); the others are
   * logged. `required` (filterMode iptables): none usable is IptablesMissingError.
   */
  private async probeIptables(required: boolean): Promise<void> {
    if (!this.iptables) return;
    const { used, skipped } = await this.iptables.probe(required);
    this.iptablesPresent = used.length > 0;
    for (const s of skipped) {
      this.log.info(
        { binary: s.binary, reason: s.reason, filterMode: this.config.filterMode },
        'iptables executable skipped',
      );
    }
    this.log.info(
      {
        binaries: used.map((r) => r.binary),
        backends: used.map((r) => r.backend),
        filterMode: this.config.filterMode,
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
    try {
      let done: string[] = [];
      if (this.config.filterMode === 'iptables') done = await this.iptables.ensure();
      else if (this.applied) {
        const n = await this.iptables.remove();
        if (n > 0) done = [`removed ${n} rule(s) of iptables mode`];
      }
      this.iptablesError = '';
      if (done.length > 0) {
        if (trigger !== 'start') this.metrics.driftRepairs.inc({ what: 'iptables' });
        const fields = { trigger, done, filterMode: this.config.filterMode };
        if (trigger === 'start') this.log.info(fields, "cfnet's iptables rules put in place");
        else this.log.warn(fields, "cfnet's iptables rules repaired");
      }
      return done;
    } catch (err) {
      this.iptablesError = errorMessage(err).slice(0, 2000);
      if (trigger === 'start' && this.config.filterMode === 'iptables') throw err;
      this.log.error({ trigger, err: this.iptablesError }, "checking cfnet's iptables rules failed");
      return [];
    }
  }

  /** Reads the nft table, the overlay and cfnet's iptables rules back and repairs what differs. */
  async checkDrift(): Promise<{ rules: boolean; overlay: number; iptables: string[] }> {
    const iptables = await this.checkIptables('periodic');
    const rules = await this.checkRules('periodic');
    let overlay = 0;
    if (this.lease) {
      const done = await this.vxlan.ensureDevice({
        name: this.config.vtepName,
        vni: this.config.vni,
        port: this.config.vtepPort,
        underlayIp: this.underlay!.ip,
        underlayInterface: this.underlay!.interface,
        mtu: this.config.vtepMtu > 0 ? this.config.vtepMtu : this.underlay!.mtu - VXLAN_OVERHEAD,
        subnet: this.lease.subnet,
        mac: this.lease.vtepMac || vtepMacOf(this.lease.subnet),
      });
      if (done.length > 0) {
        this.metrics.driftRepairs.inc({ what: 'vtep' });
        this.log.warn({ done }, 'VXLAN device drift repaired');
      }
      overlay = await this.syncOverlay(true);
      if (overlay > 0) this.metrics.driftRepairs.inc({ what: 'overlay' });
    }
    return { rules, overlay, iptables };
  }

  // ------------------------------------------------------------------ status

  /** Report soon (coalesced with a report in flight). */
  requestStatus(): void {
    this.statusDirty = true;
    this.statusWake?.();
  }

  private async statusLoop(): Promise<void> {
    let failures = 0;
    const interval = this.config.statusIntervalSeconds * 1000;
    while (!this.stopping) {
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
        if (this.stopping) return;
      }
      this.statusDirty = false;
      try {
        await this.reportOnce(this.heartbeats % 10 === 9);
        failures = 0;
      } catch (err) {
        if (this.stopping) return;
        this.metrics.statusReports.inc({ outcome: 'error' });
        this.contact(false, 'status', err);
        this.statusDirty = true;
        const delay = backoffDelay(failures++, {
          initialMs: this.config.reconnectMinMs,
          maxMs: this.config.reconnectMaxMs,
          factor: 2,
          jitter: 0.5,
        });
        this.log.debug({ err: errorMessage(err), retryInMs: delay }, 'status report failed');
        if (!(await this.pause(delay))) return;
      }
    }
  }

  private async reportOnce(forceInventory: boolean): Promise<void> {
    let items: InventoryItem[] | null = null;
    let key = this.reportedInventory;
    try {
      const inv = await this.inventory.read();
      key = inventoryKey(inv.items);
      this.metrics.localContainers.set(inv.items.length);
      if (forceInventory || key !== this.reportedInventory) items = inv.items;
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'datastore unreadable; status without inventory');
    }
    const body = {
      appliedVersion: this.appliedVersion,
      appliedAt: this.lastApplyAt || Date.now(),
      ...(this.lastApplyError ? { error: this.lastApplyError } : {}),
      ...(this.refused.length > 0 ? { refused: this.refused.slice(0, 10_000) } : {}),
      ...(items ? { containers: items.slice(0, 10_000) } : {}),
    };
    await this.client.putStatus(body, this.life.signal);
    this.contact(true, 'status');
    this.metrics.statusReports.inc({ outcome: 'ok' });
    if (items) this.reportedInventory = key;
  }
}
