/**
 * The leader's life cycle (controller.ts says when it starts and stops): on election, the world is
 * rebuilt from Redis's last-known copy and the informers are started; the first full write waits
 * for every configured source (or its last-known copy after `initialSyncTimeoutMs`); afterwards
 * changes are written and enqueued incrementally, with a full rewrite after a failed write, a
 * Redis reconnect or an agent ahead of the store. Losing the lease stops it all.
 *
 * Longer than ~400 lines: it is one state machine (elect → sync → publish → stop) over one LeaderState;
 * split further, its steps would have to share that state across files.
 */
import type { Redis } from 'ioredis';
import { BbsClient } from '../cf/bbs-client.js';
import { CapiClient } from '../cf/capi-client.js';
import { PolicyServerClient } from '../cf/policy-client.js';
import { UaaClient } from '../cf/uaa-client.js';
import type { Leadership } from '../lib/leader.js';
import type { Logger } from '../lib/log.js';
import type { Registry } from '../lib/metrics.js';
import type { NameData } from '../model/names.js';
import type { C2CPolicy } from '../model/types.js';
import { type Trigger, World } from '../rules/world.js';
import { FencedOffError } from '../state/errors.js';
import type { Keys } from '../state/keys.js';
import type { LeaseManager } from '../state/lease-store.js';
import type { AsgData, WorldStore } from '../state/world-store.js';
import type { ControllerConfig } from './config.js';
import type { ControllerMetrics } from './metrics.js';
import type { ReconcileQueue } from './reconcile/queue.js';
import { AsgInformer } from './sources/asg-informer.js';
import { BbsInformer } from './sources/bbs-informer.js';
import type { InformerContext, InformerSource } from './sources/context.js';
import type { IngestGate } from './sources/gate.js';
import { NamesInformer } from './sources/names-informer.js';
import { PolicyInformer } from './sources/policy-informer.js';

export interface LeaderState {
  leadership: Leadership;
  world: World;
  bbs?: BbsInformer;
  asg?: AsgInformer;
  /** Org/space/app names for the operator tools (no source the first write waits for). */
  names?: NamesInformer;
  policy?: PolicyInformer;
  clients: Array<{ close(): void }>;
  resynced: boolean;
  /** Sources loaded from Redis's last-known copy at election (CAPI's ASGs, the policies). */
  lastKnown: { capi: boolean; policy: boolean };
  /** Sources the leader waits for before its first world write (empty once written). */
  missing: InformerSource[];
  needResync: boolean;
  flushing: Promise<void> | null;
  flushAgain: boolean;
  stopped: boolean;
}

/** The sources a leader with this config watches. */
export function configuredSources(c: ControllerConfig): InformerSource[] {
  return [
    ...(c.bbs ? ['bbs' as const] : []),
    ...(c.capi ? ['capi' as const] : []),
    ...(c.policy ? ['policy' as const] : []),
  ];
}

/** What the life cycle is given by the controller (built once its connections exist). */
export interface LeaderLifecycleDeps {
  config: ControllerConfig;
  keys: Keys;
  instanceId: string;
  log: Logger;
  registry: Registry;
  redis: Redis;
  /** The subscriber connection for inventory and resync messages. */
  invSub: Redis;
  worldStore: WorldStore;
  leases: LeaseManager;
  queue: ReconcileQueue;
  ingest: IngestGate;
  metrics: ControllerMetrics;
  /** Whether the election still has this replica as leader. */
  isLeader: () => boolean;
  /** Whether the controller is stopping (a late election is then ignored). */
  stopping: () => boolean;
}

export class LeaderLifecycle {
  /** The current leader's state (null on standbys and between terms). */
  state: LeaderState | null = null;

  constructor(private readonly d: LeaderLifecycleDeps) {}

  /** Redis came back after a disconnect: a leader rewrites the whole world and enqueues every cell. */
  redisReconnected(): void {
    const l = this.state;
    if (l?.resynced && !l.stopped) {
      this.d.log.warn('Redis reconnected: rewriting the world and recomputing every cell');
      l.needResync = true;
      this.scheduleFlush(l);
    }
  }

  async startLeading(leadership: Leadership): Promise<void> {
    if (this.d.stopping() || !this.d.isLeader()) return;
    const c = this.d.config;
    const world = new World();
    const state: LeaderState = {
      leadership,
      world,
      clients: [],
      resynced: false,
      lastKnown: { capi: false, policy: false },
      missing: [],
      needResync: false,
      flushing: null,
      flushAgain: false,
      stopped: false,
    };
    this.state = state;
    const log = this.d.log.child({ part: 'leader', fence: leadership.fence });
    try {
      state.lastKnown = await this.loadLastKnown(world);
    } catch (err) {
      log.warn({ err }, 'could not load the last known state from Redis');
    }
    world.takeChanges();
    const ctx: InformerContext = {
      world,
      changed: () => this.scheduleFlush(state),
      log,
      registry: this.d.registry,
      ingest: this.d.ingest,
    };
    if (c.bbs) {
      const client = new BbsClient({ url: c.bbs.url, ...(c.bbs.tls ? { tls: c.bbs.tls } : {}), logger: log });
      state.clients.push(client);
      state.bbs = new BbsInformer(client, ctx, {
        relistIntervalMs: c.bbs.relistIntervalMs,
        streamIdleTimeoutMs: c.bbs.streamIdleTimeoutMs,
      });
    }
    if (c.capi) {
      const uaa = new UaaClient({
        url: c.capi.uaa.url,
        clientId: c.capi.uaa.clientId,
        clientSecret: c.capi.uaa.clientSecret,
        ...(c.capi.uaa.tls ? { tls: c.capi.uaa.tls } : {}),
        logger: log,
      });
      const capi = new CapiClient({
        url: c.capi.url,
        ...(c.capi.tls ? { tls: c.capi.tls } : {}),
        auth: uaa,
        ...(c.capi.internal ? { internal: c.capi.internal } : {}),
        logger: log,
      });
      state.clients.push(capi);
      state.asg = new AsgInformer(capi, ctx, {
        useLatestUpdate: !!c.capi.internal,
        checkIntervalMs: c.capi.checkIntervalMs,
        fullListIntervalMs: c.capi.fullListIntervalMs,
      });
      state.names = new NamesInformer(capi, ctx, {
        checkIntervalMs: c.capi.checkIntervalMs,
        fullListIntervalMs: c.capi.fullListIntervalMs,
      });
    }
    if (c.policy) {
      const client = new PolicyServerClient({
        url: c.policy.url,
        ...(c.policy.tls ? { tls: c.policy.tls } : {}),
        logger: log,
      });
      state.clients.push(client);
      state.policy = new PolicyInformer(client, ctx, {
        intervalMs: c.policy.intervalMs,
        fullListIntervalMs: c.policy.fullListIntervalMs,
      });
    }
    // Agent inventories (written by whichever replica serves the agent) feed the span indexes.
    this.d.invSub.removeAllListeners('message');
    this.d.invSub.on('message', (ch: string, cell: string) => {
      if (state.stopped) return;
      if (ch === this.d.keys.resyncChannel) {
        // a worker found an agent ahead of the store: Redis lost writes; rewrite the world in full
        // (coalesced: one rewrite serves every cell that asked meanwhile)
        if (state.resynced && !state.needResync) {
          log.warn({ cell }, 'an agent holds a rule set Redis lost: rewriting the world in full');
          state.needResync = true;
          this.scheduleFlush(state);
        }
        return;
      }
      void this.d.worldStore
        .inventory(cell)
        .then((entries) => world.setInventory(cell, entries))
        .catch((err) => log.warn({ err, cell }, 'could not read an inventory'));
    });
    await this.d.invSub.subscribe(this.d.keys.inventoryChannel, this.d.keys.resyncChannel).catch(() => {});

    state.bbs?.start();
    state.asg?.start();
    state.names?.start();
    state.policy?.start();
    if (c.compute?.egressSource === 'static') {
      log.info(
        { dynamicAsgs: false },
        'static ASGs: egress rules from the BBS desire-time snapshots; security groups are not polled',
      );
    }
    log.info('leading: informers started');
    void this.initialSync(state, log);
  }

  /**
   * Waits until every configured source is covered (see the life cycle above), recording which ones
   * block publishing, then writes the world.
   */
  private async initialSync(state: LeaderState, log: Logger): Promise<void> {
    const timeout = this.d.config.initialSyncTimeoutMs;
    const started = Date.now();
    const sources: Array<{
      source: InformerSource;
      informer?: { isSynced: boolean; synced: Promise<void> };
      lastKnown: boolean;
    }> = [
      { source: 'bbs', ...(state.bbs ? { informer: state.bbs } : {}), lastKnown: false },
      { source: 'capi', ...(state.asg ? { informer: state.asg } : {}), lastKnown: state.lastKnown.capi },
      {
        source: 'policy',
        ...(state.policy ? { informer: state.policy } : {}),
        lastKnown: state.lastKnown.policy,
      },
    ];
    let reported = '';
    let warnedAt = started;
    while (!state.stopped) {
      const waited = Date.now() - started;
      const missing = sources
        .filter((s) => s.informer && !s.informer.isSynced && !(s.lastKnown && waited >= timeout))
        .map((s) => s.source);
      const key = missing.join(',');
      if (key !== reported) {
        reported = key;
        await this.recordPublishState(state, missing, sources);
      }
      if (missing.length === 0) break;
      if (Date.now() - warnedAt >= timeout) {
        warnedAt = Date.now();
        log.warn(
          { missing, waitedMs: waited },
          'not publishing rule sets: waiting for sources never listed since the state was lost; agents keep enforcing what they have',
        );
      }
      const pending = sources.flatMap((s) => (s.informer && !s.informer.isSynced ? [s.informer.synced] : []));
      await Promise.race([...pending, new Promise((r) => setTimeout(r, 250).unref())]);
    }
    if (state.stopped) return;
    for (const s of sources) {
      if (s.informer && !s.informer.isSynced) {
        log.warn(
          { source: s.source, waitedMs: timeout },
          'source not listed yet; writing the world with its last-known copy from Redis',
        );
      }
    }
    await this.resync(state, log);
  }

  /** The leader's publish state: gauge per source and a Redis key that operator tools read. */
  private async recordPublishState(
    state: LeaderState,
    missing: InformerSource[],
    sources: Array<{ source: InformerSource; informer?: unknown }>,
  ): Promise<void> {
    state.missing = missing;
    for (const s of sources)
      if (s.informer)
        this.d.metrics.publishBlocked.set({ source: s.source }, missing.includes(s.source) ? 1 : 0);
    await this.d.redis
      .hset(this.d.keys.publishState, {
        leader: this.d.instanceId,
        state: missing.length > 0 ? 'waiting' : 'publishing',
        missing: missing.join(','),
        since: String(Date.now()),
      })
      .catch((err) => this.d.log.warn({ err }, 'could not record the publish state'));
  }

  /** Full write of the world (first time, and after any failed incremental write). */
  private async resync(state: LeaderState, log: Logger): Promise<void> {
    for (let attempt = 0; !state.stopped; attempt++) {
      try {
        state.world.takeChanges();
        // what this write carries (later changes are flushed, and journaled, with their own)
        const asg = state.world.asgs();
        const written = { ...(asg ? { asg } : {}), policies: state.world.policies() };
        const cells = await this.d.worldStore.resync(state.world, state.leadership.value);
        for (const c of state.world.allCells()) cells.add(c);
        // routers (single-address leases) hold no rule set
        for (const l of await this.d.leases.list().catch(() => [])) if (!l.kind) cells.add(l.cellId);
        state.resynced = true;
        state.needResync = false;
        const trigger: Trigger = { kind: 'resync', id: String(state.leadership.fence), at: Date.now() };
        await this.d.queue.enqueueCells(cells, trigger, written);
        log.info(
          { enqueued: cells.size, ...state.world.counts },
          'world written to Redis; every cell enqueued',
        );
        if (state.world.hasChanges()) this.scheduleFlush(state);
        return;
      } catch (err) {
        if (err instanceof FencedOffError) {
          log.warn('world write fenced off: no longer the leader');
          return;
        }
        const delay = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6));
        log.warn({ err, retryInMs: delay }, 'world resync failed');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  scheduleFlush(state: LeaderState): void {
    if (state.stopped || !state.resynced) return;
    if (state.flushing) {
      state.flushAgain = true;
      return;
    }
    state.flushing = (async () => {
      await new Promise((r) => setImmediate(r));
      do {
        state.flushAgain = false;
        await this.flush(state);
      } while (state.flushAgain && !state.stopped);
      state.flushing = null;
    })();
  }

  private async flush(state: LeaderState): Promise<void> {
    if (state.needResync) {
      await this.resync(state, this.d.log);
      return;
    }
    const changes = state.world.takeChanges();
    if (
      changes.cells.size === 0 &&
      changes.records.size === 0 &&
      changes.snapshots.size === 0 &&
      !changes.asg &&
      changes.asgStateAt === undefined &&
      !changes.policies &&
      !changes.names
    ) {
      return;
    }
    try {
      await this.d.worldStore.write(changes, state.leadership.value, (cell) => {
        for (const _ of state.world.cellRecords(cell)) return true;
        return false;
      });
      await this.d.queue.enqueue(changes.cells, {
        ...(changes.asg ? { asg: changes.asg } : {}),
        ...(changes.policies ? { policies: changes.policies } : {}),
      });
    } catch (err) {
      if (err instanceof FencedOffError) {
        this.d.log.warn('world write fenced off: no longer the leader');
        return;
      }
      this.d.log.warn({ err }, 'world write failed; a full resync follows');
      state.needResync = true;
      setTimeout(() => this.scheduleFlush(state), 500).unref();
    }
  }

  async stopLeading(): Promise<void> {
    const state = this.state;
    if (!state) return;
    state.stopped = true;
    this.state = null;
    await this.d.invSub.unsubscribe(this.d.keys.inventoryChannel, this.d.keys.resyncChannel).catch(() => {});
    await Promise.all(
      [state.bbs?.stop(), state.asg?.stop(), state.names?.stop(), state.policy?.stop()].map((p) =>
        p?.catch(() => {}),
      ),
    );
    for (const c of state.clients) c.close();
    await state.flushing?.catch(() => {});
    for (const source of configuredSources(this.d.config)) {
      this.d.metrics.informerMetrics.setSynced(source, false);
      this.d.metrics.publishBlocked.set({ source }, 0);
    }
  }

  /** Last known security groups, policies and inventories (a failing source keeps them). */
  private async loadLastKnown(world: World): Promise<{ capi: boolean; policy: boolean }> {
    const [[asg, stateAt], pol, names] = await Promise.all([
      this.d.redis.hmget(this.d.keys.asg, 'data', 'stateAt'),
      this.d.redis.hget(this.d.keys.policies, 'data'),
      this.d.redis.hget(this.d.keys.names, 'data'),
    ]);
    const t: Trigger = { kind: 'resync', id: 'last-known', at: Date.now() };
    // With static ASGs the CAPI state is never used: a copy left by an earlier dynamic run stays
    // out of the world and is removed from Redis, so operator tools do not name groups from it and
    // a worker still running the dynamic mode during a rolling switch finds no CAPI state either
    // (it then uses the BBS snapshots too).
    const staticAsgs = this.d.config.compute?.egressSource === 'static';
    if (asg && staticAsgs) await this.d.redis.del(this.d.keys.asg);
    if (asg && !staticAsgs) world.setAsgs(JSON.parse(asg) as AsgData, Number(stateAt ?? 0), t);
    if (pol) world.setPolicies(JSON.parse(pol) as C2CPolicy[], t);
    if (names) world.setNames(JSON.parse(names) as NameData);
    for (const cell of await this.d.worldStore.inventoryCells()) {
      world.setInventory(cell, await this.d.worldStore.inventory(cell));
    }
    return { capi: !!asg && !staticAsgs, policy: !!pol };
  }

  // ------------------------------------------------------------------------------- operations
}
