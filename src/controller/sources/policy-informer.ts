/**
 * Policy informer (leader only): every `intervalMs` (default 1 s, jittered) read the policy server's
 * `policies_last_updated` and fetch the full list only when it moved (plus every
 * `fullListIntervalMs`, default 5 min, as a safety net). A failure keeps the policies in effect.
 */
import type { PolicyServerClient } from '../../cf/policy-client.js';
import { type InformerContext, ingestOf } from './context.js';
import { PollingInformer } from './polling-informer.js';

/** `policies_last_updated` poll interval (ms) (`policyPollIntervalMs`). */
export const DEFAULT_POLICY_POLL_INTERVAL_MS = 1_000;
/** Full policy listing interval (ms), the safety net (`policyFullListIntervalMs`). */
export const DEFAULT_POLICY_FULL_LIST_INTERVAL_MS = 300_000;

export interface PolicyInformerOptions {
  /** @defaultValue {@link DEFAULT_POLICY_POLL_INTERVAL_MS} */
  intervalMs?: number;
  /** @defaultValue {@link DEFAULT_POLICY_FULL_LIST_INTERVAL_MS} */
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
    super(ctx, 'policy', opts.intervalMs ?? DEFAULT_POLICY_POLL_INTERVAL_MS, 'policy');
  }

  protected async tick(): Promise<void> {
    const now = this.now();
    const lu = await this.client.policiesLastUpdated();
    const fullDue =
      !this.listedOnce ||
      now - this.lastFullList >= (this.opts.fullListIntervalMs ?? DEFAULT_POLICY_FULL_LIST_INTERVAL_MS);
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
