/**
 * Time as a dependency: what reads the time or waits goes through a `Clock`, so tests drive it
 * (`ManualClock`) instead of sleeping on the wall clock or aligning to it. Production code uses
 * `systemClock`.
 */
export interface ClockTimer {
  readonly id: number;
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `fn` after `ms`; the timer does not keep the process alive. */
  setTimeout(fn: () => void, ms: number): ClockTimer;
  clearTimeout(timer: ClockTimer): void;
}

const systemTimers = new Map<number, NodeJS.Timeout>();
let nextSystemId = 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const id = nextSystemId++;
    const t = setTimeout(() => {
      systemTimers.delete(id);
      fn();
    }, ms);
    t.unref?.();
    systemTimers.set(id, t);
    return { id };
  },
  clearTimeout(timer) {
    const t = systemTimers.get(timer.id);
    if (t) clearTimeout(t);
    systemTimers.delete(timer.id);
  },
};

/**
 * A clock that moves only when told: `advance(ms)` fires every timer due on the way, in time
 * order, letting the promises each one starts settle before the next fires.
 */
export class ManualClock implements Clock {
  private t: number;
  private nextId = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();

  constructor(startMs = 0) {
    this.t = startMs;
  }

  now(): number {
    return this.t;
  }

  setTimeout(fn: () => void, ms: number): ClockTimer {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { id };
  }

  clearTimeout(timer: ClockTimer): void {
    this.timers.delete(timer.id);
  }

  /** Timers waiting (tests assert that nothing is left scheduled). */
  get pending(): number {
    return this.timers.size;
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  async advance(ms: number): Promise<void> {
    const until = this.t + ms;
    for (;;) {
      await settle();
      let due: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.timers)
        if (entry[1].at <= until && (!due || entry[1].at < due[1].at)) due = entry;
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = until;
    await settle();
  }

  /**
   * Moves time to the earliest timer and fires it alone; returns how far time moved (null when no
   * timer waits). Work that timer starts sees the clock stand at its due time, whatever real time
   * that work takes: a test can then tell exactly when the next timer was set.
   */
  async advanceToNext(): Promise<number | null> {
    await settle();
    let due: [number, { at: number; fn: () => void }] | undefined;
    for (const entry of this.timers) if (!due || entry[1].at < due[1].at) due = entry;
    if (!due) return null;
    const from = this.t;
    this.timers.delete(due[0]);
    this.t = Math.max(this.t, due[1].at);
    due[1].fn();
    await settle();
    return this.t - from;
  }
}

/** Lets pending promise callbacks (and the I/O-free work they start) run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
