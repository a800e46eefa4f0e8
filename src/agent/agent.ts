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
 *
 * This file wires the keepers, each with one job: rules-keeper.ts (pull, merge with CNI-time
 * containers, apply, saved state), cni-host.ts (the warm executor and the local socket),
 * overlay-keeper.ts (lease, VTEP, peers), drift-keeper.ts (nft monitor, periodic check, iptables
 * rules) and status-keeper.ts (reports to the controller, /v1/state); context.ts is what they share.
 */
import { readFileSync } from 'node:fs';
import type { CniEvent } from '../cni/agent-client.js';
import { NftDataplane } from '../dataplane/apply.js';
import type { Runner } from '../host/index.js';
import { sleep } from '../lib/backoff.js';
import { ValidationError } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/log.js';
import { createRegistry, type Registry } from '../lib/metrics.js';
import { AuditLog } from './audit-log.js';
import { ControllerClient } from './client.js';
import { CniHost } from './cni-host.js';
import type { AgentConfig } from './config.js';
import { type AgentContext, backoffOf } from './context.js';
import { DriftKeeper } from './drift-keeper.js';
import { type AgentDataplane, DryRunDataplane } from './dry-run.js';
import { AgentIdentity } from './identity.js';
import { type AgentMetrics, agentMetrics } from './metrics.js';
import { Mutex } from './mutex.js';
import { OverlayKeeper } from './overlay-keeper.js';
import { routerTags } from './router-ingress.js';
import { RulesKeeper } from './rules-keeper.js';
import { type RunningHttp, startMetricsServer } from './servers.js';
import { type AgentStatus, StatusKeeper } from './status-keeper.js';

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

export type { AgentStatus } from './status-keeper.js';

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
  private readonly life = new AbortController();
  private readonly rules: RulesKeeper;
  private readonly cni: CniHost;
  private readonly overlay: OverlayKeeper;
  private readonly drift: DriftKeeper;
  private readonly report: StatusKeeper;
  /** Silk's iptables-logger (auditLog), null when off. */
  private readonly audit: AuditLog | null;
  private metricsServer: RunningHttp | null = null;
  private loops: Promise<void>[] = [];
  private stopping = false;
  private started = false;

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
    const ctx: AgentContext = {
      config: c,
      log: this.log,
      metrics: this.metrics,
      dataplane: this.dataplane,
      dryRun: this.dryRun,
      mutex: new Mutex(),
      client: this.client,
      signal: this.life.signal,
      backoff: backoffOf(c),
      stopping: () => this.stopping,
    };
    // the keepers reach each other only through these callbacks (built before they exist)
    const contact = (ok: boolean, op: string, err?: unknown) => this.report.contact(ok, op, err);
    const requestStatus = () => this.report.requestStatus();
    const saveSoon = () => this.rules.saveSoon();
    this.rules = new RulesKeeper(ctx, {
      requestStatus,
      contact,
      overlayState: () => ({ lease: this.overlay.lease, leases: this.overlay.leases }),
      routerTags: () => this.routerTags(),
    });
    this.overlay = new OverlayKeeper(ctx, {
      contact,
      reportInventoryAgain: () => this.report.reportInventoryAgain(),
      hasContainers: () => this.rules.hasContainers(),
      saveSoon,
      routerTagsChanged: () => {
        if (c.enableOverlayIngressRules) void this.rules.applyNow();
      },
      overlayChanged: requestStatus,
    });
    this.drift = new DriftKeeper(
      ctx,
      {
        repairRules: (trigger) => this.rules.repair(trigger),
        repairOverlay: () => this.overlay.repair(),
        rulesInForce: () => this.rules.applied !== null,
      },
      opts.run,
    );
    this.cni = new CniHost(ctx, {
      base: () => this.rules.base,
      local: this.rules.local,
      applyNow: () => this.rules.applyNow(),
      routerTags: () => this.routerTags(),
      saveSoon,
      requestStatus,
      state: () => this.status(),
    });
    this.report = new StatusKeeper(ctx, {
      rules: this.rules,
      overlay: this.overlay,
      executorSocket: () => this.cni.executorSocket,
      iptablesError: () => this.drift.iptablesError,
      iptablesBackends: () => this.drift.iptables?.used.map((r) => r.backend) ?? [],
    });
    this.audit = c.auditLog
      ? new AuditLog({
          kernelLog: c.auditKernelLog,
          file: c.auditLogFile,
          timestampFormat: c.auditTimestampFormat,
          host: () => ({ ip: this.overlay.underlayIp, guid: c.cellId }),
          ruleSet: () => this.rules.applied,
          localContainers: () => [...this.rules.local.values()].map((l) => l.container),
          log: this.log.child({ component: 'audit' }),
          registry: this.registry,
        })
      : null;
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
    if (this.drift.iptables && c.filterMode === 'iptables') {
      await this.drift.probeIptables(true);
      await this.drift.checkIptables('start');
    }
    await this.overlay.detectUnderlay();
    const state = await this.rules.load();
    if (state) {
      this.log.info(
        {
          lease: state.lease?.subnet ?? null,
          version: state.base?.version ?? null,
          peers: state.leases.length,
        },
        'saved state loaded',
      );
    }
    // the saved peers first: the routers among them are part of the rule set restored next
    if (state) this.overlay.leases = state.leases;
    await this.rules.restore();
    if (this.drift.iptables && c.filterMode === 'nftables') {
      await this.drift.probeIptables(false);
      await this.drift.checkIptables('start');
    }
    await this.overlay.restore(state?.lease ?? null, state?.leases ?? []);
    await this.cni.start();
    // after the saved rule set is back: the first lines are enriched already
    await this.audit?.start();
    if (c.metricsPort > 0) {
      this.metricsServer = await startMetricsServer({
        host: c.metricsAddress,
        port: c.metricsPort,
        registry: this.registry,
        ready: () => this.report.readiness(this.cni.ready),
      });
    }
    if (this.identity) {
      // everything below talks to the controller; what is in force stays in force meanwhile
      await this.identity.ready(this.life.signal);
      this.loops.push(this.identity.run(this.life.signal));
    }
    this.rules.startPulling();
    this.drift.startMonitor();
    this.loops.push(this.overlay.loop(), this.report.loop(), this.drift.loop());
    this.requestStatus();
    this.log.info(
      {
        executor: this.cni.executorSocket,
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
    this.report.wake();
    this.rules.clearTimers();
    this.drift.clearTimers();
    await this.drift.stop();
    await this.rules.stopPulling();
    await this.cni.close();
    // a loop may be inside a controller request (up to its timeout): do not wait for it past 2 s;
    // the state is saved either way
    await Promise.race([Promise.allSettled(this.loops), sleep(2000)]);
    await this.rules.saveNow();
    await this.audit?.stop().catch((err) => this.log.warn({ err }, 'audit log stop'));
    await this.dataplane.close().catch((err) => this.log.warn({ err }, 'nft session close'));
    await this.metricsServer?.close().catch(() => undefined);
    await this.client.destroy();
    this.log.info('cell agent stopped');
  }

  /** Routers' tags the cell lets in to app ports: those of the listed routers, when enabled. */
  private routerTags(): number[] {
    return this.config.enableOverlayIngressRules ? routerTags(this.overlay.leases) : [];
  }

  /** The agent's state (`/v1/state`). */
  status(): AgentStatus {
    return this.report.status();
  }

  /** Report soon (coalesced with a report in flight). */
  requestStatus(): void {
    this.report.requestStatus();
  }

  /** A CNI ADD/DEL: remember CNI-time containers, report the inventory. */
  onCniEvent(e: CniEvent, inProcess: boolean): Promise<void> {
    return this.cni.onCniEvent(e, inProcess);
  }

  /** Compares the kernel's table with the rule set in force and repairs it (rules-keeper.ts). */
  checkRules(trigger = 'periodic'): Promise<boolean> {
    return this.rules.repair(trigger);
  }

  /** Checks cfnet's iptables rules (drift-keeper.ts); returns what it changed. */
  checkIptables(trigger: string): Promise<string[]> {
    return this.drift.checkIptables(trigger);
  }

  /** Reads the nft table, the overlay and cfnet's iptables rules back and repairs what differs. */
  checkDrift(): Promise<{ rules: boolean; overlay: number; iptables: string[] }> {
    return this.drift.checkDrift();
  }
}
