/**
 * Fault injection for client tests: fail, delay, rate-limit or corrupt the next N requests of a
 * service, drop event streams, inject raw events, expire tokens; plus per-service request counters.
 */

export type SimService = 'bbs' | 'capi' | 'uaa' | 'ccInternal' | 'policy';
export const SIM_SERVICES: readonly SimService[] = ['bbs', 'capi', 'uaa', 'ccInternal', 'policy'];

export interface RawEvent {
  /** SSE `event:` name (may be unknown to clients on purpose). */
  name: string;
  /** SSE `data:` line as sent (may be invalid base64 or a truncated protobuf on purpose). */
  dataBase64: string;
}

export interface SimFaults {
  /** Close every open BBS event stream abruptly (no terminating chunk). Returns how many. */
  dropEventStreams(): number;
  /** Send a raw event to every subscriber of the stream. Returns how many got it. */
  injectEvent(stream: 'lrp' | 'task', event: RawEvent): number;
  /** The next `count` requests to `service` answer `status` (default 500) with `body` (or a default). */
  failNext(service: SimService, count: number, status?: number, body?: string | object): void;
  /** The next `count` requests to `service` are held `ms` before being handled. */
  delayNext(service: SimService, count: number, ms: number): void;
  /** The next `count` CAPI requests answer 429 with `Retry-After: retryAfterSeconds`. */
  rateLimitNext(service: 'capi', count: number, retryAfterSeconds: number): void;
  /** Every token issued so far becomes invalid (401 invalid_token). */
  expireTokens(): void;
  /** The next `count` responses of `service` carry an invalid body (bad JSON; truncated protobuf for BBS). */
  corruptNext(service: SimService, count: number): void;
  /** Requests received per service (faulted ones included). */
  readonly requests: Record<SimService, number>;
  /** Forget pending faults and zero the counters. */
  reset(): void;
}

interface Pending {
  remaining: number;
}
interface FailEntry extends Pending {
  status: number;
  body?: string | object;
}
interface DelayEntry extends Pending {
  ms: number;
}
interface RateEntry extends Pending {
  retryAfter: number;
}

/** What the fault layer decided for one request. */
export type FaultDecision =
  | { kind: 'pass'; corrupt: boolean }
  | { kind: 'fail'; status: number; body?: string | object }
  | { kind: 'rate-limit'; retryAfter: number };

function take<T extends Pending>(queue: T[]): T | undefined {
  const head = queue[0];
  if (!head) return undefined;
  head.remaining--;
  if (head.remaining <= 0) queue.shift();
  return head;
}

export class FaultState implements SimFaults {
  readonly requests: Record<SimService, number> = { bbs: 0, capi: 0, uaa: 0, ccInternal: 0, policy: 0 };
  private fails = new Map<SimService, FailEntry[]>();
  private delays = new Map<SimService, DelayEntry[]>();
  private rates = new Map<SimService, RateEntry[]>();
  private corrupts = new Map<SimService, Pending[]>();

  /** Wired by the simulator to the BBS event hub and the token store. */
  hooks = {
    dropEventStreams: (): number => 0,
    injectEvent: (_stream: 'lrp' | 'task', _event: RawEvent): number => 0,
    expireTokens: (): void => {},
  };

  private queue<T>(map: Map<SimService, T[]>, service: SimService): T[] {
    let q = map.get(service);
    if (!q) {
      q = [];
      map.set(service, q);
    }
    return q;
  }

  dropEventStreams(): number {
    return this.hooks.dropEventStreams();
  }

  injectEvent(stream: 'lrp' | 'task', event: RawEvent): number {
    return this.hooks.injectEvent(stream, event);
  }

  failNext(service: SimService, count: number, status = 500, body?: string | object): void {
    if (count > 0) this.queue(this.fails, service).push({ remaining: count, status, body });
  }

  delayNext(service: SimService, count: number, ms: number): void {
    if (count > 0) this.queue(this.delays, service).push({ remaining: count, ms });
  }

  rateLimitNext(service: 'capi', count: number, retryAfterSeconds: number): void {
    if (count > 0) this.queue(this.rates, service).push({ remaining: count, retryAfter: retryAfterSeconds });
  }

  expireTokens(): void {
    this.hooks.expireTokens();
  }

  corruptNext(service: SimService, count: number): void {
    if (count > 0) this.queue(this.corrupts, service).push({ remaining: count });
  }

  reset(): void {
    for (const s of SIM_SERVICES) this.requests[s] = 0;
    this.fails.clear();
    this.delays.clear();
    this.rates.clear();
    this.corrupts.clear();
  }

  /**
   * Count the request, decide its fate, then apply a pending delay. The fate is taken on arrival so
   * that a delayed request, whose client may have given up long ago, cannot take a failure meant
   * for a later request.
   */
  async admit(service: SimService): Promise<FaultDecision> {
    this.requests[service]++;
    const decision = this.decide(service);
    const delay = take(this.queue(this.delays, service));
    if (delay) await new Promise((r) => setTimeout(r, delay.ms));
    return decision;
  }

  private decide(service: SimService): FaultDecision {
    const rate = take(this.queue(this.rates, service));
    if (rate) return { kind: 'rate-limit', retryAfter: rate.retryAfter };
    const fail = take(this.queue(this.fails, service));
    if (fail) return { kind: 'fail', status: fail.status, body: fail.body };
    return { kind: 'pass', corrupt: take(this.queue(this.corrupts, service)) !== undefined };
  }
}
