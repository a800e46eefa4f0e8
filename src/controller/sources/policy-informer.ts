/**
 * Policy informer (leader only): every `intervalMs` (default 1 s, jittered) read the policy server's
 * `policies_last_updated` and fetch the full list only when it moved (plus every
 * `fullListIntervalMs`, default 5 min, as a safety net). A failure keeps the policies in effect.
 */
import type { PolicyServerClient } from '../../cf/policy-client.js';
import { clockOf, type InformerContext, ingestOf } from './context.js';
import { PollingInformer } from './polling-informer.js';

export interface PolicyInformerOptions {
  intervalMs?: number;
  fullListIntervalMs?: number;
}

export class PolicyInformer extends PollingInformer {
  private last: bigint | null = null;
  private lastFullList = 0;

  constructor(
    private readonly client: PolicyServerClient,
    ctx: InformerContext,
    private readonly opts: PolicyInformerOptions = {},
  ) {
    super(ctx, 'policy', opts.intervalMs ?? 1_000, 'policy');
  }

  protected async tick(): Promise<void> {
    const now = clockOf(this.ctx).now();
    const lu = await this.client.policiesLastUpdated();
    const fullDue = !this.listedOnce || now - this.lastFullList >= (this.opts.fullListIntervalMs ?? 300_000);
    if (!fullDue && lu === this.last) {
      this.metrics.poll('policy', 'skipped');
      return;
    }
    const policies = await this.client.policies(undefined, { onInvalid: ingestOf(this.ctx).policyRejected });
    this.last = lu;
    this.lastFullList = now;
    const changed = this.ctx.world.setPolicies(policies, { kind: 'policy', id: lu.toString(), at: now });
    this.metrics.poll('policy', changed ? 'changed' : 'unchanged');
    if (changed) {
      this.changes++;
      this.ctx.log.info({ policies: policies.length }, 'policies changed');
      this.ctx.changed();
    }
    this.markListed();
  }
}
