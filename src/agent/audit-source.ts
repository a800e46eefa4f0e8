/**
 * Where the audit log reads kernel log lines from, without ever blocking the agent:
 *
 *  - `/dev/kmsg` (KmsgSource): the kernel's log buffer itself, which holds nf_log lines of every
 *    network namespace (with net.netfilter.nf_log_all_netns=1) whether or not a syslog daemon
 *    runs. Opened non-blocking and read on a timer: one read returns one record, an empty buffer
 *    answers EAGAIN at once (a blocking read would hold a libuv pool thread forever). Records in
 *    the buffer when the source opens are skipped (they predate the agent, as Silk's logger starts
 *    at the end of kern.log). EPIPE means the kernel overwrote records before they were read: they
 *    are counted as lost and reading goes on.
 *  - any other path (FileSource): a syslog file such as /var/log/kern.log (Silk's source), tailed
 *    by polling: new bytes are read from the last offset; a new inode (rotation by rename) or a
 *    shorter file (copytruncate) is read from its start; a missing file is waited for.
 *
 * Both hand complete lines to `onLine` and read at most a bounded amount per tick, so memory stays
 * bounded whatever the kernel's log rate.
 */
import { constants } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';

export const KMSG = '/dev/kmsg';

export interface LineSourceHooks {
  onLine(line: string): void;
  /** Lines lost before they could be read (kernel overrun, overlong line). */
  onLost(reason: 'kernel_overrun' | 'line_too_long', n: number): void;
  /** A read or open failed (logged by the caller, at most now and then). */
  onError(err: unknown): void;
}

export interface LineSource {
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface SourceOptions {
  pollMs: number;
  /** kmsg: records per tick; file: bytes per tick. */
  budget?: number;
}

/** A kmsg record is at most about 1 KiB of text plus its dictionary. */
const RECORD_BYTES = 8192;
/** More than a full kernel buffer holds: the skip at start always ends. */
const SKIP_AT_START = 1_000_000;
/** A syslog line longer than this is not an nf_log line (about 300 bytes): skipped. */
const MAX_LINE = 16_384;

function code(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

abstract class PolledSource implements LineSource {
  protected timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    protected readonly path: string,
    protected readonly hooks: LineSourceHooks,
    protected readonly opts: SourceOptions,
  ) {}

  protected abstract first(): Promise<void>;
  protected abstract tick(): Promise<void>;
  protected abstract release(): Promise<void>;

  async start(): Promise<void> {
    await this.first().catch((err) => this.hooks.onError(err));
    this.schedule();
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick()
        .catch((err) => this.hooks.onError(err))
        .finally(() => {
          this.running = null;
          this.schedule();
        });
    }, this.opts.pollMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    await this.release();
  }
}

/** /dev/kmsg, non-blocking. */
export class KmsgSource extends PolledSource {
  private fh: FileHandle | null = null;
  private readonly buf = Buffer.alloc(RECORD_BYTES);

  protected async first(): Promise<void> {
    this.fh = await open(this.path, constants.O_RDONLY | constants.O_NONBLOCK);
    // skip what the buffer already holds (bounded: the buffer is a few thousand records)
    await this.drain(SKIP_AT_START, false);
  }

  protected async tick(): Promise<void> {
    if (!this.fh) await this.first();
    else await this.drain(this.opts.budget ?? 2000, true);
  }

  private async drain(max: number, deliver: boolean): Promise<void> {
    const fh = this.fh!;
    for (let i = 0; i < max; i++) {
      let n: number;
      try {
        n = (await fh.read(this.buf, 0, RECORD_BYTES, null)).bytesRead;
      } catch (err) {
        if (code(err) === 'EAGAIN') return;
        if (code(err) === 'EPIPE') {
          // records overwritten before we read them; the next read returns the oldest one left
          if (deliver) this.hooks.onLost('kernel_overrun', 1);
          continue;
        }
        throw err;
      }
      if (n === 0) return;
      if (deliver) this.hooks.onLine(this.buf.toString('utf8', 0, n));
    }
  }

  protected async release(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}

/** A syslog file, tailed by polling; follows rotation by rename and by truncation. */
export class FileSource extends PolledSource {
  private fh: FileHandle | null = null;
  private ino = -1;
  private offset = 0;
  private partial = '';
  private skipping = false;
  /** The first open starts at the end (older lines are not this agent's to report). */
  private atStart = true;

  protected async first(): Promise<void> {
    await this.reopen();
  }

  private async reopen(): Promise<void> {
    await this.release();
    let fh: FileHandle;
    try {
      fh = await open(this.path, 'r');
    } catch (err) {
      if (code(err) === 'ENOENT') {
        this.atStart = false; // a file created later is read from its start
        this.hooks.onError(err); // said (now and then) while it is missing
        return;
      }
      throw err;
    }
    const st = await fh.stat();
    this.fh = fh;
    this.ino = st.ino;
    this.offset = this.atStart ? st.size : 0;
    this.atStart = false;
    this.partial = '';
    this.skipping = false;
  }

  protected async tick(): Promise<void> {
    if (!this.fh) {
      await this.reopen();
      if (!this.fh) return;
    }
    let size: number;
    try {
      const st = await stat(this.path);
      if (st.ino !== this.ino) {
        await this.readNew((await this.fh.stat()).size); // the rest of the rotated file first
        await this.reopen();
        if (!this.fh) return;
        size = (await this.fh.stat()).size;
      } else {
        size = st.size;
      }
    } catch (err) {
      if (code(err) !== 'ENOENT') throw err;
      return; // removed: the next tick opens the new file
    }
    if (size < this.offset) {
      this.offset = 0; // truncated (copytruncate)
      this.partial = '';
    }
    await this.readNew(size);
  }

  private async readNew(size: number): Promise<void> {
    const budget = this.opts.budget ?? 1 << 20;
    const end = Math.min(size, this.offset + budget);
    if (end <= this.offset || !this.fh) return;
    const buf = Buffer.alloc(end - this.offset);
    const { bytesRead } = await this.fh.read(buf, 0, buf.length, this.offset);
    this.offset += bytesRead;
    const lines = (this.partial + buf.toString('utf8', 0, bytesRead)).split('\n');
    this.partial = lines.pop()!;
    for (const line of lines) {
      if (this.skipping) {
        this.skipping = false; // the end of an overlong line
        continue;
      }
      this.hooks.onLine(line);
    }
    if (this.partial.length > MAX_LINE) {
      this.hooks.onLost('line_too_long', 1);
      this.partial = '';
      this.skipping = true;
    }
  }

  protected async release(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }
}

/** The source for a path: the kernel buffer for /dev/kmsg, a tailed file otherwise. */
export function lineSource(path: string, hooks: LineSourceHooks, opts: SourceOptions): LineSource {
  return path === KMSG ? new KmsgSource(path, hooks, opts) : new FileSource(path, hooks, opts);
}
