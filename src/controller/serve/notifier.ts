/**
 * Wakes long-polling requests when a cell's rule set changes. One Redis subscriber per replica
 * listens on the store's change channel (`<cell> <version>`); waiters are kept per cell. After a
 * (re)subscription every waiter is woken, because messages sent while disconnected are lost: the
 * woken requests simply re-check the store.
 */
import type { Redis } from 'ioredis';

type Waiter = () => void;

export class ChangeNotifier {
  private readonly waiters = new Map<string, Set<Waiter>>();
  private started = false;
  /** Messages received (for metrics/tests). */
  received = 0;

  constructor(
    private readonly sub: Redis,
    private readonly channel: string,
  ) {}

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.sub.on('message', (ch: string, msg: string) => {
      if (ch !== this.channel) return;
      this.received++;
      const cell = msg.slice(0, msg.indexOf(' '));
      this.wake(cell);
    });
    this.sub.on('ready', () => this.wakeAll());
    await this.sub.subscribe(this.channel);
  }

  get size(): number {
    let n = 0;
    for (const s of this.waiters.values()) n += s.size;
    return n;
  }

  /**
   * A promise that resolves true when the cell may have changed, false after `timeoutMs` or on
   * `cancel()`. Register it BEFORE checking the store, then await it.
   */
  wait(cellId: string, timeoutMs: number): { promise: Promise<boolean>; cancel(): void } {
    let done!: (v: boolean) => void;
    const promise = new Promise<boolean>((r) => {
      done = r;
    });
    let set = this.waiters.get(cellId);
    if (!set) {
      set = new Set();
      this.waiters.set(cellId, set);
    }
    const s = set;
    let finished = false;
    const finish = (v: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      s.delete(waiter);
      if (s.size === 0 && this.waiters.get(cellId) === s) this.waiters.delete(cellId);
      done(v);
    };
    const waiter: Waiter = () => finish(true);
    const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
    s.add(waiter);
    return { promise, cancel: () => finish(false) };
  }

  wake(cellId: string): void {
    const set = this.waiters.get(cellId);
    if (!set) return;
    for (const w of [...set]) w();
  }

  wakeAll(): void {
    for (const cell of [...this.waiters.keys()]) this.wake(cell);
  }

  async stop(): Promise<void> {
    this.wakeAll();
    try {
      await this.sub.unsubscribe(this.channel);
    } catch {
      // connection already gone
    }
  }
}
