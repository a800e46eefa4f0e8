/**
 * The reconcile job options of the running controller (attempts, backoff, retention), published
 * into Redis by the controller's operator extension so that jobs the operator tools enqueue
 * (replays) behave exactly like the controller's own: same attempts, same backoff, same retention.
 * Without it a replayed job would get BullMQ defaults the controller was configured away from.
 *
 * Key `<ns>:ops:job-options`: JSON `{attempts, backoffMs, keepCompleted, keepFailed, instance, at}`.
 */
import type { Redis } from 'ioredis';
import type { ControllerConfig } from '../controller/controller.js';
import type { ReconcileQueueOptions } from '../controller/reconcile/queue.js';
import { DEFAULT_KEEP_COMPLETED, DEFAULT_KEEP_FAILED } from '../controller/reconcile/queue.js';
import type { Keys } from '../state/keys.js';

export interface PublishedJobOptions {
  attempts: number;
  backoffMs: number;
  keepCompleted: { count: number; age: number };
  keepFailed: { count: number; age: number };
  /** The controller replica that wrote them, and when (ms). */
  instance: string;
  at: number;
}

export function jobOptionsKey(keys: Keys): string {
  return `${keys.ns}:ops:job-options`;
}

/** The options a controller with this config gives its jobs (ages: the queue's defaults). */
export function jobOptionsOf(config: ControllerConfig, now = Date.now()): PublishedJobOptions {
  const w = config.workers;
  return {
    attempts: w.attempts,
    backoffMs: w.backoffMs,
    keepCompleted: { count: w.keepCompleted, age: DEFAULT_KEEP_COMPLETED.age },
    keepFailed: { count: w.keepFailed, age: DEFAULT_KEEP_FAILED.age },
    instance: config.instanceId ?? '',
    at: now,
  };
}

export async function publishJobOptions(redis: Redis, keys: Keys, o: PublishedJobOptions): Promise<void> {
  await redis.set(jobOptionsKey(keys), JSON.stringify(o));
}

/**
 * The published options as queue options for `jobOptions()`; `{}` (the controller defaults) when no
 * controller published any or the record is unreadable: a replay must still work then.
 */
export async function readJobOptions(
  redis: Redis,
  keys: Keys,
): Promise<Pick<ReconcileQueueOptions, 'attempts' | 'backoffMs' | 'keepCompleted' | 'keepFailed'>> {
  const raw = await redis.get(jobOptionsKey(keys));
  if (!raw) return {};
  let p: Partial<PublishedJobOptions>;
  try {
    p = JSON.parse(raw) as Partial<PublishedJobOptions>;
  } catch {
    return {};
  }
  const int = (v: unknown, min: number) =>
    Number.isInteger(v) && (v as number) >= min ? (v as number) : undefined;
  const keep = (v: unknown) => {
    const k = v as { count?: unknown; age?: unknown } | undefined;
    const count = int(k?.count, 0);
    const age = int(k?.age, 0);
    return count !== undefined && age !== undefined ? { count, age } : undefined;
  };
  const out: Pick<ReconcileQueueOptions, 'attempts' | 'backoffMs' | 'keepCompleted' | 'keepFailed'> = {};
  const attempts = int(p.attempts, 1);
  if (attempts !== undefined) out.attempts = attempts;
  const backoffMs = int(p.backoffMs, 0);
  if (backoffMs !== undefined) out.backoffMs = backoffMs;
  const kc = keep(p.keepCompleted);
  if (kc) out.keepCompleted = kc;
  const kf = keep(p.keepFailed);
  if (kf) out.keepFailed = kf;
  return out;
}
