/**
 * The controller's records of what the platform says, reduced to what rule sets need, and their
 * conversion from BBS messages (docs/cf-interfaces.md, "BBS messages", "What Cloud Controller writes into BBS"). Records are plain JSON-able objects: the
 * leader keeps them in memory and mirrors the per-cell join (`ContainerRecord`) into Redis.
 */

import type { ValidationError } from '../lib/errors.js';
import { parseBbsRules } from '../model/asg-rule.js';
import type {
  ActualLRP,
  ActualLRPInfo,
  ActualLRPInstanceKey,
  ActualLRPKey,
  DesiredLRP,
  PortMapping,
  Task,
} from '../model/bbs-messages.js';
import { canonicalJson, normalizeRules, shortHash } from '../model/canonical.js';
import { isIp } from '../model/ip.js';
import type { EgressRule, NetInMapping, Workload } from '../model/types.js';

/** Network identity from `network.properties` (A.6). Empty strings when unknown. */
export interface NetworkIdentity {
  appGuid: string;
  spaceGuid: string;
  orgGuid: string;
  workload: Workload;
}

/** A DesiredLRP as rule sets need it. */
export interface DesiredInfo extends NetworkIdentity {
  processGuid: string;
  /** Content hash of the normalised `egress_rules` snapshot (CC compiled it at desire time). */
  snapshot: string;
  /**
   * When the desire happened, as far as the controller can tell (ms, controller clock): the time an
   * event announced it; 0 for LRPs found by a listing (desired at an unknown earlier time).
   */
  desiredAt: number;
}

/** One ActualLRP instance that has a container (instance guid = Garden handle). */
export interface InstanceInfo {
  handle: string;
  processGuid: string;
  index: number;
  cellId: string;
  /** UNCLAIMED, CLAIMED, RUNNING, CRASHED. */
  state: string;
  /** Container (overlay) IP; '' when BBS does not know it (yet). */
  ip: string;
  netIn: NetInMapping[];
}

/** A Task (or staging task) with a cell. */
export interface TaskInfo extends NetworkIdentity {
  handle: string;
  cellId: string;
  /** Pending, Running, Completed, Resolving. */
  state: string;
  snapshot: string;
  desiredAt: number;
}

/**
 * The per-cell join the rule set is computed from: one container BBS knows to be (or have been) on
 * the cell, with its app identity, NetIn and egress snapshot reference.
 */
export interface ContainerRecord extends NetworkIdentity {
  handle: string;
  kind: 'lrp' | 'task';
  /** RUNNING/CLAIMED instance or Running task: it has a container whose rules must be in force. */
  active: boolean;
  /** '' for tasks (BBS does not know task IPs) and instances without an address. */
  ip: string;
  netIn: NetInMapping[];
  /** Egress snapshot hash; null when the desired LRP is not known (yet). */
  snapshot: string | null;
  desiredAt: number;
  processGuid?: string;
}

/** What a cell's agent reports about one local container (its IP and Garden network metadata). */
export interface InventoryEntry extends NetworkIdentity {
  handle: string;
  ip: string;
}

/** An egress snapshot: normalised rules and their content hash. */
export interface EgressSnapshot {
  hash: string;
  rules: EgressRule[];
}

export const LRP_STAGING_DOMAIN = 'cf-app-staging';
const WORKLOADS: readonly Workload[] = ['app', 'task', 'staging'];

function str(v: string | null | undefined): string {
  return typeof v === 'string' ? v : '';
}

/** Identity from `network.properties`; `fallback` is the workload when `container_workload` is absent. */
export function identityFromProperties(
  props: Record<string, string> | null | undefined,
  fallback: Workload,
): NetworkIdentity {
  const p = props ?? {};
  const w = p.container_workload;
  return {
    appGuid: str(p.policy_group_id) || str(p.app_id),
    spaceGuid: str(p.space_id),
    orgGuid: str(p.org_id),
    workload: (WORKLOADS as readonly string[]).includes(w ?? '') ? (w as Workload) : fallback,
  };
}

/**
 * Normalise an `egress_rules` list. Invalid rules are skipped (and reported through `onInvalid`):
 * CC validated them once, and one bad rule must not take the container's other rules away.
 */
export function egressSnapshot(
  rules: unknown[] | null | undefined,
  onInvalid?: (err: ValidationError, index: number) => void,
): EgressSnapshot {
  const parsed = parseBbsRules(rules ?? [], { onInvalid: onInvalid ?? (() => {}) });
  return snapshotOf(parsed);
}

/** Normalised rules and their hash (= `ruleSetHash(rules)`). */
export function snapshotOf(rules: readonly EgressRule[]): EgressSnapshot {
  const normal = normalizeRules(rules);
  return { hash: shortHash(canonicalJson(normal)), rules: normal };
}

/** Convert a DesiredLRP (r3 listing or event) into a DesiredInfo plus its egress snapshot. */
export function desiredFromBbs(
  d: DesiredLRP,
  desiredAt: number,
  onInvalid?: (err: ValidationError, index: number) => void,
): { info: DesiredInfo; snapshot: EgressSnapshot } | null {
  const processGuid = str(d.processGuid);
  if (!processGuid) return null;
  const snapshot = egressSnapshot(d.egressRules as unknown[] | null | undefined, onInvalid);
  const id = identityFromProperties(d.network?.properties, 'app');
  return { info: { processGuid, ...id, snapshot: snapshot.hash, desiredAt }, snapshot };
}

function netIn(ports: readonly PortMapping[] | null | undefined): NetInMapping[] {
  const out: NetInMapping[] = [];
  const seen = new Set<number>();
  const add = (host: number | null | undefined, container: number | null | undefined) => {
    const h = host ?? 0;
    const c = container ?? 0;
    if (h > 0 && h <= 65535 && c > 0 && c <= 65535 && !seen.has(h)) {
      seen.add(h);
      out.push({ hostPort: h, containerPort: c });
    }
  };
  for (const p of ports ?? []) {
    add(p.hostPort, p.containerPort);
    add(p.hostTlsProxyPort, p.containerTlsProxyPort);
  }
  return out.sort((a, b) => a.hostPort - b.hostPort);
}

function validIp(ip: string | null | undefined): string {
  const s = str(ip);
  return s !== '' && isIp(s) ? s : '';
}

/** An instance from its key, instance key and info (net info, state). Null when it has no container. */
export function instanceFrom(
  key: ActualLRPKey | null | undefined,
  instanceKey: ActualLRPInstanceKey | null | undefined,
  info: Pick<ActualLRPInfo, 'state' | 'actualLrpNetInfo'> | null | undefined,
): InstanceInfo | null {
  const handle = str(instanceKey?.instanceGuid);
  const cellId = str(instanceKey?.cellId);
  const processGuid = str(key?.processGuid);
  if (!handle || !cellId || !processGuid) return null;
  return {
    handle,
    processGuid,
    index: key?.index ?? 0,
    cellId,
    state: str(info?.state) || 'UNCLAIMED',
    ip: validIp(info?.actualLrpNetInfo?.instanceAddress),
    netIn: netIn(info?.actualLrpNetInfo?.ports),
  };
}

export function instanceFromBbs(a: ActualLRP): InstanceInfo | null {
  return instanceFrom(a.actualLrpKey, a.actualLrpInstanceKey, a);
}

const TASK_STATES = ['Invalid', 'Pending', 'Running', 'Completed', 'Resolving'];

/** A Task with a cell as TaskInfo plus its egress snapshot; null without guid or cell. */
export function taskFromBbs(
  t: Task,
  desiredAt: number,
  onInvalid?: (err: ValidationError, index: number) => void,
): { info: TaskInfo; snapshot: EgressSnapshot } | null {
  const handle = str(t.taskGuid);
  const cellId = str(t.cellId);
  if (!handle || !cellId) return null;
  const def = t.taskDefinition;
  const snapshot = egressSnapshot(def?.egressRules as unknown[] | null | undefined, onInvalid);
  const fallback: Workload = t.domain === LRP_STAGING_DOMAIN ? 'staging' : 'task';
  const id = identityFromProperties(def?.network?.properties, fallback);
  const state = TASK_STATES[t.state ?? 0] ?? 'Invalid';
  return { info: { handle, cellId, state, ...id, snapshot: snapshot.hash, desiredAt }, snapshot };
}

export const ACTIVE_LRP_STATES: ReadonlySet<string> = new Set(['RUNNING', 'CLAIMED']);

/** The cell record of an instance joined with its desired LRP (which may be unknown). */
export function recordOfInstance(i: InstanceInfo, d: DesiredInfo | undefined): ContainerRecord {
  const rec: ContainerRecord = {
    handle: i.handle,
    kind: 'lrp',
    active: ACTIVE_LRP_STATES.has(i.state),
    ip: i.ip,
    appGuid: d?.appGuid ?? '',
    spaceGuid: d?.spaceGuid ?? '',
    orgGuid: d?.orgGuid ?? '',
    workload: d?.workload ?? 'app',
    netIn: i.netIn,
    snapshot: d?.snapshot ?? null,
    desiredAt: d?.desiredAt ?? 0,
    processGuid: i.processGuid,
  };
  return rec;
}

export function recordOfTask(t: TaskInfo): ContainerRecord {
  return {
    handle: t.handle,
    kind: 'task',
    active: t.state === 'Running',
    ip: '',
    appGuid: t.appGuid,
    spaceGuid: t.spaceGuid,
    orgGuid: t.orgGuid,
    workload: t.workload,
    netIn: [],
    snapshot: t.snapshot,
    desiredAt: t.desiredAt,
  };
}

/** Garden/Silk container metadata keys (docs/silk.md, "The container metadata store") → identity. */
export function identityFromMetadata(meta: Record<string, unknown> | null | undefined): NetworkIdentity {
  const props: Record<string, string> = {};
  for (const [k, v] of Object.entries(meta ?? {})) if (typeof v === 'string') props[k] = v;
  return identityFromProperties(props, 'app');
}
