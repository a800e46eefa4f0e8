/**
 * Random churn: a seeded mix of named changes at a steady rate, for demos and benchmarks. Each
 * change is chosen from the current world (running apps, bound groups, existing policies) so it
 * is valid when applied.
 */
import { ValidationError } from '../lib/errors.js';
import {
  type AppliedChange,
  CHANGE_KINDS,
  type ChangeEngine,
  type SimChange,
  type SimChangeKind,
} from './changes.js';
import { randomRule } from './generate.js';
import { Prng } from './prng.js';
import type { SimWorld } from './world.js';

/**
 * Changes churn never picks: the platform-wide defaults (a global group flips every cell at once,
 * an operator action rather than churn), space creation, and the raw LRP placement and cell
 * subnet hooks the lab uses to register real containers and the cells' leases.
 */
const NOT_CHURNED: ReadonlySet<SimChangeKind> = new Set([
  'asg-set-global',
  'space-create',
  'lrp-place',
  'lrp-remove',
  'cell-subnet',
]);

export const CHURN_KINDS: readonly SimChangeKind[] = CHANGE_KINDS.filter((k) => !NOT_CHURNED.has(k));

export interface ChurnOptions {
  /** Changes per second. */
  rate: number;
  /** Stop after this long; absent = until stop(). */
  durationMs?: number;
  seed?: number;
  kinds?: SimChangeKind[];
  /** Stop after this many changes. */
  maxChanges?: number;
}

export interface ChurnResult {
  id: string;
  applied: number;
  failed: number;
  byKind: Record<string, number>;
  startedAt: number;
  endedAt: number;
  lastError?: string;
}

export interface ChurnRun {
  id: string;
  stop(): void;
  done: Promise<ChurnResult>;
  /** Progress so far. */
  status(): ChurnResult & { running: boolean };
}

/** Build one random valid change of `kind` from the current world, or null when none applies. */
export function randomChange(world: SimWorld, rng: Prng, kind: SimChangeKind): SimChange | null {
  const started = () => [...world.apps.values()].filter((a) => a.state === 'STARTED');
  switch (kind) {
    case 'app-start': {
      const stopped = [...world.apps.values()].filter((a) => a.state === 'STOPPED');
      if (stopped.length > 0 && rng.bool(0.5)) return { kind, appGuid: rng.pick(stopped).guid };
      return { kind, spaceGuid: rng.pick([...world.spaces.keys()]), instances: rng.int(1, 3) };
    }
    case 'app-stop': {
      const apps = started();
      return apps.length > 1 ? { kind, appGuid: rng.pick(apps).guid } : null;
    }
    case 'app-scale': {
      const apps = started();
      if (apps.length === 0) return null;
      const app = rng.pick(apps);
      const delta = rng.bool(0.5) ? 1 : -1;
      return { kind, appGuid: app.guid, instances: Math.max(1, app.instances + delta) };
    }
    case 'app-crash': {
      const apps = started().filter((a) => {
        const d = world.desiredOfApp(a.guid);
        return d !== undefined && world.actualsOf(d.processGuid).some((x) => x.state === 'RUNNING');
      });
      return apps.length > 0 ? { kind, appGuid: rng.pick(apps).guid } : null;
    }
    case 'app-restage': {
      const apps = started();
      return apps.length > 0 ? { kind, appGuid: rng.pick(apps).guid } : null;
    }
    case 'task-run': {
      const apps = [...world.apps.values()];
      return apps.length > 0 ? { kind, appGuid: rng.pick(apps).guid, durationMs: rng.int(200, 2000) } : null;
    }
    case 'asg-create': {
      const spaces = [...world.spaces.keys()];
      const name = `churn-asg-${rng.uuid().slice(0, 8)}`;
      if (spaces.length === 0 || [...world.securityGroups.values()].some((g) => g.name === name)) return null;
      return {
        kind,
        name,
        rules: Array.from({ length: rng.int(1, 5) }, () => randomRule(rng)),
        runningSpaces: rng.sample(spaces, rng.int(1, 3)),
      };
    }
    case 'asg-delete': {
      // Only space-bound groups, and never the last one: churn keeps the foundation's shape.
      const bound = [...world.securityGroups.values()].filter((g) => !g.runningDefault && !g.stagingDefault);
      return bound.length > 1 ? { kind, guid: rng.pick(bound).guid } : null;
    }
    case 'asg-update': {
      const groups = [...world.securityGroups.values()].filter((g) => g.rules.length > 0);
      if (groups.length === 0) return null;
      const g = rng.pick(groups);
      const rules = g.rules.slice();
      rules[rng.int(0, rules.length - 1)] = randomRule(rng);
      return { kind, guid: g.guid, rules };
    }
    case 'asg-bind-space': {
      const groups = [...world.securityGroups.values()].filter((g) => !g.runningDefault);
      if (groups.length === 0) return null;
      const g = rng.pick(groups);
      const free = [...world.spaces.keys()].filter((s) => !g.runningSpaces.has(s));
      return free.length > 0 ? { kind, guid: g.guid, spaceGuid: rng.pick(free), lifecycle: 'running' } : null;
    }
    case 'asg-unbind-space': {
      const groups = [...world.securityGroups.values()].filter((g) => g.runningSpaces.size > 1);
      if (groups.length === 0) return null;
      const g = rng.pick(groups);
      return { kind, guid: g.guid, spaceGuid: rng.pick([...g.runningSpaces]), lifecycle: 'running' };
    }
    case 'policy-add': {
      const apps = [...world.apps.keys()];
      if (apps.length === 0) return null;
      return {
        kind,
        source: rng.pick(apps),
        destination: rng.pick(apps),
        protocol: rng.bool(0.85) ? 'tcp' : 'udp',
        port: rng.bool(0.7) ? 8080 : rng.int(1024, 9000),
      };
    }
    case 'policy-remove': {
      if (world.policies.length === 0) return null;
      const p = rng.pick(world.policies);
      return {
        kind,
        source: p.sourceId,
        destination: p.destinationId,
        protocol: p.protocol,
        ports: { start: p.start, end: p.end },
      };
    }
    default:
      return null;
  }
}

let churnSeq = 0;

export function runChurn(world: SimWorld, engine: ChangeEngine, opts: ChurnOptions): ChurnRun {
  if (!(opts.rate > 0) || opts.rate > 10_000)
    throw new ValidationError('rate', opts.rate, 'must be in (0, 10000]');
  const kinds = opts.kinds?.length ? opts.kinds : [...CHURN_KINDS];
  for (const k of kinds) {
    if (!CHURN_KINDS.includes(k))
      throw new ValidationError('kinds', k, `churn supports ${CHURN_KINDS.join(', ')}`);
  }
  const rng = new Prng(opts.seed ?? 1);
  const id = `churn-${++churnSeq}`;
  const result: ChurnResult = { id, applied: 0, failed: 0, byKind: {}, startedAt: Date.now(), endedAt: 0 };
  let running = true;
  let wake: (() => void) | null = null;
  const stop = () => {
    running = false;
    wake?.();
  };
  const interval = 1000 / opts.rate;
  const done = (async () => {
    const deadline =
      opts.durationMs !== undefined ? result.startedAt + opts.durationMs : Number.POSITIVE_INFINITY;
    let next = Date.now();
    while (
      running &&
      Date.now() < deadline &&
      (opts.maxChanges === undefined || result.applied < opts.maxChanges)
    ) {
      const kind = rng.pick(kinds);
      const change = randomChange(world, rng, kind);
      if (change) {
        try {
          const applied: AppliedChange = await engine.apply(change);
          result.applied++;
          result.byKind[applied.kind] = (result.byKind[applied.kind] ?? 0) + 1;
        } catch (err) {
          result.failed++;
          result.lastError = err instanceof Error ? err.message : String(err);
        }
      }
      next += interval;
      const wait = Math.min(next, deadline) - Date.now();
      if (wait > 0 && running) {
        await new Promise<void>((r) => {
          const t = setTimeout(r, wait);
          wake = () => {
            clearTimeout(t);
            r();
          };
        });
        wake = null;
      } else if (wait < -1000) {
        next = Date.now(); // fell far behind: do not burst to catch up
      }
    }
    running = false;
    result.endedAt = Date.now();
    return { ...result };
  })();
  return { id, stop, done, status: () => ({ ...result, running }) };
}
