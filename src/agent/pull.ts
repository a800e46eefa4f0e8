/**
 * The rule-set long-poll loop: a snapshot first (or when a patch does not fit), patches after,
 * applied locally with `applyPatch`. Every new rule set is handed to `onRuleSet` (awaited, so
 * updates are sequential). Failures never drop what is held: the loop backs off with jitter and
 * retries, and the caller keeps enforcing the last rule set (fail-static).
 */
import { backoffDelay, sleep } from '../lib/backoff.js';
import type { Logger } from '../lib/log.js';
import { applyPatch, isEmptyPatch } from '../model/ruleset.js';
import type { CellRuleSet, RuleSetPatch } from '../model/types.js';
import type { RulesAnswer } from './client.js';

export interface RulesSource {
  rules(since: number, waitSeconds: number, signal?: AbortSignal): Promise<RulesAnswer>;
}

export interface PullUpdate {
  ruleSet: CellRuleSet;
  kind: 'snapshot' | 'patch';
  /** The patch, for kind 'patch'. */
  patch?: RuleSetPatch;
  receivedAt: number;
}

export interface RulePullerOptions {
  source: RulesSource;
  cellId: string;
  waitSeconds: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  logger: Logger;
  /** The rule set held before (restored from disk): the first poll asks for changes since it. */
  initial?: CellRuleSet | null;
  onRuleSet(update: PullUpdate): Promise<void>;
  /** Called after every answered poll (true) and failed one (false, with the error). */
  onContact?(ok: boolean, err?: unknown): void;
  random?: () => number;
}

export class RulePuller {
  private held: CellRuleSet | null;
  private wantSnapshot = false;
  private abort = new AbortController();
  private loop: Promise<void> | null = null;
  private failures = 0;
  private stopped = false;
  /** Counters for metrics and tests. */
  readonly counts = { snapshots: 0, patches: 0, unchanged: 0, errors: 0, mismatches: 0 };

  constructor(private readonly opts: RulePullerOptions) {
    this.held = opts.initial ?? null;
  }

  /** The controller rule set held now (null before the first answer without a restored one). */
  current(): CellRuleSet | null {
    return this.held;
  }

  get consecutiveFailures(): number {
    return this.failures;
  }

  start(): void {
    if (this.loop) return;
    this.loop = this.run();
  }

  /** Stops polling (aborts the request in flight) and waits for the loop to end. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort(new Error('agent stopping'));
    await this.loop?.catch(() => undefined);
  }

  /** Ask for a full snapshot on the next poll (e.g. after a local inconsistency). */
  resync(): void {
    this.wantSnapshot = true;
  }

  private async run(): Promise<void> {
    const { source, waitSeconds, logger: log } = this.opts;
    while (!this.stopped) {
      const since = this.wantSnapshot || !this.held ? 0 : this.held.version;
      let answer: RulesAnswer;
      try {
        answer = await source.rules(since, waitSeconds, this.abort.signal);
      } catch (err) {
        if (this.stopped) return;
        this.counts.errors++;
        this.opts.onContact?.(false, err);
        const delay = backoffDelay(
          this.failures,
          { initialMs: this.opts.minBackoffMs, maxMs: this.opts.maxBackoffMs, factor: 2, jitter: 0.5 },
          this.opts.random,
        );
        this.failures++;
        log.warn(
          {
            err,
            failures: this.failures,
            retryInMs: delay,
            held: this.held?.version ?? null,
          },
          'rule-set poll failed; keeping the rules in force',
        );
        try {
          await sleep(delay, this.abort.signal);
        } catch {
          return;
        }
        continue;
      }
      if (this.failures > 0) log.info({ after: this.failures }, 'controller reachable again');
      this.failures = 0;
      this.opts.onContact?.(true);
      const receivedAt = Date.now();
      if (answer.kind === 'unchanged') {
        this.counts.unchanged++;
        continue;
      }
      let next: CellRuleSet;
      let patch: RuleSetPatch | undefined;
      if (answer.kind === 'snapshot') {
        this.counts.snapshots++;
        if (answer.ruleSet.cellId !== this.opts.cellId) {
          log.error({ got: answer.ruleSet.cellId }, 'snapshot for another cell ignored');
          this.wantSnapshot = true;
          await this.pause();
          continue;
        }
        next = answer.ruleSet;
        this.wantSnapshot = false;
      } else {
        this.counts.patches++;
        patch = answer.patch;
        if (!this.held || this.wantSnapshot) {
          this.wantSnapshot = true;
          continue;
        }
        try {
          next = applyPatch(this.held, patch);
        } catch (err) {
          this.counts.mismatches++;
          log.warn({ err, held: this.held.version }, 'patch does not apply; asking for a snapshot');
          this.wantSnapshot = true;
          continue;
        }
        if (isEmptyPatch(patch) && next.version === this.held.version) continue;
      }
      this.held = next;
      try {
        await this.opts.onRuleSet({
          ruleSet: next,
          kind: answer.kind,
          receivedAt,
          ...(patch ? { patch } : {}),
        });
      } catch (err) {
        log.error({ err, version: next.version }, 'handling a new rule set failed');
      }
    }
  }

  private async pause(): Promise<void> {
    try {
      await sleep(this.opts.maxBackoffMs, this.abort.signal);
    } catch {
      // stopping
    }
  }
}
