/**
 * What the polling informers (security groups, policies) share: a jittered poller whose failures
 * keep the last state in effect, the "listed at least once" promise and gauge, start/stop, and
 * the context's clock.
 */
import type { Clock } from '../../lib/clock.js';
import { clockOf, type InformerContext, InformerMetrics, type InformerSource } from './context.js';
import { Poller } from './poller.js';

export abstract class PollingInformer {
  protected readonly metrics: InformerMetrics;
  /** The context's clock (injectable in tests): polls and listing times read it. */
  private readonly clock: Clock;
  private readonly poller: Poller;
  protected listedOnce = false;
  private syncedResolve!: () => void;
  readonly synced: Promise<void>;
  /** Listings that changed the world (for tests and the operator). */
  changes = 0;

  constructor(
    protected readonly ctx: InformerContext,
    private readonly source: Exclude<InformerSource, 'bbs'>,
    intervalMs: number,
    what: string,
  ) {
    this.metrics = new InformerMetrics(ctx.registry);
    this.clock = clockOf(ctx);
    this.synced = new Promise((r) => {
      this.syncedResolve = r;
    });
    this.poller = new Poller(() => this.tick(), {
      intervalMs,
      clock: this.clock,
      onError: (err, n) => {
        this.metrics.pollError(source);
        this.ctx.log.warn({ err, consecutive: n }, `${what} poll failed; keeping the last state`);
      },
    });
  }

  /** Now, on the context's clock (ms). */
  protected now(): number {
    return this.clock.now();
  }

  /** One poll: check, list when needed, update the world. */
  protected abstract tick(): Promise<void>;

  get isSynced(): boolean {
    return this.listedOnce;
  }

  start(): void {
    this.poller.start();
  }

  async stop(): Promise<void> {
    await this.poller.stop();
  }

  /** Poll now (tests, operator "refresh"). */
  async pollNow(): Promise<void> {
    await this.poller.now();
  }

  /** After a successful listing: the first one resolves `synced`. */
  protected markListed(): void {
    if (this.listedOnce) return;
    this.listedOnce = true;
    this.metrics.setSynced(this.source, true);
    this.syncedResolve();
  }
}
