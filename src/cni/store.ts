/**
 * The container metadata store, in Silk's store.json shape (docs/silk.md, "The container metadata store"):
 * `{ "<handle>": {"handle", "ip", "metadata"} }`, one entry per CNI attachment keyed by its name
 * (attachment.ts: the container ID for eth0, so CF's one-network case is exactly Silk's shape), rewritten whole on every change (temp file +
 * rename) with `store.json_version` bumped so readers can cache. Each entry also carries a `cfnet`
 * object (network, ifname, host veth, netns, MTU, subnet); Silk-style readers ignore it.
 *
 * The store doubles as the IPAM state (an address is in use iff an entry holds it), so allocation
 * and recording happen in one critical section: an in-process queue plus a cross-process lock
 * (proper-lockfile: `mkdir <store>.lock`, stale after 5 s). `store.json_ipam` remembers the last
 * address handed out (round-robin).
 */
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  readFileSync,
  renameSync,
  rmdirSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import lockfile from 'proper-lockfile';
import type { Logger } from '../lib/log.js';
import { CNI_ERR, CniError } from './errors.js';

export interface AttachmentRecord {
  /** CNI network name. */
  network: string;
  ifname: string;
  hostIface: string;
  netns: string;
  mtu: number;
  subnet: string;
  createdAt: string;
  /** NetIn host ports it was given (records from before this field: unknown). */
  hostPorts?: number[];
  /** Hash of its ASG rule set: its `asg_<hash>` chain (records from before this field: unknown). */
  egress?: string;
}

export interface StoreEntry {
  handle: string;
  ip: string;
  metadata: Record<string, unknown>;
  cfnet?: AttachmentRecord;
}

export type StoreData = Record<string, StoreEntry>;

/** The mutable view a transaction works on. Set `changed` for the store to be written. */
export interface StoreTx {
  data: StoreData;
  lastReserved: string | null;
  changed: boolean;
}

export interface DatastoreOptions {
  /** A lock not refreshed for this long is taken over (default 5000 ms, minimum 2000). */
  staleMs?: number;
  /** Give up (code 11) after this many lock attempts (default 250, ≈ 10 s). */
  retries?: number;
  logger?: Logger;
}

const queues = new Map<string, Promise<unknown>>();
/** Directories this process has made (or found) already: a warm executor skips the mkdir. */
const madeDirs = new Set<string>();

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

async function readText(path: string): Promise<string | null> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CniError(CNI_ERR.IO, `cannot read ${path}: ${String(err)}`);
  }
}

/*
 * Inside the lock the store files are read and written synchronously: they are small, and a
 * synchronous call is ~10x cheaper than a thread-pool round trip, which keeps the critical section
 * (that every concurrent ADD waits for) short. The event loop is held for well under a millisecond.
 */

function readTextSync(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new CniError(CNI_ERR.IO, `cannot read ${path}: ${String(err)}`);
  }
}

function writeAtomicSync(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, path);
  } catch (err) {
    try {
      unlinkSync(tmp);
    } catch {
      // never written
    }
    throw new CniError(CNI_ERR.IO, `cannot write ${path}: ${String(err)}`);
  }
}

/**
 * The lock without waiting: the same `mkdir <store>.lock` proper-lockfile makes, done synchronously
 * (~10 µs instead of a thread-pool round trip, which costs milliseconds on a busy 2-core cell and
 * sits on every ADD's critical path). Kept fresh like proper-lockfile keeps its own, so another
 * process never takes it as stale while held. Null when the lock is held (or cannot be made):
 * the caller then waits for it through proper-lockfile, with its retries and stale takeover.
 */
function tryLockSync(lockPath: string, staleMs: number): (() => Promise<void>) | null {
  try {
    mkdirSync(lockPath);
  } catch {
    return null;
  }
  const keepFresh = setInterval(
    () => {
      try {
        const now = new Date();
        utimesSync(lockPath, now, now);
      } catch {
        // gone: nothing to keep fresh
      }
    },
    Math.floor(staleMs / 2),
  );
  keepFresh.unref();
  return async () => {
    clearInterval(keepFresh);
    try {
      rmdirSync(lockPath);
    } catch {
      // already removed (taken over as stale): nothing to release
    }
  };
}

function parseStore(text: string | null, path: string): StoreData {
  if (text === null || text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CniError(CNI_ERR.INTERNAL, `datastore ${path} is not valid JSON`, '', { path });
  }
  if (!isObject(parsed)) {
    throw new CniError(CNI_ERR.INTERNAL, `datastore ${path} is not a JSON object`, '', { path });
  }
  return parsed as StoreData;
}

export class Datastore {
  readonly path: string;
  private readonly staleMs: number;
  private readonly retries: number;
  private readonly log: Logger | undefined;

  constructor(path: string, opts: DatastoreOptions = {}) {
    this.path = path;
    this.staleMs = Math.max(2000, opts.staleMs ?? 5000);
    this.retries = opts.retries ?? 250;
    this.log = opts.logger;
  }

  get versionPath(): string {
    return `${this.path}_version`;
  }

  get ipamPath(): string {
    return `${this.path}_ipam`;
  }

  get lockPath(): string {
    return `${this.path}.lock`;
  }

  /** The store as last written (no lock: writes are atomic renames). Missing or empty = {}. */
  async read(): Promise<StoreData> {
    return parseStore(await readText(this.path), this.path);
  }

  /** Runs `fn` under the store lock; writes the store (and version, IPAM state) when it set `changed`. */
  update<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    const prev = queues.get(this.path) ?? Promise.resolve();
    const run = () => this.locked(fn);
    const p = prev.then(run, run);
    const tail = p.catch(() => undefined);
    queues.set(this.path, tail);
    void tail.then(() => {
      if (queues.get(this.path) === tail) queues.delete(this.path);
    });
    return p;
  }

  private async waitForLock(): Promise<() => Promise<void>> {
    try {
      return await lockfile.lock(this.path, {
        realpath: false,
        lockfilePath: this.lockPath,
        stale: this.staleMs,
        retries: { retries: this.retries, factor: 1.15, minTimeout: 2, maxTimeout: 60 },
        onCompromised: (err) => this.log?.error({ err, path: this.lockPath }, 'datastore lock compromised'),
      });
    } catch (err) {
      throw new CniError(
        CNI_ERR.TRY_AGAIN,
        `datastore ${this.path} is locked by another process: ${err instanceof Error ? err.message : String(err)}`,
        '',
        { lock: this.lockPath },
      );
    }
  }

  private async locked<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    const dir = dirname(this.path);
    if (!madeDirs.has(dir)) {
      await mkdir(dir, { recursive: true });
      madeDirs.add(dir);
    }
    // uncontended: taken without a thread-pool round trip; held: wait through proper-lockfile
    const release = tryLockSync(this.lockPath, this.staleMs) ?? (await this.waitForLock());
    try {
      const data = parseStore(readTextSync(this.path), this.path);
      const ipamText = readTextSync(this.ipamPath);
      const versionText = readTextSync(this.versionPath);
      let lastReserved: string | null = null;
      if (ipamText) {
        try {
          const o = JSON.parse(ipamText) as { lastReserved?: unknown };
          if (typeof o.lastReserved === 'string') lastReserved = o.lastReserved;
        } catch {
          // a damaged hint only costs round-robin order
        }
      }
      const tx: StoreTx = { data, lastReserved, changed: false };
      const result = await fn(tx);
      if (tx.changed) {
        // the store before its version: a reader that sees the new version sees the new store
        writeAtomicSync(this.path, JSON.stringify(tx.data));
        const v = Number.parseInt(versionText ?? '0', 10);
        writeAtomicSync(this.versionPath, String((Number.isFinite(v) ? v : 0) + 1));
      }
      // also without a store change: an ADD refused for an address in use moves the round robin on
      if (tx.lastReserved !== lastReserved) {
        writeAtomicSync(this.ipamPath, JSON.stringify({ lastReserved: tx.lastReserved }));
      }
      return result;
    } finally {
      await release().catch(() => undefined);
    }
  }
}
