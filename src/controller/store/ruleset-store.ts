/**
 * Rule-set store: per cell a versioned snapshot plus a bounded log of patches, in Redis.
 *
 * - Versions strictly increase and are assigned by Redis itself: `max(previous + 1, Redis TIME in
 *   ms)`. They are unique across a loss of Redis data too (a fresh store starts at the current time,
 *   above every version handed out before), so an agent never mistakes a new rule set for an old one.
 * - A write is a compare-and-set on the expected previous version (Lua): a worker that read an older
 *   state can never replace a newer rule set; its write is refused (`StaleWriteError`).
 * - Every write publishes `<cell> <version>` on the change channel so every replica wakes the
 *   agents long-polling that cell.
 * - Agents report the version they applied; desired vs applied gives convergence.
 */
import type { Redis } from 'ioredis';
import { shortHash } from '../../model/canonical.js';
import type { CellRuleSet, RuleSetPatch } from '../../model/types.js';
import { StaleWriteError } from '../errors.js';
import type { Keys } from '../keys.js';
import { composeEntries, type LogEntry, makeLogEntry } from './compose.js';

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
  | { kind: 'patch'; patch: RuleSetPatch }
  | { kind: 'snapshot'; ruleSet: CellRuleSet };

export interface AgentStatus {
  appliedVersion: number;
  /** Agent clock, ms. */
  appliedAt: number;
  /** Controller clock, ms. */
  reportedAt: number;
  error: string;
}

export interface RuleSetStoreOptions {
  /** Patches kept per cell (default 50). */
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
  private readonly setKeys: string[];
  private hashValue: string | null = null;

  constructor(readonly ruleSet: CellRuleSet) {
    this.containers = JSON.stringify(ruleSet.containers);
    this.c2c = JSON.stringify(ruleSet.c2c);
    this.config = JSON.stringify(ruleSet.config);
    this.setKeys = Object.keys(ruleSet.asgSets).sort();
  }

  get hash(): string {
    this.hashValue ??= shortHash(
      `[${JSON.stringify(this.ruleSet.cellId)},${this.containers},${JSON.stringify(this.setKeys)},${this.c2c},${this.config}]`,
    );
    return this.hashValue;
  }

  /** The stored text: `{cellId, version: 0, containers, asgSets, c2c, config}`. */
  body(): string {
    const sets = this.setKeys
      .map((k) => `${JSON.stringify(k)}:${asgSetText(k, this.ruleSet.asgSets[k]!)}`)
      .join(',');
    return `{"cellId":${JSON.stringify(this.ruleSet.cellId)},"version":0,"containers":${this.containers},"asgSets":{${sets}},"c2c":${this.c2c},"config":${this.config}}`;
  }
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

const WRITE_SCRIPT = `
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
local expected = tonumber(ARGV[1])
if cur ~= expected then return {0, string.format('%d', cur)} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local v = now
if v <= cur then v = cur + 1 end
local vs = string.format('%d', v)
redis.call('HSET', KEYS[1], 'version', vs, 'hash', ARGV[3], 'snapshot', ARGV[2], 'updatedAt', string.format('%d', now))
if ARGV[4] ~= '' and cur > 0 then
  redis.call('RPUSH', KEYS[2], string.format('%d', cur) .. ' ' .. vs .. ' ' .. ARGV[4])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[5]), -1)
else
  redis.call('DEL', KEYS[2])
end
redis.call('SADD', KEYS[3], ARGV[7])
redis.call('PUBLISH', ARGV[6], ARGV[7] .. ' ' .. vs)
return {1, vs}
`;

interface ScriptRedis extends Redis {
  cfnetWriteRuleSet(
    rs: string,
    log: string,
    cells: string,
    expected: string,
    snapshot: string,
    hash: string,
    entry: string,
    logLength: string,
    channel: string,
    cell: string,
  ): Promise<[number, string]>;
}

function parseLogLine(line: string): LogEntry | null {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  if (a < 0 || b < 0) return null;
  const from = Number(line.slice(0, a));
  const to = Number(line.slice(a + 1, b));
  const entry = JSON.parse(line.slice(b + 1)) as LogEntry;
  entry.patch.from = from;
  entry.patch.to = to;
  return entry;
}

export class RuleSetStore {
  private readonly redis: ScriptRedis;
  readonly logLength: number;

  constructor(
    redis: Redis,
    readonly keys: Keys,
    opts: RuleSetStoreOptions = {},
  ) {
    this.redis = redis as ScriptRedis;
    this.logLength = Math.max(1, opts.logLength ?? 50);
    if (!(this.redis as unknown as Record<string, unknown>).cfnetWriteRuleSet) {
      this.redis.defineCommand('cfnetWriteRuleSet', { numberOfKeys: 3, lua: WRITE_SCRIPT });
    }
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
    const [version, snapshot] = await this.redis.hmget(this.keys.ruleSet(cellId), 'version', 'snapshot');
    if (!version || !snapshot) return null;
    return { ...(JSON.parse(snapshot) as CellRuleSet), version: Number(version) };
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
    serialized: { body: string; hash: string } = serializeRuleSet(next),
  ): Promise<number> {
    const cell = next.cellId;
    const expected = prev?.version ?? 0;
    let entry = '';
    if (prev) {
      const e = makeLogEntry(prev, next);
      e.patch.from = 0;
      e.patch.to = 0;
      entry = JSON.stringify(e);
    }
    const [ok, v] = await this.redis.cfnetWriteRuleSet(
      this.keys.ruleSet(cell),
      this.keys.ruleSetLog(cell),
      this.keys.ruleSetCells,
      String(expected),
      serialized.body,
      serialized.hash,
      entry,
      String(this.logLength),
      this.keys.ruleSetChannel,
      cell,
    );
    if (Number(ok) !== 1) throw new StaleWriteError(cell, expected, Number(v));
    return Number(v);
  }

  /**
   * What an agent at version `since` needs: nothing new (`current`), one patch composed from the
   * log when it covers `since`, or the full snapshot (since = 0, unknown, too old, or ahead). A
   * patch larger than the snapshot is replaced by the snapshot.
   */
  async changesSince(cellId: string, since: number): Promise<Changes> {
    const res = await this.redis
      .multi()
      .hmget(this.keys.ruleSet(cellId), 'version', 'snapshot')
      .lrange(this.keys.ruleSetLog(cellId), 0, -1)
      .exec();
    if (!res) return { kind: 'none' };
    const [version, snapshot] = (res[0]?.[1] ?? []) as Array<string | null>;
    const lines = (res[1]?.[1] ?? []) as string[];
    if (!version || !snapshot) return { kind: 'none' };
    const current = Number(version);
    if (since === current) return { kind: 'current', version: current };
    const full = (): Changes => ({
      kind: 'snapshot',
      ruleSet: { ...(JSON.parse(snapshot) as CellRuleSet), version: current },
    });
    if (since <= 0 || since > current) return full();
    const entries: LogEntry[] = [];
    let started = false;
    for (const line of lines) {
      if (!started) {
        const sp = line.indexOf(' ');
        if (Number(line.slice(0, sp)) !== since) continue;
        started = true;
      }
      const e = parseLogLine(line);
      if (!e) return full();
      entries.push(e);
    }
    if (!started) return full();
    const patch = composeEntries(entries);
    if (!patch || patch.to !== current) return full();
    if (JSON.stringify(patch).length > snapshot.length) return full();
    return { kind: 'patch', patch };
  }

  /** Record what an agent reports it applied. */
  async reportStatus(
    cellId: string,
    status: Omit<AgentStatus, 'reportedAt'>,
    now = Date.now(),
  ): Promise<void> {
    await this.redis.hset(this.keys.status(cellId), {
      appliedVersion: String(status.appliedVersion),
      appliedAt: String(status.appliedAt),
      reportedAt: String(now),
      error: status.error,
    });
  }

  async status(cellId: string): Promise<AgentStatus | null> {
    const h = await this.redis.hgetall(this.keys.status(cellId));
    if (!h.appliedVersion) return null;
    return {
      appliedVersion: Number(h.appliedVersion),
      appliedAt: Number(h.appliedAt ?? 0),
      reportedAt: Number(h.reportedAt ?? 0),
      error: h.error ?? '',
    };
  }

  /**
   * Desired vs applied for every cell with a rule set: lag is how long the desired version has
   * been waiting (0 when applied).
   */
  async convergence(
    now = Date.now(),
  ): Promise<Array<{ cellId: string; desired: number; applied: number; lagMs: number; error: string }>> {
    const cells = await this.cells();
    if (cells.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const c of cells) {
      pipe.hmget(this.keys.ruleSet(c), 'version', 'updatedAt');
      pipe.hmget(this.keys.status(c), 'appliedVersion', 'error');
    }
    const res = (await pipe.exec()) ?? [];
    return cells.map((cellId, i) => {
      const [v, at] = (res[2 * i]?.[1] ?? []) as Array<string | null>;
      const [applied, error] = (res[2 * i + 1]?.[1] ?? []) as Array<string | null>;
      const desired = Number(v ?? 0);
      const ap = Number(applied ?? 0);
      return {
        cellId,
        desired,
        applied: ap,
        lagMs: ap === desired ? 0 : Math.max(0, now - Number(at ?? now)),
        error: error ?? '',
      };
    });
  }
}
