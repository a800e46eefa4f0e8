/**
 * Policy informer (leader only): every `intervalMs` (default 1 s, jittered) read the policy server's
 * `policies_last_updated` and fetch the full list only when it moved (plus every
 * `fullListIntervalMs`, default 5 min, as a safety net). A failure keeps the policies in effect.
 */
import type { PolicyServerClient } from '../../cf/policy-client.js';
import { errorMessage } from '../../lib/errors.js';
import { type InformerContext, InformerMetrics } from './context.js';
import { Poller } from './poller.js';

export interface PolicyInformerOptions {
  intervalMs?: number;
  fullListIntervalMs?: number;
}

export class PolicyInformer {
  private readonly poller: Poller;
  private readonly metrics: InformerMetrics;
  private last: bigint | null = null;
  private lastFullList = 0;
  private listedOnce = false;
  private syncedResolve!: () => void;
  readonly synced: Promise<void>;
  changes = 0;

  constructor(
    private readonly client: PolicyServerClient,
    private readonly ctx: InformerContext,
    private readonly opts: PolicyInformerOptions = {},
  ) {
    this.metrics = new InformerMetrics(ctx.registry);
    this.synced = new Promise((r) => {
      this.syncedResolve = r;
    });
    this.poller = new Poller(() => this.tick(), {
      intervalMs: opts.intervalMs ?? 1_000,
      onError: (err, n) => {
        this.metrics.pollError('policy');
        this.ctx.log.warn(
          { err: errorMessage(err), consecutive: n },
          'policy poll failed; keeping the last state',
        );
      },
    });
  }

  get isSynced(): boolean {
    return this.listedOnce;
  }

  start(): void {
    this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
  }

  async pollNow(): Promise<void> {
    await this.poller.now();
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const lu = await this.client.policiesLastUpdated();
    const fullDue = !this.listedOnce || now - this.lastFullList >= (this.opts.fullListIntervalMs ?? 300_000);
    if (!fullDue && lu === this.last) {
      this.metrics.poll('policy', 'skipped');
      return;
    }
    const policies = await this.client.policies();
    this.last = lu;
    this.lastFullList = now;
    const changed = this.ctx.world.setPolicies(policies, { kind: 'policy', id: lu.toString(), at: now });
    this.metrics.poll('policy', changed ? 'changed' : 'unchanged');
    if (changed) {
      this.changes++;
      this.ctx.log.info({ policies: policies.length }, 'policies changed');
      this.ctx.changed();
    }
    if (!this.listedOnce) {
      this.listedOnce = true;
      this.metrics.setSynced('policy', true);
      this.syncedResolve();
    }
  }
}
