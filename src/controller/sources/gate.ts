/**
 * The controller's ingest gate: every record from BBS, CAPI, the policy server and agent reports is
 * checked here once, item by item, with src/model/identifiers (the validators the agent and the
 * dataplane use), before it reaches the world. An invalid item is left out by itself and recorded
 * (rejections.ts); the rest of the listing, event or report is applied.
 */
import { ValidationError } from '../../lib/errors.js';
import {
  checkCellId,
  checkContainerIp,
  checkGuid,
  checkHandle,
  checkPort,
  MAX_IDENTIFIER_LENGTH,
} from '../../model/identifiers.js';
import type {
  DesiredInfo,
  InstanceInfo,
  InventoryEntry,
  NetworkIdentity,
  TaskInfo,
} from '../../rules/records.js';
import { identityFromMetadata } from '../../rules/records.js';
import type { RejectionRecorder, RejectionSource } from './rejections.js';

function checkIdentity(id: NetworkIdentity): void {
  checkGuid('app_guid', id.appGuid, true);
  checkGuid('space_guid', id.spaceGuid, true);
  checkGuid('org_guid', id.orgGuid, true);
}

/** Throws ValidationError when an instance cannot be enforced as is. */
export function checkInstance(i: InstanceInfo): void {
  checkHandle('instance_guid', i.handle);
  checkCellId('cell_id', i.cellId);
  checkGuid('process_guid', i.processGuid);
  if (i.ip !== '') checkContainerIp('instance_address', i.ip);
  i.netIn.forEach((m, n) => {
    checkPort(`ports[${n}].host_port`, m.hostPort);
    checkPort(`ports[${n}].container_port`, m.containerPort);
  });
}

export function checkDesired(d: DesiredInfo): void {
  checkGuid('process_guid', d.processGuid);
  checkIdentity(d);
}

export function checkTask(t: TaskInfo): void {
  checkHandle('task_guid', t.handle);
  checkCellId('cell_id', t.cellId);
  checkIdentity(t);
}

/** One container of an agent status report → an inventory entry (throws ValidationError). */
export function inventoryEntryOf(raw: unknown, index: number): InventoryEntry {
  const at = `containers[${index}]`;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ValidationError(at, raw, 'must be an object {handle, ip, metadata}');
  }
  const o = raw as { handle?: unknown; ip?: unknown; metadata?: unknown };
  const handle = checkHandle(`${at}.handle`, o.handle);
  const ip = checkContainerIp(`${at}.ip`, o.ip);
  const meta = o.metadata ?? {};
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    throw new ValidationError(`${at}.metadata`, meta, 'must be an object');
  }
  const id = identityFromMetadata(meta as Record<string, unknown>);
  checkIdentity(id);
  return { handle, ip, ...id };
}

/** Why a whole BBS event was skipped (the `reason` of `cfnet_controller_bbs_events_skipped_total`). */
export type SkippedEventReason = 'undecodable' | 'malformed' | 'unknown';

export const SKIPPED_EVENT_REASONS: readonly SkippedEventReason[] = ['undecodable', 'malformed', 'unknown'];

function subjectOf(v: unknown): string {
  return typeof v === 'string' && v !== '' ? v.slice(0, MAX_IDENTIFIER_LENGTH) : '(none)';
}

export class IngestGate {
  constructor(private readonly recorder: RejectionRecorder | null = null) {}

  private pass<T>(
    source: RejectionSource,
    item: T | null,
    subject: (item: T) => unknown,
    check: (item: T) => void,
    cell?: (item: T) => unknown,
  ): T | null {
    if (item === null) return null;
    try {
      check(item);
      return item;
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const c = cell?.(item);
      this.recorder?.rejectError(source, subjectOf(subject(item)), err, {
        ...(typeof c === 'string' && c !== '' ? { cell: c.slice(0, MAX_IDENTIFIER_LENGTH) } : {}),
      });
      return null;
    }
  }

  /** An ActualLRP instance, or null (left out and recorded) when invalid. */
  instance(i: InstanceInfo | null): InstanceInfo | null {
    return this.pass(
      'bbs',
      i,
      (x) => x.handle,
      checkInstance,
      (x) => x.cellId,
    );
  }

  desired<T extends { info: DesiredInfo }>(r: T | null): T | null {
    return this.pass(
      'bbs',
      r,
      (x) => x.info.processGuid,
      (x) => checkDesired(x.info),
    );
  }

  task<T extends { info: TaskInfo }>(r: T | null): T | null {
    return this.pass(
      'bbs',
      r,
      (x) => x.info.handle,
      (x) => checkTask(x.info),
      (x) => x.info.cellId,
    );
  }

  /** The policy parser's per-item callback: an invalid policy is left out by itself. */
  policyRejected = (err: ValidationError, index: number, raw: unknown): void => {
    const src = (raw as { source?: { id?: unknown } } | null)?.source?.id;
    const dst = (raw as { destination?: { id?: unknown } } | null)?.destination?.id;
    this.recorder?.rejectError('policy', `policies[${index}] ${subjectOf(src)} -> ${subjectOf(dst)}`, err);
  };

  /** An ASG rule CAPI or the policy server sent that cannot be enforced (the group keeps the rest). */
  asgRuleRejected = (err: ValidationError, group: string, index: number): void => {
    this.recorder?.rejectError('capi', `${subjectOf(group)} rules[${index}]`, err);
  };

  /** An `egress_rules` entry of a BBS desired LRP or task that cannot be enforced (the others are). */
  egressRuleRejected = (err: ValidationError, index: number): void => {
    this.recorder?.rejectError('bbs', `egress_rules[${index}]`, err, { reason: 'invalid-record' });
  };

  /** A security group CAPI listed that failed validation (its last valid version is kept). */
  securityGroupRejected(guid: string, message: string): void {
    this.recorder?.reject({
      source: 'capi',
      reason: 'invalid-record',
      subject: subjectOf(guid),
      field: 'security_group',
      value: guid,
      message: message.slice(0, 500),
    });
  }

  /** The valid containers of an agent's status report; the others are left out and recorded. */
  inventory(cell: string, items: readonly unknown[]): InventoryEntry[] {
    const out: InventoryEntry[] = [];
    const seen = new Set<string>();
    items.forEach((raw, i) => {
      try {
        const e = inventoryEntryOf(raw, i);
        if (seen.has(e.handle))
          throw new ValidationError(`containers[${i}].handle`, e.handle, 'duplicate handle');
        seen.add(e.handle);
        out.push(e);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        const h = (raw as { handle?: unknown } | null)?.handle;
        this.recorder?.rejectError('agent', subjectOf(h), err, { cell });
      }
    });
    return out;
  }

  /**
   * A BBS event skipped as a whole: its payload did not decode, it lacks what it is about, or its
   * name is unknown. Recorded as a rejection (journal, log once per distinct event name and reason).
   */
  bbsEventSkipped(reason: SkippedEventReason, name: string, id: string, message: string): void {
    this.recorder?.reject({
      source: 'bbs',
      reason: `${reason}-event`,
      subject: subjectOf(name),
      field: 'event',
      value: id,
      message: message.slice(0, 500),
    });
  }

  /** Containers the agent reports it could not apply (refused by its dataplane). */
  refusedByAgent(cell: string, refused: readonly { handle: string; reason: string }[]): void {
    this.recorder?.reject(
      ...refused.map((r) => ({
        source: 'agent' as const,
        reason: 'refused-by-agent' as const,
        subject: subjectOf(r.handle),
        cell,
        field: 'container',
        value: r.handle,
        message: r.reason.slice(0, 500),
      })),
    );
  }
}
