/**
 * Appends audit lines to a file without blocking the agent and without growing without bound:
 * lines wait in a queue of at most `maxQueued` (beyond it they are dropped and counted), one write
 * is in flight at a time and carries everything queued (up to `maxBatchBytes`).
 *
 * Rotation-friendly the way Silk's iptables-logger is: the file is opened with O_APPEND (a
 * copytruncate rotation, BOSH's logrotate default, needs nothing more), and every `checkMs` the
 * path is looked at: when it is gone or is another inode (rotated by rename, removed), the file is
 * opened again, created when missing. No signal is involved.
 */
import { type FileHandle, mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface SinkHooks {
  onWritten(n: number): void;
  onDropped(reason: 'queue_full' | 'write_error' | 'shutdown', n: number): void;
  onError(err: unknown): void;
}

export interface SinkOptions {
  maxQueued: number;
  maxBatchBytes: number;
  checkMs: number;
}

export const DEFAULT_SINK_OPTIONS: SinkOptions = { maxQueued: 10_000, maxBatchBytes: 1 << 20, checkMs: 1000 };

export class AppendSink {
  private fh: FileHandle | null = null;
  private ino = -1;
  private queue: string[] = [];
  private writing: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    readonly path: string,
    private readonly hooks: SinkHooks,
    private readonly opts: SinkOptions = DEFAULT_SINK_OPTIONS,
  ) {}

  async start(): Promise<void> {
    await this.reopen().catch((err) => this.hooks.onError(err));
    this.timer = setInterval(() => {
      if (!this.writing) this.writing = this.check().finally(() => this.next());
    }, this.opts.checkMs);
    this.timer.unref();
  }

  /** Queues one line (no newline); false when it was dropped because the queue is full. */
  write(line: string): boolean {
    if (this.closed) return false;
    if (this.queue.length >= this.opts.maxQueued) {
      this.hooks.onDropped('queue_full', 1);
      return false;
    }
    this.queue.push(line);
    if (!this.writing) this.writing = this.flush().finally(() => this.next());
    return true;
  }

  /** Lines waiting to be written. */
  get queued(): number {
    return this.queue.length;
  }

  private next(): void {
    this.writing = null;
    if (this.queue.length > 0 && !this.closed) this.writing = this.flush().finally(() => this.next());
  }

  private async reopen(): Promise<void> {
    const old = this.fh;
    this.fh = null;
    await old?.close().catch(() => undefined);
    await mkdir(dirname(this.path), { recursive: true });
    const fh = await open(this.path, 'a', 0o644);
    this.ino = (await fh.stat()).ino;
    this.fh = fh;
  }

  /** Opens the file again when the path is gone or names another file. */
  private async check(): Promise<void> {
    try {
      const st = await stat(this.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return null;
        throw err;
      });
      if (!this.fh || !st || st.ino !== this.ino) await this.reopen();
    } catch (err) {
      this.hooks.onError(err);
    }
  }

  private async flush(): Promise<void> {
    let n = 0;
    let bytes = 0;
    while (n < this.queue.length && bytes < this.opts.maxBatchBytes) bytes += this.queue[n++]!.length + 1;
    if (n === 0) return;
    const batch = this.queue.splice(0, n);
    try {
      if (!this.fh) await this.reopen();
      await this.fh!.write(`${batch.join('\n')}\n`);
      this.hooks.onWritten(batch.length);
    } catch (err) {
      this.hooks.onDropped('write_error', batch.length);
      this.hooks.onError(err);
      const fh = this.fh;
      this.fh = null; // opened again for the next batch
      await fh?.close().catch(() => undefined);
    }
  }

  /** Writes what is queued (at most `waitMs`), then closes the file. */
  async close(waitMs = 1000): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const end = Date.now() + waitMs;
    while ((this.writing || this.queue.length > 0) && Date.now() < end) {
      if (!this.writing) this.writing = this.flush().finally(() => this.next());
      await Promise.race([this.writing, new Promise((r) => setTimeout(r, Math.max(0, end - Date.now())))]);
    }
    this.closed = true;
    if (this.queue.length > 0) this.hooks.onDropped('shutdown', this.queue.length);
    this.queue = [];
    await this.writing;
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}
