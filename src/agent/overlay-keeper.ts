/**
 * The lease and overlay keeper: the cell's subnet lease (renewed; claimed back when the controller
 * lost it; a move refused while containers use the subnet), the VXLAN device and the subnet file
 * for the CNI plugin, and the other cells' leases programmed as routes and neighbours (diffed);
 * and the overlay's health as status reports carry it (the kernel read back against the leases).
 */
import { readFile } from 'node:fs/promises';
import type { OverlayHealth } from '../api/status.js';
import { backoffDelay } from '../lib/backoff.js';
import { CfnetError } from '../lib/errors.js';
import { ControllerRequestError, type OverlayLease } from './client.js';
import { type AgentContext, jittered, pause } from './context.js';
import { DryRunOverlay, type OverlayDevice } from './dry-run.js';
import { AGENT_EVENTS } from './events.js';
import { desiredOverlay, emptyOverlay, mergePeerLeases, missingPeers, vtepIpOf } from './overlay.js';
import { routerTags } from './router-ingress.js';
import { writeFileAtomic } from './state.js';
import { detectUnderlay, deviceMissing, type Underlay, type VtepSpec, Vxlan, vtepSpecOf } from './vxlan.js';

export interface OverlayKeeperHooks {
  contact(ok: boolean, op: string, err?: unknown): void;
  /** The controller may have lost every inventory with the leases: report ours again. */
  reportInventoryAgain(): void;
  /** Whether containers use the held subnet (then it never moves on its own). */
  hasContainers(): boolean;
  /** The routers among the peers changed their tags (overlay ingress rules follow). */
  routerTagsChanged(): void;
  saveSoon(): void;
  /** The lease, the peers or the kernel's entries changed: report the overlay's health soon. */
  overlayChanged(): void;
}

export class OverlayKeeper {
  lease: OverlayLease | null = null;
  /** Every cell's lease as last listed (peers missing from a listing kept until they expire). */
  leases: OverlayLease[] = [];
  /** The subnet file for the CNI plugin is written (readiness). */
  subnetWritten = false;
  /**
   * Why the controller refused the cell's lease at the last attempt ('' when it did not): another
   * cell holds the subnet, or a move the agent refuses. The held subnet stays programmed, but the
   * lease is not the cell's.
   */
  leaseRefused = '';
  private underlay: Underlay | null = null;
  private readonly vxlan: OverlayDevice;
  /**
   * Overlay programming and health reads, one at a time: a health read between a new lease list
   * and its programming would count the new peers missing.
   */
  private overlayOps: Promise<unknown> = Promise.resolve();
  /** Lease, subnet and peer count when the last report was asked for (a change asks again). */
  private reported = '';

  constructor(
    private readonly ctx: AgentContext,
    private readonly hooks: OverlayKeeperHooks,
  ) {
    const c = ctx.config;
    this.vxlan = ctx.dryRun
      ? new DryRunOverlay(c.vtepName)
      : new Vxlan(c.vtepName, ctx.log.child({ component: 'vxlan' }));
  }

  /** The cell's underlay address, '' before detectUnderlay. */
  get underlayIp(): string {
    return this.underlay?.ip ?? '';
  }

  /** Finds the underlay (a dry run with a given address needs no interface holding it). */
  async detectUnderlay(): Promise<void> {
    const c = this.ctx.config;
    this.underlay =
      this.ctx.dryRun && c.underlayIp
        ? { ip: c.underlayIp, interface: c.underlayInterface || 'dry-run', mtu: 1500 }
        : await detectUnderlay({ ip: c.underlayIp, interface: c.underlayInterface });
  }

  /** Start-up: the saved lease and leases back in force (device kept if it matches; diffed). */
  async restore(lease: OverlayLease | null, leases: OverlayLease[]): Promise<void> {
    this.lease = lease;
    this.leases = leases;
    if (!this.lease) return;
    try {
      await this.adoptLease(this.lease, 'saved');
      await this.exclusive(() => this.syncOverlay(true));
    } catch (err) {
      this.ctx.log.error({ err }, 'restoring the overlay from saved state failed');
    }
  }

  /** Renews the lease and programs the other cells' leases, every `leasePollIntervalSeconds`. */
  async loop(): Promise<void> {
    const { ctx } = this;
    let failures = 0;
    while (!ctx.stopping()) {
      try {
        const l = await this.renewOrAcquire();
        this.hooks.contact(true, 'lease');
        await this.adoptLease(l, 'controller');
        this.leaseRefused = '';
        const listing = await ctx.client.leases(ctx.signal);
        const peers = mergePeerLeases(this.leases, listing.leases, listing.released, Date.now());
        if (peers.retained.length > 0) {
          ctx.log.info(
            { retained: peers.retained },
            'peers missing from the lease listing kept until their leases expire',
          );
        }
        await this.exclusive(async () => {
          const tagsBefore = routerTags(this.leases).join(',');
          this.leases = peers.leases;
          if (routerTags(this.leases).join(',') !== tagsBefore) this.hooks.routerTagsChanged();
          await this.syncOverlay(false);
        });
        this.hooks.saveSoon();
        this.reportIfChanged();
        failures = 0;
        if (!(await pause(ctx, jittered(ctx.config.leasePollIntervalSeconds * 1000)))) return;
      } catch (err) {
        if (ctx.stopping()) return;
        this.hooks.contact(false, 'lease', err);
        const delay = backoffDelay(failures++, ctx.backoff);
        const conflict = err instanceof ControllerRequestError && err.apiCode === 'CFNET_LEASE_CONFLICT';
        if (conflict) ctx.metrics.leaseConflicts.inc();
        if (conflict) this.leaseRefused = 'CFNET_LEASE_CONFLICT';
        else if (err instanceof CfnetError && err.code === 'CFNET_AGENT_LEASE_MOVE_REFUSED')
          this.leaseRefused = err.code;
        this.reportIfChanged();
        const fields = { err, retryInMs: delay, lease: this.lease?.subnet ?? null };
        if (conflict) {
          ctx.log.error(
            fields,
            "the controller says another live cell holds this cell's subnet; keeping it (an operator resolves this: cfnet leases move)",
          );
        } else {
          ctx.log.warn(fields, 'lease renewal failed; keeping the overlay as it is');
        }
        if (!(await pause(ctx, delay))) return;
      }
    }
  }

  /**
   * Renews the held lease; when the controller does not know it (Redis lost its data) or records
   * another subnet, claims the held subnet back. Without a lease (first start) acquires a fresh one.
   */
  private async renewOrAcquire(): Promise<OverlayLease> {
    const ip = this.underlay!.ip;
    const client = this.ctx.client;
    if (this.lease) {
      try {
        return await client.renewLease(this.lease.subnet, ip);
      } catch (err) {
        if (!(err instanceof ControllerRequestError) || (err.status !== 404 && err.status !== 409)) throw err;
        this.ctx.log.warn(
          { err, subnet: this.lease.subnet },
          'lease not renewable (the controller lost or moved it); claiming the held subnet',
        );
        this.hooks.reportInventoryAgain();
        return client.acquireLease(ip, undefined, this.lease.subnet);
      }
    }
    return client.acquireLease(ip);
  }

  /** The VXLAN device for lease `l` (start-up, every renewal and the drift check build it here). */
  private vtepSpec(l: OverlayLease): VtepSpec {
    return vtepSpecOf(this.ctx.config, this.underlay!, l);
  }

  /** Makes `l` the cell's lease: VXLAN device, subnet file for the CNI plugin. */
  private async adoptLease(l: OverlayLease, source: 'saved' | 'controller'): Promise<void> {
    const { log, metrics, config } = this.ctx;
    const prev = this.lease;
    if (prev && prev.subnet !== l.subnet) {
      if (l.moved !== 'operator' && this.hooks.hasContainers()) {
        metrics.leaseConflicts.inc();
        throw new CfnetError(
          'CFNET_AGENT_LEASE_MOVE_REFUSED',
          `the controller offered subnet ${l.subnet} but this cell holds ${prev.subnet} and has containers on it`,
          { held: prev.subnet, offered: l.subnet },
        );
      }
      log.error(
        { old: prev.subnet, new: l.subnet, moved: l.moved ?? 'no containers' },
        'the cell lease moved to another subnet: containers on the old subnet lose overlay connectivity',
      );
    }
    const done = await this.vxlan.ensureDevice(this.vtepSpec(l));
    if (done.length > 0)
      log.info(
        { event: AGENT_EVENTS.vxlanConfigured, dev: config.vtepName, done, source },
        'VXLAN device configured',
      );
    this.lease = l;
    await this.writeSubnetFile(l.subnet);
    if (!prev || prev.subnet !== l.subnet) log.info({ subnet: l.subnet, source }, 'cell lease held');
  }

  private async writeSubnetFile(subnet: string): Promise<void> {
    const text = `${JSON.stringify({ subnet, gateway: vtepIpOf(subnet) })}\n`;
    const cur = await readFile(this.ctx.config.subnetFile, 'utf8').catch(() => null);
    if (cur !== text) await writeFileAtomic(this.ctx.config.subnetFile, text, 0o644);
    this.subnetWritten = true;
  }

  /** Programs the other cells' leases (only the difference reaches the kernel). */
  private async syncOverlay(readKernel: boolean): Promise<number> {
    if (!this.lease) return 0;
    const { log, metrics } = this.ctx;
    const d = desiredOverlay(this.leases, {
      cellId: this.ctx.config.cellId,
      subnet: this.lease.subnet,
      underlayIp: this.underlay!.ip,
    });
    for (const s of d.skipped) log.warn(s, 'lease not programmed');
    const n = await this.vxlan.sync(d.state, { readKernel });
    metrics.overlayPeers.set(d.state.routes.size);
    if (n > 0) {
      metrics.overlayChanges.inc(n);
      log.info(
        { event: AGENT_EVENTS.overlayUpdated, changes: n, peers: d.state.routes.size, readKernel },
        'overlay entries updated',
      );
    }
    return n;
  }

  /** Drift check: the device and the overlay entries read back and repaired; entries changed. */
  async repair(): Promise<number> {
    if (!this.lease) return 0;
    const done = await this.vxlan.ensureDevice(this.vtepSpec(this.lease));
    if (done.length > 0) {
      this.ctx.metrics.driftRepairs.inc({ what: 'vtep' });
      this.ctx.log.warn({ done }, 'VXLAN device drift repaired');
    }
    const overlay = await this.exclusive(() => this.syncOverlay(true));
    if (overlay > 0) this.ctx.metrics.driftRepairs.inc({ what: 'overlay' });
    if (overlay > 0 || done.length > 0) this.hooks.overlayChanged();
    return overlay;
  }

  /** Whether the cell holds its lease: one adopted, its subnet file written, not refused, not expired. */
  leaseHeld(now = Date.now()): boolean {
    const l = this.lease;
    return l !== null && this.subnetWritten && this.leaseRefused === '' && (l.expiresAt ?? now + 1) > now;
  }

  /**
   * The overlay's health for a status report: the peers the lease list asks for, read back from the
   * kernel (a missing device counts every peer missing); null when the kernel could not be read.
   */
  health(): Promise<OverlayHealth | null> {
    return this.exclusive(async () => {
      const own = this.lease;
      const d = desiredOverlay(this.leases, {
        cellId: this.ctx.config.cellId,
        subnet: own?.subnet ?? null,
        underlayIp: this.underlay?.ip ?? '',
      });
      const expectedPeers = d.state.routes.size;
      let missing = expectedPeers;
      if (own) {
        try {
          missing = missingPeers(d.state, await this.vxlan.readKernel()).length;
        } catch (err) {
          if (!deviceMissing(err)) {
            this.ctx.log.warn({ err }, 'overlay entries unreadable; status without overlay health');
            return null;
          }
          missing = missingPeers(d.state, emptyOverlay()).length;
        }
      }
      return { expectedPeers, missingPeers: missing, leaseHeld: this.leaseHeld() };
    });
  }

  /** Asks for a status report when the lease, its state or the number of peers changed. */
  private reportIfChanged(): void {
    const now = `${this.lease?.subnet ?? ''} ${this.leaseHeld()} ${this.leases.length}`;
    if (now === this.reported) return;
    this.reported = now;
    this.hooks.overlayChanged();
  }

  /** Runs `fn` after every overlay operation queued before it (programming, health reads). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.overlayOps.then(fn, fn);
    this.overlayOps = p.catch(() => undefined);
    return p;
  }
}
