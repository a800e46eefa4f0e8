/**
 * Rule-set store: per cell a versioned snapshot plus a bounded log of patches, in Redis.
 *
 * - Versions strictly increase and are assigned by Redis itself: `max(previous + 1, Redis TIME in
 *   ms)`. They are unique across a loss of Redis data too (a fresh store starts at the current time,
 *   above every version handed out before), so an agent never mistakes a new rule set for an old one.
 * - Versions never go backwards for an agent, even when Redis lost writes it had served (a failover
 *   to a replica that had not received them): an agent asking with a version above the stored one
 *   is not given the older content (`ahead`: it keeps what it has); that version is recorded as the
 *   cell's `floor`, and the next write — even of equal content — gets a version above it.
 * - A write is a compare-and-set on the expected previous version (Lua): a worker that read an older
 *   state can never replace a newer rule set; its write is refused (`StaleWriteError`).
 * - Every write publishes `<cell> <version>` on the change channel so every replica wakes the
 *   agents long-polling that cell.
 * - Agents report the version they applied; desired vs applied gives convergence.
 *
 * Longer than ~400 lines: one Redis contract: versioned snapshots, the patch log, the shared tag
 * tables and the version floor are written by one script and read together.
 */
import type { Redis } from 'ioredis';
import { shortHash } from '../model/canonical.js';
import { sortTags } from '../model/ruleset.js';
import type { CellRuleSet, EgressRule, RuleSetPatch } from '../model/types.js';
import { composeEntries, containerTexts, type LogEntry, makeLogEntry } from './compose.js';
import {
  type CellConvergence,
  type ConvergenceOptions,
  encodeOverlayHealth,
  type OverlayHealth,
  parseOverlayHealth,
  readConvergence,
} from './convergence.js';
import { MissingAsgSetError, MissingTagTableError, StaleWriteError } from './errors.js';
import type { Keys } from './keys.js';
import { defineStateScripts } from './scripts.js';
import { TickBatcher } from './tick-batch.js';

/** What `changesSince` reads first: the version, the snapshot's length and the log. */
interface LogHead {
  version: string | null;
  snapshotLength: number;
  lines: string[];
}

export interface StoredMeta {
  version: number;
  hash: string;
  /** When that version was written (ms, Redis clock). */
  updatedAt: number;
}

export type Changes =
  /** Nothing stored for the cell yet. */
  | { kind: 'none' }
  /** The agent is at the current version. */
  | { kind: 'current'; version: number }
  /** The agent holds a version the store does not have (lost writes): wait for a newer one. */
  | { kind: 'ahead'; version: number }
  | { kind: 'patch'; patch: RuleSetPatch }
  | { kind: 'snapshot'; ruleSet: CellRuleSet };

export interface AgentStatus {
  appliedVersion: number;
  /** Agent clock, ms. */
  appliedAt: number;
  /** Controller clock, ms. */
  reportedAt: number;
  error: string;
  /** How often the agent reports (ms; 0 = not told): a cell silent for a few intervals is stale. */
  intervalMs?: number;
  /** The agent runs in dry-run: it computes and logs but enforces nothing. */
  dryRun?: boolean;
  /**
   * Its overlay as read from its kernel with the report (absent: an agent that does not report it):
   * missing peer entries or a lease not held make the cell `degraded`.
   */
  overlay?: OverlayHealth;
}

/** Patches kept per cell: an agent further behind gets a snapshot (the controller's `rulesetLogLength`). */
export const DEFAULT_RULESET_LOG_LENGTH = 50;

export interface RuleSetStoreOptions {
  /**
   * Patches kept per cell.
   * @defaultValue {@link DEFAULT_RULESET_LOG_LENGTH}
   */
  logLength?: number;
}

/** JSON text of asg sets by key: the key is the content hash of the rules, so the text never changes. */
const setText = new Map<string, string>();
const SET_TEXT_MAX = 20_000;

function asgSetText(key: string, rules: readonly unknown[]): string {
  let t = setText.get(key);
  if (t === undefined) {
    t = JSON.stringify(rules);
    if (setText.size >= SET_TEXT_MAX) setText.delete(setText.keys().next().value as string);
    setText.set(key, t);
  }
  return t;
}

/**
 * Parsed rules of asg sets by key, shared by every patch this process serves: log entries name the
 * sets they upsert without their rules (see `encodeLogEntry`), so a change of a set shared by every
 * cell is neither written into nor parsed out of 2,500 logs. Filled from the set text (JSON
 * round-trip, so values equal what a stored snapshot parses to) when this process writes a rule set,
 * or from a stored snapshot when another replica wrote it. Never mutated.
 */
const setRules = new Map<string, EgressRule[]>();

function rememberSet(key: string, rules: EgressRule[]): void {
  if (setRules.has(key)) return;
  if (setRules.size >= SET_TEXT_MAX) setRules.delete(setRules.keys().next().value as string);
  // shared by every rule set and patch this process reads: a consumer mutating one would corrupt all
  for (const r of rules) deepFreeze(r);
  setRules.set(key, Object.freeze(rules) as EgressRule[]);
}

function deepFreeze(v: unknown): void {
  if (typeof v !== 'object' || v === null || Object.isFrozen(v)) return;
  for (const x of Object.values(v)) deepFreeze(x);
  Object.freeze(v);
}

/**
 * ASG set keys this process wrote to or read from Redis's shared set table (`keys.asgSets`): a
 * write sends the rules of the others only. A belief, not a promise — a set every snapshot dropped
 * is deleted, Redis may lose data — so the write script checks every key and names the missing
 * ones, which are then sent (answer 3).
 */
const storedSets = new Set<string>();

function believeStored(key: string): void {
  if (storedSets.size >= SET_TEXT_MAX) storedSets.delete(storedSets.keys().next().value as string);
  storedSets.add(key);
}

/** Stands for "the rules of this key, taken from the current snapshot" in a decoded log entry. */
const UNRESOLVED: EgressRule[] = [];

/**
 * The stored text of a log entry: the patch with `asgSets.upsert` reduced to its keys
 * (`upsertSets`). A set's key is the content hash of its rules, and a set a composed patch upserts
 * is in the current snapshot, so the rules are resolved from there when the patch is served.
 */
function encodeLogEntry(e: LogEntry): string {
  const upsertSets = Object.keys(e.patch.asgSets.upsert);
  const patch = { ...e.patch, asgSets: { upsert: {}, remove: e.patch.asgSets.remove } };
  return JSON.stringify({ patch, addedHandles: e.addedHandles, addedSets: e.addedSets, upsertSets });
}

/**
 * A rule set encoded for the store: its content hash (version excluded) and, when it is to be
 * written, its JSON text (version 0; the version lives beside it). Containers, c2c and config are
 * serialised once for both. asgSets enter the hash by key only: each key is already the content
 * hash of its rules; their text is cached per key, as most sets are shared by many cells. Computed
 * rule sets are built in a fixed key order and sorted, so plain JSON text is canonical for them
 * (much cheaper than `canonicalJson` for cells with hundreds of containers).
 */
export class EncodedRuleSet {
  private readonly containers: string;
  private readonly c2c: string;
  private readonly config: string;
  /** Content hash of the tag table ('' when none): the snapshot names the table by it. */
  readonly tagsRef: string;
  private readonly setKeys: string[];
  private hashValue: string | null = null;
  private bodyText: string | undefined;

  constructor(readonly ruleSet: CellRuleSet) {
    // the same text as JSON.stringify(containers); the per-container texts serve the next diff
    this.containers = `[${containerTexts(ruleSet.containers).join(',')}]`;
    this.c2c = JSON.stringify(ruleSet.c2c);
    this.config = JSON.stringify(ruleSet.config);
    this.tagsRef = tagTable(ruleSet.tags).ref;
    this.setKeys = Object.keys(ruleSet.asgSets).sort();
  }

  get hash(): string {
    this.hashValue ??= shortHash(
      `[${JSON.stringify(this.ruleSet.cellId)},${this.containers},${JSON.stringify(this.setKeys)},${this.c2c},${this.config}${this.tagsRef === '' ? '' : `,${JSON.stringify(this.tagsRef)}`}]`,
    );
    return this.hashValue;
  }

  /**
   * The stored text: `{cellId, version: 0, containers, asgSets: null, c2c, config}`. The ASG sets
   * and the tag table are stored once for every cell: the snapshot names its sets by key
   * (`setKeys`, beside it) and its table by `tagsRef`. `null`, not `{}`: a reader that does not
   * know the form (an older replica during an upgrade) fails on it instead of serving a rule set
   * with no egress rules.
   */
  body(): string {
    this.bodyText ??= `{"cellId":${JSON.stringify(this.ruleSet.cellId)},"version":0,"containers":${this.containers},"asgSets":null,"c2c":${this.c2c},"config":${this.config}}`;
    return this.bodyText;
  }

  /** The keys of the rule set's ASG sets, sorted. */
  get sets(): readonly string[] {
    return this.setKeys;
  }

  /** The rules text of one of its sets (cached per key). */
  setText(key: string): string {
    return asgSetText(key, this.ruleSet.asgSets[key]!);
  }

  /**
   * Length of the whole rule set's JSON with its sets, tag table excluded (what the body was before
   * sets were stored apart): the store compares a patch's length with it.
   */
  get size(): number {
    let n = this.body().length - 'null'.length + 2 + Math.max(0, this.setKeys.length - 1);
    for (const k of this.setKeys) n += JSON.stringify(k).length + 1 + this.setText(k).length;
    return n;
  }
}

/**
 * A tag table as the store keeps it: its JSON text and content hash (`ref`), '' for none. Every
 * cell carries the same table (tens of thousands of apps, ~1 MB in the large foundation), so it is
 * stored once in Redis, under its hash, and each cell's snapshot names it; text and hash are kept
 * by table identity (computed rule sets share one object per policy state), so 2,500 cells
 * serialise and hash it once.
 */
interface TagTable {
  ref: string;
  text: string;
}

const NO_TABLE: TagTable = { ref: '', text: '' };
const tagTables = new WeakMap<Readonly<Record<string, number>>, TagTable>();

function tagTable(tags: Readonly<Record<string, number>> | undefined): TagTable {
  if (tags === undefined) return NO_TABLE;
  let t = tagTables.get(tags);
  if (t === undefined) {
    const text = Object.keys(tags).length === 0 ? '' : JSON.stringify(tags);
    t = text === '' ? NO_TABLE : { ref: shortHash(text), text };
    tagTables.set(tags, t);
  }
  return t;
}

/** Parsed tables by ref, shared by every rule set this process reads (one per policy state). */
const tablesByRef = new Map<string, Record<string, number>>();
const TABLES_MAX = 4;

function rememberTable(ref: string, text: string): Record<string, number> {
  let tags = tablesByRef.get(ref);
  if (tags === undefined) {
    tags = sortTags(JSON.parse(text) as Record<string, number>) ?? {};
    tagTables.set(tags, { ref, text });
    if (tablesByRef.size >= TABLES_MAX) tablesByRef.delete(tablesByRef.keys().next().value as string);
    tablesByRef.set(ref, tags);
  }
  return tags;
}

/** Content hash of a rule set, version excluded (see EncodedRuleSet). */
export function ruleSetHash(rs: CellRuleSet): string {
  return new EncodedRuleSet(rs).hash;
}

/** A rule set as stored (version 0; the version lives beside it) and its content hash. */
export function serializeRuleSet(rs: CellRuleSet | EncodedRuleSet): { body: string; hash: string } {
  const e = rs instanceof EncodedRuleSet ? rs : new EncodedRuleSet(rs);
  return { body: e.body(), hash: e.hash };
}

/** The tag table of a rule set as the store keeps it: its ref and JSON text ('' when none). */
export function tagTableOf(rs: CellRuleSet): { ref: string; text: string } {
  return tagTable(rs.tags);
}

interface ScriptRedis extends Redis {
  /** Arguments: see the header of lua/ruleset-write.lua (8 keys, then ARGV). */
  cfnetWriteRuleSet(...args: string[]): Promise<[number, string]>;
  cfnetRaiseFloor(key: string, version: string): Promise<number>;
  cfnetReportStatus(
    ...args: [string, string, string, string, string, string, string, string, string, string]
  ): Promise<number>;
}

/** A log line; sets named by key only (`upsertSets`) get the UNRESOLVED placeholder. */
function parseLogLine(line: string): LogEntry | null {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  if (a < 0 || b < 0) return null;
  const from = Number(line.slice(0, a));
  const to = Number(line.slice(a + 1, b));
  const entry = JSON.parse(line.slice(b + 1)) as LogEntry & { upsertSets?: string[] };
  entry.patch.from = from;
  entry.patch.to = to;
  // entries written before sets were stored by key carry their rules; both forms compose alike
  for (const k of entry.upsertSets ?? []) entry.patch.asgSets.upsert[k] = UNRESOLVED;
  delete entry.upsertSets;
  return entry;
}

/**
 * `JSON.stringify(patch)`, with the rules of upserted sets taken from the per-key text cache: after
 * a foundation-wide change every cell's patch upserts the same few sets, so their text is built
 * once, not once per long-poll answer. Remembered per patch object (the store measures it against
 * the snapshot's length, the API then sends it).
 */
const patchTexts = new WeakMap<RuleSetPatch, string>();

function patchJson(patch: RuleSetPatch): string {
  let text = patchTexts.get(patch);
  if (text !== undefined) return text;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(patch)) {
    if (value === undefined) continue; // as JSON.stringify does
    if (key !== 'asgSets') {
      parts.push(`${JSON.stringify(key)}:${JSON.stringify(value)}`);
      continue;
    }
    const sets = patch.asgSets;
    const upsert = Object.entries(sets.upsert)
      .map(([k, rules]) => `${JSON.stringify(k)}:${asgSetText(k, rules)}`)
      .join(',');
    parts.push(`"asgSets":{"upsert":{${upsert}},"remove":${JSON.stringify(sets.remove)}}`);
  }
  text = `{${parts.join(',')}}`;
  patchTexts.set(patch, text);
  return text;
}

/**
 * The JSON text of what `changesSince` answered, as the agent API sends it: a patch's sets come
 * from the text cache (`patchJson`); anything else is plain `JSON.stringify`.
 */
export function changesJson(ch: Changes): string {
  if (ch.kind !== 'patch') return JSON.stringify(ch);
  return `{"kind":"patch","patch":${patchJson(ch.patch)}}`;
}

export class RuleSetStore {
  private readonly redis: ScriptRedis;
  readonly logLength: number;
  /** Heads of the cells agents ask about in the same loop turn, read in one MULTI. */
  private readonly heads = new TickBatcher<string, LogHead>((cells) => this.readHeads(cells));

  constructor(
    redis: Redis,
    readonly keys: Keys,
    opts: RuleSetStoreOptions = {},
  ) {
    this.redis = redis as ScriptRedis;
    this.logLength = Math.max(1, opts.logLength ?? DEFAULT_RULESET_LOG_LENGTH);
    defineStateScripts(this.redis);
  }

  async meta(cellId: string): Promise<StoredMeta | null> {
    const [version, hash, updatedAt] = await this.redis.hmget(
      this.keys.ruleSet(cellId),
      'version',
      'hash',
      'updatedAt',
    );
    if (!version) return null;
    return { version: Number(version), hash: hash ?? '', updatedAt: Number(updatedAt ?? 0) };
  }

  /** The stored rule set (with its version), or null. */
  async get(cellId: string): Promise<CellRuleSet | null> {
    const snap = await this.snapshot(cellId);
    return snap.kind === 'snapshot' ? snap.ruleSet : null;
  }

  /** The tag table `ref` names: cached, or read from Redis (once per table); null when gone. */
  private async table(ref: string): Promise<Record<string, number> | null> {
    const cached = tablesByRef.get(ref);
    if (cached !== undefined) return cached;
    const text = await this.redis.hget(this.keys.tagTables, ref);
    return text === null ? null : rememberTable(ref, text);
  }

  /** Cells with a stored rule set. */
  async cells(): Promise<string[]> {
    return (await this.redis.smembers(this.keys.ruleSetCells)).sort();
  }

  /**
   * Store `next` as the new rule set of the cell if the stored version is still `prev?.version ?? 0`
   * (`prev` is the stored rule set the caller diffed against, null when none). Returns the new
   * version; throws StaleWriteError when another write came first.
   */
  async write(
    next: CellRuleSet,
    prev: CellRuleSet | null,
    encoded: EncodedRuleSet = new EncodedRuleSet(next),
  ): Promise<number> {
    const cell = next.cellId;
    const expected = prev?.version ?? 0;
    let entry = '';
    if (prev) {
      const e = makeLogEntry(prev, next);
      e.patch.from = 0;
      e.patch.to = 0;
      entry = encodeLogEntry(e);
    }
    const table = tagTable(next.tags);
    const body = encoded.body();
    const size = String(encoded.size);
    const refs = encoded.sets.join(' ');
    const run = (tableText: string, send: readonly string[]) =>
      this.redis.cfnetWriteRuleSet(
        this.keys.ruleSet(cell),
        this.keys.ruleSetLog(cell),
        this.keys.ruleSetCells,
        this.keys.tagTables,
        this.keys.tagTableRefs,
        this.keys.status(cell),
        this.keys.asgSets,
        this.keys.asgSetRefs,
        String(expected),
        body,
        encoded.hash,
        entry,
        String(this.logLength),
        this.keys.ruleSetChannel,
        cell,
        table.ref,
        tableText,
        refs,
        size,
        ...send.flatMap((k) => [k, encoded.setText(k)]),
      );
    // The table and the sets travel only when Redis does not hold them yet: once per policy state
    // and per set, not per cell.
    let send = encoded.sets.filter((k) => !storedSets.has(k));
    let tableText = '';
    let [ok, v] = await run(tableText, send);
    for (let round = 0; round < 2 && (Number(ok) === 2 || Number(ok) === 3); round++) {
      if (Number(ok) === 2) tableText = table.text;
      else send = [...new Set([...send, ...String(v).split(' ')])];
      [ok, v] = await run(tableText, send);
    }
    if (Number(ok) !== 1) throw new StaleWriteError(cell, expected, Number(ok) === 0 ? Number(v) : expected);
    // reads of this table now yield the computed object itself: the next diff against it is free
    if (next.tags !== undefined && table.ref !== '' && !tablesByRef.has(table.ref)) {
      if (tablesByRef.size >= TABLES_MAX) tablesByRef.delete(tablesByRef.keys().next().value as string);
      tablesByRef.set(table.ref, next.tags);
    }
    for (const k of encoded.sets) {
      believeStored(k);
      if (!setRules.has(k)) rememberSet(k, JSON.parse(encoded.setText(k)) as EgressRule[]);
    }
    return Number(v);
  }

  /**
   * What an agent at version `since` needs: nothing new (`current`), one patch composed from the
   * log when it covers `since`, or the full snapshot (since = 0, unknown or too old). A patch
   * larger than the snapshot is replaced by the snapshot. An agent ahead of the store (it holds a
   * version the store lost) gets `ahead` and the version becomes the cell's floor.
   */
  async changesSince(cellId: string, since: number): Promise<Changes> {
    // The snapshot itself is read only when it is to be sent (or to resolve sets): a patch, or
    // "current", needs just its length.
    const { version, snapshotLength, lines } = await this.heads.call(cellId);
    const current = version && snapshotLength > 0 ? Number(version) : 0;
    if (since > current) {
      await this.redis.cfnetRaiseFloor(this.keys.ruleSet(cellId), String(since));
      return { kind: 'ahead', version: current };
    }
    if (current === 0) return { kind: 'none' };
    if (since === current) return { kind: 'current', version: current };
    if (since <= 0) return this.snapshot(cellId);
    const entries: LogEntry[] = [];
    let started = false;
    for (const line of lines) {
      if (!started) {
        const sp = line.indexOf(' ');
        if (Number(line.slice(0, sp)) !== since) continue;
        started = true;
      }
      const e = parseLogLine(line);
      if (!e) return this.snapshot(cellId);
      entries.push(e);
    }
    if (!started) return this.snapshot(cellId);
    const patch = composeEntries(entries);
    if (!patch || patch.to !== current) return this.snapshot(cellId);
    const upsert = patch.asgSets.upsert;
    const unresolved = Object.keys(upsert).filter((k) => upsert[k] === UNRESOLVED);
    if (unresolved.some((k) => !setRules.has(k)) && (await this.resolveSets(unresolved)) === null) {
      // Not in the shared table (a snapshot written before sets were stored apart, or by an older
      // replica): learn them from the snapshot itself (once per set, not per cell).
      const snap = await this.snapshot(cellId);
      if (snap.kind !== 'snapshot' || snap.ruleSet.version !== current) return snap;
      for (const [k, rules] of Object.entries(snap.ruleSet.asgSets)) rememberSet(k, rules);
      if (unresolved.some((k) => !setRules.has(k))) return snap;
    }
    for (const k of unresolved) upsert[k] = setRules.get(k)!;
    if (patchJson(patch).length > snapshotLength) return this.snapshot(cellId);
    return { kind: 'patch', patch };
  }

  /** Version, snapshot length and log of each cell, all in one MULTI (atomic, one round trip). */
  private async readHeads(cells: string[]): Promise<Array<LogHead | Error>> {
    const multi = this.redis.multi();
    for (const c of cells) {
      multi
        .hmget(this.keys.ruleSet(c), 'version', 'size')
        .hstrlen(this.keys.ruleSet(c), 'snapshot')
        .lrange(this.keys.ruleSetLog(c), 0, -1);
    }
    const res = await multi.exec();
    return cells.map((_, i) => {
      if (!res) return { version: null, snapshotLength: 0, lines: [] };
      const [[e1, fields], [e2, length], [e3, lines]] = [res[3 * i]!, res[3 * i + 1]!, res[3 * i + 2]!];
      const err = e1 ?? e2 ?? e3;
      if (err) return err;
      const [version, size] = (fields ?? []) as Array<string | null>;
      // `size`: the whole rule set's length, sets included; a snapshot stored before the sets were
      // stored apart has none, and its text is the whole
      const stored = Number(length ?? 0);
      return {
        version: version ?? null,
        snapshotLength: stored > 0 && size ? Number(size) : stored,
        lines: (lines ?? []) as string[],
      };
    });
  }

  /** The full stored snapshot at its current version (`none` when there is none). */
  private async snapshot(cellId: string): Promise<Changes> {
    for (let attempt = 1; ; attempt++) {
      const [version, snapshot, ref, sets] = await this.redis.hmget(
        this.keys.ruleSet(cellId),
        'version',
        'snapshot',
        'tagsRef',
        'sets',
      );
      if (!version || !snapshot) return { kind: 'none' };
      const parsed = JSON.parse(snapshot) as Omit<CellRuleSet, 'asgSets'> & {
        asgSets: CellRuleSet['asgSets'] | null;
      };
      // A write replaced the snapshot (and dropped a set or table it named) between the reads: read again.
      const asgSets = parsed.asgSets ?? (await this.resolveSets(sets ? sets.split(' ') : []));
      if (asgSets === null) {
        if (attempt >= 3) throw new MissingAsgSetError(cellId, sets ?? '');
        continue;
      }
      const ruleSet: CellRuleSet = { ...parsed, asgSets, version: Number(version) };
      if (!ref) return { kind: 'snapshot', ruleSet };
      const tags = await this.table(ref);
      if (tags !== null) return { kind: 'snapshot', ruleSet: { ...ruleSet, tags } };
      if (attempt >= 3) throw new MissingTagTableError(cellId, ref);
    }
  }

  /**
   * The rules of the sets `keys` names, from this process's cache or the shared set table (each set
   * read once per process); null when one is not stored (its last snapshot moved on meanwhile).
   */
  private async resolveSets(keys: readonly string[]): Promise<Record<string, EgressRule[]> | null> {
    const missing = keys.filter((k) => !setRules.has(k));
    if (missing.length > 0) {
      const texts = await this.redis.hmget(this.keys.asgSets, ...missing);
      for (let i = 0; i < missing.length; i++) {
        const text = texts[i];
        if (text === null || text === undefined) return null;
        rememberSet(missing[i]!, JSON.parse(text) as EgressRule[]);
        believeStored(missing[i]!);
      }
    }
    const out: Record<string, EgressRule[]> = {};
    for (const k of keys) out[k] = setRules.get(k)!;
    return out;
  }

  /**
   * Record what an agent reports it applied; when it advanced but is still behind, the cell's
   * `behindSince` moves to the first version above the one it holds (one script with the write's).
   */
  async reportStatus(
    cellId: string,
    status: Omit<AgentStatus, 'reportedAt'>,
    now = Date.now(),
  ): Promise<void> {
    await this.redis.cfnetReportStatus(
      this.keys.status(cellId),
      this.keys.ruleSet(cellId),
      this.keys.ruleSetLog(cellId),
      String(status.appliedVersion),
      String(status.appliedAt),
      String(now),
      status.error,
      String(status.intervalMs ?? 0),
      encodeOverlayHealth(status.overlay),
      status.dryRun === undefined ? '' : status.dryRun ? '1' : '0',
    );
  }

  async status(cellId: string): Promise<AgentStatus | null> {
    const h = await this.redis.hgetall(this.keys.status(cellId));
    if (!h.appliedVersion) return null;
    const overlay = parseOverlayHealth(h.overlay);
    return {
      appliedVersion: Number(h.appliedVersion),
      appliedAt: Number(h.appliedAt ?? 0),
      reportedAt: Number(h.reportedAt ?? 0),
      error: h.error ?? '',
      intervalMs: Number(h.intervalMs ?? 0),
      ...(h.dryRun === '1' || h.dryRun === '0' ? { dryRun: h.dryRun === '1' } : {}),
      ...(overlay ? { overlay } : {}),
    };
  }

  /**
   * Convergence of every cell with a rule set (src/state/convergence.ts says what each state
   * means); `pending` are the cells with a reconcile job waiting or running.
   */
  async convergence(opts: ConvergenceOptions = {}): Promise<CellConvergence[]> {
    return readConvergence(this.redis, this.keys, await this.cells(), opts);
  }
}
