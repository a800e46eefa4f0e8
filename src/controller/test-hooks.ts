/**
 * Waiting for a controller's leader to reach a state (tests, benchmarks): "leading" and
 * "settled". Polls the leader state every 20 ms; nothing in production waits on these.
 */
import type { LeaderState } from './leadership.js';

type StateOf = () => LeaderState | null;

/** Resolves when there is a leader state whose world is written to Redis. */
export async function waitLeading(stateOf: StateOf, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let l = stateOf(); !(l?.resynced && !l.stopped); l = stateOf()) {
    if (Date.now() > deadline) throw new Error('not leading');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * Resolves once there is a leader state whose BBS informer has applied every event received so
 * far and every world change is written and enqueued ("the storm has been absorbed").
 */
export async function waitSettled(stateOf: StateOf, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const quiet = () => {
    const l = stateOf();
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
