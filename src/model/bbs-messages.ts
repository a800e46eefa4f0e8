/**
 * The BBS protobuf messages (generated from proto/*.proto into src/gen/bbs.js by `npm run gen:proto`)
 * with short type aliases and the helpers every BBS user needs: int64 ⇄ bigint, SSE event decoding
 * (docs/cf-interfaces.md, "BBS event streams") and response decoding with typed errors.
 *
 * Field names are camelCase (`actualLrpKey`, `instanceAddress`); `PlacementTags` and `Routable` keep
 * their capital letter as in BBS. int64 fields (`since`, `createdAt`, …: nanoseconds) are `Long`.
 * Decoded messages leave proto3 defaults on the prototype; a single-field `oneof` member (`routable`,
 * `Routable`, `index`) is `null` when absent, so `m.routable != null` tests presence.
 */
import $protobuf from 'protobufjs/minimal.js';
import { models } from '../gen/bbs.js';
import { ValidationError } from '../lib/errors.js';
import { BbsDecodeError } from './bbs-errors.js';

export { models };

/** long.js `Long`, the runtime type of every int64 field (the code is generated with --force-long). */
export type Long = models.ActualLRP['since'];

export type BbsErrorMessage = models.IError;
export type ModificationTag = models.IModificationTag;
export type ActualLRPKey = models.IActualLRPKey;
export type ActualLRPInstanceKey = models.IActualLRPInstanceKey;
export type ActualLRPNetInfo = models.IActualLRPNetInfo;
export type PortMapping = models.IPortMapping;
export type ActualLRPInternalRoute = models.IActualLRPInternalRoute;
export type ActualLRP = models.IActualLRP;
export type ActualLRPGroup = models.IActualLRPGroup;
export type ActualLRPInfo = models.IActualLRPInfo;
export type DesiredLRP = models.IDesiredLRP;
export type DesiredLRPKey = models.IDesiredLRPKey;
export type DesiredLRPResource = models.IDesiredLRPResource;
export type DesiredLRPSchedulingInfo = models.IDesiredLRPSchedulingInfo;
export type DesiredLRPUpdate = models.IDesiredLRPUpdate;
export type MetricTagValue = models.IMetricTagValue;
export type Network = models.INetwork;
export type ProtoRoutes = models.IProtoRoutes;
export type SecurityGroupRule = models.ISecurityGroupRule;
export type PortRange = models.IPortRange;
export type ICMPInfo = models.IICMPInfo;
export type EnvironmentVariable = models.IEnvironmentVariable;
export type CertificateProperties = models.ICertificateProperties;
export type Task = models.ITask;
export type TaskDefinition = models.ITaskDefinition;
export type CellPresence = models.ICellPresence;
export type CellCapacity = models.ICellCapacity;

/** ActualLRP.state values (BBS `actual_lrp.go`). */
export const ActualLRPState = {
  UNCLAIMED: 'UNCLAIMED',
  CLAIMED: 'CLAIMED',
  RUNNING: 'RUNNING',
  CRASHED: 'CRASHED',
} as const;
export type ActualLRPState = (typeof ActualLRPState)[keyof typeof ActualLRPState];

// ---------------------------------------------------------------------------------------------------
// int64 ⇄ bigint

interface LongStatic {
  fromBits(low: number, high: number, unsigned?: boolean): Long;
}
const LongImpl = $protobuf.util.Long as unknown as LongStatic | null;
if (!LongImpl) throw new Error('protobufjs found no long.js; int64 fields cannot be represented');

const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;
const UINT64_MAX = (1n << 64n) - 1n;

/**
 * An int64/uint64 field value as a bigint. Accepts what protobufjs may hold: a Long, a number (safe
 * integer), a decimal string; null/undefined (field absent) is the proto3 default 0n.
 */
export function longToBigInt(v: Long | number | string | bigint | null | undefined): bigint {
  if (v == null) return 0n;
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new ValidationError('int64', v, 'not a safe integer');
    return BigInt(v);
  }
  if (typeof v === 'string') {
    if (!/^-?\d+$/.test(v)) throw new ValidationError('int64', v, 'not a decimal integer');
    return BigInt(v);
  }
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? bits : BigInt.asIntN(64, bits);
}

/** A bigint (or safe-integer number) as a Long for an int64 (default) or uint64 field. */
export function bigIntToLong(v: bigint | number, unsigned = false): Long {
  let b: bigint;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new ValidationError('int64', v, 'not a safe integer');
    b = BigInt(v);
  } else {
    b = v;
  }
  const [min, max] = unsigned ? [0n, UINT64_MAX] : [INT64_MIN, INT64_MAX];
  if (b < min || b > max) {
    throw new ValidationError(unsigned ? 'uint64' : 'int64', b.toString(), 'out of range');
  }
  const bits = BigInt.asUintN(64, b);
  return LongImpl!.fromBits(Number(bits & 0xffffffffn) | 0, Number(bits >> 32n) | 0, unsigned);
}

// ---------------------------------------------------------------------------------------------------
// SSE events (docs/cf-interfaces.md, "BBS event streams")

/** Event name (`event:` line) → the decoded message type. */
export interface BbsEventMessages {
  desired_lrp_created: models.DesiredLRPCreatedEvent;
  desired_lrp_changed: models.DesiredLRPChangedEvent;
  desired_lrp_removed: models.DesiredLRPRemovedEvent;
  actual_lrp_instance_created: models.ActualLRPInstanceCreatedEvent;
  actual_lrp_instance_changed: models.ActualLRPInstanceChangedEvent;
  actual_lrp_instance_removed: models.ActualLRPInstanceRemovedEvent;
  actual_lrp_crashed: models.ActualLRPCrashedEvent;
  actual_lrp_created: models.ActualLRPCreatedEvent;
  actual_lrp_changed: models.ActualLRPChangedEvent;
  actual_lrp_removed: models.ActualLRPRemovedEvent;
  task_created: models.TaskCreatedEvent;
  task_changed: models.TaskChangedEvent;
  task_removed: models.TaskRemovedEvent;
}
export type BbsEventName = keyof BbsEventMessages;

/** Event name → the plain-object shape accepted by the encoder (what a simulator builds). */
export interface BbsEventProperties {
  desired_lrp_created: models.IDesiredLRPCreatedEvent;
  desired_lrp_changed: models.IDesiredLRPChangedEvent;
  desired_lrp_removed: models.IDesiredLRPRemovedEvent;
  actual_lrp_instance_created: models.IActualLRPInstanceCreatedEvent;
  actual_lrp_instance_changed: models.IActualLRPInstanceChangedEvent;
  actual_lrp_instance_removed: models.IActualLRPInstanceRemovedEvent;
  actual_lrp_crashed: models.IActualLRPCrashedEvent;
  actual_lrp_created: models.IActualLRPCreatedEvent;
  actual_lrp_changed: models.IActualLRPChangedEvent;
  actual_lrp_removed: models.IActualLRPRemovedEvent;
  task_created: models.ITaskCreatedEvent;
  task_changed: models.ITaskChangedEvent;
  task_removed: models.ITaskRemovedEvent;
}

interface Codec<M, P> {
  encode(m: P, w?: $protobuf.Writer): $protobuf.Writer;
  decode(r: Uint8Array | $protobuf.Reader): M;
}

/** Event name → the generated message class (encode/decode/create). */
export const BBS_EVENT_TYPES: {
  readonly [N in BbsEventName]: Codec<BbsEventMessages[N], BbsEventProperties[N]>;
} = {
  desired_lrp_created: models.DesiredLRPCreatedEvent,
  desired_lrp_changed: models.DesiredLRPChangedEvent,
  desired_lrp_removed: models.DesiredLRPRemovedEvent,
  actual_lrp_instance_created: models.ActualLRPInstanceCreatedEvent,
  actual_lrp_instance_changed: models.ActualLRPInstanceChangedEvent,
  actual_lrp_instance_removed: models.ActualLRPInstanceRemovedEvent,
  actual_lrp_crashed: models.ActualLRPCrashedEvent,
  actual_lrp_created: models.ActualLRPCreatedEvent,
  actual_lrp_changed: models.ActualLRPChangedEvent,
  actual_lrp_removed: models.ActualLRPRemovedEvent,
  task_created: models.TaskCreatedEvent,
  task_changed: models.TaskChangedEvent,
  task_removed: models.TaskRemovedEvent,
};

/** Event name → decoder of its protobuf payload (raw bytes, not base64). */
export const BBS_EVENT_DECODERS: {
  readonly [N in BbsEventName]: (bytes: Uint8Array) => BbsEventMessages[N];
} = Object.fromEntries(
  Object.entries(BBS_EVENT_TYPES).map(([name, codec]) => [name, (b: Uint8Array) => codec.decode(b)]),
) as { [N in BbsEventName]: (bytes: Uint8Array) => BbsEventMessages[N] };

export const BBS_EVENT_NAMES = Object.keys(BBS_EVENT_TYPES) as BbsEventName[];

export function isBbsEventName(name: string): name is BbsEventName {
  return Object.hasOwn(BBS_EVENT_TYPES, name);
}

/** A decoded event: `name` discriminates `message`'s type. */
export type DecodedBbsEvent = {
  [N in BbsEventName]: { name: N; message: BbsEventMessages[N] };
}[BbsEventName];

// Standard base64 (RFC 4648 `+/`, padded), as BBS writes `data:` lines.
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Decodes one SSE event's `data:` (standard base64 of the protobuf message).
 * Returns `null` for an unknown event name (skip it, like the Go client's ErrUnrecognizedEventType).
 * Throws `BbsDecodeError` for bad base64, an empty payload (Go's ErrNoData) or a bad protobuf.
 */
export function decodeEvent(name: string, base64: string): DecodedBbsEvent | null {
  if (!isBbsEventName(name)) return null;
  const what = `event ${name}`;
  const data = base64.replace(/[\r\n]/g, '');
  if (!BASE64.test(data)) {
    throw new BbsDecodeError('base64', what, 'data is not standard padded base64', {
      event: name,
      length: data.length,
    });
  }
  const bytes = Buffer.from(data, 'base64');
  if (bytes.length === 0) throw new BbsDecodeError('empty', what, 'empty payload', { event: name });
  const decode = BBS_EVENT_DECODERS[name];
  const message = decodeMessage<BbsEventMessages[BbsEventName]>({ decode }, bytes, what, { event: name });
  return { name, message } as DecodedBbsEvent;
}

/** Encodes an event message as BBS puts it on a `data:` line (standard padded base64). */
export function encodeEvent<N extends BbsEventName>(name: N, message: BbsEventProperties[N]): string {
  const codec = BBS_EVENT_TYPES[name] as Codec<BbsEventMessages[N], BbsEventProperties[N]>;
  return Buffer.from(codec.encode(message).finish()).toString('base64');
}

/**
 * Decodes a protobuf message (e.g. a response body) with `codec` (a generated class), turning any
 * decoder failure (truncated field, bad varint, bad wire type, invalid UTF-8) into `BbsDecodeError`.
 * An empty buffer is a valid all-defaults message.
 */
export function decodeMessage<M>(
  codec: { decode(r: Uint8Array): M },
  bytes: Uint8Array,
  what: string,
  context: Record<string, unknown> = {},
): M {
  try {
    return codec.decode(bytes);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new BbsDecodeError('protobuf', what, detail, { ...context, bytes: bytes.length }, { cause: err });
  }
}
