/**
 * The event journal: every platform change the controller acts on (BBS event, ASG change, policy
 * change, agent inventory or status report, resync, operator replay) as one entry of a capped Redis
 * stream (`XADD … MAXLEN ~ N`), with the cells it touched and the reconcile jobs it caused. It lets
 * an operator answer "why did cell C reconcile at 10:02?" and replay exactly those cells.
 *
 * Stream `<ns>:ops:journal`, one field `e` = the entry's JSON. The stream id carries the time the
 * entry was written; `at` is when the controller saw the change.
 */
import type { Redis } from 'ioredis';
import { ValidationError } from '../lib/errors.js';
import type { Keys } from '../state/keys.js';

export type JournalType =
  | 'lrp'
  | 'desired'
  | 'task'
  | 'asg'
  | 'policy'
  | 'inventory'
  | 'agent-report'
  | 'resync'
  | 'replay'
  | 'rejected';

export const JOURNAL_TYPES: readonly JournalType[] = [
  'lrp',
  'desired',
  'task',
  'asg',
  'policy',
  'inventory',
  'agent-report',
  'resync',
  'replay',
  'rejected',
];

export type JournalSource = 'bbs' | 'capi' | 'policy-server' | 'agent' | 'controller' | 'operator';

/** What the change was about. `guid` is the object's own id (instance, process, task, group, …). */
export interface JournalSubject {
  guid?: string;
  apps?: string[];
  spaces?: string[];
  groups?: string[];
}

export interface JournalEntryInput {
  type: JournalType;
  source: JournalSource;
  subject: JournalSubject;
  cells: string[];
  jobIds: string[];
  /** When the controller saw the change (ms). */
  at: number;
  /** Anything else worth showing (agent report: version and error; policy: added/removed). */
  detail?: Record<string, unknown>;
}

export interface JournalEntry extends JournalEntryInput {
  /** Stream id (`<ms>-<seq>`). */
  id: string;
}

export interface JournalFilter {
  cell?: string;
  app?: string;
  space?: string;
  /** Any of these types (all types when absent or empty). */
  types?: readonly JournalType[];
  /** Entries written at or after this time (ms). */
  since?: number;
  /** Entries written at or before this time (ms). */
  until?: number;
}

export function journalKey(keys: Keys): string {
  return `${keys.ns}:ops:journal`;
}

export function parseJournalType(s: string, field = 'type'): JournalType {
  if (!(JOURNAL_TYPES as readonly string[]).includes(s)) {
    throw new ValidationError(field, s, `must be one of ${JOURNAL_TYPES.join(', ')}`);
  }
  return s as JournalType;
}

export function sourceOf(type: JournalType): JournalSource {
  switch (type) {
    case 'lrp':
    case 'desired':
    case 'task':
      return 'bbs';
    case 'asg':
      return 'capi';
    case 'policy':
      return 'policy-server';
    case 'inventory':
    case 'agent-report':
      return 'agent';
    case 'replay':
      return 'operator';
    default:
      return 'controller';
  }
}

/** A comma-separated list of types (`lrp,asg`). */
export function parseJournalTypes(s: string, field = 'type'): JournalType[] {
  return [
    ...new Set(
      s
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== ''),
    ),
  ].map((t) => parseJournalType(t, field));
}

export function matches(e: JournalEntryInput, f: JournalFilter): boolean {
  if (f.types && f.types.length > 0 && !f.types.includes(e.type)) return false;
  if (f.cell && !e.cells.includes(f.cell)) return false;
  if (f.app && !(e.subject.apps ?? []).includes(f.app) && e.subject.guid !== f.app) return false;
  if (f.space && !(e.subject.spaces ?? []).includes(f.space)) return false;
  return true;
}

function timeOfId(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

function parseEntry(id: string, fields: string[]): JournalEntry | null {
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'e') continue;
    try {
      return { id, ...(JSON.parse(fields[i + 1]!) as JournalEntryInput) };
    } catch {
      return null;
    }
  }
  return null;
}

export interface JournalOptions {
  /** Approximate number of entries kept (default 10,000). */
  maxLen?: number;
}

export class Journal {
  readonly key: string;
  readonly maxLen: number;

  constructor(
    private readonly redis: Redis,
    keys: Keys,
    opts: JournalOptions = {},
  ) {
    this.key = journalKey(keys);
    this.maxLen = Math.max(1, opts.maxLen ?? 10_000);
  }

  /** Append one entry; returns its stream id. */
  async record(e: JournalEntryInput): Promise<string> {
    const [id] = await this.recordMany([e]);
    return id!;
  }

  async recordMany(entries: readonly JournalEntryInput[]): Promise<string[]> {
    if (entries.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const e of entries) {
      pipe.xadd(this.key, 'MAXLEN', '~', String(this.maxLen), '*', 'e', JSON.stringify(e));
    }
    const res = (await pipe.exec()) ?? [];
    return res.map(([err, id]) => {
      if (err) throw err;
      return String(id);
    });
  }

  /**
   * Entries matching the filter, oldest first: the newest `limit` (default 100) of those written in
   * [since, until].
   */
  async read(filter: JournalFilter = {}, limit = 100): Promise<JournalEntry[]> {
    const out: JournalEntry[] = [];
    let end = filter.until !== undefined ? String(filter.until) : '+';
    const start = filter.since !== undefined ? String(filter.since) : '-';
    for (;;) {
      const page = (await this.redis.xrevrange(this.key, end, start, 'COUNT', 500)) as Array<
        [string, string[]]
      >;
      for (const [id, fields] of page) {
        const e = parseEntry(id, fields);
        if (e && matches(e, filter)) out.push(e);
        if (out.length >= limit) break;
      }
      if (out.length >= limit || page.length < 500) break;
      end = `(${page.at(-1)![0]}`;
    }
    return out.reverse();
  }

  /** Id of the newest entry, null when the stream is empty. */
  async lastId(): Promise<string | null> {
    const last = (await this.redis.xrevrange(this.key, '+', '-', 'COUNT', 1)) as Array<[string, string[]]>;
    return last[0]?.[0] ?? null;
  }

  /** Number of entries in the stream. */
  async length(): Promise<number> {
    return this.redis.xlen(this.key);
  }

  /**
   * Follow the stream from `fromId` (default: now) with a blocking connection, calling `onEntry`
   * for each matching entry until `signal` aborts.
   */
  async follow(
    blocking: Redis,
    filter: JournalFilter,
    onEntry: (e: JournalEntry) => void,
    signal: AbortSignal,
    fromId = '$',
    blockMs = 1000,
  ): Promise<void> {
    let last = fromId;
    while (!signal.aborted) {
      const res = (await blocking.xread('COUNT', 500, 'BLOCK', blockMs, 'STREAMS', this.key, last)) as Array<
        [string, Array<[string, string[]]>]
      > | null;
      if (!res) continue;
      for (const [, items] of res) {
        for (const [id, fields] of items) {
          last = id;
          const e = parseEntry(id, fields);
          if (e && matches(e, filter) && (filter.since === undefined || timeOfId(id) >= filter.since))
            onEntry(e);
        }
      }
    }
  }

  /** The cells of every matching entry (what `cfnet events --replay` re-enqueues). */
  static cellsOf(entries: readonly JournalEntryInput[]): string[] {
    const cells = new Set<string>();
    for (const e of entries) for (const c of e.cells) cells.add(c);
    return [...cells].sort();
  }
}
