/**
 * Reconcile worker processes (`workerProcesses` ≥ 1): the controller's reconciles run in that many
 * child processes (worker-process.ts) instead of its own, so that a multi-core controller VM
 * computes and writes cells on every core while the main process serves the agent API and runs the
 * informers. Each child takes jobs from the same BullMQ queue; what it reports comes back here:
 * outcomes into this process's metrics, conflicts to the rejection recorder, rewrite requests to
 * the leader.
 *
 * Supervision: a child that exits unexpectedly is started again after a backoff (1 s doubling to
 * 30 s, reset after a minute of life); its jobs go back to the queue through BullMQ's stalled-job
 * check, as a dead replica's would. `close()` asks every child to finish its active jobs and exit,
 * and kills those still running after `stopTimeoutMs`.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../lib/log.js';
import type { CellConflict } from '../../rules/compute.js';
import type { ReconcileResult } from './reconciler.js';
import type { ReconcileObserver } from './worker.js';
import type { ChildMessage, ParentMessage, WorkerProcessInit } from './worker-process.js';

/**
 * Time a closing child gets to finish its active jobs before it is killed (ms): within the
 * controller's bounded stop (its workers get 1 s); a job cut short goes back to the queue.
 */
export const DEFAULT_WORKER_PROCESS_STOP_MS = 1000;
const RESTART_MIN_MS = 1000;
const RESTART_MAX_MS = 30_000;
/** A child that lived this long restarts after the shortest backoff again. */
const RESTART_RESET_MS = 60_000;

export interface WorkerPoolOptions {
  processes: number;
  /** The init of each child; `index` is filled per child. */
  init: Omit<WorkerProcessInit, 'index'>;
  logger: Logger;
  observer?: ReconcileObserver;
  onConflict?: (c: CellConflict) => void;
  onRewriteWanted?: (cellId: string) => void;
  onResult?: (cellId: string, result: ReconcileResult | { outcome: 'not-ready' }) => void;
  /** @defaultValue {@link DEFAULT_WORKER_PROCESS_STOP_MS} */
  stopTimeoutMs?: number;
}

interface Slot {
  index: number;
  child: ChildProcess | null;
  /** Its current child said it takes jobs. */
  ready: boolean;
  startedAt: number;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
}

/** The child's entry: the compiled .js beside this file, or the .ts source under tsx (tests). */
function entry(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./worker-process${ext}`, import.meta.url));
}

export class ReconcileWorkerPool {
  private readonly slots: Slot[];
  private closing = false;
  private paused = false;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.slots = Array.from({ length: opts.processes }, (_, i) => ({
      index: i + 1,
      child: null,
      ready: false,
      startedAt: 0,
      backoffMs: RESTART_MIN_MS,
      timer: null,
    }));
  }

  /** Every child runs and takes jobs (a child starts in ~0.1–1 s). */
  get ready(): boolean {
    return this.slots.every((s) => s.child !== null && s.ready);
  }

  /** Process ids of the running children (operators, tests). */
  get pids(): number[] {
    return this.slots.flatMap((s) => (s.child?.pid !== undefined ? [s.child.pid] : []));
  }

  start(): void {
    for (const s of this.slots) this.spawn(s);
  }

  private spawn(slot: Slot): void {
    slot.timer = null;
    if (this.closing) return;
    const child = fork(entry(), [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      serialization: 'json',
    });
    slot.child = child;
    slot.ready = false;
    slot.startedAt = Date.now();
    child.on('message', (m: ChildMessage) => {
      if (m.type === 'ready' && slot.child === child) slot.ready = true;
      this.onMessage(m);
    });
    child.on('error', (err) => this.opts.logger.warn({ err, worker: slot.index }, 'worker process error'));
    child.on('exit', (code, signal) => {
      if (slot.child === child) slot.child = null;
      if (this.closing) return;
      if (Date.now() - slot.startedAt >= RESTART_RESET_MS) slot.backoffMs = RESTART_MIN_MS;
      this.opts.logger.error(
        { worker: slot.index, code, signal, restartInMs: slot.backoffMs },
        'reconcile worker process exited; starting it again',
      );
      slot.timer = setTimeout(() => this.spawn(slot), slot.backoffMs);
      slot.backoffMs = Math.min(RESTART_MAX_MS, slot.backoffMs * 2);
    });
    this.post(child, { type: 'init', init: { ...this.opts.init, index: slot.index } });
    if (this.paused) this.post(child, { type: 'pause' });
  }

  private post(child: ChildProcess, m: ParentMessage): void {
    if (child.connected)
      child.send(m, (err) => err && this.opts.logger.debug({ err }, 'worker process gone'));
  }

  private onMessage(m: ChildMessage): void {
    switch (m.type) {
      case 'result':
        this.opts.observer?.observed(m.cellId, m.result, m.seconds, m.triggers);
        this.opts.onResult?.(m.cellId, m.result);
        return;
      case 'failed':
        this.opts.observer?.failed();
        return;
      case 'conflict':
        this.opts.onConflict?.(m.conflict);
        return;
      case 'rewrite':
        this.opts.onRewriteWanted?.(m.cellId);
        return;
      default:
        return;
    }
  }

  /** Stop the children taking jobs (active ones finish); a child started meanwhile starts paused. */
  async pause(): Promise<void> {
    this.paused = true;
    await Promise.all(
      this.slots.map(async (s) => {
        const child = s.child;
        if (!child?.connected) return;
        const paused = new Promise<void>((resolve) => {
          const on = (m: ChildMessage) => {
            if (m.type !== 'paused') return;
            child.off('message', on);
            resolve();
          };
          child.on('message', on);
          child.once('exit', () => resolve());
        });
        this.post(child, { type: 'pause' });
        await paused;
      }),
    );
  }

  resume(): void {
    this.paused = false;
    for (const s of this.slots) if (s.child) this.post(s.child, { type: 'resume' });
  }

  /** Kill every child at once (a replica that dies: their jobs go back to the queue as stalled). */
  kill(): void {
    this.closing = true;
    for (const s of this.slots) {
      if (s.timer) clearTimeout(s.timer);
      s.child?.kill('SIGKILL');
    }
  }

  /** Ask every child to finish and exit; kill those still running after the stop timeout. */
  async close(): Promise<void> {
    this.closing = true;
    const timeout = this.opts.stopTimeoutMs ?? DEFAULT_WORKER_PROCESS_STOP_MS;
    await Promise.all(
      this.slots.map(async (s) => {
        if (s.timer) clearTimeout(s.timer);
        const child = s.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        this.post(child, { type: 'close' });
        const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}
