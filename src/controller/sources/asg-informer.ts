/**
 * Security-group informer (leader only). Two modes:
 * - with CC's internal endpoint: every `checkIntervalMs` (default 5 s) read `asg_latest_update`
 *   and list (the stable way: re-checking the timestamp after every page) only when it moved; plus
 *   a full listing every `fullListIntervalMs` anyway (its default is in settings.ts,
 *   `ASG_FULL_LIST_DEFAULT_MS`), because v2 writes do not move the timestamp and CF gives an ASG
 *   change 180 s to take effect. The timestamp has 1-second resolution: a second change within
 *   the second of the first leaves it as it was (cloud_controller_ng#3479). So a value counts as covered only by a
 *   listing that started more than `SAME_STAMP_WINDOW_MS` after this replica first saw it (every
 *   change sharing the value happened before then); until such a listing, checks list again;
 * - without it: a full listing every `fullListIntervalMs`.
 * Every time the informer reads comes from `now` (an injectable clock: tests drive the cadence
 * without waiting).
 * A listing that fails keeps the groups in effect (never wipes rules because CAPI is down); a group
 * that is invalid keeps its last valid version (it is left out only if it never had one).
 * `stateAt` of a listing is the time it started: the CAPI state is at least that new; a check that
 * finds nothing changed (or an identical listing) moves it forward, so containers desired before the
 * check switch from their BBS snapshot to the CAPI state.
 */
import type { CapiClient, SecurityGroupListing } from '../../cf/capi-client.js';
import type { SecurityGroup } from '../../model/types.js';
import { type InformerContext, ingestOf } from './context.js';
import { PollingInformer } from './polling-informer.js';

/**
 * Changes that share an `asg_latest_update` value happen within one second of the first of them,
 * which happened before we first read the value; 1 s more for CC's write of the timestamp and of
 * the group not being one instant. Measured on this replica's clock only (no clock comparison).
 */
export const SAME_STAMP_WINDOW_MS = 2_000;

/** `asg_latest_update` check interval (ms) (`asgCheckIntervalMs`). */
export const DEFAULT_ASG_CHECK_INTERVAL_MS = 5_000;

export interface AsgInformerOptions {
  /** Use `asg_latest_update` (needs the internal CC endpoint). */
  useLatestUpdate: boolean;
  /** @defaultValue {@link DEFAULT_ASG_CHECK_INTERVAL_MS} */
  checkIntervalMs?: number;
  /** Full listing at least this often (ms), whatever the check says. */
  fullListIntervalMs: number;
}

export class AsgInformer extends PollingInformer {
  private lastUpdate: bigint | null = null;
  /** The latest `asg_latest_update` value and when this replica first saw it. */
  private seen: { nanos: bigint; at: number } | null = null;
  /** Start of the last successful listing. */
  private lastListStarted = 0;
  private lastFullList = 0;

  constructor(
    private readonly capi: CapiClient,
    ctx: InformerContext,
    private readonly opts: AsgInformerOptions,
  ) {
    super(
      ctx,
      'capi',
      opts.useLatestUpdate
        ? (opts.checkIntervalMs ?? DEFAULT_ASG_CHECK_INTERVAL_MS)
        : opts.fullListIntervalMs,
      'security-group',
    );
  }

  protected async tick(): Promise<void> {
    const now = this.now();
    // The listing interval counts from the start of the previous full listing (a slow listing does
    // not push the next one out); the poll's jitter only adds at most one check interval.
    const fullDue = !this.listedOnce || now - this.lastFullList >= this.opts.fullListIntervalMs;
    if (this.opts.useLatestUpdate) {
      const checkedAt = this.now();
      const lu = await this.capi.asgLatestUpdate();
      this.saw(lu.nanos);
      const covered = this.lastListStarted >= this.seen!.at + SAME_STAMP_WINDOW_MS;
      if (!fullDue && this.lastUpdate !== null && lu.nanos === this.lastUpdate && covered) {
        this.metrics.poll('capi', 'skipped');
        // Nothing changed since our listing: the state in effect is current as of this check (the
        // new state time is written even when no cell switches; see World.confirmAsgs).
        this.ctx.world.confirmAsgs(checkedAt, { kind: 'asg', id: 'confirmed', at: checkedAt });
        if (this.ctx.world.hasChanges()) this.ctx.changed();
        return;
      }
      const started = this.now();
      const listing = await this.capi.listSecurityGroupsStable();
      this.saw(listing.lastUpdate.nanos);
      this.apply(listing, started);
      this.lastUpdate = listing.lastUpdate.nanos;
      this.lastListStarted = started;
    } else {
      const started = this.now();
      this.apply(await this.capi.listSecurityGroups(), started);
    }
    this.lastFullList = now;
  }

  /** Note a value of `asg_latest_update` (the time is taken after the read: an upper bound). */
  private saw(nanos: bigint): void {
    if (this.seen?.nanos !== nanos) this.seen = { nanos, at: this.now() };
  }

  private apply(listing: SecurityGroupListing, stateAt: number): void {
    const groups: SecurityGroup[] = [...listing.groups];
    const current = this.ctx.world.asgs();
    for (const bad of listing.invalid) {
      const keep = current?.group(bad.guid);
      ingestOf(this.ctx).securityGroupRejected(bad.guid, bad.message);
      this.ctx.log.warn(
        { guid: bad.guid, reason: bad.message, kept: keep !== undefined },
        'invalid security group: keeping its last valid version',
      );
      if (keep) groups.push(keep);
    }
    const changed = this.ctx.world.setAsgs(groups, stateAt, { kind: 'asg', id: 'listing', at: stateAt });
    this.metrics.poll('capi', changed ? 'changed' : 'unchanged');
    if (changed) {
      this.changes++;
      this.ctx.log.info({ groups: groups.length, source: listing.source }, 'security groups changed');
    }
    if (this.ctx.world.hasChanges()) this.ctx.changed();
    this.markListed();
  }
}
