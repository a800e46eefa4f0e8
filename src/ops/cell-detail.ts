/**
 * Everything an operator wants to know about one cell, in names: its containers grouped by app
 * (`org/space/app`), the egress rule sets named by the security groups they come from, the c2c
 * entries (which source apps reach which of its apps on which ports), NetIn mappings, convergence
 * (the states and lag of `cfnet cells`), the recent desired and applied versions and the last
 * errors. Built from the readers the CLI uses: `loadRules` (`cfnet rules`), `oneCellConvergence`
 * (`cfnet cells`), the name directory (ops/names.ts), the journal and the reconcile queue.
 *
 * History is what Redis still holds: the cell's patch log (the last `rulesetLogLength` desired
 * versions; a version is the Redis time of its write, in ms) and the journal's agent reports
 * (applied versions, written when the applied version or the error changed).
 */
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ReconcileJobData } from '../controller/reconcile/queue.js';
import type { AppPath, NameDirectory } from '../model/names.js';
import { portRangesToString } from '../model/ports.js';
import type { CellRuleSet, RuleSetPatch } from '../model/types.js';
import { lifecycleOf } from '../rules/indexes.js';
import type { CellConvergence } from '../state/convergence.js';
import type { Keys } from '../state/keys.js';
import type { AgentStatus, RuleSetStore, StoredMeta } from '../state/ruleset-store.js';
import { oneCellConvergence } from './cells.js';
import { NotFoundError } from './errors.js';
import { ruleText } from './explain.js';
import type { Journal } from './journal.js';
import { QueueAdmin } from './queue-admin.js';
import { loadRules } from './rules.js';
import { loadAsgIndex, loadNames } from './world-reader.js';

export interface ContainerRow {
  handle: string;
  ip: string;
  workload: string;
  egress: string;
  netIn: string[];
}

export interface AppGroup {
  app: AppPath;
  /** `org/space/app`, or the guid when the name is unknown. */
  label: string;
  containers: ContainerRow[];
}

export interface AsgSetRow {
  /** The set's key (content hash of its rules). */
  hash: string;
  rules: string[];
  /** The security groups whose rules make up the set (empty when they are not known). */
  groups: Array<{ guid: string; name: string }>;
  /** `current ASGs` when the groups are today's, `BBS snapshot` for rules a container started with. */
  source: 'current ASGs' | 'BBS snapshot';
  containers: number;
}

export interface C2cRow {
  /** The apps whose packets carry the source tag. */
  sources: Array<{ guid: string; label: string }>;
  srcTag: number;
  destination: { ip: string; guid: string; label: string };
  protocol: string;
  ports: string;
}

export interface NetInRow {
  hostPort: number;
  containerPort: number;
  handle: string;
  app: { guid: string; label: string };
}

export interface DesiredVersion {
  from: number;
  to: number;
  /** What the patch changed, e.g. `+2 containers, -1 c2c`. */
  change: string;
}

export interface AppliedReport {
  at: number;
  appliedVersion: number;
  error: string;
}

export interface CellError {
  at: number;
  source: 'agent' | 'reconcile' | 'rejected';
  message: string;
}

export interface CellDetail {
  cellId: string;
  convergence: CellConvergence;
  meta: StoredMeta | null;
  status: AgentStatus | null;
  apps: AppGroup[];
  asgSets: AsgSetRow[];
  c2c: C2cRow[];
  netIn: NetInRow[];
  history: { desired: DesiredVersion[]; applied: AppliedReport[] };
  errors: CellError[];
}

export interface CellDetailSource {
  redis: Redis;
  keys: Keys;
  store: RuleSetStore;
  journal: Journal;
  queue: Queue<ReconcileJobData>;
}

/** How many history rows and errors of each kind the detail carries. */
const RECENT = 20;

/** The cell's detail; NotFoundError when no source knows the cell. */
export async function cellDetail(
  src: CellDetailSource,
  cellId: string,
  now = Date.now(),
): Promise<CellDetail> {
  const convergence = await oneCellConvergence(src.redis, src.keys, cellId, { now, queue: src.queue });
  if (!convergence) {
    throw new NotFoundError(
      'cell',
      cellId,
      'no rule set, container, inventory, lease or reconcile job names it',
    );
  }
  const [stored, names, asg, desired, reports, rejected, failed] = await Promise.all([
    // a known cell without a rule set yet (no-rule-set, pending) shows empty tables
    loadRules(src.store, cellId).catch((err: unknown) => {
      if (err instanceof NotFoundError) return null;
      throw err;
    }),
    loadNames(src.redis, src.keys),
    loadAsgIndex(src.redis, src.keys),
    src.redis.lrange(src.keys.ruleSetLog(cellId), -RECENT, -1),
    src.journal.read({ cell: cellId, types: ['agent-report'] }, RECENT),
    src.journal.read({ cell: cellId, types: ['rejected'] }, RECENT),
    new QueueAdmin(src.queue).list({ states: ['failed'], cell: cellId, limit: 5 }),
  ]);
  const rs = stored?.ruleSet ?? null;
  const status = stored?.status ?? (await src.store.status(cellId));
  const errors: CellError[] = [
    ...(status?.error ? [{ at: status.reportedAt, source: 'agent' as const, message: status.error }] : []),
    ...failed.map((j) => ({ at: j.finishedAt ?? 0, source: 'reconcile' as const, message: j.failedReason })),
    ...rejected.map((e) => ({
      at: e.at,
      source: 'rejected' as const,
      message: String(e.detail?.message ?? e.detail?.reason ?? 'input left out'),
    })),
  ].sort((a, b) => b.at - a.at);
  return {
    cellId,
    convergence,
    meta: stored?.meta ?? null,
    status,
    apps: rs ? appGroups(rs, names) : [],
    asgSets: rs ? asgSetRows(rs, asg) : [],
    c2c: rs ? c2cRows(rs, names) : [],
    netIn: rs ? netInRows(rs, names) : [],
    history: {
      desired: desired.map(desiredVersion).reverse(),
      applied: reports
        .map((e) => ({
          at: e.at,
          appliedVersion: Number(e.detail?.appliedVersion ?? 0),
          error: String(e.detail?.error ?? ''),
        }))
        .reverse(),
    },
    errors: errors.slice(0, RECENT),
  };
}

const byLabel = <T extends { label: string }>(a: T, b: T) => a.label.localeCompare(b.label);

export function appGroups(rs: CellRuleSet, names: NameDirectory): AppGroup[] {
  const groups = new Map<string, AppGroup>();
  for (const c of rs.containers) {
    let g = groups.get(c.appGuid);
    if (!g) {
      const path = names.appPath(c.appGuid);
      // an app CAPI has no name for still shows where it runs (its space guid)
      const app = path.spaceGuid === undefined && c.spaceGuid ? { ...path, spaceGuid: c.spaceGuid } : path;
      g = { app, label: c.appGuid === '' ? '(no app)' : names.appLabel(c.appGuid), containers: [] };
      groups.set(c.appGuid, g);
    }
    g.containers.push({
      handle: c.handle,
      ip: c.ip,
      workload: c.workload,
      egress: c.egress,
      netIn: c.netIn.map((m) => `${m.hostPort}->${m.containerPort}`),
    });
  }
  return [...groups.values()].sort(byLabel);
}

/**
 * Each egress rule set with the security groups it comes from: the groups that apply to a
 * container of the set today (global plus its space's, for its lifecycle) when their effective
 * rules are exactly the set; otherwise the container started with rules BBS gave it (a snapshot).
 */
export function asgSetRows(rs: CellRuleSet, asg: Awaited<ReturnType<typeof loadAsgIndex>>): AsgSetRow[] {
  return Object.entries(rs.asgSets)
    .map(([hash, rules]) => {
      const users = rs.containers.filter((c) => c.egress === hash);
      const groups = new Map<string, { guid: string; name: string }>();
      let current = false;
      for (const c of users) {
        const lifecycle = lifecycleOf(c.workload);
        if (!asg || asg.effective(c.spaceGuid, lifecycle).hash !== hash) continue;
        current = true;
        const applying = [
          ...(lifecycle === 'staging' ? asg.globalStaging : asg.globalRunning),
          ...asg.spaceGroups(c.spaceGuid, lifecycle),
        ];
        for (const g of applying) groups.set(g.guid, { guid: g.guid, name: g.name });
      }
      return {
        hash,
        rules: rules.map(ruleText),
        groups: [...groups.values()].sort((a, b) => a.name.localeCompare(b.name)),
        source: current ? ('current ASGs' as const) : ('BBS snapshot' as const),
        containers: users.length,
      };
    })
    .sort((a, b) => b.containers - a.containers || a.hash.localeCompare(b.hash));
}

export function c2cRows(rs: CellRuleSet, names: NameDirectory): C2cRow[] {
  const appsOfTag = new Map<number, string[]>();
  for (const [app, tag] of Object.entries(rs.tags ?? {})) {
    const list = appsOfTag.get(tag);
    if (list) list.push(app);
    else appsOfTag.set(tag, [app]);
  }
  const byIp = new Map(rs.containers.map((c) => [c.ip, c.appGuid]));
  const named = (guid: string) => ({ guid, label: names.appLabel(guid) });
  return rs.c2c.map((e) => {
    const dst = byIp.get(e.dstIp) ?? '';
    return {
      // apps by name first, then the guids CAPI has no name for
      sources: (appsOfTag.get(e.srcTag) ?? [])
        .map(named)
        .sort((a, b) => Number(a.label === a.guid) - Number(b.label === b.guid) || byLabel(a, b)),
      srcTag: e.srcTag,
      destination: { ip: e.dstIp, ...named(dst) },
      protocol: e.protocol,
      ports: portRangesToString([e.ports]),
    };
  });
}

export function netInRows(rs: CellRuleSet, names: NameDirectory): NetInRow[] {
  return rs.containers
    .flatMap((c) =>
      c.netIn.map((m) => ({
        hostPort: m.hostPort,
        containerPort: m.containerPort,
        handle: c.handle,
        app: { guid: c.appGuid, label: names.appLabel(c.appGuid) },
      })),
    )
    .sort((a, b) => a.hostPort - b.hostPort);
}

/** A patch log line (`<from> <to> <entry JSON>`) as a version step and what it changed. */
export function desiredVersion(line: string): DesiredVersion {
  const [from, to] = line.split(' ', 2).map(Number);
  let change = '';
  try {
    const { patch, upsertSets } = JSON.parse(line.slice(line.indexOf(' ', line.indexOf(' ') + 1) + 1)) as {
      patch: RuleSetPatch;
      // sets are logged by key only (ruleset-store.ts encodeLogEntry)
      upsertSets?: string[];
    };
    const parts: string[] = [];
    const count = (n: number, sign: string, what: string) => n > 0 && parts.push(`${sign}${n} ${what}`);
    count(patch.containers.upsert.length, '~', 'containers');
    count(patch.containers.remove.length, '-', 'containers');
    count(patch.c2c.add.length, '+', 'c2c');
    count(patch.c2c.remove.length, '-', 'c2c');
    count(upsertSets?.length ?? Object.keys(patch.asgSets.upsert).length, '+', 'egress sets');
    count(patch.asgSets.remove.length, '-', 'egress sets');
    if (patch.config) parts.push('config');
    if (patch.tags) parts.push('tags');
    change = parts.join(', ') || 'no change';
  } catch {
    change = 'unreadable log entry';
  }
  return { from: from ?? 0, to: to ?? 0, change };
}
