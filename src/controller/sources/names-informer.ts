/**
 * Org, space and app names (leader only), on the security groups' cadence: every `checkIntervalMs`
 * a cheap fingerprint (size and newest `updated_at` of each collection, capi-names.ts) and a full
 * listing when it moved, plus a full listing every `fullListIntervalMs` anyway (the fingerprint
 * can miss a deletion and a creation within one second).
 *
 * Names are for operators only: the informer is not a source the first world write waits for, a
 * failing listing keeps the names in effect, and a new directory touches no cell (World.setNames).
 */
import type { CapiClient } from '../../cf/capi-client.js';
import { DEFAULT_ASG_CHECK_INTERVAL_MS } from './asg-informer.js';
import type { InformerContext } from './context.js';
import { PollingInformer } from './polling-informer.js';

export interface NamesInformerOptions {
  /** @defaultValue {@link DEFAULT_ASG_CHECK_INTERVAL_MS} */
  checkIntervalMs?: number;
  /** Full listing at least this often (ms), whatever the fingerprint says. */
  fullListIntervalMs: number;
}

export class NamesInformer extends PollingInformer {
  private fingerprint: string | null = null;
  private lastFullList = 0;

  constructor(
    private readonly capi: CapiClient,
    ctx: InformerContext,
    private readonly opts: NamesInformerOptions,
  ) {
    super(ctx, 'capi', opts.checkIntervalMs ?? DEFAULT_ASG_CHECK_INTERVAL_MS, 'org/space/app names');
  }

  protected async tick(): Promise<void> {
    const now = this.now();
    const fullDue = !this.listedOnce || now - this.lastFullList >= this.opts.fullListIntervalMs;
    // the fingerprint is read before the listing: a change during the listing moves it again
    const fingerprint = await this.capi.namesFingerprint();
    if (!fullDue && fingerprint === this.fingerprint) return;
    const names = await this.capi.listNames();
    this.fingerprint = fingerprint;
    this.lastFullList = now;
    if (this.ctx.world.setNames(names)) {
      this.changes++;
      this.ctx.log.info(
        { orgs: names.orgs.length, spaces: names.spaces.length, apps: names.apps.length },
        'org/space/app names changed',
      );
      this.ctx.changed();
    }
    this.listedOnce = true;
  }
}
