/** A FIFO async mutex: `run(fn)` calls run one at a time, in call order. */
export class Mutex {
  private tail: Promise<unknown> = Promise.resolve();
  private waiting = 0;

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.waiting++;
    const p = this.tail.then(fn, fn).finally(() => {
      this.waiting--;
    });
    this.tail = p.catch(() => undefined);
    return p;
  }

  /** Calls queued or running. */
  get pending(): number {
    return this.waiting;
  }
}
