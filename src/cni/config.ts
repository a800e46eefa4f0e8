/**
 * The network configuration cfnet's plugin reads from stdin (one plugin object of a conflist, as
 * the runtime passes it: cniVersion and name injected, plus garden-external-networker's
 * `runtimeConfig` and `metadata`). Every problem is a ValidationError naming the field (→ CNI code
 * 7), or code 2 for fields we understand but do not support. Keys are documented in docs/cni.md;
 * the plugin's own keys (kind, range, default, meaning) are the table CNI_SETTINGS in settings.ts.
 *
 * Two levels: `parseNetConfig` (every command) and `parseAddInput` (ADD only: runtimeConfig,
 * metadata), so a DEL never fails on a bad ASG rule that only matters to ADD.
 */
import { ValidationError, withFieldPrefix } from '../lib/errors.js';
import { parseGardenNetOutRules } from '../model/asg-rule.js';
import { CELL_CONFIG_KEYS, parseCellConfig } from '../model/config.js';
import { parseCidr } from '../model/ip.js';
import {
  type CellConfig,
  DEFAULT_CELL_CONFIG,
  type EgressRule,
  type NetInMapping,
  type Workload,
} from '../model/types.js';
import { CNI_ID } from './env.js';
import { CNI_ERR, CniError, unsupportedField } from './errors.js';
import { DEFAULTS, type LOG_LEVELS, PLUGIN_KEYS, readKey } from './settings.js';
import type { CniResult } from './types.js';
import { checkVersion, parsePrevResult, type SupportedVersion } from './version.js';

export { CNI_SETTINGS, type CniSettingSpec, DEFAULTS, PLUGIN_KEYS } from './settings.js';

export const CNI_CONFIG_KEYS: readonly string[] = [...PLUGIN_KEYS, ...CELL_CONFIG_KEYS];

export interface NetConfig {
  cniVersion: SupportedVersion;
  name: string;
  type: string;
  /** Silk-compatible container metadata store (also the IPAM state). */
  datastore: string;
  /** Static cell subnet (standalone use), or null. */
  subnet: string | null;
  /** JSON `{subnet, gateway?}` written by the cell agent when it holds a lease (null with `subnet`). */
  subnetFile: string | null;
  /** Fixed container MTU; null = auto (underlay MTU − 50). */
  mtu: number | null;
  /** Interface whose MTU is the underlay's; null = the default route's interface. */
  underlayInterface: string | null;
  /** Rule-set settings: overlay network, DNS servers, host services, deny networks, logging. */
  cell: CellConfig;
  executorSocket: string;
  /** The cell agent's local socket (told about ADD/DEL); null = do not tell. */
  agentSocket: string | null;
  agentTimeoutMs: number;
  nftTable: string;
  stateDir: string;
  logLevel: (typeof LOG_LEVELS)[number];
  logFile: string | null;
  prevResult: CniResult | null;
  /** The raw object (for ADD-only parsing and GC keys). */
  raw: Record<string, unknown>;
}

export interface AddInput {
  portMappings: NetInMapping[];
  netOutRules: EgressRule[];
  /** Garden's metadata (stored verbatim). */
  metadata: Record<string, unknown>;
  appGuid: string;
  spaceGuid: string;
  orgGuid: string;
  workload: Workload;
}

export interface Attachment {
  containerID: string;
  ifname: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Decodes stdin into an object (code 6 when it is not JSON or not an object). */
export function decodeStdin(stdin: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(
      CNI_ERR.DECODE,
      `error decoding network configuration from stdin: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (!isObject(parsed)) {
    throw new CniError(CNI_ERR.DECODE, 'error decoding network configuration from stdin: not a JSON object');
  }
  return parsed;
}

/** Validates a cell subnet CIDR: IPv4, prefix 1..30 (room for at least two containers). */
export function checkSubnet(text: unknown, field: string): string {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be an IPv4 CIDR string');
  const c = parseCidr(text, field);
  if (c.family !== 4) throw new ValidationError(field, text, 'must be an IPv4 CIDR');
  if (c.prefix < 1 || c.prefix > 30) throw new ValidationError(field, text, 'prefix must be 1..30');
  return `${c.network}/${c.prefix}`;
}

/** Parses the settings every command needs. `raw` is the decoded stdin object. */
export function parseNetConfig(raw: Record<string, unknown>): NetConfig {
  const cniVersion = checkVersion(raw.cniVersion);
  const name = raw.name;
  if (typeof name !== 'string' || !CNI_ID.test(name)) {
    throw new ValidationError('name', name, 'must be alphanumeric, then alphanumeric, "_", "." or "-"');
  }
  const type = readKey<string>(raw, 'type')!;
  if (raw.ipam !== undefined && raw.ipam !== null) {
    const t = isObject(raw.ipam) ? raw.ipam.type : raw.ipam;
    throw unsupportedField('ipam.type', t, 'cfnet allocates from the cell subnet itself; remove "ipam"');
  }

  const subnet = raw.subnet === undefined || raw.subnet === null ? null : checkSubnet(raw.subnet, 'subnet');
  const givenSubnetFile = readKey<string>(raw, 'subnet_file');
  if (subnet !== null && raw.subnet_file !== undefined && raw.subnet_file !== null) {
    throw new ValidationError('subnet_file', givenSubnetFile, 'set either subnet or subnet_file, not both');
  }
  // the lease file (by default the agent's) is read only when no fixed subnet is given
  const subnetFile = subnet === null ? givenSubnetFile : null;

  // 0 = automatic, like absent
  const mtu = raw.mtu === 0 ? null : readKey<number>(raw, 'mtu');
  const underlayInterface = readKey<string>(raw, 'underlay_interface');

  const cellInput: Record<string, unknown> = {};
  for (const k of CELL_CONFIG_KEYS) if (raw[k] !== undefined && raw[k] !== null) cellInput[k] = raw[k];
  const cell = parseCellConfig(cellInput, {
    base: {
      ...DEFAULT_CELL_CONFIG,
      overlayNetwork: DEFAULTS.overlayNetwork,
      dnsServers: [...DEFAULTS.dnsServers],
    },
  });
  if (subnet !== null) checkSubnetInOverlay(subnet, cell.overlayNetwork, 'subnet');

  const nftTable = readKey<string>(raw, 'nft_table')!;
  const logLevel = readKey<NetConfig['logLevel']>(raw, 'log_level')!;
  const agentSocket = readKey<string>(raw, 'agent_socket');

  const prevResult =
    raw.prevResult === undefined || raw.prevResult === null ? null : parsePrevResult(raw.prevResult);

  return {
    cniVersion,
    name,
    type,
    datastore: readKey<string>(raw, 'datastore')!,
    subnet,
    subnetFile,
    mtu,
    underlayInterface,
    cell,
    executorSocket: readKey<string>(raw, 'executor_socket')!,
    agentSocket,
    agentTimeoutMs: readKey<number>(raw, 'agent_timeout_ms')!,
    nftTable,
    stateDir: readKey<string>(raw, 'state_dir')!,
    logLevel,
    logFile: readKey<string>(raw, 'log_file'),
    prevResult,
    raw,
  };
}

export function checkSubnetInOverlay(subnet: string, overlay: string, field: string): void {
  const s = parseCidr(subnet, field);
  const o = parseCidr(overlay, 'overlay_network');
  const mask = (p: number) => (p === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - p)) - 1n));
  const toN = (ip: string) => ip.split('.').reduce((a, x) => (a << 8n) | BigInt(x), 0n);
  if (s.prefix < o.prefix || (toN(s.network) & mask(o.prefix)) !== toN(o.network)) {
    throw new ValidationError(field, subnet, `is not inside overlay_network ${overlay}`);
  }
}

function portOf(item: Record<string, unknown>, snake: string, camel: string, field: string): number {
  const v = item[snake] ?? item[camel];
  const key = item[snake] !== undefined ? snake : camel;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new ValidationError(`${field}.${key}`, v, 'must be an integer port 1..65535');
  }
  return v;
}

/** `runtimeConfig.portMappings`: CF's `{host_port, container_port}` or CONVENTIONS' camelCase. */
export function parsePortMappings(list: unknown, field = 'runtimeConfig.portMappings'): NetInMapping[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list)) throw new ValidationError(field, list, 'must be a list');
  const byHost = new Map<number, number>();
  list.forEach((item, i) => {
    const f = `${field}[${i}]`;
    if (!isObject(item)) throw new ValidationError(f, item, 'must be an object {host_port, container_port}');
    const hostPort = portOf(item, 'host_port', 'hostPort', f);
    const containerPort = portOf(item, 'container_port', 'containerPort', f);
    const proto = item.protocol;
    if (proto !== undefined && proto !== null && proto !== '' && String(proto).toLowerCase() !== 'tcp') {
      throw unsupportedField(`${f}.protocol`, proto, 'NetIn supports tcp only');
    }
    const prev = byHost.get(hostPort);
    if (prev !== undefined && prev !== containerPort) {
      throw new ValidationError(`${f}.host_port`, hostPort, `is already mapped to container port ${prev}`);
    }
    byHost.set(hostPort, containerPort);
  });
  return [...byHost.entries()]
    .map(([hostPort, containerPort]) => ({ hostPort, containerPort }))
    .sort((a, b) => a.hostPort - b.hostPort);
}

const WORKLOADS: readonly Workload[] = ['app', 'task', 'staging'];

function metaString(meta: Record<string, unknown>, key: string): string {
  const v = meta[key];
  if (v === undefined || v === null) return '';
  if (typeof v !== 'string') throw new ValidationError(`metadata.${key}`, v, 'must be a string');
  return v;
}

/**
 * Largest Garden metadata an attachment may carry, as compact JSON (UTF-8 bytes). Garden sends a few
 * GUIDs, the ports and a log config (well under 1 KiB); the record is stored in the datastore that
 * every ADD rewrites and reported in the agent's status, so one container must not be able to make
 * either large. Beyond it ADD is code 7 naming `metadata`.
 */
export const MAX_METADATA_BYTES = 16 * 1024;

/** Throws ValidationError (→ code 7) when `metadata` is larger than MAX_METADATA_BYTES. */
export function checkMetadataSize(metadata: Record<string, unknown>): void {
  const bytes = Buffer.byteLength(JSON.stringify(metadata));
  if (bytes > MAX_METADATA_BYTES) {
    throw new ValidationError(
      'metadata',
      `<${bytes} bytes>`,
      `is larger than ${MAX_METADATA_BYTES} bytes as JSON (Garden metadata is a few GUIDs)`,
      { bytes, limit: MAX_METADATA_BYTES },
    );
  }
}

/** ADD-only input: runtimeConfig (portMappings, netOutRules, static IP requests) and metadata. */
export function parseAddInput(cfg: NetConfig): AddInput {
  const raw = cfg.raw;
  const rc = raw.runtimeConfig ?? {};
  if (!isObject(rc)) throw new ValidationError('runtimeConfig', rc, 'must be an object');
  if (rc.ips !== undefined && rc.ips !== null && !(Array.isArray(rc.ips) && rc.ips.length === 0)) {
    throw unsupportedField('runtimeConfig.ips', rc.ips, 'static container addresses are not supported');
  }
  const argsCni = isObject(raw.args) && isObject(raw.args.cni) ? raw.args.cni : null;
  if (argsCni && argsCni.ips !== undefined && !(Array.isArray(argsCni.ips) && argsCni.ips.length === 0)) {
    throw unsupportedField('args.cni.ips', argsCni.ips, 'static container addresses are not supported');
  }
  const portMappings = parsePortMappings(rc.portMappings);
  const netOutRules = withFieldPrefix('runtimeConfig.', () =>
    rc.netOutRules === undefined || rc.netOutRules === null ? [] : parseGardenNetOutRules(rc.netOutRules),
  );
  const metaRaw = raw.metadata ?? rc.metadata ?? {};
  if (!isObject(metaRaw)) throw new ValidationError('metadata', metaRaw, 'must be an object');
  checkMetadataSize(metaRaw);
  const workloadText = metaString(metaRaw, 'container_workload') || 'app';
  if (!(WORKLOADS as readonly string[]).includes(workloadText)) {
    throw new ValidationError('metadata.container_workload', workloadText, 'must be app, task or staging');
  }
  const appGuid = metaString(metaRaw, 'policy_group_id') || metaString(metaRaw, 'app_id');
  const spaceGuid = metaString(metaRaw, 'space_id');
  const orgGuid = metaString(metaRaw, 'org_id');
  if (metaRaw.ports !== undefined && metaRaw.ports !== null && typeof metaRaw.ports !== 'string') {
    throw new ValidationError('metadata.ports', metaRaw.ports, 'must be a string (e.g. "8080,2222")');
  }
  return {
    portMappings,
    netOutRules,
    metadata: metaRaw,
    appGuid,
    spaceGuid,
    orgGuid,
    workload: workloadText as Workload,
  };
}

/**
 * GC's valid attachments: the union of `cni.dev/valid-attachments` and the spec-v1.1.0 text's
 * `cni.dev/attachments` (libcni sends both). Null when neither is present.
 */
export function parseValidAttachments(raw: Record<string, unknown>): Attachment[] | null {
  const keys = ['cni.dev/valid-attachments', 'cni.dev/attachments'] as const;
  let seen = false;
  const out: Attachment[] = [];
  for (const key of keys) {
    const v = raw[key];
    if (v === undefined) continue;
    seen = true;
    if (v === null) continue; // libcni marshals an empty Go slice as null
    if (!Array.isArray(v)) throw new ValidationError(key, v, 'must be a list of {containerID, ifname}');
    v.forEach((a, i) => {
      if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string') {
        throw new ValidationError(`${key}[${i}]`, a, 'must be an object {containerID, ifname}');
      }
      out.push({ containerID: a.containerID, ifname: a.ifname });
    });
  }
  return seen ? out : null;
}
