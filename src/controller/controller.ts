/**
 * The controller process: every replica runs reconcile workers and serves the agent API; the
 * elected leader also runs the informers and writes the world into Redis.
 *
 * Leader life cycle:
 * 1. elected (fencing token) → load the last known security groups, policies and agent
 *    inventories from Redis (a failing source then keeps them), start the informers;
 * 2. once every configured source is covered: full resync of the world into Redis, mark it ready,
 *    enqueue every cell. BBS must be listed. CAPI and the policy server must be listed too, unless
 *    Redis still held their last-known copy: then the leader waits `initialSyncTimeoutMs` for a
 *    fresh listing and otherwise writes the world with that copy. A source with neither (Redis lost
 *    its data and the source is down) is waited for without limit: no rule set is published from a
 *    world that lacks it, agents keep enforcing what they have, and `/readyz`, the
 *    `cfnet_controller_publish_blocked{source}` gauge and the publish-state key say why;
 * 3. afterwards every world change is written (fenced) and its cells enqueued, coalesced per tick;
 *    a failed write triggers another full resync (nothing is lost);
 * 4. lease lost (deposed, Redis flushed, stop) → informers stop, the in-memory world is dropped.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { BbsClient } from '../cf/bbs-client.js';
import { CapiClient } from '../cf/capi-client.js';
import { PolicyServerClient } from '../cf/policy-client.js';
import type { TlsMaterial } from '../cf/tls-config.js';
import { UaaClient } from '../cf/uaa-client.js';
import { errorMessage } from '../lib/errors.js';
import { LeaderElection, type Leadership } from '../lib/leader.js';
import { createLogger, type Logger } from '../lib/log.js';
import { counter, createRegistry, type Gauge, gauge, METRICS, type Registry } from '../lib/metrics.js';
import { closeRedis, createRedis, type RedisAuth } from '../lib/redis.js';
import type { C2CPolicy, CellConfig } from '../model/types.js';
import type { ComputeOptions } from '../rules/compute.js';
import { type Trigger, World } from '../rules/world.js';
import { FencedOffError } from '../state/errors.js';
import { Keys } from '../state/keys.js';
import { LeaseManager } from '../state/lease-store.js';
import { RuleSetStore } from '../state/ruleset-store.js';
import { type AsgData, WorldStore } from '../state/world-store.js';
import { type ControllerExtension, extensionsFor } from './extensions.js';
import { type IdentityConfig, startIdentity } from './identity/setup.js';
import { ReconcileQueue } from './reconcile/queue.js';
import { type ReconcileResult, Reconciler } from './reconcile/reconciler.js';
import { ReconcileWorkers } from './reconcile/worker.js';
import { ChangeNotifier } from './serve/notifier.js';
import { type RunningServer, startAgentApi, startOperatorServer } from './serve/server.js';
import { AsgInformer } from './sources/asg-informer.js';
import { BbsInformer } from './sources/bbs-informer.js';
import { type InformerContext, InformerMetrics, type InformerSource } from './sources/context.js';
import { IngestGate } from './sources/gate.js';
import { PolicyInformer } from './sources/policy-informer.js';
import { conflictRejection, RejectionRecorder } from './sources/rejections.js';

/** Waits for `p` at most `ms` (never throws): for steps of a stop that must not hang. */
async function bounded(p: Promise<unknown> | undefined, ms: number): Promise<void> {
  if (!p) return;
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    p.catch(() => {}),
    new Promise<void>((r) => {
      timer = setTimeout(r, ms);
    }),
  ]);
  clearTimeout(timer);
}

export interface ControllerConfig {
  redisUrl: string;
  /** ACL user, password, TLS trust of Redis beside the URL (lib/redis.ts). */
  redisAuth?: RedisAuth;
  /** Redis namespace with a hash tag; also the BullMQ prefix. */
  namespace: string;
  instanceId?: string;
  /** Leadership lease (ms). */
  leaseMs: number;
  workers: {
    concurrency: number;
    attempts: number;
    backoffMs: number;
    keepCompleted: number;
    keepFailed: number;
    /**
     * Reconcile job lock (ms): a replica that dies or freezes holding a job gives it back to the
     * queue after about 1.5 × this. Default max(leaseMs, 5 s), like the leadership lease.
     */
    lockDurationMs?: number;
  };
  bbs?: { url: string; tls?: TlsMaterial; relistIntervalMs?: number; streamIdleTimeoutMs?: number };
  capi?: {
    url: string;
    tls?: TlsMaterial;
    uaa: { url: string; clientId: string; clientSecret: string; tls?: TlsMaterial };
    internal?: { url: string; tls?: TlsMaterial };
    checkIntervalMs?: number;
    /** Full security-group listing interval (default in settings.ts: `ASG_FULL_LIST_DEFAULT_MS`). */
    fullListIntervalMs: number;
  };
  policy?: { url: string; tls?: TlsMaterial; intervalMs?: number; fullListIntervalMs?: number };
  api?: {
    host?: string;
    port?: number;
    tls: { ca: string; cert: string; key: string };
    maxWaitSeconds?: number;
  };
  /** Cell certificates signed by this controller (identity/); unset = agents bring their own. */
  identity?: IdentityConfig;
  /** Operator port; `token` (operator token) enables the dashboard (controller/dashboard). */
  operator?: { host?: string; port?: number; token?: string };
  cellConfig: CellConfig;
  leases: {
    overlayNetwork: string;
    subnetPrefixLength: number;
    ttlMs: number;
    recoveryWindowMs: number;
  };
  rulesetLogLength: number;
  /**
   * How long a new leader waits for a fresh listing of CAPI and the policy server when Redis holds
   * their last-known copy. Without such a copy it waits for the listing, however long.
   */
  initialSyncTimeoutMs: number;
  /**
   * Called on an error this replica cannot recover from (e.g. a leader that cannot build its
   * clients); the CLI stops (releasing leadership) and exits. Default: logged only.
   */
  onFatal?: (err: unknown) => void;
  /** Take part in leader election (run informers). */
  campaign: boolean;
  compute?: ComputeOptions;
  logger?: Logger;
  registry?: Registry;
  /** Operator extensions (journal, dashboard); default: those registered in extensions.ts. */
  extensions?: ControllerExtension[];
  /** Observe every reconcile (tests, benchmarks). */
  onReconcile?: (cellId: string, result: ReconcileResult | { outcome: 'not-ready' }) => void;
}

interface LeaderState {
  leadership: Leadership;
  world: World;
  bbs?: BbsInformer;
  asg?: AsgInformer;
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

export class Controller {
  readonly config: ControllerConfig;
  readonly keys: Keys;
  readonly registry: Registry;
  readonly log: Logger;
  readonly instanceId: string;
  private redis!: Redis;
  private sub!: Redis;
  private invSub!: Redis;
  private workerConn!: Redis;
  private queueConn!: Redis;
  private worldStore!: WorldStore;
  private store!: RuleSetStore;
  private queue!: ReconcileQueue;
  private workers!: ReconcileWorkers;
  private election!: LeaderElection;
  private notifier!: ChangeNotifier;
  private leases!: LeaseManager;
  private api: RunningServer | null = null;
  private operator: RunningServer | null = null;
  private leader: LeaderState | null = null;
  private leaderTransition: Promise<void> = Promise.resolve();
  private started = false;
  private stopping = false;
  private extensions: ControllerExtension[] = [];
  private rejections!: RejectionRecorder;
  private ingest!: IngestGate;
  private readonly closers: Array<() => void> = [];
  private publishBlocked: Gauge<'source'> | null = null;
  private informerMetrics!: InformerMetrics;

  constructor(config: ControllerConfig) {
    this.config = config;
    this.keys = new Keys(config.namespace);
    this.instanceId = config.instanceId ?? `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    this.log = config.logger ?? createLogger('controller');
    this.registry = config.registry ?? createRegistry({ labels: { component: 'controller' } });
  }

  get isLeader(): boolean {
    return this.election?.isLeader ?? false;
  }

  get apiUrl(): string | null {
    return this.api?.url ?? null;
  }

  get operatorUrl(): string | null {
    return this.operator?.url ?? null;
  }

  /** The leader's in-memory world (null on standbys). */
  get world(): World | null {
    return this.leader?.world ?? null;
  }

  get ruleSetStore(): RuleSetStore {
    return this.store;
  }

  get worldState(): WorldStore {
    return this.worldStore;
  }

  get reconcileQueue(): ReconcileQueue {
    return this.queue;
  }

  /** Resolves when this replica leads and its world is written to Redis. */
  async leading(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(this.leader?.resynced && !this.leader.stopped)) {
      if (Date.now() > deadline) throw new Error('not leading');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /**
   * Resolves once this replica leads, its BBS informer has applied every event received so far and
   * every world change is written and enqueued (tests, benchmarks: "the storm has been absorbed").
   */
  async settled(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const quiet = () => {
      const l = this.leader;
      return (
        !!l &&
        l.resynced &&
        !l.stopped &&
        (l.bbs?.isIdle ?? true) &&
        l.flushing === null &&
        !l.needResync &&
        !l.world.hasChanges()
      );
    };
    // twice in a row, a tick apart: an event batch may sit between its apply and its flush
    for (let streak = 0; streak < 2; ) {
      if (Date.now() > deadline) throw new Error(`controller not settled after ${timeoutMs} ms`);
      streak = quiet() ? streak + 1 : 0;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const c = this.config;
    const name = `cfnet-controller-${this.instanceId}`;
    const auth = c.redisAuth ? { auth: c.redisAuth } : {};
    this.redis = createRedis(c.redisUrl, { name, ...auth });
    this.sub = createRedis(c.redisUrl, { role: 'blocking', name: `${name}-sub`, ...auth });
    this.invSub = createRedis(c.redisUrl, { role: 'blocking', name: `${name}-inv`, ...auth });
    this.workerConn = createRedis(c.redisUrl, { role: 'blocking', name: `${name}-worker`, ...auth });
    this.queueConn = createRedis(c.redisUrl, { name: `${name}-queue`, ...auth });
    // Redis came back after a disconnect: it may be another server (a Sentinel failover to a replica
    // that missed the last writes) or the same one restarted. The leader then rewrites the whole
    // world and enqueues every cell (level-based), so nothing it wrote before can have been lost.
    let connectedBefore = false;
    this.redis.on('ready', () => {
      const l = this.leader;
      if (connectedBefore && l?.resynced && !l.stopped) {
        this.log.warn('Redis reconnected: rewriting the world and recomputing every cell');
        l.needResync = true;
        this.scheduleFlush(l);
      }
      connectedBefore = true;
    });
    this.worldStore = new WorldStore(this.redis, this.keys);
    this.store = new RuleSetStore(this.redis, this.keys, { logLength: c.rulesetLogLength });
    this.leases = new LeaseManager(this.redis, this.keys, c.leases);
    const w = c.workers;
    this.extensions = extensionsFor(c);
    this.rejections = new RejectionRecorder({
      logger: this.log.child({ part: 'ingest' }),
      registry: this.registry,
      onRejected: (items) => this.extensionHook((e) => e.onRejected?.(items, this)),
    });
    this.ingest = new IngestGate(this.rejections);
    this.queue = new ReconcileQueue(this.queueConn, {
      onEnqueued: (jobs) => this.extensionHook((e) => e.onEnqueued?.(jobs, this)),
      prefix: this.keys.ns,
      attempts: w.attempts,
      backoffMs: w.backoffMs,
      keepCompleted: { count: w.keepCompleted, age: 3600 },
      keepFailed: { count: w.keepFailed, age: 7 * 24 * 3600 },
    });
    const reconciler = new Reconciler(this.worldStore, this.store, {
      config: c.cellConfig,
      onConflict: (x) => this.rejections.reject(conflictRejection(x)),
      ...(c.compute ? { compute: c.compute } : {}),
    });
    this.workers = new ReconcileWorkers(this.workerConn, reconciler, {
      prefix: this.keys.ns,
      concurrency: w.concurrency,
      lockDurationMs: w.lockDurationMs ?? Math.max(5000, c.leaseMs),
      registry: this.registry,
      logger: this.log.child({ part: 'worker' }),
      onRewriteWanted: (cell: string) => {
        void this.redis.publish(this.keys.resyncChannel, cell).catch(() => {});
      },
      ...(c.onReconcile
        ? {
            onResult: (cell: string, r: ReconcileResult | { outcome: 'not-ready' }) =>
              c.onReconcile!(cell, r),
          }
        : {}),
    });
    this.notifier = new ChangeNotifier(this.sub, this.keys.ruleSetChannel);
    await this.notifier.start();
    this.registerMetrics();
    this.workers.start();

    if (c.api) {
      const identity = c.identity
        ? startIdentity(c.identity, {
            ...(c.bbs ? { bbs: c.bbs } : {}),
            logger: this.log.child({ part: 'identity' }),
            registry: this.registry,
          })
        : null;
      if (identity) this.closers.push(identity.close);
      this.api = await startAgentApi(
        {
          ...(identity ? { identity: identity.authority } : {}),
          store: this.store,
          world: this.worldStore,
          leases: this.leases,
          notifier: this.notifier,
          enqueue: async (cell, trigger) => {
            await this.queue.enqueue([[cell, [trigger]]]);
          },
          logger: this.log.child({ part: 'api' }),
          registry: this.registry,
          onStatus: (cell, status) => this.extensionHook((e) => e.onStatus?.(cell, status, this)),
          ingest: this.ingest,
        },
        { host: c.api.host, port: c.api.port, tls: c.api.tls, maxWaitSeconds: c.api.maxWaitSeconds },
      );
      this.log.info({ url: this.api.url }, 'agent API listening');
    }
    if (c.operator) {
      this.operator = await startOperatorServer(
        {
          registry: this.registry,
          ready: () => this.readiness(),
          routes: async (app) => {
            for (const e of this.extensions) await e.operatorRoutes?.(app, this);
          },
        },
        c.operator,
      );
      this.log.info({ url: this.operator.url }, 'operator endpoints listening');
    }

    this.election = new LeaderElection(this.redis, {
      leaseKey: this.keys.leader,
      fenceKey: this.keys.fence,
      leaseMs: c.leaseMs,
      id: this.instanceId,
      logger: this.log.child({ part: 'leader' }),
    });
    const leaderChanges = counter(
      this.registry,
      METRICS.leaderChanges,
      'Leadership gained or lost by this replica',
      ['event'],
    );
    this.election.on('elected', (l) => {
      leaderChanges.inc({ event: 'elected' });
      this.leaderTransition = this.leaderTransition.then(() =>
        this.startLeading(l).catch((err) => this.fatal(err, 'could not start leading')),
      );
    });
    this.election.on('lost', (l, reason) => {
      leaderChanges.inc({ event: 'lost' });
      this.log.warn({ fence: l.fence, reason }, 'stopped leading');
      this.leaderTransition = this.leaderTransition.then(() => this.stopLeading());
    });
    this.election.on('error', (err) => this.log.warn({ err: err.message }, 'leader election error'));
    if (c.campaign) this.election.start();
  }

  /**
   * An error this replica cannot recover from: leadership is given up (the lease released, so a
   * standby takes over at once) and `onFatal` decides the rest (the CLI exits).
   */
  private async fatal(err: unknown, what: string): Promise<void> {
    this.log.error({ err }, what);
    await bounded(this.election?.stop(), 1000);
    await this.stopLeading().catch(() => {});
    if (this.config.onFatal) this.config.onFatal(err);
  }

  /**
   * Graceful stop: release leadership, drain workers, close servers and connections. Bounded:
   * every step has a time limit, so a stop with Redis (or anything else) unreachable takes about
   * 3 s; what could not finish is abandoned (a standby takes over when the lease runs out, jobs
   * held by this replica return to the queue after their lock).
   */
  async stop(): Promise<void> {
    if (!this.started || this.stopping) return;
    this.stopping = true;
    await bounded(this.election?.stop(), 1000);
    await bounded(
      this.leaderTransition.then(() => this.stopLeading()),
      1000,
    );
    this.api?.app.server.closeAllConnections?.();
    for (const close of this.closers) close();
    await bounded(
      Promise.all([
        this.api?.close(),
        this.operator?.close(),
        this.workers?.close(),
        this.queue?.close(),
        ...this.extensions.map((e) => e.close?.()),
        this.notifier?.stop(),
      ]),
      1000,
    );
    await bounded(
      Promise.all(
        [this.sub, this.invSub, this.workerConn, this.queueConn, this.redis].map((r) => closeRedis(r)),
      ),
      300,
    );
    for (const r of [this.sub, this.invSub, this.workerConn, this.queueConn, this.redis]) r?.disconnect();
  }

  /**
   * Abrupt stop (tests: "kill the leader"): connections are cut without releasing the lease or
   * finishing anything, as if the process died.
   */
  async kill(): Promise<void> {
    this.stopping = true;
    const l = this.leader;
    if (l) l.stopped = true;
    (this.election as unknown as { running: boolean }).running = false;
    for (const r of [this.sub, this.invSub, this.workerConn, this.queueConn, this.redis]) r?.disconnect();
    await l?.bbs?.stop().catch(() => {});
    await l?.asg?.stop().catch(() => {});
    await l?.policy?.stop().catch(() => {});
    for (const cl of l?.clients ?? []) cl.close();
    await this.api?.app.server.closeAllConnections?.();
    await this.api?.close().catch(() => {});
    await this.operator?.close().catch(() => {});
    await this.workers?.close().catch(() => {});
  }

  // ------------------------------------------------------------------------------- leadership

  private async startLeading(leadership: Leadership): Promise<void> {
    if (this.stopping || !this.election.isLeader) return;
    const c = this.config;
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
    this.leader = state;
    const log = this.log.child({ part: 'leader', fence: leadership.fence });
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
      registry: this.registry,
      ingest: this.ingest,
    };
    if (c.bbs) {
      const client = new BbsClient({ url: c.bbs.url, ...(c.bbs.tls ? { tls: c.bbs.tls } : {}), logger: log });
      state.clients.push(client);
      state.bbs = new BbsInformer(client, ctx, {
        ...(c.bbs.relistIntervalMs !== undefined ? { relistIntervalMs: c.bbs.relistIntervalMs } : {}),
        ...(c.bbs.streamIdleTimeoutMs !== undefined
          ? { streamIdleTimeoutMs: c.bbs.streamIdleTimeoutMs }
          : {}),
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
        ...(c.capi.checkIntervalMs !== undefined ? { checkIntervalMs: c.capi.checkIntervalMs } : {}),
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
        ...(c.policy.intervalMs !== undefined ? { intervalMs: c.policy.intervalMs } : {}),
        ...(c.policy.fullListIntervalMs !== undefined
          ? { fullListIntervalMs: c.policy.fullListIntervalMs }
          : {}),
      });
    }
    // Agent inventories (written by whichever replica serves the agent) feed the span indexes.
    this.invSub.removeAllListeners('message');
    this.invSub.on('message', (ch: string, cell: string) => {
      if (state.stopped) return;
      if (ch === this.keys.resyncChannel) {
        // a worker found an agent ahead of the store: Redis lost writes; rewrite the world in full
        // (coalesced: one rewrite serves every cell that asked meanwhile)
        if (state.resynced && !state.needResync) {
          log.warn({ cell }, 'an agent holds a rule set Redis lost: rewriting the world in full');
          state.needResync = true;
          this.scheduleFlush(state);
        }
        return;
      }
      void this.worldStore
        .inventory(cell)
        .then((entries) => world.setInventory(cell, entries))
        .catch((err) => log.warn({ err: errorMessage(err), cell }, 'could not read an inventory'));
    });
    await this.invSub.subscribe(this.keys.inventoryChannel, this.keys.resyncChannel).catch(() => {});

    state.bbs?.start();
    state.asg?.start();
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
    const timeout = this.config.initialSyncTimeoutMs;
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
      if (s.informer) this.publishBlocked?.set({ source: s.source }, missing.includes(s.source) ? 1 : 0);
    await this.redis
      .hset(this.keys.publishState, {
        leader: this.instanceId,
        state: missing.length > 0 ? 'waiting' : 'publishing',
        missing: missing.join(','),
        since: String(Date.now()),
      })
      .catch((err) => this.log.warn({ err }, 'could not record the publish state'));
  }

  /** Full write of the world (first time, and after any failed incremental write). */
  private async resync(state: LeaderState, log: Logger): Promise<void> {
    for (let attempt = 0; !state.stopped; attempt++) {
      try {
        state.world.takeChanges();
        const cells = await this.worldStore.resync(state.world, state.leadership.value);
        for (const c of state.world.allCells()) cells.add(c);
        for (const l of await this.leases.list().catch(() => [])) cells.add(l.cellId);
        state.resynced = true;
        state.needResync = false;
        const trigger: Trigger = { kind: 'resync', id: String(state.leadership.fence), at: Date.now() };
        await this.queue.enqueueCells(cells, trigger);
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
        log.warn({ err: errorMessage(err), retryInMs: delay }, 'world resync failed');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private scheduleFlush(state: LeaderState): void {
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
      await this.resync(state, this.log);
      return;
    }
    const changes = state.world.takeChanges();
    if (
      changes.cells.size === 0 &&
      changes.records.size === 0 &&
      changes.snapshots.size === 0 &&
      !changes.asg &&
      changes.asgStateAt === undefined &&
      !changes.policies
    ) {
      return;
    }
    try {
      await this.worldStore.write(changes, state.leadership.value, (cell) => {
        for (const _ of state.world.cellRecords(cell)) return true;
        return false;
      });
      await this.queue.enqueue(changes.cells);
    } catch (err) {
      if (err instanceof FencedOffError) {
        this.log.warn('world write fenced off: no longer the leader');
        return;
      }
      this.log.warn({ err: errorMessage(err) }, 'world write failed; a full resync follows');
      state.needResync = true;
      setTimeout(() => this.scheduleFlush(state), 500).unref();
    }
  }

  private async stopLeading(): Promise<void> {
    const state = this.leader;
    if (!state) return;
    state.stopped = true;
    this.leader = null;
    await this.invSub.unsubscribe(this.keys.inventoryChannel, this.keys.resyncChannel).catch(() => {});
    await Promise.all(
      [state.bbs?.stop(), state.asg?.stop(), state.policy?.stop()].map((p) => p?.catch(() => {})),
    );
    for (const c of state.clients) c.close();
    await state.flushing?.catch(() => {});
    for (const source of this.configuredSources()) {
      this.informerMetrics?.setSynced(source, false);
      this.publishBlocked?.set({ source }, 0);
    }
  }

  /** Last known security groups, policies and inventories (a failing source keeps them). */
  private async loadLastKnown(world: World): Promise<{ capi: boolean; policy: boolean }> {
    const [[asg, stateAt], pol] = await Promise.all([
      this.redis.hmget(this.keys.asg, 'data', 'stateAt'),
      this.redis.hget(this.keys.policies, 'data'),
    ]);
    const t: Trigger = { kind: 'resync', id: 'last-known', at: Date.now() };
    // With static ASGs the CAPI state is never used: a copy left by an earlier dynamic run stays
    // out of the world and is removed from Redis, so operator tools do not name groups from it and
    // a worker still running the dynamic mode during a rolling switch finds no CAPI state either
    // (it then uses the BBS snapshots too).
    const staticAsgs = this.config.compute?.egressSource === 'static';
    if (asg && staticAsgs) await this.redis.del(this.keys.asg);
    if (asg && !staticAsgs) world.setAsgs(JSON.parse(asg) as AsgData, Number(stateAt ?? 0), t);
    if (pol) world.setPolicies(JSON.parse(pol) as C2CPolicy[], t);
    for (const cell of await this.worldStore.inventoryCells()) {
      world.setInventory(cell, await this.worldStore.inventory(cell));
    }
    return { capi: !!asg && !staticAsgs, policy: !!pol };
  }

  // ------------------------------------------------------------------------------- operations

  /** Run an extension hook on every extension; failures are logged, never raised. */
  private extensionHook(fn: (e: ControllerExtension) => unknown): void {
    for (const e of this.extensions) {
      try {
        void Promise.resolve(fn(e)).catch((err) =>
          this.log.warn({ err: errorMessage(err), extension: e.name }, 'extension hook failed'),
        );
      } catch (err) {
        this.log.warn({ err: errorMessage(err), extension: e.name }, 'extension hook failed');
      }
    }
  }

  /**
   * Stop this replica's workers taking jobs (active ones finish first), e.g. before maintenance;
   * other replicas keep working and jobs wait in Redis. `resumeWorkers` undoes it.
   */
  async pauseWorkers(): Promise<void> {
    await this.workers.pause();
  }

  resumeWorkers(): void {
    this.workers.resume();
  }

  /** Enqueue cells (operator replay). */
  async replay(cells: Iterable<string>): Promise<number> {
    return this.queue.enqueueCells(cells, { kind: 'replay', id: 'operator', at: Date.now() });
  }

  async readiness(): Promise<Record<string, { ok: boolean; detail?: string }>> {
    const checks: Record<string, { ok: boolean; detail?: string }> = {};
    try {
      await this.redis.ping();
      checks.redis = { ok: true };
    } catch (err) {
      checks.redis = { ok: false, detail: errorMessage(err) };
      return checks;
    }
    const l = this.leader;
    if (l) {
      checks.informers = l.resynced
        ? { ok: true, detail: 'leader; world written' }
        : l.missing.length > 0
          ? {
              ok: false,
              detail: `leader; not publishing: waiting for ${l.missing.join(', ')} (not listed since the state was lost)`,
            }
          : { ok: false, detail: 'leader; waiting for the first listing' };
    } else {
      const holder = await this.election.currentLeader().catch(() => null);
      checks.leader = holder
        ? { ok: true, detail: `leader ${holder}` }
        : { ok: false, detail: 'no leader elected' };
      const p = await this.redis.hgetall(this.keys.publishState).catch(() => ({}) as Record<string, string>);
      if (holder && p.state === 'waiting') {
        checks.informers = {
          ok: false,
          detail: `leader not publishing: waiting for ${p.missing?.split(',').join(', ')} (not listed since the state was lost)`,
        };
      }
    }
    return checks;
  }

  /** The sources this replica's leader would watch. */
  private configuredSources(): InformerSource[] {
    const c = this.config;
    return [
      ...(c.bbs ? ['bbs' as const] : []),
      ...(c.capi ? ['capi' as const] : []),
      ...(c.policy ? ['policy' as const] : []),
    ];
  }

  private registerMetrics(): void {
    const r = this.registry;
    const self = this;
    // Every configured source is a series from start-up: 0 until this replica leads and lists it.
    this.informerMetrics = new InformerMetrics(r);
    this.publishBlocked = gauge(
      r,
      METRICS.publishBlocked,
      '1 while the leader publishes no rule set because this source was not listed since the state was lost',
      ['source'],
    );
    for (const source of this.configuredSources()) {
      this.informerMetrics.setSynced(source, false);
      this.publishBlocked.set({ source }, 0);
    }
    gauge(r, METRICS.isLeader, '1 when this replica is the leader', [], function () {
      this.set(self.isLeader ? 1 : 0);
    });
    gauge(r, METRICS.queueDepth, 'Reconcile jobs by state', ['state'], async function () {
      try {
        const counts = await self.queue.counts();
        for (const [state, n] of Object.entries(counts)) this.set({ state }, n);
      } catch {
        // Redis unavailable: leave the last values
      }
    });
    gauge(
      r,
      METRICS.queueOldestAge,
      'Age of the oldest reconcile job not yet started',
      [],
      async function () {
        try {
          this.set((await self.queue.oldestPendingAgeMs()) / 1000);
        } catch {
          // ignore
        }
      },
    );
    // One read of desired vs applied versions serves both gauges of a scrape.
    let convergence: { at: number; rows: ReturnType<RuleSetStore['convergence']> } | null = null;
    const convergenceNow = () => {
      if (!convergence || Date.now() - convergence.at > 1000) {
        convergence = { at: Date.now(), rows: self.store.convergence() };
        convergence.rows.catch(() => {});
      }
      return convergence.rows;
    };
    gauge(
      r,
      METRICS.convergenceLag,
      'Per cell: time the desired rule set has been waiting to be applied',
      ['cell'],
      async function () {
        try {
          const rows = await convergenceNow();
          this.reset();
          for (const c of rows) this.set({ cell: c.cellId }, c.lagMs / 1000);
        } catch {
          // Redis unavailable: leave the last values
        }
      },
    );
    gauge(
      r,
      METRICS.cellsConverged,
      'Cells whose agent reported the desired rule-set version (state=converged) or not (state=pending)',
      ['state'],
      async function () {
        try {
          const rows = await convergenceNow();
          const ok = rows.filter((c) => c.applied === c.desired).length;
          this.set({ state: 'converged' }, ok);
          this.set({ state: 'pending' }, rows.length - ok);
        } catch {
          // ignore
        }
      },
    );
    gauge(r, METRICS.worldObjects, 'Objects in the leader’s world', ['kind'], function () {
      const w = self.leader?.world;
      if (!w) return;
      for (const [kind, n] of Object.entries(w.counts)) this.set({ kind }, n);
    });
  }
}
