/**
 * Coalesces calls made in the same turn of the event loop into one batch. Used for Redis reads
 * that many concurrent callers make at once (a published change wakes every long-polling agent of
 * the cells it touched; workers run several jobs at a time): one MULTI carrying the commands of
 * every caller costs one socket write and one reply instead of one each, and on this machine the
 * per-write cost dominates small reads. Each caller gets its own result (or the batch's error).
 */

export class TickBatcher<Req, Res> {
  private pending: Array<{ req: Req; resolve: (r: Res) => void; reject: (e: unknown) => void }> = [];
  private scheduled = false;

  /**
   * @param run executes a batch; must return one result per request, in order (an Error instance
   *   as a result rejects only that caller).
   * @param maxBatch flush early when this many calls are waiting.
   */
  constructor(
    private readonly run: (reqs: Req[]) => Promise<Array<Res | Error>>,
    private readonly maxBatch = 256,
  ) {}

  call(req: Req): Promise<Res> {
    return new Promise<Res>((resolve, reject) => {
      this.pending.push({ req, resolve, reject });
      if (this.pending.length >= this.maxBatch) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        // setImmediate: after every I/O callback of this loop turn (replies read in one chunk)
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.pending;
    if (batch.length === 0) return;
    this.pending = [];
    this.run(batch.map((b) => b.req)).then(
      (results) => {
        batch.forEach((b, i) => {
          const r = results[i];
          if (r instanceof Error) b.reject(r);
          else if (i >= results.length) b.reject(new Error('batch returned too few results'));
          else b.resolve(r as Res);
        });
      },
      (err: unknown) => {
        for (const b of batch) b.reject(err);
      },
    );
  }
}
