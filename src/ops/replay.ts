/**
 * Replay: re-enqueue reconcile keys. A replay is only "recompute cell X" jobs: workers read the
 * current world and write only what changed, so a replay can never apply anything stale.
 * The cells of an app or a space come from the world the leader wrote into Redis, by the same
 * identity rule the controller's span uses.
 */

import {
  jobOptions,
  RECONCILE_JOB,
  type ReconcileQueue,
  type ReconcileQueueOptions,
} from '../controller/reconcile/queue.js';
import { ValidationError } from '../lib/errors.js';
import type { Trigger } from '../rules/world.js';
import { validateCellId } from '../state/keys.js';
import { ControllerUnavailableError, NotFoundError } from './errors.js';
import type { Journal, JournalSubject } from './journal.js';
import type { QueueAdmin } from './queue-admin.js';
import type { RedisWorld } from './world-reader.js';

export type ReplayTarget =
  | { kind: 'cell'; cells: string[] }
  | { kind: 'app'; guid: string }
  | { kind: 'space'; guid: string }
  | { kind: 'all' }
  | { kind: 'events'; cells: string[]; filter: string };

/** Which cells a target means. Needs the world only for app, space and all. */
export function replayCells(target: ReplayTarget, world: RedisWorld | null): string[] {
  switch (target.kind) {
    case 'cell':
    case 'events':
      return [...new Set(target.cells.map((c) => validateCellId(c, 'cell')))].sort();
    default: {
      if (!world) throw new Error('world needed');
      if (!world.ready && target.kind !== 'all') {
        throw new ControllerUnavailableError(
          'no controller leader has written the world into this namespace (is the controller running, and is the namespace right?)',
          { leader: world.leader },
        );
      }
      if (target.kind === 'all') return [...world.allCells()];
      const cells = [
        ...(target.kind === 'app' ? world.cellsOfApp(target.guid) : world.cellsOfSpace(target.guid)),
      ];
      if (cells.length === 0) {
        throw new NotFoundError(target.kind, target.guid, 'no cell runs a container of it');
      }
      return cells;
    }
  }
}

export function describeTarget(t: ReplayTarget): string {
  switch (t.kind) {
    case 'cell':
      return `cell:${t.cells.join(',')}`;
    case 'app':
      return `app:${t.guid}`;
    case 'space':
      return `space:${t.guid}`;
    case 'all':
      return 'all';
    case 'events':
      return `events:${t.filter}`;
  }
}

export interface ReplayResult {
  target: string;
  cells: string[];
  jobIds: string[];
  trigger: Trigger;
  journalId: string | null;
}

/**
 * Enqueue the cells in batches of `batch` (default 200), reporting progress after each batch, and
 * record one journal entry for the replay.
 */
export async function replay(
  queue: ReconcileQueue,
  target: ReplayTarget,
  cells: readonly string[],
  opts: {
    journal?: Journal;
    /** The controller's job options (job-options.ts); its defaults when absent. */
    jobOptions?: Omit<ReconcileQueueOptions, 'prefix' | 'onEnqueued'>;
    batch?: number;
    onProgress?: (done: number, total: number) => void;
    now?: number;
  } = {},
): Promise<ReplayResult> {
  if (cells.length === 0) throw new ValidationError('target', describeTarget(target), 'no cells to replay');
  const trigger: Trigger = {
    kind: 'replay',
    id: `operator:${describeTarget(target)}`.slice(0, 200),
    at: opts.now ?? Date.now(),
  };
  const batch = Math.max(1, opts.batch ?? 200);
  const jobIds: string[] = [];
  opts.onProgress?.(0, cells.length);
  for (let i = 0; i < cells.length; i += batch) {
    const part = cells.slice(i, i + batch);
    const jobs = await queue.queue.addBulk(
      part.map((cellId) => ({
        name: RECONCILE_JOB,
        data: { cellId, triggers: [trigger] },
        // The controller's job options: deduplicated per cell, its attempts, backoff and retention.
        opts: jobOptions(cellId, { ...opts.jobOptions, prefix: queue.queue.opts.prefix ?? '' }),
      })),
    );
    for (const j of jobs) jobIds.push(String(j.id ?? ''));
    opts.onProgress?.(Math.min(cells.length, i + part.length), cells.length);
  }
  let journalId: string | null = null;
  if (opts.journal) {
    const subject: JournalSubject =
      target.kind === 'app'
        ? { guid: target.guid, apps: [target.guid] }
        : target.kind === 'space'
          ? { guid: target.guid, spaces: [target.guid] }
          : { guid: describeTarget(target) };
    journalId = await opts.journal.record({
      type: 'replay',
      source: 'operator',
      subject,
      cells: [...cells],
      jobIds,
      at: trigger.at,
    });
  }
  return { target: describeTarget(target), cells: [...cells], jobIds, trigger, journalId };
}

export interface CellOutcome {
  cellId: string;
  jobId: string;
  state: 'completed' | 'failed' | 'removed' | 'pending';
}

/**
 * Wait until the reconcile of every replayed cell has run (completed or failed), reporting
 * progress; cells still pending after `timeoutMs` are reported as `pending`.
 */
export async function waitForReplay(
  admin: QueueAdmin,
  result: ReplayResult,
  opts: {
    timeoutMs?: number;
    pollMs?: number;
    onProgress?: (done: number, total: number) => void;
    signal?: AbortSignal;
  } = {},
): Promise<CellOutcome[]> {
  const since = result.trigger.at;
  const deadline = Date.now() + (opts.timeoutMs ?? 300_000);
  const pending = new Map(result.cells.map((c, i) => [c, result.jobIds[i] ?? '']));
  const done = new Map<string, CellOutcome>();
  opts.onProgress?.(0, result.cells.length);
  while (pending.size > 0 && Date.now() < deadline && !opts.signal?.aborted) {
    // A bounded batch per round keeps the poll cheap for thousands of cells.
    const batch = [...pending].slice(0, 200);
    const states = await Promise.all(batch.map(([cell, id]) => admin.settled(cell, id, since)));
    batch.forEach(([cell, id], i) => {
      const s = states[i];
      if (!s) return;
      pending.delete(cell);
      done.set(cell, { cellId: cell, jobId: s.jobId || id, state: s.state });
    });
    opts.onProgress?.(done.size, result.cells.length);
    if (pending.size > 0) await new Promise((r) => setTimeout(r, opts.pollMs ?? 250));
  }
  for (const [cell, id] of pending) done.set(cell, { cellId: cell, jobId: id, state: 'pending' });
  return result.cells.map((c) => done.get(c)!);
}
