// Golden-bytes tests for every message in proto/*.proto. The expected bytes are built by hand from
// the field numbers in docs/cf-interfaces.md ("BBS messages") with a tiny byte builder
// (tag = field << 3 | wire type, base-128 varints, length prefixes), never by the code under test.
// Each case asserts that encoding the object gives exactly those bytes (protobufjs emits fields in
// ascending number order, map entries in insertion order) and that decoding them gives the values.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type $protobuf from 'protobufjs/minimal.js';
import { CfnetError, ValidationError } from '../../src/lib/errors.js';
import { BbsDecodeError, BbsError, bbsErrorTypeName, throwIfBbsError } from '../../src/model/bbs-errors.js';
import {
  BBS_EVENT_DECODERS,
  BBS_EVENT_NAMES,
  bigIntToLong,
  decodeEvent,
  decodeMessage,
  encodeEvent,
  longToBigInt,
  models,
} from '../../src/model/bbs-messages.js';

// ---------------------------------------------------------------------------------------------------
// Byte builder

type Bytes = number[];

function varint(n: number | bigint): Bytes {
  let v = BigInt.asUintN(64, BigInt(n)); // negative int32/int64 → 10-byte two's complement
  const out: Bytes = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}
const VARINT = 0;
const LEN = 2;
const tag = (field: number, wire: number): Bytes => varint((field << 3) | wire);
/** A varint field (int32, uint32, int64, enum, bool). */
const vi = (field: number, n: number | bigint | boolean): Bytes => [
  ...tag(field, VARINT),
  ...varint(typeof n === 'boolean' ? (n ? 1 : 0) : n),
];
/** A length-delimited field holding raw bytes (a `bytes` field or an encoded sub-message). */
const ld = (field: number, bytes: Bytes): Bytes => [...tag(field, LEN), ...varint(bytes.length), ...bytes];
const str = (field: number, s: string): Bytes => ld(field, [...Buffer.from(s, 'utf8')]);
/** An embedded message made of the given field encodings. */
const msg = (field: number, ...fields: Bytes[]): Bytes => ld(field, fields.flat());
/** A map entry: key = 1, value = 2. */
const entry = (field: number, key: string, value: Bytes): Bytes => msg(field, str(1, key), value);
const cat = (...parts: Bytes[]): Bytes => parts.flat();
const u8 = (b: Bytes): Uint8Array => Uint8Array.from(b);
const utf8 = (s: string): Bytes => [...Buffer.from(s, 'utf8')];

// ---------------------------------------------------------------------------------------------------
// Golden case machinery

interface AnyCodec {
  encode(m: never): $protobuf.Writer;
  decode(b: Uint8Array): unknown;
  toObject(m: never, o?: $protobuf.IConversionOptions): Record<string, unknown>;
}
type TypeName = keyof typeof models;
const codecOf = (type: TypeName): AnyCodec => models[type] as unknown as AnyCodec;

interface Fixture {
  v: Record<string, unknown>;
  b: Bytes;
}

function isLong(v: unknown): v is { low: number; high: number; unsigned: boolean } {
  return typeof v === 'object' && v !== null && 'low' in v && 'high' in v && 'unsigned' in v;
}

/** The expected `toObject({longs: String, bytes: String})` form of an input object. */
function plain(v: unknown): unknown {
  if (isLong(v)) return longToBigInt(v as never).toString();
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (Array.isArray(v)) return v.map(plain);
  if (typeof v === 'object' && v !== null) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  }
  return v;
}

const covered = new Set<string>();

function hex(b: Uint8Array | Bytes): string {
  return Buffer.from(b instanceof Uint8Array ? b : Uint8Array.from(b)).toString('hex');
}

/** Encode `value` → exactly `bytes`; decode `bytes` → `value`. Returns the decoded message. */
function golden(type: TypeName, value: Record<string, unknown>, bytes: Bytes): Record<string, unknown> {
  covered.add(type);
  const codec = codecOf(type);
  const encoded = codec.encode(value as never).finish();
  assert.equal(hex(encoded), hex(bytes), `${type}: encoded bytes`);
  const decoded = codec.decode(u8(bytes)) as Record<string, unknown>;
  assert.deepEqual(
    codec.toObject(decoded as never, { longs: String, bytes: String }),
    plain(value),
    `${type}: decoded`,
  );
  return decoded;
}

// ---------------------------------------------------------------------------------------------------
// Fixtures (value + hand-built bytes), reused inside bigger messages

const SINCE = 1700000000123456789n; // > 2^53: not representable as a double
const PG = '5a7d9c3e-1b2f-4c6d-8e9f-0a1b2c3d4e5f-c0ffee00-1234-4abc-9def-0123456789ab';
const APP = '5a7d9c3e-1b2f-4c6d-8e9f-0a1b2c3d4e5f';

const modTag: Fixture = {
  v: { epoch: '0f1e2d3c-epoch', index: 2 },
  b: cat(str(1, '0f1e2d3c-epoch'), vi(2, 2)),
};
const lrpKey: Fixture = {
  v: { processGuid: PG, index: 2, domain: 'cf-apps' },
  b: cat(str(1, PG), vi(2, 2), str(3, 'cf-apps')),
};
const instKey: Fixture = {
  v: { instanceGuid: '6b1e0c2d-3f4a-4b5c-6d7e-8f90', cellId: 'cell-z1-0' },
  b: cat(str(1, '6b1e0c2d-3f4a-4b5c-6d7e-8f90'), str(2, 'cell-z1-0')),
};
const portMapping: Fixture = {
  v: { containerPort: 8080, hostPort: 61001, containerTlsProxyPort: 61443, hostTlsProxyPort: 61002 },
  b: cat(vi(1, 8080), vi(2, 61001), vi(3, 61443), vi(4, 61002)),
};
const netInfo: Fixture = {
  v: {
    address: '10.0.16.5',
    ports: [portMapping.v, { containerPort: 2222, hostPort: 61003 }],
    instanceAddress: '10.255.7.3',
    preferredAddress: models.ActualLRPNetInfo.PreferredAddress.INSTANCE,
    instanceIpv6Address: 'fd00::7:3',
  },
  b: cat(
    str(1, '10.0.16.5'),
    ld(2, portMapping.b),
    msg(2, vi(1, 2222), vi(2, 61003)),
    str(3, '10.255.7.3'),
    vi(4, 1),
    str(5, 'fd00::7:3'),
  ),
};
const internalRoute: Fixture = { v: { hostname: 'app.apps.internal' }, b: str(1, 'app.apps.internal') };
const actualLrp: Fixture = {
  v: {
    actualLrpKey: lrpKey.v,
    actualLrpInstanceKey: instKey.v,
    actualLrpNetInfo: netInfo.v,
    crashCount: 1,
    crashReason: 'APP/PROC/WEB: Exited with status 1',
    state: 'RUNNING',
    placementError: 'found no compatible cell',
    since: bigIntToLong(SINCE),
    modificationTag: modTag.v,
    presence: models.ActualLRP.Presence.EVACUATING,
    actualLrpInternalRoutes: [internalRoute.v],
    metricTags: { app_id: APP, process_type: 'web' },
    routable: true,
    availabilityZone: 'z1',
  },
  b: cat(
    ld(1, lrpKey.b),
    ld(2, instKey.b),
    ld(3, netInfo.b),
    vi(4, 1),
    str(5, 'APP/PROC/WEB: Exited with status 1'),
    str(6, 'RUNNING'),
    str(7, 'found no compatible cell'),
    vi(8, SINCE),
    ld(9, modTag.b),
    vi(10, 1),
    ld(11, internalRoute.b),
    entry(12, 'app_id', str(2, APP)),
    entry(12, 'process_type', str(2, 'web')),
    vi(13, true),
    str(14, 'z1'),
  ),
};
// As gogo (nullable=false) sends an UNCLAIMED LRP: empty sub-messages are present, routable false.
const unclaimedLrp: Fixture = {
  v: {
    actualLrpKey: lrpKey.v,
    actualLrpInstanceKey: {},
    actualLrpNetInfo: {},
    state: 'UNCLAIMED',
    modificationTag: {},
  },
  b: cat(ld(1, lrpKey.b), ld(2, []), ld(3, []), str(6, 'UNCLAIMED'), ld(9, [])),
};
const actualLrpInfo: Fixture = {
  v: {
    actualLrpNetInfo: netInfo.v,
    crashCount: 3,
    crashReason: 'oom',
    state: 'CRASHED',
    placementError: 'none',
    since: bigIntToLong(SINCE),
    modificationTag: modTag.v,
    presence: models.ActualLRP.Presence.SUSPECT,
    Routable: false,
    availabilityZone: 'z2',
  },
  b: cat(
    ld(3, netInfo.b),
    vi(4, 3),
    str(5, 'oom'),
    str(6, 'CRASHED'),
    str(7, 'none'),
    vi(8, SINCE),
    ld(9, modTag.b),
    vi(10, 2),
    vi(11, false),
    str(12, 'z2'),
  ),
};
const actualLrpGroup: Fixture = {
  v: { instance: actualLrp.v, evacuating: unclaimedLrp.v },
  b: cat(ld(1, actualLrp.b), ld(2, unclaimedLrp.b)),
};

const portRange: Fixture = { v: { start: 1000, end: 2000 }, b: cat(vi(1, 1000), vi(2, 2000)) };
const icmpAll: Fixture = { v: { type: -1, code: -1 }, b: cat(vi(1, -1), vi(2, -1)) };
const tcpRule: Fixture = {
  v: {
    protocol: 'tcp',
    destinations: ['10.0.0.0/8', '192.168.1.1-192.168.1.9,172.16.0.1'],
    ports: [80, 443, 8080],
    log: true,
    annotations: ['security_group_id:1b3c5d7e'],
  },
  b: cat(
    str(1, 'tcp'),
    str(2, '10.0.0.0/8'),
    str(2, '192.168.1.1-192.168.1.9,172.16.0.1'),
    vi(3, 80), // unpacked: one tag per element, wire type 0
    vi(3, 443),
    vi(3, 8080),
    vi(6, true),
    str(7, 'security_group_id:1b3c5d7e'),
  ),
};
const udpRangeRule: Fixture = {
  v: { protocol: 'udp', destinations: ['10.10.0.0/16'], portRange: portRange.v },
  b: cat(str(1, 'udp'), str(2, '10.10.0.0/16'), ld(4, portRange.b)),
};
const icmpRule: Fixture = {
  v: { protocol: 'icmp', destinations: ['0.0.0.0/0'], icmpInfo: icmpAll.v },
  b: cat(str(1, 'icmp'), str(2, '0.0.0.0/0'), ld(5, icmpAll.b)),
};

const envVar: Fixture = {
  v: { name: 'LANG', value: 'en_US.UTF-8' },
  b: cat(str(1, 'LANG'), str(2, 'en_US.UTF-8')),
};
const network: Fixture = {
  v: { properties: { policy_group_id: APP, ports: '2222,8080', container_workload: 'app' } },
  b: cat(
    entry(1, 'policy_group_id', str(2, APP)),
    entry(1, 'ports', str(2, '2222,8080')),
    entry(1, 'container_workload', str(2, 'app')),
  ),
};
const certProps: Fixture = {
  v: { organizationalUnit: ['organization:o-1', 'space:s-1', `app:${APP}`] },
  b: cat(str(1, 'organization:o-1'), str(1, 'space:s-1'), str(1, `app:${APP}`)),
};
const logRateLimit: Fixture = { v: { bytesPerSecond: bigIntToLong(16384n) }, b: vi(1, 16384) };
const cfRouterJson = '[{"hostnames":["app.example.com"],"port":8080}]';
const internalRouterJson = '[{"hostname":"app.apps.internal"}]';
const protoRoutes: Fixture = {
  v: { routes: { 'cf-router': u8(utf8(cfRouterJson)), 'internal-router': u8(utf8(internalRouterJson)) } },
  b: cat(
    entry(1, 'cf-router', ld(2, utf8(cfRouterJson))),
    entry(1, 'internal-router', ld(2, utf8(internalRouterJson))),
  ),
};
const metricTagStatic: Fixture = { v: { static: 'web' }, b: str(1, 'web') };
const metricTagDynamic: Fixture = {
  v: { dynamic: models.MetricTagValue.DynamicValue.INSTANCE_GUID },
  b: vi(2, 2),
};
const desiredKey: Fixture = {
  v: { processGuid: PG, domain: 'cf-apps', logGuid: APP },
  b: cat(str(1, PG), str(2, 'cf-apps'), str(3, APP)),
};
const desiredResource: Fixture = {
  v: { memoryMb: 1024, diskMb: 2048, rootFs: 'preloaded:cflinuxfs4', maxPids: 1024 },
  b: cat(vi(1, 1024), vi(2, 2048), str(3, 'preloaded:cflinuxfs4'), vi(4, 1024)),
};
// Opaque nested messages (kept as bytes): arbitrary but realistic encodings.
const runAction = cat(msg(3, str(1, '/tmp/lifecycle/launcher'), str(2, 'app')));
const volumePlacement = str(1, 'nfsv3driver');

const desiredLrp: Fixture = {
  v: {
    processGuid: PG,
    domain: 'cf-apps',
    rootFs: 'preloaded:cflinuxfs4',
    instances: 3,
    environmentVariables: [envVar.v],
    setup: u8(runAction),
    action: u8(runAction),
    deprecatedStartTimeoutS: 60,
    monitor: u8(runAction),
    diskMb: 1024,
    memoryMb: 256,
    cpuWeight: 10,
    privileged: true,
    ports: [8080, 2222],
    routes: protoRoutes.v,
    logSource: 'CELL',
    logGuid: APP,
    metricsGuid: APP,
    annotation: '1700000000.123',
    egressRules: [tcpRule.v, icmpRule.v],
    modificationTag: modTag.v,
    cachedDependencies: [u8(str(1, 'buildpack'))],
    legacyDownloadUser: 'vcap',
    trustedSystemCertificatesPath: '/etc/cf-system-certificates',
    volumeMounts: [u8(str(1, 'nfsv3driver'))],
    network: network.v,
    startTimeoutMs: bigIntToLong(60000n),
    PlacementTags: ['iso-seg-1'],
    maxPids: 1024,
    certificateProperties: certProps.v,
    imageUsername: 'user',
    imagePassword: 'secret',
    checkDefinition: u8(msg(1, msg(1, vi(1, 8080)))),
    imageLayers: [u8(str(1, 'layer'))],
    metricTags: {
      process_type: metricTagStatic.v,
      instance_id: { dynamic: models.MetricTagValue.DynamicValue.INDEX },
    },
    sidecars: [u8(vi(2, 64))],
    logRateLimit: logRateLimit.v,
    volumeMountedFiles: [u8(str(1, '/etc/cf-service-bindings/x'))],
    updateStrategy: models.DesiredLRP.UpdateStrategy.RECREATE,
  },
  b: cat(
    str(1, PG),
    str(2, 'cf-apps'),
    str(3, 'preloaded:cflinuxfs4'),
    vi(4, 3),
    ld(5, envVar.b),
    ld(6, runAction),
    ld(7, runAction),
    vi(8, 60),
    ld(9, runAction),
    vi(10, 1024),
    vi(11, 256),
    vi(12, 10),
    vi(13, true),
    vi(14, 8080), // unpacked
    vi(14, 2222),
    ld(15, protoRoutes.b),
    str(16, 'CELL'),
    str(17, APP),
    str(18, APP),
    str(19, '1700000000.123'),
    ld(20, tcpRule.b),
    ld(20, icmpRule.b),
    ld(21, modTag.b),
    ld(22, str(1, 'buildpack')),
    str(23, 'vcap'),
    str(24, '/etc/cf-system-certificates'),
    ld(25, str(1, 'nfsv3driver')),
    ld(26, network.b),
    vi(27, 60000), // start_timeout_ms = 27
    str(28, 'iso-seg-1'), // PlacementTags = 28
    vi(29, 1024),
    ld(30, certProps.b),
    str(31, 'user'),
    str(32, 'secret'),
    ld(33, msg(1, msg(1, vi(1, 8080)))),
    ld(34, str(1, 'layer')),
    entry(35, 'process_type', ld(2, metricTagStatic.b)),
    entry(35, 'instance_id', msg(2, vi(2, 1))),
    ld(36, vi(2, 64)),
    ld(37, logRateLimit.b),
    ld(38, str(1, '/etc/cf-service-bindings/x')),
    vi(39, 1),
  ),
};
const smallDesiredLrp: Fixture = {
  v: { processGuid: PG, domain: 'cf-apps', instances: 1 },
  b: cat(str(1, PG), str(2, 'cf-apps'), vi(4, 1)),
};
const schedulingInfo: Fixture = {
  v: {
    desiredLrpKey: desiredKey.v,
    annotation: 'a-1',
    instances: 2,
    desiredLrpResource: desiredResource.v,
    routes: protoRoutes.v,
    modificationTag: modTag.v,
    volumePlacement: u8(volumePlacement),
    PlacementTags: ['iso-seg-1', 'iso-seg-2'],
  },
  b: cat(
    ld(1, desiredKey.b),
    str(2, 'a-1'),
    vi(3, 2),
    ld(4, desiredResource.b),
    ld(5, protoRoutes.b),
    ld(6, modTag.b),
    ld(7, volumePlacement),
    str(8, 'iso-seg-1'),
    str(8, 'iso-seg-2'),
  ),
};
const desiredUpdate: Fixture = {
  // oneof members: zero values are present and sent
  v: {
    instances: 0,
    routes: protoRoutes.v,
    annotation: '',
    metricTags: { app_name: { static: 'my-app' } },
    imageUsername: '',
    imagePassword: 'pw',
  },
  b: cat(
    vi(1, 0),
    ld(2, protoRoutes.b),
    str(3, ''),
    entry(4, 'app_name', msg(2, str(1, 'my-app'))),
    str(5, ''),
    str(6, 'pw'),
  ),
};

const taskDefinition: Fixture = {
  v: {
    rootFs: 'preloaded:cflinuxfs4',
    environmentVariables: [envVar.v],
    action: u8(runAction),
    diskMb: 1024,
    memoryMb: 256,
    cpuWeight: 5,
    privileged: true,
    logSource: 'APP/TASK/migrate',
    logGuid: APP,
    metricsGuid: APP,
    resultFile: '/tmp/result.json',
    completionCallbackUrl: 'https://cc.service.cf.internal:9023/internal/v4/tasks/t-1/completed',
    annotation: 'task-annotation',
    egressRules: [udpRangeRule.v],
    cachedDependencies: [u8(str(1, 'dep'))],
    legacyDownloadUser: 'vcap',
    trustedSystemCertificatesPath: '/etc/cf-system-certificates',
    volumeMounts: [u8(str(1, 'smbdriver'))],
    network: { properties: { container_workload: 'task' } },
    placementTags: ['iso-seg-1'],
    maxPids: 100,
    certificateProperties: certProps.v,
    imageUsername: 'u',
    imagePassword: 'p',
    imageLayers: [u8(str(2, 'https://blobstore/droplet'))],
    logRateLimit: logRateLimit.v,
    metricTags: { source_id: { static: APP } },
    volumeMountedFiles: [u8(str(1, 'f'))],
  },
  b: cat(
    str(1, 'preloaded:cflinuxfs4'),
    ld(2, envVar.b),
    ld(3, runAction),
    vi(4, 1024),
    vi(5, 256),
    vi(6, 5),
    vi(7, true),
    str(8, 'APP/TASK/migrate'),
    str(9, APP),
    str(10, APP),
    str(11, '/tmp/result.json'),
    str(12, 'https://cc.service.cf.internal:9023/internal/v4/tasks/t-1/completed'),
    str(13, 'task-annotation'),
    ld(14, udpRangeRule.b),
    ld(15, str(1, 'dep')),
    str(16, 'vcap'),
    str(17, '/etc/cf-system-certificates'),
    ld(18, str(1, 'smbdriver')),
    msg(19, entry(1, 'container_workload', str(2, 'task'))),
    str(20, 'iso-seg-1'),
    vi(21, 100),
    ld(22, certProps.b),
    str(23, 'u'),
    str(24, 'p'),
    ld(25, str(2, 'https://blobstore/droplet')),
    ld(26, logRateLimit.b),
    entry(27, 'source_id', msg(2, str(1, APP))),
    ld(28, str(1, 'f')),
  ),
};
const CREATED = 1700000000000000001n;
const UPDATED = 1700000009000000002n;
const task: Fixture = {
  v: {
    taskDefinition: taskDefinition.v,
    taskGuid: 'task-guid-1',
    domain: 'cf-tasks',
    createdAt: bigIntToLong(CREATED),
    updatedAt: bigIntToLong(UPDATED),
    firstCompletedAt: bigIntToLong(UPDATED + 1n),
    state: models.Task.State.Completed,
    cellId: 'cell-z2-1',
    result: '{"ok":true}',
    failed: true,
    failureReason: 'exit status 1',
    rejectionCount: 2,
    rejectionReason: 'insufficient resources',
  },
  b: cat(
    ld(1, taskDefinition.b),
    str(2, 'task-guid-1'),
    str(3, 'cf-tasks'),
    vi(4, CREATED),
    vi(5, UPDATED),
    vi(6, UPDATED + 1n),
    vi(7, 3),
    str(8, 'cell-z2-1'),
    str(9, '{"ok":true}'),
    vi(10, true),
    str(11, 'exit status 1'),
    vi(12, 2),
    str(13, 'insufficient resources'),
  ),
};
const smallTask: Fixture = {
  v: { taskGuid: 'task-guid-2', state: models.Task.State.Pending },
  b: cat(str(2, 'task-guid-2'), vi(7, 1)),
};
const notFound: Fixture = {
  v: { type: models.Error.Type.ResourceNotFound, message: 'the requested resource could not be found' },
  b: cat(vi(1, 13), str(2, 'the requested resource could not be found')),
};
const cellPresence: Fixture = {
  v: {
    cellId: 'cell-z1-0',
    repAddress: 'http://10.0.16.5:1800',
    zone: 'z1',
    capacity: { memoryMb: 16384, diskMb: 65536, containers: 250 },
    rootfsProviders: [{ name: 'preloaded', properties: ['cflinuxfs4'] }, { name: 'docker' }],
    placementTags: ['iso-seg-1'],
    optionalPlacementTags: ['opt-1'],
    repUrl: 'https://cell-z1-0.cell.service.cf.internal:1801',
    annotations: { az: 'z1' },
  },
  b: cat(
    str(1, 'cell-z1-0'),
    str(2, 'http://10.0.16.5:1800'),
    str(3, 'z1'),
    msg(4, vi(1, 16384), vi(2, 65536), vi(3, 250)),
    msg(5, str(1, 'preloaded'), str(2, 'cflinuxfs4')),
    msg(5, str(1, 'docker')),
    str(6, 'iso-seg-1'),
    str(7, 'opt-1'),
    str(8, 'https://cell-z1-0.cell.service.cf.internal:1801'),
    entry(9, 'az', str(2, 'z1')),
  ),
};

// ---------------------------------------------------------------------------------------------------

describe('BBS protobuf golden bytes: basic messages', () => {
  it('Error: type + message; type 0 is not on the wire', () => {
    golden('Error', notFound.v, notFound.b);
    golden('Error', { type: models.Error.Type.Unrecoverable, message: 'x' }, cat(vi(1, 29), str(2, 'x')));
    const d = golden('Error', { message: 'm' }, str(2, 'm')) as unknown as models.Error;
    assert.equal(d.type, models.Error.Type.UnknownError); // default from the prototype
    const enc = models.Error.encode({ type: models.Error.Type.UnknownError, message: 'm' }).finish();
    assert.equal(hex(enc), hex(str(2, 'm')));
  });

  it('Error.Type enum numbers match the reference, reserved numbers are absent', () => {
    const t = models.Error.Type;
    const expected: Record<string, number> = {
      UnknownError: 0,
      InvalidRecord: 3,
      InvalidRequest: 4,
      InvalidResponse: 5,
      InvalidProtobufMessage: 6,
      InvalidJSON: 7,
      FailedToOpenEnvelope: 8,
      InvalidStateTransition: 9,
      ResourceConflict: 11,
      ResourceExists: 12,
      ResourceNotFound: 13,
      RouterError: 14,
      ActualLRPCannotBeClaimed: 15,
      ActualLRPCannotBeStarted: 16,
      ActualLRPCannotBeCrashed: 17,
      ActualLRPCannotBeFailed: 18,
      ActualLRPCannotBeRemoved: 19,
      ActualLRPCannotBeUnclaimed: 21,
      RunningOnDifferentCell: 24,
      GUIDGeneration: 26,
      Deserialize: 27,
      Deadlock: 28,
      Unrecoverable: 29,
      LockCollision: 30,
      Timeout: 31,
    };
    for (const [name, n] of Object.entries(expected))
      assert.equal((t as unknown as Record<string, number>)[name], n);
    for (const r of [1, 2, 10, 20, 22, 23, 25]) assert.equal(bbsErrorTypeName(r), `Type${r}`);
  });

  it('ModificationTag, ActualLRPKey, ActualLRPInstanceKey, PortMapping, ActualLRPInternalRoute', () => {
    golden('ModificationTag', modTag.v, modTag.b);
    golden('ActualLRPKey', lrpKey.v, lrpKey.b);
    golden('ActualLRPInstanceKey', instKey.v, instKey.b);
    golden('PortMapping', portMapping.v, portMapping.b);
    golden('ActualLRPInternalRoute', internalRoute.v, internalRoute.b);
  });

  it('ActualLRPNetInfo with PreferredAddress enum', () => {
    golden('ActualLRPNetInfo', netInfo.v, netInfo.b);
    golden(
      'ActualLRPNetInfo',
      { address: '10.0.16.6', preferredAddress: models.ActualLRPNetInfo.PreferredAddress.HOST },
      cat(str(1, '10.0.16.6'), vi(4, 2)),
    );
  });

  it('ActualLRP: every field; int64 since > 2^53 round-trips exactly', () => {
    const d = golden('ActualLRP', actualLrp.v, actualLrp.b) as unknown as models.ActualLRP;
    assert.equal(longToBigInt(d.since), SINCE);
    assert.equal(d.routable, true);
    assert.equal(d.presence, models.ActualLRP.Presence.EVACUATING);
  });

  it('ActualLRP: oneof optional_routable sends false explicitly (field 13 = 0)', () => {
    const v = { actualLrpKey: lrpKey.v, routable: false };
    const d = golden('ActualLRP', v, cat(ld(1, lrpKey.b), [0x68, 0x00])) as unknown as models.ActualLRP;
    assert.equal(d.routable, false);
    assert.equal(d.optionalRoutable, 'routable');
  });

  it('ActualLRP: routable unset → no field 13 and no presence after decoding', () => {
    const d = golden('ActualLRP', unclaimedLrp.v, unclaimedLrp.b) as unknown as models.ActualLRP;
    assert.equal(d.routable, null);
    assert.equal(Object.hasOwn(d, 'routable'), false);
    assert.equal(d.optionalRoutable, undefined);
    // gogo nullable=false empties are present (decoded as empty messages)
    assert.deepEqual(
      models.ActualLRPInstanceKey.toObject(d.actualLrpInstanceKey as models.ActualLRPInstanceKey),
      {},
    );
    assert.ok(d.modificationTag);
  });

  it('ActualLRPGroup (deprecated)', () => {
    golden('ActualLRPGroup', actualLrpGroup.v, actualLrpGroup.b);
  });

  it('MetricTagValue: static or dynamic', () => {
    golden('MetricTagValue', metricTagStatic.v, metricTagStatic.b);
    golden('MetricTagValue', metricTagDynamic.v, metricTagDynamic.b);
  });

  it('Network: properties map entries (key=1, value=2)', () => {
    golden('Network', network.v, network.b);
  });

  it('PortRange, ICMPInfo (-1 is a 10-byte varint)', () => {
    golden('PortRange', portRange.v, portRange.b);
    golden('ICMPInfo', icmpAll.v, icmpAll.b);
    assert.equal(hex(icmpAll.b.slice(0, 11)), '08ffffffffffffffffff01');
  });

  it('SecurityGroupRule: ports unpacked (one varint tag 0x18 per element)', () => {
    golden('SecurityGroupRule', tcpRule.v, tcpRule.b);
    golden('SecurityGroupRule', udpRangeRule.v, udpRangeRule.b);
    golden('SecurityGroupRule', icmpRule.v, icmpRule.b);
    const enc = models.SecurityGroupRule.encode({ ports: [1, 2] }).finish();
    assert.equal(hex(enc), '18011802');
  });

  it('SecurityGroupRule: the decoder also accepts packed ports (wire type 2)', () => {
    const packed = cat(str(1, 'tcp'), ld(3, cat(varint(80), varint(443), varint(8080))));
    const d = models.SecurityGroupRule.decode(u8(packed));
    assert.deepEqual(d.ports, [80, 443, 8080]);
    // mixed: packed block followed by an unpacked element
    const mixed = cat(ld(3, cat(varint(80), varint(443))), vi(3, 53));
    assert.deepEqual(models.SecurityGroupRule.decode(u8(mixed)).ports, [80, 443, 53]);
  });

  it('EnvironmentVariable, CertificateProperties, LogRateLimit, ProtoRoutes (map<string,bytes>)', () => {
    golden('EnvironmentVariable', envVar.v, envVar.b);
    golden('CertificateProperties', certProps.v, certProps.b);
    golden('LogRateLimit', logRateLimit.v, logRateLimit.b);
    const d = golden('ProtoRoutes', protoRoutes.v, protoRoutes.b) as unknown as models.ProtoRoutes;
    assert.equal(Buffer.from(d.routes['cf-router'] as Uint8Array).toString(), cfRouterJson);
  });

  it('DesiredLRPKey, DesiredLRPResource, DesiredLRPSchedulingInfo (PlacementTags = 8)', () => {
    golden('DesiredLRPKey', desiredKey.v, desiredKey.b);
    golden('DesiredLRPResource', desiredResource.v, desiredResource.b);
    golden('DesiredLRPSchedulingInfo', schedulingInfo.v, schedulingInfo.b);
  });

  it('DesiredLRP: all 39 fields; start_timeout_ms = 27, PlacementTags = 28, metric_tags map', () => {
    const d = golden('DesiredLRP', desiredLrp.v, desiredLrp.b) as unknown as models.DesiredLRP;
    assert.equal(longToBigInt(d.startTimeoutMs), 60000n);
    assert.deepEqual(d.PlacementTags, ['iso-seg-1']);
    assert.deepEqual(d.ports, [8080, 2222]);
    assert.equal(d.metricTags.instance_id?.dynamic, models.MetricTagValue.DynamicValue.INDEX);
    assert.equal(d.egressRules[1]?.icmpInfo?.type, -1);
    // the specific encodings, spelled out
    const enc = hex(models.DesiredLRP.encode({ startTimeoutMs: bigIntToLong(27n) }).finish());
    assert.equal(enc, 'd8011b'); // tag (27<<3|0) = 216 = d8 01
    assert.equal(hex(models.DesiredLRP.encode({ PlacementTags: ['a'] }).finish()), 'e2010161'); // 28<<3|2 = 226
    assert.equal(hex(models.DesiredLRP.encode({ ports: [8080, 2222] }).finish()), '70903f70ae11');
  });

  it('DesiredLRP: the decoder also accepts packed ports (field 14, wire type 2)', () => {
    const d = models.DesiredLRP.decode(u8(ld(14, cat(varint(8080), varint(2222)))));
    assert.deepEqual(d.ports, [8080, 2222]);
  });

  it('DesiredLRPUpdate: oneof fields send zero values; metric_tags map of messages', () => {
    const d = golden(
      'DesiredLRPUpdate',
      desiredUpdate.v,
      desiredUpdate.b,
    ) as unknown as models.DesiredLRPUpdate;
    assert.equal(d.instances, 0);
    assert.equal(d.annotation, '');
    golden('DesiredLRPUpdate', { annotation: 'x' }, str(3, 'x'));
    assert.equal(models.DesiredLRPUpdate.decode(u8(str(3, 'x'))).instances, null);
  });

  it('TaskDefinition: all 28 fields', () => {
    golden('TaskDefinition', taskDefinition.v, taskDefinition.b);
  });

  it('Task: all 13 fields, int64 timestamps exact', () => {
    const d = golden('Task', task.v, task.b) as unknown as models.Task;
    assert.equal(longToBigInt(d.createdAt), CREATED);
    assert.equal(longToBigInt(d.updatedAt), UPDATED);
    assert.equal(longToBigInt(d.firstCompletedAt), UPDATED + 1n);
    golden('Task', smallTask.v, smallTask.b);
  });

  it('CellCapacity, Provider, CellPresence (annotations map = 9)', () => {
    golden('CellCapacity', { memoryMb: 1, diskMb: 2, containers: 3 }, cat(vi(1, 1), vi(2, 2), vi(3, 3)));
    golden(
      'Provider',
      { name: 'docker', properties: ['a', 'b'] },
      cat(str(1, 'docker'), str(2, 'a'), str(2, 'b')),
    );
    golden('CellPresence', cellPresence.v, cellPresence.b);
  });
});

describe('BBS protobuf golden bytes: events', () => {
  it('ActualLRPInfo: numbering starts at 3; Routable (11) in a oneof', () => {
    const d = golden('ActualLRPInfo', actualLrpInfo.v, actualLrpInfo.b) as unknown as models.ActualLRPInfo;
    assert.equal(actualLrpInfo.b[0], 0x1a); // field 3, wire type 2
    assert.equal(d.Routable, false);
    assert.equal(longToBigInt(d.since), SINCE);
    assert.equal(models.ActualLRPInfo.decode(u8(str(6, 'RUNNING'))).Routable, null);
  });

  it('ActualLRPInstanceCreated/Changed/RemovedEvent', () => {
    golden(
      'ActualLRPInstanceCreatedEvent',
      { actualLrp: actualLrp.v, traceId: 'tr-1' },
      cat(ld(1, actualLrp.b), str(2, 'tr-1')),
    );
    golden(
      'ActualLRPInstanceChangedEvent',
      {
        actualLrpKey: lrpKey.v,
        actualLrpInstanceKey: instKey.v,
        before: { actualLrpNetInfo: {}, state: 'CLAIMED' },
        after: actualLrpInfo.v,
        traceId: 'tr-2',
      },
      cat(
        ld(1, lrpKey.b),
        ld(2, instKey.b),
        msg(3, ld(3, []), str(6, 'CLAIMED')),
        ld(4, actualLrpInfo.b),
        str(5, 'tr-2'),
      ),
    );
    golden(
      'ActualLRPInstanceRemovedEvent',
      { actualLrp: unclaimedLrp.v, traceId: 'tr-3' },
      cat(ld(1, unclaimedLrp.b), str(2, 'tr-3')),
    );
  });

  it('ActualLRPCrashedEvent', () => {
    const d = golden(
      'ActualLRPCrashedEvent',
      {
        actualLrpKey: lrpKey.v,
        actualLrpInstanceKey: instKey.v,
        crashCount: 4,
        crashReason: 'Exited with status 137',
        since: bigIntToLong(SINCE),
      },
      cat(ld(1, lrpKey.b), ld(2, instKey.b), vi(3, 4), str(4, 'Exited with status 137'), vi(5, SINCE)),
    ) as unknown as models.ActualLRPCrashedEvent;
    assert.equal(longToBigInt(d.since), SINCE);
  });

  it('DesiredLRPCreated/Changed/RemovedEvent', () => {
    golden(
      'DesiredLRPCreatedEvent',
      { desiredLrp: desiredLrp.v, traceId: 't' },
      cat(ld(1, desiredLrp.b), str(2, 't')),
    );
    golden(
      'DesiredLRPChangedEvent',
      { before: smallDesiredLrp.v, after: desiredLrp.v, traceId: 't2' },
      cat(ld(1, smallDesiredLrp.b), ld(2, desiredLrp.b), str(3, 't2')),
    );
    golden(
      'DesiredLRPRemovedEvent',
      { desiredLrp: smallDesiredLrp.v, traceId: 't3' },
      cat(ld(1, smallDesiredLrp.b), str(2, 't3')),
    );
  });

  it('TaskCreated/Changed/RemovedEvent', () => {
    golden('TaskCreatedEvent', { task: task.v }, ld(1, task.b));
    golden(
      'TaskChangedEvent',
      { before: smallTask.v, after: task.v },
      cat(ld(1, smallTask.b), ld(2, task.b)),
    );
    golden('TaskRemovedEvent', { task: smallTask.v }, ld(1, smallTask.b));
  });

  it('deprecated ActualLRPCreated/Changed/RemovedEvent (ActualLRPGroup payloads)', () => {
    golden('ActualLRPCreatedEvent', { actualLrpGroup: actualLrpGroup.v }, ld(1, actualLrpGroup.b));
    golden(
      'ActualLRPChangedEvent',
      { before: { instance: unclaimedLrp.v }, after: actualLrpGroup.v },
      cat(msg(1, ld(1, unclaimedLrp.b)), ld(2, actualLrpGroup.b)),
    );
    golden(
      'ActualLRPRemovedEvent',
      { actualLrpGroup: { instance: actualLrp.v } },
      msg(1, ld(1, actualLrp.b)),
    );
  });

  it('EventsByCellId', () => {
    golden('EventsByCellId', { cellId: 'cell-z1-0' }, str(1, 'cell-z1-0'));
    assert.equal(models.EventsByCellId.encode({ cellId: '' }).finish().length, 0); // "" = all cells
  });
});

describe('BBS protobuf golden bytes: requests and responses', () => {
  it('ActualLRPsRequest: index in oneof optional_index; index=0 is emitted', () => {
    golden(
      'ActualLRPsRequest',
      { domain: 'cf-apps', cellId: 'cell-z1-0', processGuid: PG, index: 0 },
      cat(str(1, 'cf-apps'), str(2, 'cell-z1-0'), str(3, PG), [0x20, 0x00]),
    );
    golden('ActualLRPsRequest', { index: 7 }, vi(4, 7));
    const d = golden(
      'ActualLRPsRequest',
      { cellId: 'c' },
      str(2, 'c'),
    ) as unknown as models.ActualLRPsRequest;
    assert.equal(d.index, null);
    assert.equal(models.ActualLRPsRequest.decode(u8([0x20, 0x00])).index, 0);
  });

  it('ActualLRPsResponse, ActualLRPsByProcessGuidsRequest/Response, ActualLRPLifecycleResponse', () => {
    golden(
      'ActualLRPsResponse',
      { actualLrps: [actualLrp.v, unclaimedLrp.v] },
      cat(ld(2, actualLrp.b), ld(2, unclaimedLrp.b)),
    );
    golden('ActualLRPsByProcessGuidsRequest', { processGuids: [PG, 'p2'] }, cat(str(1, PG), str(1, 'p2')));
    golden(
      'ActualLRPsByProcessGuidsResponse',
      { error: notFound.v, actualLrps: [unclaimedLrp.v] },
      cat(ld(1, notFound.b), ld(2, unclaimedLrp.b)),
    );
    golden('ActualLRPLifecycleResponse', { error: notFound.v }, ld(1, notFound.b));
  });

  it('a present Error with type 0 is a failure (empty Error → 0a 00)', () => {
    const d = golden(
      'ActualLRPsResponse',
      { error: {} },
      [0x0a, 0x00],
    ) as unknown as models.ActualLRPsResponse;
    assert.ok(d.error);
    assert.equal(d.error.type, 0);
    assert.throws(
      () => throwIfBbsError(d, { path: '/v1/actual_lrps/list' }),
      (e: unknown) =>
        e instanceof BbsError &&
        e instanceof CfnetError &&
        e.code === 'CFNET_BBS_ERROR' &&
        e.type === 0 &&
        e.typeName === 'UnknownError' &&
        e.context.path === '/v1/actual_lrps/list',
    );
    const withMsg = golden(
      'ActualLRPsResponse',
      { error: { message: 'the request failed for an unknown reason' } },
      msg(1, str(2, 'the request failed for an unknown reason')),
    ) as unknown as models.ActualLRPsResponse;
    assert.throws(() => throwIfBbsError(withMsg), /UnknownError: the request failed for an unknown reason/);
    const ok = models.ActualLRPsResponse.decode(u8(ld(2, unclaimedLrp.b)));
    assert.equal(ok.error, null);
    assert.equal(throwIfBbsError(ok), ok);
    const nf = models.DesiredLRPResponse.decode(u8(ld(1, notFound.b)));
    assert.throws(
      () => throwIfBbsError(nf),
      (e: unknown) =>
        e instanceof BbsError &&
        e.is(models.Error.Type.ResourceNotFound) &&
        e.typeName === 'ResourceNotFound',
    );
  });

  it('DesiredLRP requests and responses', () => {
    golden(
      'DesiredLRPsRequest',
      { domain: 'cf-apps', processGuids: [PG], appGuids: [APP, 'a2'] },
      cat(str(1, 'cf-apps'), str(2, PG), str(3, APP), str(3, 'a2')),
    );
    golden(
      'DesiredLRPsResponse',
      { desiredLrps: [desiredLrp.v, smallDesiredLrp.v] },
      cat(ld(2, desiredLrp.b), ld(2, smallDesiredLrp.b)),
    );
    golden('DesiredLRPResponse', { error: notFound.v }, ld(1, notFound.b));
    golden('DesiredLRPResponse', { desiredLrp: desiredLrp.v }, ld(2, desiredLrp.b));
    golden('DesiredLRPByProcessGuidRequest', { processGuid: PG }, str(1, PG));
    golden(
      'DesiredLRPSchedulingInfosResponse',
      { desiredLrpSchedulingInfos: [schedulingInfo.v] },
      ld(2, schedulingInfo.b),
    );
    golden(
      'DesiredLRPSchedulingInfoByProcessGuidResponse',
      { error: notFound.v, desiredLrpSchedulingInfo: schedulingInfo.v },
      cat(ld(1, notFound.b), ld(2, schedulingInfo.b)),
    );
    golden('DesiredLRPLifecycleResponse', { error: notFound.v }, ld(1, notFound.b));
    golden('DesireLRPRequest', { desiredLrp: desiredLrp.v }, ld(1, desiredLrp.b));
    golden(
      'UpdateDesiredLRPRequest',
      { processGuid: PG, update: desiredUpdate.v },
      cat(str(1, PG), ld(2, desiredUpdate.b)),
    );
    golden('RemoveDesiredLRPRequest', { processGuid: PG }, str(1, PG));
  });

  it('Task requests and responses', () => {
    golden(
      'TasksRequest',
      { domain: 'cf-tasks', cellId: 'cell-z2-1' },
      cat(str(1, 'cf-tasks'), str(2, 'cell-z2-1')),
    );
    golden('TasksResponse', { tasks: [task.v, smallTask.v] }, cat(ld(2, task.b), ld(2, smallTask.b)));
    golden('TaskByGuidRequest', { taskGuid: 'task-guid-1' }, str(1, 'task-guid-1'));
    golden(
      'TaskResponse',
      { error: notFound.v, task: smallTask.v },
      cat(ld(1, notFound.b), ld(2, smallTask.b)),
    );
    golden('TaskGuidRequest', { taskGuid: 'task-guid-1' }, str(1, 'task-guid-1'));
    golden('TaskLifecycleResponse', { error: notFound.v }, ld(1, notFound.b));
    golden(
      'DesireTaskRequest',
      { taskDefinition: taskDefinition.v, taskGuid: 'task-guid-1', domain: 'cf-tasks' },
      cat(ld(1, taskDefinition.b), str(2, 'task-guid-1'), str(3, 'cf-tasks')),
    );
  });

  it('PingResponse, DomainsResponse, UpsertDomainRequest/Response, CellsResponse', () => {
    golden('PingResponse', { available: true }, [0x08, 0x01]);
    golden(
      'DomainsResponse',
      { domains: ['cf-apps', 'cf-tasks'] },
      cat(str(2, 'cf-apps'), str(2, 'cf-tasks')),
    );
    golden('UpsertDomainRequest', { domain: 'cf-apps', ttl: 120 }, cat(str(1, 'cf-apps'), vi(2, 120)));
    golden('UpsertDomainResponse', { error: notFound.v }, ld(1, notFound.b));
    golden('CellsResponse', { cells: [cellPresence.v] }, ld(2, cellPresence.b));
  });

  it('every message type in proto/ has a golden case', () => {
    const all = Object.keys(models).filter(
      (k) => typeof (models as Record<string, unknown>)[k] === 'function',
    );
    const missing = all.filter((k) => !covered.has(k));
    assert.deepEqual(missing, []);
    assert.ok(all.length >= 60, `only ${all.length} message types`);
  });
});

// ---------------------------------------------------------------------------------------------------
// SSE payloads as BBS sends them: standard base64 of the event message. Assembled by hand (outside the
// code under test) in the shape BBS emits: gogo nullable=false sub-messages present even when empty
// (the CLAIMED `before` has an empty actual_lrp_net_info), `Routable` false sent explicitly.

const INSTANCE_CHANGED_B64 =
  'ClYKSTVhN2Q5YzNlLTFiMmYtNGM2ZC04ZTlmLTBhMWIyYzNkNGU1Zi1jMGZmZWUwMC0xMjM0LTRhYmMtOWRlZi0wMTIzNDU2Nzg5YWIQARoHY2YtYXBwcxIp' +
  'Chw2YjFlMGMyZC0zZjRhLTRiNWMtNmQ3ZS04ZjkwEgljZWxsLXoxLTAaKxoAMgdDTEFJTUVEQJWal+zjn+fLF0oSCg4wZjFlMmQzYy1lcG9jaBABWAAi' +
  'WRoqCgkxMC4wLjE2LjUSDwiQPxDJ3AMYg+ADIMrcAxoKMTAuMjU1LjcuMyABMgdSVU5OSU5HQLGhzvv1n+fLF0oSCg4wZjFlMmQzYy1lcG9jaBACWAFi' +
  'AnoxKiA0YmY5MmYzNTc3YjM0ZGE2YTNjZTkyOWQwZTBlNDczNg==';
const TASK_CHANGED_B64 =
  'CpUBCmYKFHByZWxvYWRlZDpjZmxpbnV4ZnM0IIAIKIACSgphcHAtZ3VpZC0xmgE7Ch0KD3BvbGljeV9ncm91cF9pZBIKYXBwLWd1aWQtMQoaChJjb250' +
  'YWluZXJfd29ya2xvYWQSBHRhc2sSC3Rhc2stZ3VpZC0xGghjZi10YXNrcyCBgKix45/nyxcogYCoseOf58sXOAESoAEKZgoUcHJlbG9hZGVkOmNmbGlu' +
  'dXhmczQggAgogAJKCmFwcC1ndWlkLTGaATsKHQoPcG9saWN5X2dyb3VwX2lkEgphcHAtZ3VpZC0xChoKEmNvbnRhaW5lcl93b3JrbG9hZBIEdGFzaxIL' +
  'dGFzay1ndWlkLTEaCGNmLXRhc2tzIIGAqLHjn+fLFyiCtOz0hKDnyxc4AkIJY2VsbC16Mi0x';

describe('BBS SSE event payloads', () => {
  it('decodes an actual_lrp_instance_changed event (CLAIMED → RUNNING) from base64', () => {
    const ev = decodeEvent('actual_lrp_instance_changed', INSTANCE_CHANGED_B64);
    assert.ok(ev && ev.name === 'actual_lrp_instance_changed');
    const m = ev.message;
    assert.equal(m.actualLrpKey?.processGuid, PG);
    assert.equal(m.actualLrpKey?.index, 1);
    assert.equal(m.actualLrpKey?.domain, 'cf-apps');
    assert.equal(m.actualLrpInstanceKey?.instanceGuid, '6b1e0c2d-3f4a-4b5c-6d7e-8f90');
    assert.equal(m.actualLrpInstanceKey?.cellId, 'cell-z1-0');
    const before = m.before as models.ActualLRPInfo;
    const after = m.after as models.ActualLRPInfo;
    assert.equal(before.state, 'CLAIMED');
    assert.equal(before.Routable, false); // present and false
    assert.equal(before.optionalRoutable, 'Routable');
    assert.ok(before.actualLrpNetInfo); // empty but present
    assert.equal(before.actualLrpNetInfo.address, '');
    assert.equal(longToBigInt(before.since), 1700000000123456789n);
    assert.equal(before.modificationTag?.index, 1);
    assert.equal(after.state, 'RUNNING');
    assert.equal(after.Routable, true);
    assert.equal(after.availabilityZone, 'z1');
    assert.equal(longToBigInt(after.since), 1700000004987654321n);
    assert.equal(after.modificationTag?.epoch, '0f1e2d3c-epoch');
    assert.equal(after.modificationTag?.index, 2);
    const net = after.actualLrpNetInfo as models.ActualLRPNetInfo;
    assert.equal(net.address, '10.0.16.5');
    assert.equal(net.instanceAddress, '10.255.7.3');
    assert.equal(net.preferredAddress, models.ActualLRPNetInfo.PreferredAddress.INSTANCE);
    assert.deepEqual(
      net.ports.map((p) => [p.containerPort, p.hostPort, p.containerTlsProxyPort, p.hostTlsProxyPort]),
      [[8080, 61001, 61443, 61002]],
    );
    assert.equal(m.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    // re-encoding the decoded message gives the same payload byte for byte
    assert.equal(encodeEvent('actual_lrp_instance_changed', m), INSTANCE_CHANGED_B64);
  });

  it('decodes a task_changed event (Pending → Running) from base64', () => {
    const ev = decodeEvent('task_changed', TASK_CHANGED_B64);
    assert.ok(ev && ev.name === 'task_changed');
    const before = ev.message.before as models.Task;
    const after = ev.message.after as models.Task;
    assert.equal(before.state, models.Task.State.Pending);
    assert.equal(after.state, models.Task.State.Running);
    assert.equal(after.taskGuid, 'task-guid-1');
    assert.equal(after.domain, 'cf-tasks');
    assert.equal(after.cellId, 'cell-z2-1');
    assert.equal(longToBigInt(after.createdAt), 1700000000000000001n);
    assert.equal(longToBigInt(after.updatedAt), 1700000009000000002n);
    assert.equal(after.taskDefinition?.memoryMb, 256);
    assert.equal(after.taskDefinition?.logGuid, 'app-guid-1');
    assert.deepEqual(after.taskDefinition?.network?.properties, {
      policy_group_id: 'app-guid-1',
      container_workload: 'task',
    });
    assert.equal(encodeEvent('task_changed', ev.message), TASK_CHANGED_B64);
  });

  it('maps every event name of the reference table to its message type', () => {
    assert.deepEqual([...BBS_EVENT_NAMES].sort(), [
      'actual_lrp_changed',
      'actual_lrp_crashed',
      'actual_lrp_created',
      'actual_lrp_instance_changed',
      'actual_lrp_instance_created',
      'actual_lrp_instance_removed',
      'actual_lrp_removed',
      'desired_lrp_changed',
      'desired_lrp_created',
      'desired_lrp_removed',
      'task_changed',
      'task_created',
      'task_removed',
    ]);
    const crashed = BBS_EVENT_DECODERS.actual_lrp_crashed(u8(cat(vi(3, 5), str(4, 'boom'))));
    assert.ok(crashed instanceof models.ActualLRPCrashedEvent);
    assert.equal(crashed.crashCount, 5);
    const removed = decodeEvent(
      'desired_lrp_removed',
      Buffer.from(ld(1, smallDesiredLrp.b)).toString('base64'),
    );
    assert.ok(removed?.name === 'desired_lrp_removed');
    assert.equal(removed.message.desiredLrp?.processGuid, PG);
    const created = decodeEvent(
      'actual_lrp_created',
      Buffer.from(ld(1, actualLrpGroup.b)).toString('base64'),
    );
    assert.ok(created?.name === 'actual_lrp_created');
    assert.equal(created.message.actualLrpGroup?.instance?.state, 'RUNNING');
  });

  it('returns null for an unknown event name (to be skipped)', () => {
    assert.equal(decodeEvent('actual_lrp_exploded', INSTANCE_CHANGED_B64), null);
    assert.equal(decodeEvent('__proto__', ''), null);
    assert.equal(decodeEvent('toString', ''), null);
  });

  const decodeFails = (name: string, data: string, code: string, reason: string) =>
    assert.throws(
      () => decodeEvent(name, data),
      (e: unknown) =>
        e instanceof BbsDecodeError &&
        e instanceof CfnetError &&
        e.code === code &&
        e.reason === reason &&
        e.context.event === name,
    );

  it('rejects bad base64 with BbsDecodeError (CFNET_BBS_BAD_BASE64)', () => {
    decodeFails('task_changed', '@@@@', 'CFNET_BBS_BAD_BASE64', 'base64');
    decodeFails('task_changed', 'CgA', 'CFNET_BBS_BAD_BASE64', 'base64'); // unpadded
    decodeFails('task_changed', 'Cg-_', 'CFNET_BBS_BAD_BASE64', 'base64'); // url alphabet
    decodeFails('task_changed', 'Cg A=', 'CFNET_BBS_BAD_BASE64', 'base64');
  });

  it('rejects an empty payload with BbsDecodeError (CFNET_BBS_EMPTY_PAYLOAD)', () => {
    decodeFails('actual_lrp_instance_changed', '', 'CFNET_BBS_EMPTY_PAYLOAD', 'empty');
  });

  it('rejects truncated or malformed protobuf with BbsDecodeError (CFNET_BBS_BAD_PROTOBUF)', () => {
    const full = Buffer.from(INSTANCE_CHANGED_B64, 'base64');
    for (const cut of [1, 10, full.length - 40, full.length - 1]) {
      decodeFails(
        'actual_lrp_instance_changed',
        full.subarray(0, cut).toString('base64'),
        'CFNET_BBS_BAD_PROTOBUF',
        'protobuf',
      );
    }
    // a varint that never ends, a length beyond the buffer, wire type 7
    decodeFails(
      'task_changed',
      Buffer.from([0x08, 0xff, 0xff]).toString('base64'),
      'CFNET_BBS_BAD_PROTOBUF',
      'protobuf',
    );
    decodeFails(
      'task_changed',
      Buffer.from([0x0a, 0x05, 0x01]).toString('base64'),
      'CFNET_BBS_BAD_PROTOBUF',
      'protobuf',
    );
    decodeFails('task_changed', Buffer.from([0x0f]).toString('base64'), 'CFNET_BBS_BAD_PROTOBUF', 'protobuf');
  });

  it('decodeMessage wraps decoder failures for response bodies; an empty body is a valid message', () => {
    const body = u8(cat(ld(1, notFound.b), ld(2, desiredLrp.b)));
    const ok = decodeMessage(models.DesiredLRPResponse, body, 'DesiredLRPResponse');
    assert.equal(ok.desiredLrp?.processGuid, PG);
    assert.throws(
      () =>
        decodeMessage(models.DesiredLRPResponse, body.subarray(0, body.length - 3), 'DesiredLRPResponse', {
          path: '/p',
        }),
      (e: unknown) =>
        e instanceof BbsDecodeError &&
        e.code === 'CFNET_BBS_BAD_PROTOBUF' &&
        e.context.path === '/p' &&
        e.cause instanceof Error,
    );
    const empty = decodeMessage(models.PingResponse, new Uint8Array(0), 'PingResponse');
    assert.equal(empty.available, false);
  });
});

describe('int64 helpers', () => {
  it('longToBigInt / bigIntToLong round-trip the whole int64 and uint64 ranges', () => {
    for (const v of [
      0n,
      1n,
      -1n,
      SINCE,
      -SINCE,
      (1n << 63n) - 1n,
      -(1n << 63n),
      1n << 53n,
      (1n << 53n) + 1n,
    ]) {
      const l = bigIntToLong(v);
      assert.equal(longToBigInt(l), v);
      assert.equal(l.toString(), v.toString());
    }
    const umax = bigIntToLong((1n << 64n) - 1n, true);
    assert.equal(longToBigInt(umax), (1n << 64n) - 1n);
    assert.equal(longToBigInt(null), 0n);
    assert.equal(longToBigInt(undefined), 0n);
    assert.equal(longToBigInt(42), 42n);
    assert.equal(longToBigInt('-1700000000123456789'), -SINCE);
    assert.equal(longToBigInt(5n), 5n);
  });

  it('rejects out-of-range and non-integer values with ValidationError', () => {
    assert.throws(() => bigIntToLong(1n << 63n), ValidationError);
    assert.throws(() => bigIntToLong(-(1n << 63n) - 1n), ValidationError);
    assert.throws(() => bigIntToLong(-1n, true), ValidationError);
    assert.throws(() => bigIntToLong(1n << 64n, true), ValidationError);
    assert.throws(() => bigIntToLong(1.5), ValidationError);
    assert.throws(() => longToBigInt(2 ** 60), ValidationError);
    assert.throws(() => longToBigInt('12a'), ValidationError);
  });

  it('a negative int64 is a 10-byte varint on the wire', () => {
    const enc = models.ActualLRP.encode({ since: bigIntToLong(-1n) }).finish();
    assert.equal(hex(enc), hex(vi(8, -1n)));
    assert.equal(hex(enc), '40ffffffffffffffffff01');
    assert.equal(longToBigInt(models.ActualLRP.decode(enc).since), -1n);
  });
});
