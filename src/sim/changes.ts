/**
 * Named changes to the simulated foundation. Each one mutates the world the way CC / Diego / the
 * policy server would, emits the BBS events real BBS emits (in its order), bumps
 * `asg_latest_update` (v3 writes) or `policies_last_updated`, and reports when the change became
 * visible and which cells it affects.
 *
 * Longer than ~400 lines: one method per named change kind (about twenty), all sharing the
 * bookkeeping that orders BBS events and bumps CC's and the policy server's change markers; split
 * per kind, that bookkeeping would be spread over twenty files.
 */
import { ValidationError } from '../lib/errors.js';
import { canonicalCidr, parseCidr } from '../model/ip.js';
import type { EventSink, LrpEvent, TaskEvent } from './events.js';
import { orderByScore } from './events.js';
import { buildDesiredLrp, buildTask } from './generate.js';
import { Prng } from './prng.js';
import { validateRules } from './rules.js';
import {
  type CcRule,
  isoSeconds,
  nowNs,
  type SimActualLrp,
  type SimApp,
  type SimDesiredLrp,
  type SimPortMapping,
  type SimSecurityGroup,
  type SimTask,
  type SimWorld,
} from './world.js';

type Via = { via?: 'v3' | 'v2' };
type Lifecycle = 'running' | 'staging';

export type SimChange =
  | {
      kind: 'app-start';
      appGuid?: string;
      name?: string;
      spaceGuid?: string;
      instances?: number;
      ports?: number[];
      /** Place instances round-robin on these cells (default: random cells). */
      cellIds?: string[];
    }
  | { kind: 'app-stop'; appGuid: string }
  | { kind: 'app-scale'; appGuid: string; instances: number; cellIds?: string[] }
  | {
      kind: 'app-crash';
      appGuid: string;
      index?: number;
      /** 'crashed' (default): RUNNING→CRASHED, then restarted after restartDelayMs;
       *  'immediate': BBS's immediate restart (RUNNING→UNCLAIMED: crashed + created + removed);
       *  'none': stays CRASHED. */
      restart?: 'crashed' | 'immediate' | 'none';
      restartDelayMs?: number;
      cellId?: string;
    }
  | { kind: 'app-restage'; appGuid: string; cellIds?: string[] }
  | {
      kind: 'task-run';
      appGuid: string;
      taskGuid?: string;
      name?: string;
      cellId?: string;
      durationMs?: number;
    }
  | ({
      kind: 'asg-create';
      guid?: string;
      name: string;
      rules: CcRule[];
      globallyEnabled?: { running?: boolean; staging?: boolean };
      runningSpaces?: string[];
      stagingSpaces?: string[];
      /** false: store the rules unchecked (to feed clients invalid data on purpose). */
      validate?: boolean;
    } & Via)
  | ({
      kind: 'asg-update';
      guid: string;
      name?: string;
      rules?: CcRule[];
      globallyEnabled?: { running?: boolean; staging?: boolean };
      validate?: boolean;
    } & Via)
  | ({ kind: 'asg-delete'; guid: string } & Via)
  | ({
      kind: 'asg-bind-space';
      guid: string;
      spaceGuid?: string;
      spaceGuids?: string[];
      lifecycle?: Lifecycle;
    } & Via)
  | ({
      kind: 'asg-unbind-space';
      guid: string;
      spaceGuid?: string;
      spaceGuids?: string[];
      lifecycle?: Lifecycle;
    } & Via)
  | ({ kind: 'asg-set-global'; guid: string; lifecycle: Lifecycle; enabled: boolean } & Via)
  | {
      kind: 'policy-add' | 'policy-remove';
      source: string;
      destination: string;
      protocol?: 'tcp' | 'udp';
      ports?: { start: number; end: number };
      port?: number;
    }
  | { kind: 'space-create'; guid?: string; name?: string; orgGuid?: string; count?: number }
  | {
      kind: 'lrp-place';
      processGuid: string;
      index: number;
      instanceGuid: string;
      cellId: string;
      instanceAddress: string;
      /** Cell (host) IP; default: the cell's address. */
      address?: string;
      /** Host port mappings; plain numbers map to the DesiredLRP's ports in order. */
      hostPorts?: (number | SimPortMapping)[];
    }
  | { kind: 'lrp-remove'; processGuid: string; index: number }
  | {
      /** The cell's containers take addresses from `subnet` (its agent's lease, e.g. in the lab). */
      kind: 'cell-subnet';
      cellId: string;
      subnet: string;
    };

export type SimChangeKind = SimChange['kind'];

export const CHANGE_KINDS: readonly SimChangeKind[] = [
  'app-start',
  'app-stop',
  'app-scale',
  'app-crash',
  'app-restage',
  'task-run',
  'asg-create',
  'asg-update',
  'asg-delete',
  'asg-bind-space',
  'asg-unbind-space',
  'asg-set-global',
  'policy-add',
  'policy-remove',
  'space-create',
  'lrp-place',
  'lrp-remove',
  'cell-subnet',
];

export interface AppliedChange {
  id: string;
  kind: SimChangeKind;
  /** Date.now() (ms) at the moment the change became visible (world updated, events sent). */
  triggeredAt: number;
  affectedCells: string[];
  /** Identifiers created or touched (app guid, process guids, instances, asg guid, space guids …). */
  result: Record<string, unknown>;
}

function need<T>(value: T | undefined | null, field: string, reason: string): T {
  if (value === undefined || value === null) throw new ValidationError(field, value, reason);
  return value;
}

export class ChangeEngine {
  private readonly rng: Prng;
  private seq = 0;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  /** Called after every applied change (e.g. to log or count). */
  onApplied?: (c: AppliedChange) => void;

  constructor(
    private readonly world: SimWorld,
    private readonly sink: EventSink,
    seed: number,
  ) {
    this.rng = new Prng(seed ^ 0x5eed5eed);
  }

  /** Apply changes one at a time, in call order. */
  apply(change: SimChange): Promise<AppliedChange> {
    const run = this.chain.then(() => this.applyNow(change));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Cancel pending timers (task completions). */
  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  /** Run `fn` after `ms`, serialised with the changes. */
  private later(ms: number, fn: () => void): void {
    if (this.stopped) return;
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopped) return;
      this.chain = this.chain.then(() => {
        if (!this.stopped) fn();
      });
    }, ms);
    this.timers.add(t);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
  }

  private async applyNow(change: SimChange): Promise<AppliedChange> {
    const id = `chg-${String(++this.seq).padStart(6, '0')}`;
    let out: Omit<AppliedChange, 'id' | 'kind'>;
    switch (change.kind) {
      case 'app-start':
        out = this.appStart(change);
        break;
      case 'app-stop':
        out = this.appStop(change);
        break;
      case 'app-scale':
        out = this.appScale(change);
        break;
      case 'app-crash':
        out = await this.appCrash(change);
        break;
      case 'app-restage':
        out = this.appRestage(change);
        break;
      case 'task-run':
        out = this.taskRun(change);
        break;
      case 'asg-create':
      case 'asg-update':
      case 'asg-delete':
      case 'asg-bind-space':
      case 'asg-unbind-space':
      case 'asg-set-global':
        out = this.asgChange(change);
        break;
      case 'policy-add':
      case 'policy-remove':
        out = this.policyChange(change);
        break;
      case 'space-create':
        out = this.spaceCreate(change);
        break;
      case 'lrp-place':
        out = this.lrpPlace(change);
        break;
      case 'lrp-remove':
        out = this.lrpRemove(change);
        break;
      case 'cell-subnet':
        out = this.cellSubnet(change);
        break;
      default:
        throw new ValidationError('kind', (change as { kind?: unknown }).kind, `unknown change kind`);
    }
    const applied: AppliedChange = { id, kind: change.kind, ...out };
    this.onApplied?.(applied);
    return applied;
  }

  // ---- helpers ----

  private app(guid: string | undefined): SimApp {
    const app = this.world.apps.get(need(guid, 'appGuid', 'required'));
    if (!app) throw new ValidationError('appGuid', guid, 'no such app');
    return app;
  }

  private pickCell(cellIds: string[] | undefined, i: number): string {
    if (cellIds && cellIds.length > 0) {
      const id = cellIds[i % cellIds.length] as string;
      if (!this.world.cells.has(id)) throw new ValidationError('cellIds', id, 'no such cell');
      return id;
    }
    return this.rng.pick([...this.world.cells.keys()]);
  }

  private unclaimed(desired: SimDesiredLrp, index: number, crashCount = 0, crashReason = ''): SimActualLrp {
    return {
      processGuid: desired.processGuid,
      index,
      domain: desired.domain,
      instanceGuid: '',
      cellId: '',
      address: '',
      instanceAddress: '',
      ports: [],
      state: 'UNCLAIMED',
      crashCount,
      crashReason,
      placementError: '',
      since: nowNs(),
      modificationTag: { epoch: this.rng.uuid(), index: 0 },
      routable: false,
      availabilityZone: '',
    };
  }

  private claimed(a: SimActualLrp, cellId: string, instanceGuid: string): SimActualLrp {
    return {
      ...a,
      state: 'CLAIMED',
      instanceGuid,
      cellId,
      placementError: '',
      since: nowNs(),
      modificationTag: { ...a.modificationTag, index: a.modificationTag.index + 1 },
    };
  }

  private running(a: SimActualLrp, desired: SimDesiredLrp, net?: Partial<SimActualLrp>): SimActualLrp {
    const cell = this.world.cells.get(a.cellId);
    const instanceAddress = net?.instanceAddress ?? this.world.allocateIp(a.cellId);
    const ports =
      net?.ports ??
      desired.ports.map((p) => ({ containerPort: p, hostPort: this.world.allocateHostPort(a.cellId) }));
    return {
      ...a,
      state: 'RUNNING',
      address: net?.address ?? cell?.address ?? '',
      instanceAddress,
      ports,
      since: nowNs(),
      modificationTag: { ...a.modificationTag, index: a.modificationTag.index + 1 },
      routable: true,
      availabilityZone: cell?.zone ?? '',
    };
  }

  private release(a: SimActualLrp): void {
    if (!a.cellId) return;
    this.world.releaseIp(a.cellId, a.instanceAddress);
    for (const p of a.ports) this.world.releaseHostPort(a.cellId, p.hostPort);
  }

  /**
   * Desire-side lifecycle of new instances: BBS creates UNCLAIMED records, the auctioneer/rep claim
   * them on a cell, then the rep starts them. Returns events in emission order.
   */
  private placeNew(desired: SimDesiredLrp, indices: number[], cellIds?: string[]): LrpEvent[] {
    const created: LrpEvent[] = [];
    const claimed: LrpEvent[] = [];
    const started: LrpEvent[] = [];
    indices.forEach((index, i) => {
      const u = this.unclaimed(desired, index);
      this.world.putActual(u);
      created.push({ name: 'actual_lrp_instance_created', actual: u });
      const c = this.claimed(u, this.pickCell(cellIds, i), this.rng.instanceGuid());
      this.world.putActual(c);
      claimed.push({ name: 'actual_lrp_instance_changed', before: u, after: c });
      const r = this.running(c, desired);
      this.world.putActual(r);
      started.push({ name: 'actual_lrp_instance_changed', before: c, after: r });
    });
    return [...created, ...claimed, ...started];
  }

  private removeActual(a: SimActualLrp): LrpEvent {
    this.release(a);
    this.world.deleteActual(a.processGuid, a.index);
    return { name: 'actual_lrp_instance_removed', actual: a };
  }

  private emitLrp(events: LrpEvent[]): number {
    const at = Date.now();
    if (events.length > 0) this.sink.emitLrp(events);
    return at;
  }

  /** Emit `events` and report the change: its trigger time and the cells its instance events touch. */
  private lrpChange(events: LrpEvent[], result: Record<string, unknown>): Omit<AppliedChange, 'id' | 'kind'> {
    return { triggeredAt: this.emitLrp(events), affectedCells: ChangeEngine.cellsOf(events), result };
  }

  private emitTask(events: TaskEvent[]): number {
    const at = Date.now();
    if (events.length > 0) this.sink.emitTask(events);
    return at;
  }

  private static cellsOf(events: LrpEvent[]): string[] {
    const cells = new Set<string>();
    for (const e of events) {
      if (e.name === 'actual_lrp_instance_created' || e.name === 'actual_lrp_instance_removed') {
        if (e.actual.cellId) cells.add(e.actual.cellId);
      } else if (e.name === 'actual_lrp_instance_changed' || e.name === 'actual_lrp_crashed') {
        if (e.before.cellId) cells.add(e.before.cellId);
        if (e.after.cellId) cells.add(e.after.cellId);
      }
    }
    return [...cells].sort();
  }

  private instancesResult(processGuid: string): unknown[] {
    return this.world.actualsOf(processGuid).map((a) => ({
      index: a.index,
      instanceGuid: a.instanceGuid,
      cellId: a.cellId,
      instanceAddress: a.instanceAddress,
      state: a.state,
    }));
  }

  private annotationNow(): string {
    return `${Date.now() / 1000}`;
  }

  // ---- apps ----

  private appStart(ch: Extract<SimChange, { kind: 'app-start' }>): Omit<AppliedChange, 'id' | 'kind'> {
    let app = ch.appGuid ? this.world.apps.get(ch.appGuid) : undefined;
    if (app && app.state === 'STARTED')
      throw new ValidationError('appGuid', ch.appGuid, 'app is already started');
    const instances = ch.instances ?? app?.instances ?? 1;
    if (!Number.isInteger(instances) || instances < 0) {
      throw new ValidationError('instances', ch.instances, 'must be an integer ≥ 0');
    }
    const nowIso = isoSeconds(Date.now());
    if (!app) {
      const spaceGuid = ch.spaceGuid ?? this.rng.pick([...this.world.spaces.keys()]);
      if (!this.world.spaces.has(spaceGuid))
        throw new ValidationError('spaceGuid', spaceGuid, 'no such space');
      const guid = ch.appGuid ?? this.rng.uuid();
      app = {
        guid,
        name: ch.name ?? `app-${guid.slice(0, 8)}`,
        spaceGuid,
        processGuid: guid,
        version: this.rng.uuid(),
        instances,
        ports: ch.ports ?? [8080],
        state: 'STARTED',
        createdAt: nowIso,
        updatedAt: nowIso,
      };
    } else {
      app = { ...app, state: 'STARTED', version: this.rng.uuid(), instances, updatedAt: nowIso };
    }
    this.world.putApp(app);
    const desired = buildDesiredLrp(this.world, app, this.annotationNow(), this.rng.uuid());
    this.world.putDesired(desired);
    const events: LrpEvent[] = [{ name: 'desired_lrp_created', desired }];
    events.push(...this.placeNew(desired, range(instances), ch.cellIds));
    return this.lrpChange(events, {
      appGuid: app.guid,
      spaceGuid: app.spaceGuid,
      processGuid: desired.processGuid,
      instances: this.instancesResult(desired.processGuid),
    });
  }

  private appStop(ch: Extract<SimChange, { kind: 'app-stop' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const app = this.app(ch.appGuid);
    const events: LrpEvent[] = [];
    const removed: string[] = [];
    for (const d of [...this.world.desiredLrps.values()]) {
      if (d.appGuid !== app.guid) continue;
      this.world.deleteDesired(d.processGuid);
      events.push({ name: 'desired_lrp_removed', desired: d });
      removed.push(d.processGuid);
      for (const a of this.world.actualsOf(d.processGuid)) events.push(this.removeActual(a));
    }
    this.world.putApp({ ...app, state: 'STOPPED', updatedAt: isoSeconds(Date.now()) });
    return this.lrpChange(events, { appGuid: app.guid, processGuids: removed });
  }

  private appScale(ch: Extract<SimChange, { kind: 'app-scale' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const app = this.app(ch.appGuid);
    if (!Number.isInteger(ch.instances) || ch.instances < 0) {
      throw new ValidationError('instances', ch.instances, 'must be an integer ≥ 0');
    }
    const before = this.world.desiredOfApp(app.guid);
    if (!before || app.state !== 'STARTED')
      throw new ValidationError('appGuid', app.guid, 'app is not started');
    const after: SimDesiredLrp = {
      ...before,
      instances: ch.instances,
      annotation: this.annotationNow(),
      modificationTag: { ...before.modificationTag, index: before.modificationTag.index + 1 },
    };
    this.world.putDesired(after);
    this.world.putApp({ ...app, instances: ch.instances, updatedAt: isoSeconds(Date.now()) });
    const events: LrpEvent[] = [{ name: 'desired_lrp_changed', before, after }];
    const existing = this.world.actualsOf(before.processGuid);
    const have = new Set(existing.map((a) => a.index));
    const missing = range(ch.instances).filter((i) => !have.has(i));
    events.push(...this.placeNew(after, missing, ch.cellIds));
    for (const a of existing) if (a.index >= ch.instances) events.push(this.removeActual(a));
    return this.lrpChange(events, {
      appGuid: app.guid,
      processGuid: after.processGuid,
      instances: this.instancesResult(after.processGuid),
    });
  }

  private async appCrash(
    ch: Extract<SimChange, { kind: 'app-crash' }>,
  ): Promise<Omit<AppliedChange, 'id' | 'kind'>> {
    const app = this.app(ch.appGuid);
    const desired = this.world.desiredOfApp(app.guid);
    if (!desired) throw new ValidationError('appGuid', app.guid, 'app has no DesiredLRP');
    const candidates = this.world.actualsOf(desired.processGuid).filter((a) => a.state === 'RUNNING');
    const before =
      ch.index === undefined
        ? candidates.length
          ? this.rng.pick(candidates)
          : undefined
        : candidates.find((a) => a.index === ch.index);
    if (!before) throw new ValidationError('index', ch.index, 'no RUNNING instance to crash');
    const mode = ch.restart ?? 'crashed';
    const crashReason = 'APP/PROC/WEB: Exited with status 137 (out of memory)';
    const crashed: SimActualLrp = {
      ...before,
      state: mode === 'immediate' ? 'UNCLAIMED' : 'CRASHED',
      instanceGuid: '',
      cellId: '',
      address: '',
      instanceAddress: '',
      ports: [],
      crashCount: before.crashCount + 1,
      crashReason,
      since: nowNs(),
      modificationTag: { ...before.modificationTag, index: before.modificationTag.index + 1 },
      routable: false,
      availabilityZone: '',
    };
    this.release(before);
    this.world.putActual(crashed);
    const first: LrpEvent[] =
      mode === 'immediate'
        ? [
            { name: 'actual_lrp_crashed', before, after: crashed },
            { name: 'actual_lrp_instance_created', actual: crashed },
            { name: 'actual_lrp_instance_removed', actual: before },
          ]
        : [
            { name: 'actual_lrp_crashed', before, after: crashed },
            { name: 'actual_lrp_instance_changed', before, after: crashed },
          ];
    const triggeredAt = this.emitLrp(orderByScore(first));
    const cells = new Set(ChangeEngine.cellsOf(first));
    cells.add(before.cellId);
    let current = crashed;
    if (mode !== 'none') {
      if (mode === 'crashed') {
        if ((ch.restartDelayMs ?? 0) > 0) await this.sleep(ch.restartDelayMs ?? 0);
        // Convergence restarts a CRASHED instance: a new UNCLAIMED record replaces it.
        const u: SimActualLrp = {
          ...crashed,
          state: 'UNCLAIMED',
          since: nowNs(),
          modificationTag: { ...crashed.modificationTag, index: crashed.modificationTag.index + 1 },
        };
        this.world.putActual(u);
        this.emitLrp([
          { name: 'actual_lrp_instance_created', actual: u },
          { name: 'actual_lrp_instance_removed', actual: crashed },
        ]);
        current = u;
      }
      const cellId = ch.cellId ?? this.pickCell(undefined, 0);
      const c = this.claimed(current, cellId, this.rng.instanceGuid());
      this.world.putActual(c);
      const r = this.running(c, desired);
      this.world.putActual(r);
      this.emitLrp([
        { name: 'actual_lrp_instance_changed', before: current, after: c },
        { name: 'actual_lrp_instance_changed', before: c, after: r },
      ]);
      cells.add(cellId);
      current = r;
    }
    return {
      triggeredAt,
      affectedCells: [...cells].filter(Boolean).sort(),
      result: {
        appGuid: app.guid,
        processGuid: desired.processGuid,
        index: before.index,
        crashedInstanceGuid: before.instanceGuid,
        instanceGuid: current.instanceGuid,
        cellId: current.cellId,
        instanceAddress: current.instanceAddress,
        state: current.state,
        crashCount: current.crashCount,
      },
    };
  }

  private appRestage(ch: Extract<SimChange, { kind: 'app-restage' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const app = this.app(ch.appGuid);
    const old = this.world.desiredOfApp(app.guid);
    if (!old || app.state !== 'STARTED') throw new ValidationError('appGuid', app.guid, 'app is not started');
    const next: SimApp = { ...app, version: this.rng.uuid(), updatedAt: isoSeconds(Date.now()) };
    this.world.putApp(next);
    const desired = buildDesiredLrp(this.world, next, this.annotationNow(), this.rng.uuid());
    this.world.putDesired(desired);
    const events: LrpEvent[] = [{ name: 'desired_lrp_created', desired }];
    events.push(...this.placeNew(desired, range(next.instances), ch.cellIds));
    this.world.deleteDesired(old.processGuid);
    events.push({ name: 'desired_lrp_removed', desired: old });
    for (const a of this.world.actualsOf(old.processGuid)) events.push(this.removeActual(a));
    return this.lrpChange(events, {
      appGuid: app.guid,
      oldProcessGuid: old.processGuid,
      processGuid: desired.processGuid,
      egressRules: desired.egressRules.length,
      instances: this.instancesResult(desired.processGuid),
    });
  }

  // ---- tasks ----

  private taskRun(ch: Extract<SimChange, { kind: 'task-run' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const app = this.app(ch.appGuid);
    const taskGuid = ch.taskGuid ?? this.rng.uuid();
    if (this.world.tasks.has(taskGuid)) throw new ValidationError('taskGuid', taskGuid, 'task exists');
    const pending = buildTask(
      this.world,
      app.guid,
      taskGuid,
      ch.name ?? `task-${taskGuid.slice(0, 8)}`,
      nowNs(),
    );
    this.world.putTask(pending);
    const cellId = ch.cellId ?? this.pickCell(undefined, 0);
    if (!this.world.cells.has(cellId)) throw new ValidationError('cellId', cellId, 'no such cell');
    const running: SimTask = { ...pending, state: 'Running', cellId, updatedAt: nowNs() };
    this.world.putTask(running);
    const triggeredAt = this.emitTask([
      { name: 'task_created', task: pending },
      { name: 'task_changed', before: pending, after: running },
    ]);
    const finish = () => {
      const cur = this.world.tasks.get(taskGuid);
      if (cur?.state !== 'Running') return;
      const t1 = nowNs();
      const completed: SimTask = {
        ...cur,
        state: 'Completed',
        updatedAt: t1,
        firstCompletedAt: t1,
        result: '',
      };
      this.world.putTask(completed);
      const resolving: SimTask = { ...completed, state: 'Resolving', updatedAt: nowNs() };
      this.world.putTask(resolving);
      this.world.deleteTask(taskGuid);
      this.emitTask([
        { name: 'task_changed', before: cur, after: completed },
        { name: 'task_changed', before: completed, after: resolving },
        { name: 'task_removed', task: resolving },
      ]);
    };
    const duration = ch.durationMs ?? 1000;
    if (duration <= 0) finish();
    else this.later(duration, finish);
    return {
      triggeredAt,
      affectedCells: [cellId],
      result: { taskGuid, appGuid: app.guid, cellId, durationMs: duration },
    };
  }

  // ---- security groups ----

  private bumpAsg(via: 'v3' | 'v2' | undefined): void {
    if (via !== 'v2') {
      const t = nowNs();
      this.world.asgLatestUpdate = t > this.world.asgLatestUpdate ? t : this.world.asgLatestUpdate + 1n;
    }
  }

  private group(guid: string | undefined): SimSecurityGroup {
    const g = this.world.securityGroups.get(need(guid, 'guid', 'required'));
    if (!g) throw new ValidationError('guid', guid, 'no such security group');
    return g;
  }

  private spacesArg(ch: { spaceGuid?: string; spaceGuids?: string[] }): string[] {
    const spaces = [...(ch.spaceGuids ?? []), ...(ch.spaceGuid ? [ch.spaceGuid] : [])];
    if (spaces.length === 0)
      throw new ValidationError('spaceGuids', spaces, 'at least one space is required');
    for (const s of spaces)
      if (!this.world.spaces.has(s)) throw new ValidationError('spaceGuids', s, 'no such space');
    return spaces;
  }

  /** Cells whose containers a group reaches (all cells when it is global for running). */
  private groupCells(g: SimSecurityGroup | undefined): Set<string> {
    if (!g) return new Set();
    if (g.runningDefault) return new Set(this.world.cells.keys());
    return this.world.cellsOfSpaces(g.runningSpaces);
  }

  /**
   * Cells whose running containers see a difference between two versions of a group: all of its
   * cells when its rules changed or it appeared/vanished, else only what the binding change touched.
   * Staging-only changes affect no running container.
   */
  private asgAffectedCells(
    before: SimSecurityGroup | undefined,
    after: SimSecurityGroup | undefined,
  ): Set<string> {
    if (!before || !after || JSON.stringify(before.rules) !== JSON.stringify(after.rules)) {
      return new Set([...this.groupCells(before), ...this.groupCells(after)]);
    }
    if (before.runningDefault !== after.runningDefault) return new Set(this.world.cells.keys());
    if (after.runningDefault) return new Set();
    const changed = [
      ...[...before.runningSpaces].filter((s) => !after.runningSpaces.has(s)),
      ...[...after.runningSpaces].filter((s) => !before.runningSpaces.has(s)),
    ];
    return this.world.cellsOfSpaces(changed);
  }

  private asgChange(
    ch: Extract<
      SimChange,
      {
        kind:
          | 'asg-create'
          | 'asg-update'
          | 'asg-delete'
          | 'asg-bind-space'
          | 'asg-unbind-space'
          | 'asg-set-global';
      }
    >,
  ): Omit<AppliedChange, 'id' | 'kind'> {
    const nowIso = isoSeconds(Date.now());
    let before: SimSecurityGroup | undefined;
    let after: SimSecurityGroup | undefined;
    switch (ch.kind) {
      case 'asg-create': {
        if (!ch.name) throw new ValidationError('name', ch.name, 'required');
        if (ch.validate !== false) validateRules(ch.rules ?? []);
        for (const g of this.world.securityGroups.values()) {
          if (g.name === ch.name)
            throw new ValidationError('name', ch.name, 'Security group name must be unique');
        }
        const guid = ch.guid ?? this.rng.uuid();
        if (this.world.securityGroups.has(guid)) throw new ValidationError('guid', guid, 'exists');
        for (const s of [...(ch.runningSpaces ?? []), ...(ch.stagingSpaces ?? [])]) {
          if (!this.world.spaces.has(s)) throw new ValidationError('spaces', s, 'no such space');
        }
        after = {
          guid,
          id: this.world.nextSecurityGroupId++,
          name: ch.name,
          createdAt: nowIso,
          updatedAt: nowIso,
          rules: ch.rules ?? [],
          runningDefault: ch.globallyEnabled?.running ?? false,
          stagingDefault: ch.globallyEnabled?.staging ?? false,
          runningSpaces: new Set(ch.runningSpaces ?? []),
          stagingSpaces: new Set(ch.stagingSpaces ?? []),
        };
        break;
      }
      case 'asg-update': {
        before = this.group(ch.guid);
        if (ch.rules && ch.validate !== false) validateRules(ch.rules);
        if (ch.name && ch.name !== before.name) {
          for (const g of this.world.securityGroups.values()) {
            if (g.name === ch.name)
              throw new ValidationError('name', ch.name, 'Security group name must be unique');
          }
        }
        after = {
          ...before,
          name: ch.name ?? before.name,
          rules: ch.rules ?? before.rules,
          runningDefault: ch.globallyEnabled?.running ?? before.runningDefault,
          stagingDefault: ch.globallyEnabled?.staging ?? before.stagingDefault,
          updatedAt: nowIso,
        };
        break;
      }
      case 'asg-delete':
        before = this.group(ch.guid);
        break;
      case 'asg-bind-space':
      case 'asg-unbind-space': {
        before = this.group(ch.guid);
        const spaces = this.spacesArg(ch);
        const lifecycle = ch.lifecycle ?? 'running';
        const set = new Set(lifecycle === 'running' ? before.runningSpaces : before.stagingSpaces);
        for (const s of spaces) {
          if (ch.kind === 'asg-bind-space') set.add(s);
          else set.delete(s);
        }
        // Binding touches only the join table: updated_at stays (B.4).
        after =
          lifecycle === 'running' ? { ...before, runningSpaces: set } : { ...before, stagingSpaces: set };
        break;
      }
      case 'asg-set-global': {
        before = this.group(ch.guid);
        after =
          ch.lifecycle === 'running'
            ? { ...before, runningDefault: ch.enabled }
            : { ...before, stagingDefault: ch.enabled };
        break;
      }
    }
    const cells = this.asgAffectedCells(before, after);
    if (after) this.world.putSecurityGroup(after);
    else if (before) this.world.deleteSecurityGroup(before.guid);
    this.bumpAsg(ch.via);
    const triggeredAt = Date.now();
    const g = (after ?? before) as SimSecurityGroup;
    return {
      triggeredAt,
      affectedCells: [...cells].sort(),
      result: {
        guid: g.guid,
        name: g.name,
        asgLatestUpdate: this.world.asgLatestUpdate.toString(),
        runningSpaces: after ? after.runningSpaces.size : 0,
        stagingSpaces: after ? after.stagingSpaces.size : 0,
      },
    };
  }

  // ---- policies ----

  private policyChange(
    ch: Extract<SimChange, { kind: 'policy-add' | 'policy-remove' }>,
  ): Omit<AppliedChange, 'id' | 'kind'> {
    const source = need(ch.source, 'source', 'required');
    const destination = need(ch.destination, 'destination', 'required');
    const protocol = ch.protocol ?? 'tcp';
    if (protocol !== 'tcp' && protocol !== 'udp')
      throw new ValidationError('protocol', protocol, "must be 'tcp' or 'udp'");
    const ports = ch.ports ?? { start: ch.port ?? 8080, end: ch.port ?? 8080 };
    if (!(ports.start >= 1 && ports.end <= 65535 && ports.start <= ports.end)) {
      throw new ValidationError('ports', ports, 'must satisfy 1 ≤ start ≤ end ≤ 65535');
    }
    const tagsBefore = new Set(this.world.tags.keys());
    const idx = this.world.policies.findIndex(
      (p) =>
        p.sourceId === source &&
        p.destinationId === destination &&
        p.protocol === protocol &&
        p.start === ports.start &&
        p.end === ports.end,
    );
    let changed = false;
    if (ch.kind === 'policy-add') {
      if (idx < 0) {
        this.world.allocateTag(source, 'app');
        this.world.allocateTag(destination, 'app');
        this.world.policies.push({
          sourceId: source,
          destinationId: destination,
          protocol,
          start: ports.start,
          end: ports.end,
        });
        changed = true;
      }
    } else if (idx >= 0) {
      this.world.policies.splice(idx, 1);
      for (const id of [source, destination]) {
        if (!this.world.policies.some((p) => p.sourceId === id || p.destinationId === id))
          this.world.releaseTag(id);
      }
      changed = true;
    }
    this.world.versions.policy++;
    const t = nowNs();
    this.world.policiesLastUpdated =
      t > this.world.policiesLastUpdated ? t : this.world.policiesLastUpdated + 1n;
    const triggeredAt = Date.now();
    const affected = changed ? this.world.cellsOfApps([destination]) : new Set<string>();
    // A source whose tag appeared or vanished changes the mark its cells set.
    const tagsAfter = new Set(this.world.tags.keys());
    const sourceTagChanged = tagsBefore.has(source) !== tagsAfter.has(source);
    if (changed && sourceTagChanged) for (const c of this.world.cellsOfApps([source])) affected.add(c);
    return {
      triggeredAt,
      affectedCells: [...affected].sort(),
      result: {
        changed,
        policies: this.world.policies.length,
        sourceTag: this.world.tags.get(source)?.tag ?? null,
        destinationTag: this.world.tags.get(destination)?.tag ?? null,
        policiesLastUpdated: this.world.policiesLastUpdated.toString(),
      },
    };
  }

  // ---- spaces ----

  private spaceCreate(ch: Extract<SimChange, { kind: 'space-create' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const count = ch.count ?? 1;
    if (!Number.isInteger(count) || count < 1 || count > 10_000) {
      throw new ValidationError('count', ch.count, 'must be an integer in 1..10000');
    }
    if (ch.guid && count > 1) throw new ValidationError('guid', ch.guid, 'cannot be set with count > 1');
    const orgGuid = ch.orgGuid ?? [...this.world.orgs.keys()][0];
    if (!orgGuid || !this.world.orgs.has(orgGuid))
      throw new ValidationError('orgGuid', orgGuid, 'no such org');
    const guids: string[] = [];
    const nowIso = isoSeconds(Date.now());
    for (let i = 0; i < count; i++) {
      const guid = ch.guid ?? this.rng.uuid();
      if (this.world.spaces.has(guid)) throw new ValidationError('guid', guid, 'space exists');
      const name = ch.name ? (count > 1 ? `${ch.name}-${i + 1}` : ch.name) : `space-${guid.slice(0, 8)}`;
      this.world.spaces.set(guid, { guid, name, orgGuid, createdAt: nowIso, updatedAt: nowIso });
      guids.push(guid);
    }
    return { triggeredAt: Date.now(), affectedCells: [], result: { spaceGuids: guids, orgGuid } };
  }

  // ---- real containers ----

  private lrpPlace(ch: Extract<SimChange, { kind: 'lrp-place' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const desired0 = this.world.desiredLrps.get(need(ch.processGuid, 'processGuid', 'required'));
    if (!desired0) throw new ValidationError('processGuid', ch.processGuid, 'no such DesiredLRP');
    if (!Number.isInteger(ch.index) || ch.index < 0)
      throw new ValidationError('index', ch.index, 'must be an integer ≥ 0');
    need(ch.instanceGuid, 'instanceGuid', 'required');
    need(ch.instanceAddress, 'instanceAddress', 'required');
    const cellId = need(ch.cellId, 'cellId', 'required');
    if (!this.world.cells.has(cellId)) {
      const ip = ch.instanceAddress.split('.');
      const index = this.world.cells.size;
      this.world.addCell({
        id: cellId,
        index,
        address: ch.address ?? '',
        zone: 'z1',
        subnet: `${ip.slice(0, 3).join('.')}.0/24`,
        repAddress: `http://${ch.address ?? '127.0.0.1'}:1800`,
        repUrl: `https://${cellId}.cell.service.cf.internal:1801`,
        capacity: { memoryMb: 65536, diskMb: 131072, containers: 250 },
      });
    }
    this.world.claimIp(cellId, ch.instanceAddress);
    const ports: SimPortMapping[] = (ch.hostPorts ?? []).map((p, i) =>
      typeof p === 'number' ? { containerPort: desired0.ports[i] ?? 8080, hostPort: p } : p,
    );
    for (const p of ports) this.world.claimHostPort(cellId, p.hostPort);
    const events: LrpEvent[] = [];
    let desired = desired0;
    if (ch.index >= desired0.instances) {
      desired = {
        ...desired0,
        instances: ch.index + 1,
        modificationTag: { ...desired0.modificationTag, index: desired0.modificationTag.index + 1 },
      };
      this.world.putDesired(desired);
      const app = this.world.apps.get(desired.appGuid);
      if (app && `${app.processGuid}-${app.version}` === desired.processGuid) {
        this.world.putApp({ ...app, instances: desired.instances });
      }
      events.push({ name: 'desired_lrp_changed', before: desired0, after: desired });
    }
    const old = this.world.actualAt(desired.processGuid, ch.index);
    const net = {
      instanceAddress: ch.instanceAddress,
      ports,
      address: ch.address ?? this.world.cells.get(cellId)?.address ?? '',
    };
    if (old) {
      this.release(old);
      this.world.deleteActual(old.processGuid, old.index);
    }
    const u = this.unclaimed(desired, ch.index);
    const c = this.claimed(u, cellId, ch.instanceGuid);
    const r = this.running(c, desired, net);
    this.world.putActual(r);
    if (old) {
      // A different instance replaces the old record: created (RUNNING) before removed.
      events.push(
        { name: 'actual_lrp_instance_created', actual: r },
        { name: 'actual_lrp_instance_removed', actual: old },
      );
    } else {
      events.push(
        { name: 'actual_lrp_instance_created', actual: u },
        { name: 'actual_lrp_instance_changed', before: u, after: c },
        { name: 'actual_lrp_instance_changed', before: c, after: r },
      );
    }
    return this.lrpChange(events, {
      processGuid: desired.processGuid,
      index: ch.index,
      instanceGuid: r.instanceGuid,
      cellId,
      instanceAddress: r.instanceAddress,
    });
  }

  private lrpRemove(ch: Extract<SimChange, { kind: 'lrp-remove' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const a = this.world.actualAt(need(ch.processGuid, 'processGuid', 'required'), ch.index);
    if (!a) throw new ValidationError('index', ch.index, 'no such ActualLRP');
    const events = [this.removeActual(a)];
    return this.lrpChange(events, { processGuid: a.processGuid, index: a.index });
  }

  /**
   * The cell moves to `subnet` (in CF a container's address comes from its cell's lease): instances
   * whose address lies outside it are replaced by new instances addressed in it, as a cell's
   * containers are recreated — created (RUNNING) before the old one is removed, per instance.
   */
  private cellSubnet(ch: Extract<SimChange, { kind: 'cell-subnet' }>): Omit<AppliedChange, 'id' | 'kind'> {
    const cellId = need(ch.cellId, 'cellId', 'required');
    if (!this.world.cells.has(cellId)) throw new ValidationError('cellId', cellId, 'no such cell');
    const { family, prefix } = parseCidr(need(ch.subnet, 'subnet', 'required'), 'subnet');
    if (family !== 4 || prefix > 30)
      throw new ValidationError('subnet', ch.subnet, 'must be an IPv4 /30 or larger');
    const subnet = canonicalCidr(ch.subnet, 'subnet');
    const onCell = [...this.world.actualLrps.values()].filter(
      (a) => a.cellId === cellId && a.instanceAddress,
    );
    this.world.setCellSubnet(cellId, subnet);
    const kept = onCell.filter((a) => this.world.inCellSubnet(cellId, a.instanceAddress));
    for (const a of kept) this.world.claimIp(cellId, a.instanceAddress);
    const events: LrpEvent[] = [];
    for (const old of onCell.filter((a) => !kept.includes(a))) {
      const r: SimActualLrp = {
        ...old,
        instanceGuid: this.rng.instanceGuid(),
        instanceAddress: this.world.allocateIp(cellId),
        since: nowNs(),
        modificationTag: { epoch: this.rng.uuid(), index: 0 },
      };
      this.world.putActual(r);
      events.push(
        { name: 'actual_lrp_instance_created', actual: r },
        { name: 'actual_lrp_instance_removed', actual: old },
      );
    }
    return this.lrpChange(events, { cellId, subnet, readdressed: events.length / 2, kept: kept.length });
  }
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
