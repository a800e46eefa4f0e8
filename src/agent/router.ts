/**
 * The agent in router mode (`cfnet agent --router`; Silk's silk-daemon with `single_ip_only`), for a
 * VM that is no Diego cell — gorouter, an Istio ingress — and reaches containers directly:
 *  - a single-address lease (`<addr>/32` of the overlay's reserved first subnet) with the routers'
 *    tag, which the controller got from the policy server (`INGRESS_ROUTER`, type `router`);
 *  - the VXLAN device holding that address, and cfnet's own small nft table setting the tag as the
 *    mark of every packet leaving through it (the VXLAN Group Policy id: dataplane/router-mark.ts);
 *  - routes, neighbours and FDB entries to every cell's subnet, as a cell programs its peers.
 * No CNI executor, no container rules. Cells with `enableOverlayIngressRules` let the tag in to
 * their containers' app ports only (router-ingress.ts).
 *
 * Like a cell it is fail-static: while the controller is unreachable the device, the mark and the
 * routes stay. The held address is saved (`router.json` in the state directory) and claimed back
 * after a restart or after the controller lost its leases.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { markedTag, ROUTER_MARK_CHAIN, routerMarkScript } from '../dataplane/router-mark.js';
import { parseJsonOutput, type Runner, runCommand } from '../host/index.js';
import { backoffDelay, sleep } from '../lib/backoff.js';
import { createLogger, type Logger } from '../lib/log.js';
import { createRegistry, type Registry } from '../lib/metrics.js';
import { ControllerClient, ControllerRequestError, type OverlayLease } from './client.js';
import type { AgentConfig } from './config.js';
import { backoffOf, jittered } from './context.js';
import { type AgentMetrics, agentMetrics } from './metrics.js';
import { desiredOverlay, mergePeerLeases } from './overlay.js';
import { type RunningHttp, startMetricsServer } from './servers.js';
import { writeFileAtomic } from './state.js';
import { detectUnderlay, type Underlay, Vxlan, vtepSpecOf } from './vxlan.js';

export interface RouterAgentOptions {
  config: AgentConfig;
  logger?: Logger;
  registry?: Registry;
  tls?: { ca: string; cert: string; key: string };
  /** Host commands (ip, bridge, nft); tests inject one. */
  run?: Runner;
}

export class RouterAgent {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly registry: Registry;
  readonly metrics: AgentMetrics;
  lease: OverlayLease | null = null;
  /** Every lease as last listed (cells' and other routers'). */
  leases: OverlayLease[] = [];
  private readonly client: ControllerClient;
  private readonly vxlan: Vxlan;
  private readonly run: Runner;
  private readonly life = new AbortController();
  private underlay: Underlay | null = null;
  /** The tag the kernel's mark rule sets, as last written or read (null: unknown). */
  private markInForce: number | null = null;
  private loopDone: Promise<void> | null = null;
  private metricsServer: RunningHttp | null = null;

  constructor(opts: RouterAgentOptions) {
    const c = opts.config;
    this.config = c;
    this.log = opts.logger ?? createLogger('agent', { level: c.logLevel });
    this.registry = opts.registry ?? createRegistry({ labels: { component: 'agent', cell: c.cellId } });
    this.metrics = agentMetrics(this.registry);
    this.run = opts.run ?? runCommand;
    // a router's certificate is given (BOSH); the bootstrap-token enrolment is the cells'
    const tls = opts.tls ?? {
      ca: readFileSync(c.caCert, 'utf8'),
      cert: readFileSync(c.clientCert, 'utf8'),
      key: readFileSync(c.clientKey, 'utf8'),
    };
    this.client = new ControllerClient({
      baseUrl: c.controllerUrl,
      cellId: c.cellId,
      tls: { ...tls, ...(c.controllerServerName ? { servername: c.controllerServerName } : {}) },
      ...(c.controllerSourceAddress ? { localAddress: c.controllerSourceAddress } : {}),
    });
    this.vxlan = new Vxlan(c.vtepName, this.log.child({ component: 'vxlan' }), this.run);
  }

  private get stateFile(): string {
    return join(this.config.stateDir, 'router.json');
  }

  async start(): Promise<void> {
    const c = this.config;
    this.log.info(
      { cellId: c.cellId, controller: c.controllerUrl, vtep: c.vtepName },
      'router agent starting',
    );
    this.underlay = await detectUnderlay({ ip: c.underlayIp, interface: c.underlayInterface }, this.run);
    const saved = await readFile(this.stateFile, 'utf8').catch(() => null);
    if (saved) {
      try {
        this.lease = (JSON.parse(saved) as { lease: OverlayLease | null }).lease;
      } catch (err) {
        this.log.warn({ err }, 'saved router state unreadable; acquiring a new address');
      }
    }
    if (c.metricsPort > 0) {
      this.metricsServer = await startMetricsServer({
        host: c.metricsAddress,
        port: c.metricsPort,
        registry: this.registry,
        ready: () => ({ ok: this.markInForce !== null, checks: { lease: this.lease?.subnet ?? null } }),
      });
    }
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    this.life.abort(new Error('router agent stopping'));
    await Promise.race([this.loopDone, sleep(2000)]);
    await this.metricsServer?.close().catch(() => undefined);
    await this.client.destroy();
    this.log.info('router agent stopped (device, mark and routes stay)');
  }

  /** Lease, device, mark, peers; every `leasePollIntervalSeconds`, with backoff on failures. */
  private async loop(): Promise<void> {
    let failures = 0;
    while (!this.life.signal.aborted) {
      let wait: number;
      try {
        await this.cycle();
        failures = 0;
        wait = jittered(this.config.leasePollIntervalSeconds * 1000);
      } catch (err) {
        if (this.life.signal.aborted) return;
        wait = backoffDelay(failures++, backoffOf(this.config));
        this.log.warn(
          { err, retryInMs: wait },
          'router lease or overlay update failed; keeping what is in force',
        );
      }
      try {
        await sleep(wait, this.life.signal);
      } catch {
        return;
      }
    }
  }

  /** One round: renew (or acquire / claim back) the lease, then device, mark and peers. */
  async cycle(): Promise<void> {
    const l = await this.renewOrAcquire();
    if (l.tag === undefined || l.kind !== 'single-ip') {
      throw new Error(`the controller answered a router with a lease without a router tag (${l.subnet})`);
    }
    if (this.lease?.subnet !== l.subnet)
      this.log.info({ address: l.subnet, tag: l.tag }, 'router address held');
    this.lease = l;
    const c = this.config;
    const u = this.underlay!;
    const done = await this.vxlan.ensureDevice(vtepSpecOf(c, u, l));
    if (done.length > 0) this.log.info({ dev: c.vtepName, done }, 'VXLAN device configured');
    await this.ensureMark(l.tag);
    const listing = await this.client.leases(this.life.signal);
    this.leases = mergePeerLeases(this.leases, listing.leases, listing.released, Date.now()).leases;
    const d = desiredOverlay(this.leases, { cellId: c.cellId, subnet: l.subnet, underlayIp: u.ip });
    for (const s of d.skipped) this.log.warn(s, 'lease not programmed');
    const n = await this.vxlan.sync(d.state);
    this.metrics.overlayPeers.set(d.state.routes.size);
    if (n > 0) {
      this.metrics.overlayChanges.inc(n);
      this.log.info({ changes: n, peers: d.state.routes.size }, 'overlay entries updated');
    }
    await writeFileAtomic(this.stateFile, `${JSON.stringify({ lease: l })}\n`, 0o600);
  }

  private async renewOrAcquire(): Promise<OverlayLease> {
    const ip = this.underlay!.ip;
    if (this.lease) {
      try {
        return await this.client.renewLease(this.lease.subnet, ip);
      } catch (err) {
        if (!(err instanceof ControllerRequestError) || (err.status !== 404 && err.status !== 409)) throw err;
        this.log.warn(
          { err, address: this.lease.subnet },
          'router lease not renewable; claiming the held address',
        );
        return this.client.acquireLease(ip, undefined, this.lease.subnet, true);
      }
    }
    return this.client.acquireLease(ip, undefined, undefined, true);
  }

  /** The mark rule with `tag`: read back from the kernel, written (whole table) when it differs. */
  private async ensureMark(tag: number): Promise<void> {
    const table = this.config.nftTable;
    // a missing table or chain fails the listing: nothing in force
    this.markInForce = await this.run(['nft', '-j', 'list', 'chain', 'inet', table, ROUTER_MARK_CHAIN])
      .then((r) => markedTag(parseJsonOutput(r.stdout)))
      .catch(() => null);
    if (this.markInForce === tag) return;
    await this.run(['nft', '-f', '-'], routerMarkScript(table, this.config.vtepName, tag));
    this.log.info({ table, tag, was: this.markInForce }, 'router mark in force');
    this.markInForce = tag;
  }
}
