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
 *
 * This file composes a replica (connections, stores, queue, workers, servers, election) and runs
 * its start and stop; the leader life cycle is leadership.ts, the metrics metrics.ts, the waits
 * tests use test-hooks.ts, the configuration config.ts.
 *
 * Longer than ~400 lines: the composition root builds every part of a replica (Redis connections,
 * stores, queue, workers, API, election) and runs its start, stop and kill; the parts themselves
 * live in their own modules.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import { PolicyServerClient } from '../cf/policy-client.js';
import { LeaderElection } from '../lib/leader.js';
import { createLogger, type Logger } from '../lib/log.js';
import { counter, createRegistry, METRICS, type Registry } from '../lib/metrics.js';
import { AUTO_PIPELINING, closeRedis, createRedis } from '../lib/redis.js';
import type { CellConflict } from '../rules/compute.js';
import type { World } from '../rules/world.js';
import { Keys } from '../state/keys.js';
import { LeaseManager } from '../state/lease-store.js';
import { RuleSetStore } from '../state/ruleset-store.js';
import { SingleIpLeases } from '../state/single-ip-lease.js';
import { WorldStore } from '../state/world-store.js';
import type { ControllerConfig } from './config.js';
import { callExtensions, extensionsFor } from './extension-registry.js';
import type { ControllerExtension, ExtensionHost } from './extensions.js';
import { startIdentity } from './identity/setup.js';
import { configuredSources, LeaderLifecycle } from './leadership.js';
import { registerControllerMetrics } from './metrics.js';
import { type ReadinessChecks, readiness } from './readiness.js';
import { ReconcileQueue } from './reconcile/queue.js';
import { type ReconcileResult, Reconciler } from './reconcile/reconciler.js';
import { ReconcileMetrics, ReconcileWorkers } from './reconcile/worker.js';
import { ReconcileWorkerPool } from './reconcile/worker-pool.js';
import { ChangeNotifier } from './serve/notifier.js';
import { RouterTag } from './serve/router-tag.js';
import { type RunningServer, startAgentApi, startOperatorServer } from './serve/server.js';
import { IngestGate } from './sources/gate.js';
import { conflictRejection, RejectionRecorder } from './sources/rejections.js';
import { waitLeading, waitSettled } from './test-hooks.js';

export type { ControllerConfig } from './config.js';

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
  /** The reconcile workers: in this process, or its worker processes (`workerProcesses`). */
  private workers!: ReconcileWorkers | ReconcileWorkerPool;
  private election!: LeaderElection;
  private notifier!: ChangeNotifier;
  private leases!: LeaseManager;
  private api: RunningServer | null = null;
  private operator: RunningServer | null = null;
  private lifecycle: LeaderLifecycle | null = null;
  private leaderTransition: Promise<void> = Promise.resolve();
  private started = false;
  private stopping = false;
  private extensions: ControllerExtension[] = [];
  private rejections!: RejectionRecorder;
  private ingest!: IngestGate;
  private readonly closers: Array<() => void> = [];
  private host!: ExtensionHost;

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
    return this.lifecycle?.state?.world ?? null;
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
    await waitLeading(() => this.lifecycle?.state ?? null, timeoutMs);
  }

  /**
   * Resolves once this replica leads, its BBS informer has applied every event received so far and
   * every world change is written and enqueued (tests, benchmarks: "the storm has been absorbed").
   */
  async settled(timeoutMs = 30_000): Promise<void> {
    await waitSettled(() => this.lifecycle?.state ?? null, timeoutMs);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const c = this.config;
    const name = `cfnet-controller-${this.instanceId}`;
    const auth = c.redisAuth ? { auth: c.redisAuth } : {};
    // Commands issued in one event-loop turn share one socket write: after a foundation-wide
    // change thousands of rule-set writes and long-poll reads would otherwise each cost a syscall
    // (measured: ~0.2 ms each on the 2-core VM, the controller's largest single cost in the fan-out).
    this.redis = createRedis(c.redisUrl, { name, ...auth, extra: AUTO_PIPELINING });
    this.sub = createRedis(c.redisUrl, { role: 'blocking', name: `${name}-sub`, ...auth });
    this.invSub = createRedis(c.redisUrl, { role: 'blocking', name: `${name}-inv`, ...auth });
    this.workerConn = createRedis(c.redisUrl, { role: 'blocking', name: `${name}-worker`, ...auth });
    this.queueConn = createRedis(c.redisUrl, { name: `${name}-queue`, ...auth });
    // Redis came back after a disconnect: it may be another server (a Sentinel failover to a replica
    // that missed the last writes) or the same one restarted. The leader then rewrites the whole
    // world and enqueues every cell (level-based), so nothing it wrote before can have been lost.
    let connectedBefore = false;
    this.redis.on('ready', () => {
      if (connectedBefore) this.lifecycle?.redisReconnected();
      connectedBefore = true;
    });
    this.worldStore = new WorldStore(this.redis, this.keys);
    this.store = new RuleSetStore(this.redis, this.keys, { logLength: c.rulesetLogLength });
    this.leases = new LeaseManager(this.redis, this.keys, c.leases);
    const w = c.workers;
    this.extensions = extensionsFor(c);
    this.host = {
      registry: this.registry,
      logger: this.log,
      world: () => this.world,
      jobQueue: () => this.queue.queue,
    };
    this.rejections = new RejectionRecorder({
      logger: this.log.child({ part: 'ingest' }),
      registry: this.registry,
      onRejected: (items) => this.extensionHook((e) => e.onRejected?.(items, this.host)),
    });
    this.ingest = new IngestGate(this.rejections);
    this.queue = new ReconcileQueue(this.queueConn, {
      onEnqueued: (jobs, written) => this.extensionHook((e) => e.onEnqueued?.(jobs, this.host, written)),
      prefix: this.keys.ns,
      attempts: w.attempts,
      backoffMs: w.backoffMs,
      keepCompleted: { count: w.keepCompleted, age: 3600 },
      keepFailed: { count: w.keepFailed, age: 7 * 24 * 3600 },
    });
    const onConflict = (x: CellConflict) => this.rejections.reject(conflictRejection(x));
    const onRewriteWanted = (cell: string) => {
      void this.redis.publish(this.keys.resyncChannel, cell).catch(() => {});
    };
    const onResult = c.onReconcile
      ? (cell: string, r: ReconcileResult | { outcome: 'not-ready' }) => c.onReconcile!(cell, r)
      : undefined;
    this.workers =
      w.processes > 0
        ? new ReconcileWorkerPool({
            processes: w.processes,
            init: {
              instanceId: this.instanceId,
              redisUrl: c.redisUrl,
              ...(c.redisAuth ? { redisAuth: c.redisAuth } : {}),
              namespace: this.keys.ns,
              cellConfig: c.cellConfig,
              ...(c.compute?.egressSource ? { egressSource: c.compute.egressSource } : {}),
              concurrency: w.concurrency,
              lockDurationMs: w.lockDurationMs,
              rulesetLogLength: c.rulesetLogLength,
              logLevel: this.log.level,
            },
            logger: this.log.child({ part: 'worker' }),
            observer: new ReconcileMetrics(this.registry),
            onConflict,
            onRewriteWanted,
            ...(onResult ? { onResult } : {}),
          })
        : new ReconcileWorkers(
            this.workerConn,
            new Reconciler(this.worldStore, this.store, {
              config: c.cellConfig,
              onConflict,
              ...(c.compute ? { compute: c.compute } : {}),
            }),
            {
              prefix: this.keys.ns,
              concurrency: w.concurrency,
              lockDurationMs: w.lockDurationMs,
              registry: this.registry,
              logger: this.log.child({ part: 'worker' }),
              onRewriteWanted,
              ...(onResult ? { onResult } : {}),
            },
          );
    this.notifier = new ChangeNotifier(this.sub, this.keys.ruleSetChannel);
    await this.notifier.start();
    const metrics = registerControllerMetrics(this.registry, {
      sources: configuredSources(c),
      isLeader: () => this.isLeader,
      queue: () => this.queue,
      store: () => this.store,
      world: () => this.world,
    });
    this.lifecycle = new LeaderLifecycle({
      config: c,
      keys: this.keys,
      instanceId: this.instanceId,
      log: this.log,
      registry: this.registry,
      redis: this.redis,
      invSub: this.invSub,
      worldStore: this.worldStore,
      leases: this.leases,
      queue: this.queue,
      ingest: this.ingest,
      metrics,
      isLeader: () => this.election.isLeader,
      stopping: () => this.stopping,
    });
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
          routers: this.routers(),
          notifier: this.notifier,
          enqueue: async (cell, trigger) => {
            await this.queue.enqueue([[cell, [trigger]]]);
          },
          logger: this.log.child({ part: 'api' }),
          registry: this.registry,
          onStatus: (cell, status) => this.extensionHook((e) => e.onStatus?.(cell, status, this.host)),
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
            for (const e of this.extensions) await e.operatorRoutes?.(app, this.host);
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
        this.lifecycle!.startLeading(l).catch((err) => this.fatal(err, 'could not start leading')),
      );
    });
    this.election.on('lost', (l, reason) => {
      leaderChanges.inc({ event: 'lost' });
      this.log.warn({ fence: l.fence, reason }, 'stopped leading');
      this.leaderTransition = this.leaderTransition.then(() => this.lifecycle!.stopLeading());
    });
    this.election.on('error', (err) => this.log.warn({ err: err.message }, 'leader election error'));
    if (c.campaign) this.election.start();
  }

  /**
   * An error this replica cannot recover from: leadership is given up (the lease released, so a
   * standby takes over at once) and `onFatal` decides the rest (the CLI exits).
   */
  /**
   * Routers' single-address leases and their tag, asked of the policy server (any replica serves
   * leases, so each has its own client; it is used once, at the first router's lease).
   */
  private routers(): { leases: SingleIpLeases; tag: RouterTag } {
    const p = this.config.policy;
    const log = this.log.child({ part: 'router-tag' });
    const client = p
      ? new PolicyServerClient({ url: p.url, ...(p.tls ? { tls: p.tls } : {}), logger: log })
      : null;
    if (client) this.closers.push(() => client.close());
    return {
      leases: new SingleIpLeases(this.redis, this.keys, {
        reserved: this.leases.reserved,
        ttlMs: this.leases.ttlMs,
      }),
      tag: new RouterTag(client, log),
    };
  }

  private async fatal(err: unknown, what: string): Promise<void> {
    this.log.error({ err }, what);
    await bounded(this.election?.stop(), 1000);
    await this.lifecycle?.stopLeading().catch(() => {});
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
      this.leaderTransition.then(() => this.lifecycle?.stopLeading()),
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
    const l = this.lifecycle?.state;
    if (l) l.stopped = true;
    this.election?.abandon();
    for (const r of [this.sub, this.invSub, this.workerConn, this.queueConn, this.redis]) r?.disconnect();
    await l?.bbs?.stop().catch(() => {});
    await l?.asg?.stop().catch(() => {});
    await l?.policy?.stop().catch(() => {});
    for (const cl of l?.clients ?? []) cl.close();
    await this.api?.app.server.closeAllConnections?.();
    await this.api?.close().catch(() => {});
    await this.operator?.close().catch(() => {});
    if (this.workers instanceof ReconcileWorkerPool) this.workers.kill();
    else await this.workers?.close().catch(() => {});
  }

  // ------------------------------------------------------------------------------- operations

  /** Run an extension hook on every extension; failures are logged, never raised. */
  private extensionHook(fn: (e: ControllerExtension) => unknown): void {
    callExtensions(this.extensions, this.log, fn);
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

  async readiness(): Promise<ReadinessChecks> {
    return readiness({
      redis: this.redis,
      keys: this.keys,
      leader: this.lifecycle?.state ?? null,
      election: this.election,
    });
  }
}
