/**
 * A read-only view of a lab controller's reconcile queue: its unfinished jobs by cell, which make
 * cells `pending` in the demo's live view (src/state/convergence.ts).
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { pendingByCell, RECONCILE_QUEUE, type ReconcileJobData } from '../controller/reconcile/queue.js';
import type { PendingJob } from '../state/convergence.js';

export interface ReconcileView {
  pending(): Promise<Map<string, PendingJob>>;
  close(): Promise<void>;
}

/** Over `redis` (not closed by `close`) in the installation namespace `ns`. */
export function reconcileView(redis: Redis, ns: string): ReconcileView {
  const queue = new Queue<ReconcileJobData>(RECONCILE_QUEUE, { connection: redis, prefix: ns });
  queue.on('error', () => {});
  return {
    pending: () => pendingByCell(queue),
    close: () => queue.close(),
  };
}
