/**
 * A jittered poll loop: runs `tick` every `intervalMs` (±`jitter`), measured from the end of the
 * previous tick; after a failure it backs off exponentially (up to `maxBackoffMs`) and returns to
 * the normal interval after the next success. Never overlaps ticks.
 */
import { type Clock, type ClockTimer, systemClock } from '../../lib/clock.js';

/** Polls are spread ±20 % around their interval, so replicas and sources do not beat in step. */
export const DEFAULT_JITTER = 0.2;

export interface PollerOptions {
  intervalMs: number;
  /**
   * What schedules the ticks (tests pass a ManualClock).
   * @defaultValue systemClock
   */
  clock?: Clock;
  /**
   * Fraction of the interval to randomise (0.2 → ±20 %).
   * @defaultValue {@link DEFAULT_JITTER}
   */
  jitter?: number;
  maxBackoffMs?: number;
  /** Run the first tick immediately (default true). */
  immediate?: boolean;
  onError?: (err: unknown, consecutive: number) => void;
}

export function jittered(ms: number, fraction: number): number {
  return Math.max(0, Math.round(ms * (1 + (Math.random() * 2 - 1) * fraction)));
}

export class Poller {
  private timer: ClockTimer | null = null;
  private readonly clock: Clock;
  private running = false;
  private failures = 0;
  private inFlight: Promise<void> | null = null;

  constructor(
    private readonly tick: () => Promise<void>,
    private readonly opts: PollerOptions,
  ) {
    this.clock = opts.clock ?? systemClock;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.schedule(this.opts.immediate === false ? this.nextDelay() : 0);
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight?.catch(() => {});
  }

  /** Run a tick now (after the current one, if any). */
  async now(): Promise<void> {
    await this.inFlight?.catch(() => {});
    await this.run();
  }

  private nextDelay(): number {
    const j = this.opts.jitter ?? DEFAULT_JITTER;
    if (this.failures === 0) return jittered(this.opts.intervalMs, j);
    const max = this.opts.maxBackoffMs ?? Math.max(30_000, this.opts.intervalMs);
    return jittered(Math.min(max, this.opts.intervalMs * 2 ** Math.min(this.failures, 10)), j);
  }

  private schedule(ms: number): void {
    if (!this.running) return;
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.timer = this.clock.setTimeout(() => {
      void this.run().then(() => this.schedule(this.nextDelay()));
    }, ms);
  }

  private async run(): Promise<void> {
    if (this.inFlight) return this.inFlight;
    this.inFlight = (async () => {
      try {
        await this.tick();
        this.failures = 0;
      } catch (err) {
        this.failures++;
        this.opts.onError?.(err, this.failures);
      }
    })();
    try {
      await this.inFlight;
    } finally {
      this.inFlight = null;
    }
  }
}
