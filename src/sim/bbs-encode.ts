/**
 * Simulator records → BBS protobuf bytes, all through protobufjs (the generated `models` and its
 * `Writer`). Records are immutable, so encodings are cached by object identity (WeakMap): a list of
 * 250k ActualLRPs is encoded once and re-served from the cache until the records change. List
 * responses splice the cached message bytes into their repeated field with the Writer (tag +
 * length + bytes), which protobuf allows in any order.
 *
 * Longer than ~400 lines: protobuf encoding, with caches, of every BBS message the simulator
 * serves.
 */
import $protobuf from 'protobufjs/minimal.js';
import { bigIntToLong, models } from '../model/bbs-messages.js';
import type { LrpEvent, TaskEvent } from './events.js';
import type { BbsEgressRule, SimActualLrp, SimCell, SimDesiredLrp, SimTask, SimWorld } from './world.js';

const { Writer } = $protobuf;

/** BBS responses carry `error` in field 1 and their payload (one message or the list) in field 2. */
export const ERROR_FIELD = 1;
export const PAYLOAD_FIELD = 2;
/** `DesiredLRP.egress_rules`. */
const EGRESS_RULES_FIELD = 20;

/** Wire tag of a length-delimited field (field number, wire type 2), as the generated code writes it. */
function delimitedTag(field: number): number {
  return ((field << 3) | 2) >>> 0;
}

/** One length-delimited field holding already-encoded message bytes. */
export function embed(field: number, bytes: Uint8Array): Uint8Array {
  return Writer.create().uint32(delimitedTag(field)).bytes(bytes).finish();
}

/** Target size of one piece of a list response body. */
const LIST_PIECE_BYTES = 1 << 20;

/** Byte length of a list response made of `messages` (for Content-Length before streaming it). */
export function listResponseLength(messages: readonly Uint8Array[]): number {
  const tag = delimitedTag(PAYLOAD_FIELD);
  const head = Writer.create();
  let total = 0;
  for (const m of messages) {
    head.reset();
    total += head.uint32(tag).uint32(m.length).pos + m.length;
  }
  return total;
}

/**
 * The body of a BBS list response, each already-encoded message spliced into the repeated payload
 * field (2), in pieces of about `pieceBytes`. Every piece is a view into one reused buffer, valid
 * until the next piece is requested: a 170 MB listing costs one 2 MB buffer, not 170 MB of new
 * memory (whose garbage made V8 run full collections of the simulator's large heap per listing).
 */
export function* listResponsePieces(
  messages: Iterable<Uint8Array>,
  pieceBytes = LIST_PIECE_BYTES,
): Generator<Uint8Array> {
  const tag = delimitedTag(PAYLOAD_FIELD);
  const w = Writer.create();
  for (const m of messages) {
    w.uint32(tag).bytes(m);
    if (w.pos >= pieceBytes) {
      yield w.finish(true);
      w.reset();
    }
  }
  if (w.pos > 0) yield w.finish(true);
}

/** A whole list response in one buffer (small lists, tests, the corrupt-body fault). */
export function listResponse(messages: Iterable<Uint8Array>): Uint8Array {
  return Buffer.concat(Array.from(listResponsePieces(messages), (piece) => Buffer.from(piece)));
}

// ---- message builders ----

function metricTagsOf(world: SimWorld, d: SimDesiredLrp): Record<string, models.IMetricTagValue> {
  const app = world.apps.get(d.appGuid);
  const space = world.spaces.get(d.spaceGuid);
  const org = world.orgs.get(d.orgGuid);
  return {
    source_id: { static: d.appGuid },
    process_id: { static: d.processGuid.slice(0, 36) },
    process_type: { static: d.processType },
    app_id: { static: d.appGuid },
    app_name: { static: app?.name ?? '' },
    space_id: { static: d.spaceGuid },
    space_name: { static: space?.name ?? '' },
    organization_id: { static: d.orgGuid },
    organization_name: { static: org?.name ?? '' },
    process_instance_id: { dynamic: models.MetricTagValue.DynamicValue.INSTANCE_GUID },
    instance_id: { dynamic: models.MetricTagValue.DynamicValue.INDEX },
  };
}

function egressRuleMessage(r: BbsEgressRule): models.ISecurityGroupRule {
  const m: models.ISecurityGroupRule = {
    protocol: r.protocol,
    destinations: r.destinations,
    annotations: r.annotations,
  };
  if (r.ports) m.ports = r.ports;
  if (r.portRange) m.portRange = r.portRange;
  if (r.icmpInfo) m.icmpInfo = r.icmpInfo;
  if (r.log) m.log = true;
  return m;
}

const egressCache = new WeakMap<readonly BbsEgressRule[], Uint8Array>();

/**
 * The egress_rules (field 20) of a DesiredLRP, encoded once per shared rule list: thousands of
 * DesiredLRPs share the rule list of their space, so this is the bulk of a desired listing.
 */
function egressField(rules: readonly BbsEgressRule[]): Uint8Array {
  let hit = egressCache.get(rules);
  if (!hit) {
    const w = Writer.create();
    const tag = delimitedTag(EGRESS_RULES_FIELD);
    for (const r of rules)
      models.SecurityGroupRule.encode(egressRuleMessage(r), w.uint32(tag).fork()).ldelim();
    hit = w.finish();
    egressCache.set(rules, hit);
  }
  return hit;
}

function routesMessage(routes: Readonly<Record<string, unknown>>): models.IProtoRoutes {
  const out: Record<string, Uint8Array> = {};
  for (const [k, v] of Object.entries(routes)) out[k] = Buffer.from(JSON.stringify(v));
  return { routes: out };
}

function modTag(t: { epoch: string; index: number }): models.IModificationTag {
  return { epoch: t.epoch, index: t.index };
}

const desiredCache = new WeakMap<SimDesiredLrp, Uint8Array>();

/** A full (r3) DesiredLRP's message bytes, cached per record (egress rules spliced in from their cache). */
export function encodeDesired(world: SimWorld, d: SimDesiredLrp): Uint8Array {
  let hit = desiredCache.get(d);
  if (!hit) {
    const m: models.IDesiredLRP = {
      processGuid: d.processGuid,
      domain: d.domain,
      rootFs: d.rootFs,
      instances: d.instances,
      environmentVariables: [],
      startTimeoutMs: bigIntToLong(BigInt(d.startTimeoutMs)),
      diskMb: d.diskMb,
      memoryMb: d.memoryMb,
      cpuWeight: d.cpuWeight,
      privileged: false,
      ports: d.ports,
      routes: routesMessage(d.routes),
      logSource: 'CELL',
      logGuid: d.appGuid,
      metricsGuid: d.appGuid,
      annotation: d.annotation,
      modificationTag: modTag(d.modificationTag),
      legacyDownloadUser: 'vcap',
      trustedSystemCertificatesPath: '/etc/cf-system-certificates',
      network: { properties: { ...d.network } },
      PlacementTags: d.placementTags,
      maxPids: d.maxPids,
      certificateProperties: {
        organizationalUnit: [`organization:${d.orgGuid}`, `space:${d.spaceGuid}`, `app:${d.appGuid}`],
      },
      metricTags: metricTagsOf(world, d),
      logRateLimit: { bytesPerSecond: bigIntToLong(-1n) },
    };
    hit = models.DesiredLRP.encode(m).raw(egressField(d.egressRules)).finish();
    desiredCache.set(d, hit);
  }
  return hit;
}

export function schedulingInfoMessage(d: SimDesiredLrp): models.IDesiredLRPSchedulingInfo {
  return {
    desiredLrpKey: { processGuid: d.processGuid, domain: d.domain, logGuid: d.appGuid },
    annotation: d.annotation,
    instances: d.instances,
    desiredLrpResource: { memoryMb: d.memoryMb, diskMb: d.diskMb, rootFs: d.rootFs, maxPids: d.maxPids },
    routes: routesMessage(d.routes),
    modificationTag: modTag(d.modificationTag),
    PlacementTags: d.placementTags,
  };
}

export function routingInfoMessage(d: SimDesiredLrp): models.IDesiredLRP {
  return {
    processGuid: d.processGuid,
    domain: d.domain,
    instances: d.instances,
    routes: routesMessage(d.routes),
    modificationTag: modTag(d.modificationTag),
    logGuid: d.appGuid,
  };
}

function netInfo(a: SimActualLrp): models.IActualLRPNetInfo {
  return {
    address: a.address,
    ports: a.ports.map((p) => ({ ...p })),
    instanceAddress: a.instanceAddress,
    preferredAddress: models.ActualLRPNetInfo.PreferredAddress.UNKNOWN,
  };
}

/** Resolved metric tags the rep sets on a started instance. */
function actualMetricTags(world: SimWorld, a: SimActualLrp): Record<string, string> {
  if (a.state !== 'RUNNING') return {};
  const d = world.desiredLrps.get(a.processGuid);
  if (!d) return {};
  const app = world.apps.get(d.appGuid);
  const space = world.spaces.get(d.spaceGuid);
  const org = world.orgs.get(d.orgGuid);
  return {
    app_id: d.appGuid,
    app_name: app?.name ?? '',
    instance_id: String(a.index),
    organization_id: d.orgGuid,
    organization_name: org?.name ?? '',
    process_id: d.processGuid.slice(0, 36),
    process_instance_id: a.instanceGuid,
    process_type: d.processType,
    source_id: d.appGuid,
    space_id: d.spaceGuid,
    space_name: space?.name ?? '',
  };
}

/** The instance state ActualLRP and ActualLRPInfo (the halves of a changed event) share. */
function instanceState(a: SimActualLrp) {
  return {
    actualLrpNetInfo: netInfo(a),
    crashCount: a.crashCount,
    crashReason: a.crashReason,
    state: a.state,
    placementError: a.placementError,
    since: bigIntToLong(a.since),
    modificationTag: modTag(a.modificationTag),
    presence: models.ActualLRP.Presence.ORDINARY,
    availabilityZone: a.availabilityZone,
  } satisfies models.IActualLRP & models.IActualLRPInfo;
}

export function actualMessage(world: SimWorld, a: SimActualLrp, withMetricTags: boolean): models.IActualLRP {
  const m: models.IActualLRP = {
    actualLrpKey: { processGuid: a.processGuid, index: a.index, domain: a.domain },
    actualLrpInstanceKey: { instanceGuid: a.instanceGuid, cellId: a.cellId },
    ...instanceState(a),
    actualLrpInternalRoutes: [],
    routable: a.routable,
  };
  if (withMetricTags) m.metricTags = actualMetricTags(world, a);
  return m;
}

/**
 * ActualLRP message bytes, cached per record: the hot path (250k instances in a large foundation),
 * shared by the list routes and the event stream.
 */
export class ActualEncoder {
  private readonly cache = new WeakMap<SimActualLrp, Uint8Array>();
  /**
   * Reused for every record: a fresh Writer grows 128 → 1 KiB through pooled buffers, and the cached
   * results would keep those slabs (several times the message size) alive.
   */
  private readonly writer = Writer.create();

  constructor(
    private readonly world: SimWorld,
    private readonly withMetricTags: boolean,
  ) {}

  /** The ActualLRP message bytes. */
  encode(a: SimActualLrp): Uint8Array {
    let hit = this.cache.get(a);
    if (!hit) {
      const w = this.writer;
      w.reset();
      hit = models.ActualLRP.encode(actualMessage(this.world, a, this.withMetricTags), w).finish();
      this.cache.set(a, hit);
    }
    return hit;
  }

  /** One side of an `actual_lrp_instance_changed` event. */
  info(a: SimActualLrp): models.IActualLRPInfo {
    return { ...instanceState(a), Routable: a.routable };
  }
}

const TASK_STATES = { Pending: 1, Running: 2, Completed: 3, Resolving: 4 } as const;

export function taskMessage(world: SimWorld, t: SimTask): models.ITask {
  const app = world.apps.get(t.appGuid);
  const space = world.spaces.get(t.spaceGuid);
  const org = world.orgs.get(t.orgGuid);
  return {
    taskDefinition: {
      rootFs: t.rootFs,
      environmentVariables: [],
      diskMb: t.diskMb,
      memoryMb: t.memoryMb,
      cpuWeight: 25,
      privileged: false,
      logSource: 'APP/TASK/' + t.name,
      logGuid: t.appGuid,
      metricsGuid: t.appGuid,
      resultFile: '',
      completionCallbackUrl: `https://cloud-controller-ng.service.cf.internal:9023/internal/v4/tasks/${t.taskGuid}/completed`,
      annotation: '',
      egressRules: t.egressRules.map(egressRuleMessage),
      legacyDownloadUser: 'vcap',
      trustedSystemCertificatesPath: '/etc/cf-system-certificates',
      network: { properties: { ...t.network } },
      placementTags: [],
      maxPids: 1024,
      certificateProperties: {
        organizationalUnit: [`organization:${t.orgGuid}`, `space:${t.spaceGuid}`, `app:${t.appGuid}`],
      },
      metricTags: {
        source_id: { static: t.appGuid },
        organization_id: { static: t.orgGuid },
        space_id: { static: t.spaceGuid },
        app_id: { static: t.appGuid },
        organization_name: { static: org?.name ?? '' },
        space_name: { static: space?.name ?? '' },
        app_name: { static: app?.name ?? '' },
      },
    },
    taskGuid: t.taskGuid,
    domain: t.domain,
    createdAt: bigIntToLong(t.createdAt),
    updatedAt: bigIntToLong(t.updatedAt),
    firstCompletedAt: bigIntToLong(t.firstCompletedAt),
    state: TASK_STATES[t.state],
    cellId: t.cellId,
    result: t.result,
    failed: t.failed,
    failureReason: t.failureReason,
  };
}

export function cellMessage(c: SimCell): models.ICellPresence {
  return {
    cellId: c.id,
    repAddress: c.repAddress,
    zone: c.zone,
    capacity: { ...c.capacity },
    rootfsProviders: [
      { name: 'preloaded', properties: ['cflinuxfs4'] },
      { name: 'docker', properties: [] },
    ],
    placementTags: [],
    optionalPlacementTags: [],
    repUrl: c.repUrl,
  };
}

// ---- events ----

/** Protobuf payload of an LRP event (what goes base64-encoded on the `data:` line). */
export function encodeLrpEvent(world: SimWorld, actuals: ActualEncoder, e: LrpEvent): Uint8Array {
  switch (e.name) {
    case 'desired_lrp_created':
    case 'desired_lrp_removed':
      // desired_lrp = 1
      return embed(1, encodeDesired(world, e.desired));
    case 'desired_lrp_changed':
      // before = 1, after = 2
      return Writer.create()
        .uint32(delimitedTag(1))
        .bytes(encodeDesired(world, e.before))
        .uint32(delimitedTag(2))
        .bytes(encodeDesired(world, e.after))
        .finish();
    case 'actual_lrp_instance_created':
    case 'actual_lrp_instance_removed':
      // actual_lrp = 1
      return embed(1, actuals.encode(e.actual));
    case 'actual_lrp_instance_changed':
      return models.ActualLRPInstanceChangedEvent.encode({
        actualLrpKey: { processGuid: e.after.processGuid, index: e.after.index, domain: e.after.domain },
        actualLrpInstanceKey: {
          instanceGuid: e.after.instanceGuid || e.before.instanceGuid,
          cellId: e.after.cellId || e.before.cellId,
        },
        before: actuals.info(e.before),
        after: actuals.info(e.after),
      }).finish();
    case 'actual_lrp_crashed':
      return models.ActualLRPCrashedEvent.encode({
        actualLrpKey: { processGuid: e.after.processGuid, index: e.after.index, domain: e.after.domain },
        actualLrpInstanceKey: { instanceGuid: e.before.instanceGuid, cellId: e.before.cellId },
        crashCount: e.after.crashCount,
        crashReason: e.after.crashReason,
        since: bigIntToLong(e.after.since),
      }).finish();
  }
}

export function encodeTaskEvent(world: SimWorld, e: TaskEvent): Uint8Array {
  switch (e.name) {
    case 'task_created':
      return models.TaskCreatedEvent.encode({ task: taskMessage(world, e.task) }).finish();
    case 'task_removed':
      return models.TaskRemovedEvent.encode({ task: taskMessage(world, e.task) }).finish();
    case 'task_changed':
      return models.TaskChangedEvent.encode({
        before: taskMessage(world, e.before),
        after: taskMessage(world, e.after),
      }).finish();
  }
}
