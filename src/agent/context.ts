/**
 * What every keeper of the cell agent shares (agent.ts builds it once): the configuration, logger
 * and metrics, the dataplane, the one mutex that serialises table changes and state saves, the
 * controller client, the agent's life (abort signal, stopping) and the retry timing.
 */
import { type BackoffOptions, sleep } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import type { ControllerClient } from './client.js';
import type { AgentConfig } from './config.js';
import type { AgentDataplane } from './dry-run.js';
import type { AgentMetrics } from './metrics.js';
import type { Mutex } from './mutex.js';

export interface AgentContext {
  readonly config: AgentConfig;
  readonly log: Logger;
  readonly metrics: AgentMetrics;
  readonly dataplane: AgentDataplane;
  /** True when nothing is written to the kernel (`--dry-run`). */
  readonly dryRun: boolean;
  /** Table changes (rule-set applies, CNI changes, repairs) and state saves run one at a time. */
  readonly mutex: Mutex;
  readonly client: ControllerClient;
  /** Aborted when the agent stops: loops and controller requests end. */
  readonly signal: AbortSignal;
  /** Retries of controller requests and failed applies: exponential with jitter. */
  readonly backoff: BackoffOptions;
  stopping(): boolean;
}

/** The retry timing of a configuration (reconnect bounds, doubling, ±50 % jitter). */
export function backoffOf(config: AgentConfig): BackoffOptions {
  return { initialMs: config.reconnectMinMs, maxMs: config.reconnectMaxMs, factor: 2, jitter: 0.5 };
}

/** `ms` ± 10 %: periodic loops of many cells do not stay in step. */
export function jittered(ms: number, random: () => number = Math.random): number {
  return Math.round(ms * (0.9 + 0.2 * random()));
}

/** Waits `ms` unless the agent stops meanwhile; false when it stopped. */
export async function pause(ctx: AgentContext, ms: number): Promise<boolean> {
  try {
    await sleep(ms, ctx.signal);
    return true;
  } catch {
    return false;
  }
}
