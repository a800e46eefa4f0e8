/**
 * Rejected input: a record from BBS, CAPI, the policy server or an agent report that failed
 * validation (src/controller/sources/gate.ts), or a per-cell conflict the computation resolved (two
 * containers on one host port or address), or a container the agent refused. Each one is left out
 * by itself; everything else is applied.
 *
 * Every rejection is counted (`cfnet_controller_rejected_total{source,reason}`); each *distinct*
 * problem (source, reason, subject, field, cell) is logged once and handed to the listeners (the
 * event journal) once per `repeatAfterMs` (default 1 h), so a bad record seen by every re-list or
 * every reconcile of its cell does not flood the log or the journal.
 */
import type { ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { counter, METRICS, type Registry } from '../../lib/metrics.js';
import { validationReason } from '../../model/errors.js';
import type { CellConflict } from '../../rules/compute.js';

export type RejectionSource = 'bbs' | 'capi' | 'policy' | 'agent' | 'compute';

/** Why an item was left out (a fixed set: it is a metric label). */
export type RejectionReason =
  | 'invalid-handle'
  | 'invalid-cell'
  | 'invalid-guid'
  | 'invalid-address'
  | 'invalid-port'
  | 'invalid-tag'
  | 'invalid-record'
  | 'host-port-conflict'
  | 'address-conflict'
  | 'refused-by-agent'
  /** A BBS event whose payload does not decode (bad base64, truncated protobuf). */
  | 'undecodable-event'
  /** A BBS event that decodes but lacks what it is about (no LRP, no task, no guid). */
  | 'malformed-event'
  /** A BBS event with a name this controller does not know (a newer BBS). */
  | 'unknown-event';

export const REJECTION_REASONS: readonly RejectionReason[] = [
  'invalid-handle',
  'invalid-cell',
  'invalid-guid',
  'invalid-address',
  'invalid-port',
  'invalid-tag',
  'invalid-record',
  'host-port-conflict',
  'address-conflict',
  'refused-by-agent',
  'undecodable-event',
  'malformed-event',
  'unknown-event',
];

export interface Rejection {
  source: RejectionSource;
  reason: RejectionReason;
  /** What was left out: a handle, process guid, policy, host port (as the source names it). */
  subject: string;
  /** The cell it concerns, when known. */
  cell?: string;
  /** The offending field (`instance_guid`, `policies[3].destination.ports`, `netIn.hostPort`). */
  field: string;
  /** The offending value, shortened (never more than 80 characters). */
  value: string;
  /** What is wrong, in words. */
  message: string;
  /** When it was seen (ms). */
  at: number;
}

export type RejectionInput = Omit<Rejection, 'at' | 'value'> & { value?: unknown };

/** A shortened, printable form of an offending value (it may be 16 MB of hostile text). */
export function shortValue(v: unknown, max = 80): string {
  let s: string;
  try {
    s = typeof v === 'string' ? v : (JSON.stringify(v) ?? String(v));
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max - 1)}…(${s.length})` : s;
}

/** The reason of a validation error, from the kind of field it names. */
export function reasonOfField(field: string): RejectionReason {
  const f = field.toLowerCase();
  if (/handle|instance_?guid|task_?guid/.test(f)) return 'invalid-handle';
  if (/cell/.test(f)) return 'invalid-cell';
  if (/port/.test(f)) return 'invalid-port';
  if (/tag/.test(f)) return 'invalid-tag';
  if (/(^|\.)ip$|address/.test(f)) return 'invalid-address';
  if (/guid|\.id$|^id$/.test(f)) return 'invalid-guid';
  return 'invalid-record';
}

export interface RejectionRecorderOptions {
  logger?: Logger;
  registry?: Registry;
  /** Distinct rejections, after deduplication (the event journal). Must not throw. */
  onRejected?: (items: Rejection[]) => void;
  /**
   * A distinct problem is reported again after this long (ms).
   * @defaultValue {@link DEFAULT_REPEAT_AFTER_MS}
   */
  repeatAfterMs?: number;
  /**
   * Distinct problems remembered.
   * @defaultValue {@link DEFAULT_MAX_REMEMBERED}
   */
  maxRemembered?: number;
  now?: () => number;
}

/** A per-cell conflict the computation resolved, as a rejection. */
export function conflictRejection(c: CellConflict): RejectionInput {
  const messages: Record<CellConflict['reason'], string> = {
    'address-conflict': `address already used on the cell by ${c.winner}: container left out`,
    'host-port-conflict': `host port already mapped on the cell for ${c.winner}: mapping left out`,
    'invalid-handle': 'handle not accepted by the dataplane: container left out',
    'invalid-address': 'address not an IPv4 container address: container left out',
  };
  return {
    source: 'compute',
    reason: c.reason,
    subject: c.handle.slice(0, 128),
    cell: c.cellId,
    field: c.field,
    value: c.value,
    message: messages[c.reason],
  };
}

/** A distinct rejection is reported again after an hour. */
export const DEFAULT_REPEAT_AFTER_MS = 3_600_000;
/** Distinct rejections remembered (bounds the memory a flood of bad records can take). */
export const DEFAULT_MAX_REMEMBERED = 10_000;

export class RejectionRecorder {
  private readonly seen = new Map<string, number>();
  private readonly metric;
  private readonly repeatAfterMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(private readonly opts: RejectionRecorderOptions = {}) {
    this.metric = opts.registry
      ? counter(
          opts.registry,
          METRICS.rejected,
          'Input items left out by validation or per-cell conflict resolution, by source and reason',
          ['source', 'reason'],
        )
      : null;
    this.repeatAfterMs = opts.repeatAfterMs ?? DEFAULT_REPEAT_AFTER_MS;
    this.max = opts.maxRemembered ?? DEFAULT_MAX_REMEMBERED;
    this.now = opts.now ?? Date.now;
  }

  /** Records rejections; returns those reported now (distinct, not reported recently). */
  reject(...inputs: RejectionInput[]): Rejection[] {
    const fresh: Rejection[] = [];
    const at = this.now();
    for (const input of inputs) {
      const r: Rejection = { ...input, value: shortValue(input.value ?? ''), at };
      this.metric?.inc({ source: r.source, reason: r.reason });
      const key = [r.source, r.reason, r.subject, r.field, r.cell ?? ''].join('\u0000');
      const last = this.seen.get(key);
      if (last !== undefined && at - last < this.repeatAfterMs) continue;
      this.seen.delete(key);
      if (this.seen.size >= this.max) this.seen.delete(this.seen.keys().next().value!);
      this.seen.set(key, at);
      fresh.push(r);
      this.opts.logger?.warn(
        {
          source: r.source,
          reason: r.reason,
          subject: r.subject,
          field: r.field,
          value: r.value,
          ...(r.cell ? { cell: r.cell } : {}),
        },
        `input left out: ${r.message}`,
      );
    }
    if (fresh.length > 0) this.opts.onRejected?.(fresh);
    return fresh;
  }

  /** A rejection from a ValidationError (reason from its field unless given). */
  rejectError(
    source: RejectionSource,
    subject: string,
    err: ValidationError,
    extra: { cell?: string; reason?: RejectionReason } = {},
  ): Rejection[] {
    return this.reject({
      source,
      reason: extra.reason ?? reasonOfField(err.field),
      subject,
      field: err.field,
      value: err.value,
      message: validationReason(err),
      ...(extra.cell ? { cell: extra.cell } : {}),
    });
  }
}
