/**
 * Abstract BBS events produced by simulated changes. The BBS server encodes them (protobuf +
 * base64 + SSE text + chunk framing) once per event and fans them out to subscribers.
 */
import type { SimActualLrp, SimDesiredLrp, SimTask } from './world.js';

export type LrpEvent =
  | { name: 'desired_lrp_created'; desired: SimDesiredLrp }
  | { name: 'desired_lrp_changed'; before: SimDesiredLrp; after: SimDesiredLrp }
  | { name: 'desired_lrp_removed'; desired: SimDesiredLrp }
  | { name: 'actual_lrp_instance_created'; actual: SimActualLrp }
  | { name: 'actual_lrp_instance_changed'; before: SimActualLrp; after: SimActualLrp }
  | { name: 'actual_lrp_instance_removed'; actual: SimActualLrp }
  | { name: 'actual_lrp_crashed'; before: SimActualLrp; after: SimActualLrp };

export type TaskEvent =
  | { name: 'task_created'; task: SimTask }
  | { name: 'task_changed'; before: SimTask; after: SimTask }
  | { name: 'task_removed'; task: SimTask };

export interface EventSink {
  emitLrp(events: LrpEvent[]): void;
  emitTask(events: TaskEvent[]): void;
}

/**
 * The cell an instance event belongs to for the `EventsByCellId` filter, or null for desired-LRP
 * events (which pass every filter). Changed events use the after key when set, else the before key;
 * crashed events use the before instance key.
 */
export function eventCellId(e: LrpEvent): string | null {
  switch (e.name) {
    case 'desired_lrp_created':
    case 'desired_lrp_changed':
    case 'desired_lrp_removed':
      return null;
    case 'actual_lrp_instance_created':
    case 'actual_lrp_instance_removed':
      return e.actual.cellId;
    case 'actual_lrp_instance_changed':
      return e.after.cellId || e.before.cellId;
    case 'actual_lrp_crashed':
      return e.before.cellId;
  }
}

/** BBS EventScore: crashed 2, events whose resulting LRP is RUNNING 1, everything else 0. */
export function eventScore(e: LrpEvent): number {
  switch (e.name) {
    case 'actual_lrp_crashed':
      return 2;
    case 'actual_lrp_instance_created':
      return e.actual.state === 'RUNNING' ? 1 : 0;
    case 'actual_lrp_instance_changed':
      return e.after.state === 'RUNNING' ? 1 : 0;
    default:
      return 0;
  }
}

/** Stable sort of one BBS operation's instance events by descending score. */
export function orderByScore(events: LrpEvent[]): LrpEvent[] {
  return events
    .map((e, i) => ({ e, i, s: eventScore(e) }))
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .map((x) => x.e);
}
