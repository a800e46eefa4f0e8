/**
 * A reconcile worker child process (`workerProcesses` ≥ 1): the controller forks it and sends one
 * `init` message; it then runs BullMQ workers on the same queue, exactly as the controller's own
 * would, and reports each job's outcome, per-cell conflicts and rewrite requests to its parent,
 * which records them in its metrics and acts on them. Reconciles are level-based and written with
 * compare-and-set, so a job taken by any process is as good as by any other.
 *
 * Protocol (IPC, JSON): parent → child `init`, `pause`, `resume`, `close`; child → parent `ready`,
 * `result`, `failed`, `conflict`, `rewrite`, `paused`. After `close` the child finishes its active
 * jobs and exits; it exits at once when its parent goes.
 */
import type { Logger } from '../../lib/log.js';
import { createLogger } from '../../lib/log.js';
import { AUTO_PIPELINING, closeRedis, createRedis, type RedisAuth } from '../../lib/redis.js';
import type { CellConfig } from '../../model/types.js';
import type { CellConflict, ComputeOptions } from '../../rules/compute.js';
import type { Trigger } from '../../rules/world.js';
import { Keys } from '../../state/keys.js';
import { RuleSetStore } from '../../state/ruleset-store.js';
import { WorldStore } from '../../state/world-store.js';
import { type ReconcileResult, Reconciler } from './reconciler.js';
import { ReconcileWorkers } from './worker.js';

/** What a worker process needs to know (all of it plain data: it travels as JSON). */
export interface WorkerProcessInit {
  /** Its number, 1…workerProcesses (Redis client names, logs). */
  index: number;
  instanceId: string;
  redisUrl: string;
  redisAuth?: RedisAuth;
  namespace: string;
  cellConfig: CellConfig;
  egressSource?: ComputeOptions['egressSource'];
  concurrency: number;
  lockDurationMs: number;
  rulesetLogLength: number;
  logLevel: string;
}

export type ParentMessage =
  | { type: 'init'; init: WorkerProcessInit }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'close' };

export type ChildMessage =
  | { type: 'ready' }
  | {
      type: 'result';
      cellId: string;
      result: ReconcileResult | { outcome: 'not-ready' };
      seconds: number;
      triggers: Trigger[];
    }
  | { type: 'failed' }
  | { type: 'conflict'; conflict: CellConflict }
  | { type: 'rewrite'; cellId: string }
  | { type: 'paused' };

function send(m: ChildMessage): void {
  // a parent that is gone has no one to hear it (and the child exits on 'disconnect')
  if (process.connected) process.send?.(m);
}

async function run(init: WorkerProcessInit): Promise<void> {
  const log: Logger = createLogger('controller', { level: init.logLevel }).child({
    part: 'worker-process',
    worker: init.index,
  });
  const name = `cfnet-controller-${init.instanceId}-worker-${init.index}`;
  const auth = init.redisAuth ? { auth: init.redisAuth } : {};
  const redis = createRedis(init.redisUrl, { name, ...auth, extra: AUTO_PIPELINING });
  const conn = createRedis(init.redisUrl, { role: 'blocking', name: `${name}-jobs`, ...auth });
  const keys = new Keys(init.namespace);
  const reconciler = new Reconciler(
    new WorldStore(redis, keys),
    new RuleSetStore(redis, keys, { logLength: init.rulesetLogLength }),
    {
      config: init.cellConfig,
      onConflict: (conflict) => send({ type: 'conflict', conflict }),
      ...(init.egressSource ? { compute: { egressSource: init.egressSource } } : {}),
    },
  );
  const workers = new ReconcileWorkers(conn, reconciler, {
    prefix: keys.ns,
    concurrency: init.concurrency,
    lockDurationMs: init.lockDurationMs,
    logger: log,
    observer: {
      observed: (cellId, result, seconds, triggers) =>
        send({ type: 'result', cellId, result, seconds, triggers: [...triggers] }),
      failed: () => send({ type: 'failed' }),
    },
    onRewriteWanted: (cellId) => send({ type: 'rewrite', cellId }),
  });
  let closing = false;
  const close = async () => {
    if (closing) return;
    closing = true;
    await workers.close().catch((err) => log.warn({ err }, 'closing the workers'));
    await Promise.all([closeRedis(redis), closeRedis(conn)]);
    process.exit(0);
  };
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'pause') void workers.pause().then(() => send({ type: 'paused' }));
    else if (m.type === 'resume') workers.resume();
    else if (m.type === 'close') void close();
  });
  workers.start();
  log.info({ concurrency: init.concurrency }, 'reconcile worker process started');
  send({ type: 'ready' });
}

if (process.send) {
  // without its parent (the IPC channel closed) a worker process has no one to report to
  process.on('disconnect', () => process.exit(0));
  process.once('message', (m: ParentMessage) => {
    if (m.type !== 'init') return;
    run(m.init).catch((err) => {
      process.stderr.write(`cfnet worker process ${m.init.index}: ${String(err)}\n`);
      process.exit(1);
    });
  });
}
