/**
 * BBS informer (leader only): list-then-watch of desired LRPs (r3: network properties and egress
 * snapshots), actual LRPs and tasks.
 *
 * The event streams (`lrp_instances.r1`, `tasks.r1`) are opened first and their events queued; then
 * everything is listed and the listing replaces the BBS part of the world (only real differences
 * touch cells); then the queued events are applied in order. BBS streams cannot resume, so after
 * every reconnect (`reconnected`) and on a long interval the same re-list happens again, with event
 * processing paused meanwhile. A failed listing keeps the world as it was and is retried with
 * backoff.
 *
 * Longer than ~400 lines: the list-then-watch cycle, its event buffering and the per-event
 * validation (each skipped event counted and journaled by reason) belong to one state machine.
 */
import type { BbsClient } from '../../cf/bbs-client.js';
import type { BbsEventStream, StreamEvent } from '../../cf/bbs-events.js';
import type { Clock, ClockTimer } from '../../lib/clock.js';
import type { ValidationError } from '../../lib/errors.js';
import type { DecodedBbsEvent, DesiredLRP, Task } from '../../model/bbs-messages.js';
import {
  desiredFromBbs,
  type EgressSnapshot,
  egressSnapshot,
  instanceFrom,
  instanceFromBbs,
  type TaskInfo,
  taskFromBbs,
} from '../../rules/records.js';
import type { Trigger } from '../../rules/world.js';
import { clockOf, type InformerContext, InformerMetrics, ingestOf } from './context.js';
import { type IngestGate, SKIPPED_EVENT_REASONS, type SkippedEventReason } from './gate.js';
import { DEFAULT_JITTER, jittered } from './poller.js';

/** Events applied per event-loop turn (each is a few µs; a turn stays well under 100 ms). */
const EVENTS_PER_TURN = 1000;

/** Periodic full BBS re-list (ms): the safety net behind the event stream (`bbsRelistIntervalMs`). */
export const DEFAULT_BBS_RELIST_INTERVAL_MS = 600_000;
/** Reconnect an event stream silent this long (ms): BBS sends no heartbeats (`bbsStreamIdleTimeoutMs`). */
export const DEFAULT_BBS_STREAM_IDLE_TIMEOUT_MS = 300_000;

export interface BbsInformerOptions {
  /**
   * Periodic full re-list (jittered ±20 %). 0 = only after reconnects.
   * @defaultValue {@link DEFAULT_BBS_RELIST_INTERVAL_MS}
   */
  relistIntervalMs?: number;
  /**
   * Stream idle timeout (BBS sends no heartbeats).
   * @defaultValue {@link DEFAULT_BBS_STREAM_IDLE_TIMEOUT_MS}
   */
  streamIdleTimeoutMs?: number;
  /**
   * First backoff after a failed listing (ms), doubling up to {@link MAX_BBS_RETRY_MS}.
   * @defaultValue {@link DEFAULT_BBS_RETRY_MS}
   */
  retryMs?: number;
}

/** Parses egress rule lists once per distinct content (LRPs of a space share them). */
class SnapshotCache {
  private readonly m = new Map<string, EgressSnapshot>();
  constructor(private readonly onInvalid: (err: ValidationError, index: number) => void) {}
  get(rules: unknown[] | null | undefined): EgressSnapshot {
    const key = JSON.stringify(rules ?? []);
    let s = this.m.get(key);
    if (!s) {
      s = egressSnapshot(rules, this.onInvalid);
      if (this.m.size > 50_000) this.m.clear();
      this.m.set(key, s);
    }
    return s;
  }
}

/** First wait after a failed BBS listing (ms); it doubles per failure. */
export const DEFAULT_BBS_RETRY_MS = 1000;
/** Longest wait between BBS listing retries (ms). */
export const MAX_BBS_RETRY_MS = 30_000;
/** How long the first listing waits for the event streams to open (ms): watch before listing. */
const STREAM_OPEN_WAIT_MS = 5_000;

export class BbsInformer {
  private lrpStream: BbsEventStream | null = null;
  private taskStream: BbsEventStream | null = null;
  private readonly queue: Array<StreamEvent> = [];
  private relistWanted = true;
  private listing = false;
  private listedOnce = false;
  private running = false;
  private loop: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  /** Ends a listing retry's backoff early: only stop() may (events must not shorten the backoff). */
  private abortBackoff: (() => void) | null = null;
  private relistTimer: ClockTimer | null = null;
  private readonly clock: Clock;
  private readonly metrics: InformerMetrics;
  private readonly snapshots: SnapshotCache;
  private readonly ingest: IngestGate;
  private syncedResolve!: () => void;
  /** Resolves after the first successful listing was applied. */
  readonly synced: Promise<void>;

  constructor(
    private readonly client: BbsClient,
    private readonly ctx: InformerContext,
    private readonly opts: BbsInformerOptions = {},
  ) {
    this.metrics = new InformerMetrics(ctx.registry);
    this.clock = clockOf(ctx);
    this.ingest = ingestOf(ctx);
    this.snapshots = new SnapshotCache(this.ingest.egressRuleRejected);
    this.synced = new Promise((r) => {
      this.syncedResolve = r;
    });
  }

  get isSynced(): boolean {
    return this.listedOnce;
  }

  /** Listed, no re-list pending or running, and every received event applied to the world. */
  get isIdle(): boolean {
    return this.listedOnce && !this.relistWanted && !this.listing && this.queue.length === 0;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const idle = this.opts.streamIdleTimeoutMs ?? DEFAULT_BBS_STREAM_IDLE_TIMEOUT_MS;
    this.lrpStream = this.client.eventStream('lrp', { idleTimeoutMs: idle, logger: this.ctx.log });
    this.taskStream = this.client.eventStream('task', { idleTimeoutMs: idle, logger: this.ctx.log });
    for (const [name, s] of [
      ['lrp_instances', this.lrpStream],
      ['tasks', this.taskStream],
    ] as const) {
      s.on('event', (e) => {
        this.queue.push(e);
        this.poke();
      });
      s.on('decodeError', ({ name, id, error, dataLength }) =>
        this.skipped(
          'undecodable',
          name,
          id,
          `payload of ${dataLength} bytes does not decode: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
      s.on('unknown', ({ name, id }) =>
        this.skipped('unknown', name, id, 'event name unknown to this controller (a newer BBS?)'),
      );
      s.on('open', ({ reconnect }) => {
        // A stream that opened only after the first listing may have missed events: list again.
        if (!reconnect && this.listedOnce) this.requestRelist(`${name} stream opened after the listing`);
      });
      s.on('reconnected', () => {
        this.metrics.reconnect(name);
        this.requestRelist('stream reconnected');
      });
      s.start();
    }
    for (const reason of SKIPPED_EVENT_REASONS) this.metrics.skippedEvent(reason, 0);
    this.scheduleRelist();
    this.loop = this.run();
  }

  /** A BBS event skipped as a whole: counted, and recorded (journal, log) once per name and reason. */
  private skipped(reason: SkippedEventReason, name: string, id: string, message: string): void {
    this.metrics.skippedEvent(reason);
    this.ingest.bbsEventSkipped(reason, name, id, message);
  }

  async stop(): Promise<void> {
    this.running = false;
    this.lrpStream?.close();
    this.taskStream?.close();
    if (this.relistTimer) this.clock.clearTimeout(this.relistTimer);
    this.abortBackoff?.();
    this.poke();
    await this.loop;
  }

  /** Ask for a full re-list (e.g. after a reconnect). */
  requestRelist(reason: string): void {
    this.ctx.log.info({ reason }, 'BBS re-list requested');
    this.relistWanted = true;
    this.poke();
  }

  private scheduleRelist(): void {
    const every = this.opts.relistIntervalMs ?? DEFAULT_BBS_RELIST_INTERVAL_MS;
    if (every <= 0 || !this.running) return;
    this.relistTimer = this.clock.setTimeout(
      () => {
        this.requestRelist('periodic');
        this.scheduleRelist();
      },
      jittered(every, DEFAULT_JITTER),
    );
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private async run(): Promise<void> {
    let failures = 0;
    // Watch before listing: give the streams a moment to open so no event falls between the two.
    let openWait: ClockTimer | null = null;
    await Promise.race([
      Promise.all([this.lrpStream?.waitOpen(), this.taskStream?.waitOpen()]).catch(() => {}),
      new Promise<void>((r) => {
        openWait = this.clock.setTimeout(r, STREAM_OPEN_WAIT_MS);
      }),
    ]);
    if (openWait) this.clock.clearTimeout(openWait);
    while (this.running) {
      if (this.relistWanted) {
        this.relistWanted = false;
        this.listing = true;
        try {
          await this.relist();
          failures = 0;
        } catch (err) {
          failures++;
          this.metrics.pollError('bbs');
          this.relistWanted = true;
          const first = this.opts.retryMs ?? DEFAULT_BBS_RETRY_MS;
          const delay = Math.min(MAX_BBS_RETRY_MS, first * 2 ** Math.min(failures - 1, 5));
          this.ctx.log.warn({ err, retryInMs: delay }, 'BBS listing failed; keeping the last state');
          // Events arriving meanwhile are queued (applied after the next listing, in order); they
          // do not cut the backoff short, or a stream of events would hammer a failing BBS.
          await new Promise<void>((r) => {
            const t = this.clock.setTimeout(
              () => {
                this.abortBackoff = null;
                r();
              },
              jittered(delay, DEFAULT_JITTER),
            );
            this.abortBackoff = () => {
              this.clock.clearTimeout(t);
              this.abortBackoff = null;
              r();
            };
          });
          continue;
        } finally {
          this.listing = false;
        }
      }
      if (this.listedOnce && this.queue.length > 0) {
        // Bounded turns: a storm of events must not hold the event loop so long that the
        // leadership lease cannot be renewed or the agent API answered.
        const batch = this.queue.splice(0, EVENTS_PER_TURN);
        for (const e of batch) this.apply(e);
        this.ctx.changed();
        await new Promise((r) => setImmediate(r));
        continue;
      }
      if (!this.running) break;
      await new Promise<void>((r) => {
        this.wake = r;
      });
    }
  }

  private async relist(): Promise<void> {
    const started = this.clock.now();
    const [desired, actual, tasks, cells] = await Promise.all([
      this.client.desiredLrps(),
      this.client.actualLrps(),
      this.client.tasks(),
      // cell presences are only a hint (cells without containers still get a rule set)
      this.client.cells().catch((err: unknown) => {
        this.ctx.log.warn({ err }, 'could not list BBS cells');
        return null;
      }),
    ]);
    const desiredAt = this.listedOnce ? started : 0;
    const trigger: Trigger = { kind: 'resync', id: 'bbs-list', at: started };
    const listing = {
      desired: desired.flatMap((d) => {
        const r = this.desired(d, desiredAt);
        return r ? [r] : [];
      }),
      instances: actual.flatMap((a) => {
        const i = this.ingest.instance(instanceFromBbs(a));
        return i ? [i] : [];
      }),
      tasks: tasks.flatMap((t) => {
        const r = this.task(t, desiredAt);
        return r ? [r] : [];
      }),
    };
    await this.ctx.world.replaceBbsInTurns(listing, trigger);
    if (cells)
      this.ctx.world.setKnownCells(
        cells.flatMap((c) => (c.cellId ? [c.cellId] : [])),
        trigger,
      );
    this.snapshots.get([]); // keep the cache warm for empty rule lists
    this.metrics.poll('bbs', this.ctx.world.hasChanges() ? 'changed' : 'unchanged');
    this.ctx.log.info(
      {
        desired: listing.desired.length,
        instances: listing.instances.length,
        tasks: listing.tasks.length,
        ms: this.clock.now() - started,
      },
      'BBS listed',
    );
    this.ctx.changed();
    if (!this.listedOnce) {
      this.listedOnce = true;
      this.metrics.setSynced('bbs', true);
      this.syncedResolve();
    }
  }

  private desired(d: DesiredLRP, desiredAt: number) {
    const snapshot = this.snapshots.get(d.egressRules as unknown[] | null | undefined);
    const r = this.ingest.desired(desiredFromBbs({ ...d, egressRules: [] }, desiredAt));
    if (!r) return null;
    return { info: { ...r.info, snapshot: snapshot.hash }, snapshot };
  }

  private task(t: Task, desiredAt: number): { info: TaskInfo; snapshot: EgressSnapshot } | null {
    const def = t.taskDefinition;
    const snapshot = this.snapshots.get(def?.egressRules as unknown[] | null | undefined);
    const r = this.ingest.task(
      taskFromBbs({ ...t, taskDefinition: def ? { ...def, egressRules: [] } : def }, desiredAt),
    );
    if (!r) return null;
    return { info: { ...r.info, snapshot: snapshot.hash }, snapshot };
  }

  private malformed(e: StreamEvent<DecodedBbsEvent>, what: string): void {
    this.skipped('malformed', e.name, e.id, `${e.name}: ${what}`);
  }

  /** Apply one event to the world; a malformed one is skipped and recorded. */
  private apply(e: StreamEvent<DecodedBbsEvent>): void {
    const why = this.applyOrWhy(e);
    if (why !== null) this.malformed(e, why);
  }

  /** Applies one event; returns what is missing from a malformed one (null when applied). */
  private applyOrWhy(e: StreamEvent<DecodedBbsEvent>): string | null {
    const w = this.ctx.world;
    const at = e.receivedAt;
    this.metrics.event(e.name);
    switch (e.name) {
      case 'desired_lrp_created':
      case 'desired_lrp_changed': {
        const d = e.name === 'desired_lrp_created' ? e.message.desiredLrp : e.message.after;
        if (!d) return 'no desired LRP in it';
        const r = this.desired(d, at);
        if (r) w.upsertDesired(r.info, r.snapshot, { kind: 'desired', id: r.info.processGuid, at });
        return null;
      }
      case 'desired_lrp_removed': {
        const pg = e.message.desiredLrp?.processGuid;
        if (!pg) return 'no process guid in it';
        w.removeDesired(pg, { kind: 'desired', id: pg, at });
        return null;
      }
      case 'actual_lrp_instance_created': {
        const a = e.message.actualLrp;
        if (!a) return 'no actual LRP in it';
        const i = this.ingest.instance(instanceFromBbs(a));
        if (i) w.upsertInstance(i, { kind: 'lrp', id: i.handle, at });
        return null;
      }
      case 'actual_lrp_instance_changed': {
        const m = e.message;
        const info = m.after ?? m.before;
        const i = this.ingest.instance(instanceFrom(m.actualLrpKey, m.actualLrpInstanceKey, info));
        const handle = m.actualLrpInstanceKey?.instanceGuid ?? '';
        if (i) w.upsertInstance(i, { kind: 'lrp', id: i.handle, at });
        else if (handle) w.removeInstance(handle, { kind: 'lrp', id: handle, at });
        else return 'no instance guid in it';
        return null;
      }
      case 'actual_lrp_instance_removed': {
        const handle = e.message.actualLrp?.actualLrpInstanceKey?.instanceGuid ?? '';
        if (!handle) return 'no instance guid in it';
        w.removeInstance(handle, { kind: 'lrp', id: handle, at });
        return null;
      }
      case 'task_created':
      case 'task_changed': {
        const t = e.name === 'task_created' ? e.message.task : e.message.after;
        if (!t) return 'no task in it';
        const r = this.task(t, at);
        const trigger: Trigger = { kind: 'task', id: t.taskGuid ?? '', at };
        if (r) w.upsertTask(r.info, r.snapshot, trigger);
        else if (t.taskGuid) w.removeTask(t.taskGuid, trigger);
        else return 'no task guid in it';
        return null;
      }
      case 'task_removed': {
        const guid = e.message.task?.taskGuid;
        if (!guid) return 'no task guid in it';
        w.removeTask(guid, { kind: 'task', id: guid, at });
        return null;
      }
      default:
        // actual_lrp_crashed (a changed event follows) and the deprecated group events
        return null;
    }
  }
}
