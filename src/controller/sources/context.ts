/** What every informer needs: the world to mutate, a way to say "flush", logs and metrics. */
import { type Clock, systemClock } from '../../lib/clock.js';
import type { Logger } from '../../lib/log.js';
import { counter, gauge, METRICS, type Registry } from '../../lib/metrics.js';
import type { World } from '../../rules/world.js';
import { IngestGate, type SkippedEventReason } from './gate.js';

export interface InformerContext {
  world: World;
  /** Called after the world was mutated: the controller writes it to Redis and enqueues cells. */
  changed(): void;
  log: Logger;
  registry?: Registry;
  /** Per-item validation of what the sources send (a gate that records nothing when absent). */
  ingest?: IngestGate;
  /**
   * The time the informers read and poll by (tests pass a ManualClock).
   * @defaultValue systemClock
   */
  clock?: Clock;
}

export function clockOf(ctx: InformerContext): Clock {
  return ctx.clock ?? systemClock;
}

const UNRECORDED = new IngestGate();

export function ingestOf(ctx: InformerContext): IngestGate {
  return ctx.ingest ?? UNRECORDED;
}

export type InformerSource = 'bbs' | 'capi' | 'policy';

/** Metrics shared by the informers (no-ops without a registry). */
export class InformerMetrics {
  private readonly reconnects;
  private readonly pollErrors;
  private readonly polls;
  private readonly events;
  private readonly skippedEvents;
  private readonly synced;

  constructor(registry?: Registry) {
    if (!registry) return;
    this.reconnects = counter(registry, METRICS.streamReconnects, 'BBS event stream reconnects', ['stream']);
    this.pollErrors = counter(registry, METRICS.pollErrors, 'Failed polls / listings per source', ['source']);
    this.polls = counter(registry, METRICS.polls, 'Polls / listings per source and result', [
      'source',
      'result',
    ]);
    this.events = counter(registry, METRICS.events, 'BBS events applied to the world', ['event']);
    this.skippedEvents = counter(
      registry,
      METRICS.bbsEventsSkipped,
      'BBS events skipped as a whole: payload undecodable, malformed (no LRP, task or guid in it) or unknown event name',
      ['reason'],
    );
    this.synced = gauge(registry, METRICS.informerSynced, '1 when the source has been listed at least once', [
      'source',
    ]);
  }

  reconnect(stream: string): void {
    this.reconnects?.inc({ stream });
  }

  pollError(source: InformerSource): void {
    this.pollErrors?.inc({ source });
  }

  poll(source: InformerSource, result: 'changed' | 'unchanged' | 'skipped'): void {
    this.polls?.inc({ source, result });
  }

  event(name: string): void {
    this.events?.inc({ event: name });
  }

  /** A BBS event skipped as a whole; `by 0` makes the series exist from start-up. */
  skippedEvent(reason: SkippedEventReason, by = 1): void {
    this.skippedEvents?.inc({ reason }, by);
  }

  setSynced(source: InformerSource, ok: boolean): void {
    this.synced?.set({ source }, ok ? 1 : 0);
  }
}
