/**
 * The agent's settings: one table (AGENT_SETTINGS) drives the command-line flags, the environment
 * variables, the JSON config file keys (camelCase, as the BOSH job's agent.json) and docs/agent.md.
 * Precedence: built-in default < config file < environment < flag. Every problem is a
 * ValidationError naming the setting.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import {
  DEFAULT_FILTER_MODE,
  DEFAULT_IPTABLES_BINARIES,
  FILTER_MODES,
  type FilterMode,
} from '../dataplane/host-filter.js';
import { ValidationError } from '../lib/errors.js';
import { checkCellId } from '../model/identifiers.js';

export type SettingKind = 'string' | 'int' | 'path' | 'url' | 'ip' | 'ifname' | 'level' | 'choice' | 'list';

export interface SettingDef {
  key: keyof AgentConfig;
  kind: SettingKind;
  /** Default; undefined = required. */
  def?: string | number | readonly string[];
  min?: number;
  max?: number;
  /** True when '' is allowed (means "detect" or "off", as described). */
  emptyOk?: boolean;
  /** The allowed values of a `choice` setting. */
  choices?: readonly string[];
  describe: string;
}

export interface AgentConfig {
  cellId: string;
  controllerUrl: string;
  controllerServerName: string;
  controllerSourceAddress: string;
  caCert: string;
  clientCert: string;
  clientKey: string;
  bootstrapTokenFile: string;
  underlayIp: string;
  underlayInterface: string;
  vtepName: string;
  vtepPort: number;
  vni: number;
  vtepMtu: number;
  leasePollIntervalSeconds: number;
  longPollTimeoutSeconds: number;
  nftWatchDelayMs: number;
  driftCheckIntervalSeconds: number;
  statusIntervalSeconds: number;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  stateDir: string;
  executorSocket: string;
  agentSocket: string;
  datastore: string;
  subnetFile: string;
  cniStateDir: string;
  nftTable: string;
  nftBinary: string;
  filterMode: FilterMode;
  iptablesBinaries: string[];
  metricsAddress: string;
  metricsPort: number;
  logLevel: string;
}

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const AGENT_SETTINGS: readonly SettingDef[] = [
  {
    key: 'cellId',
    kind: 'string',
    describe: "this cell's id as Diego knows it (BBS ActualLRP cell_id); must match the client certificate",
  },
  {
    key: 'controllerUrl',
    kind: 'url',
    describe:
      "base URL of the controller's agent API, e.g. https://cfnet-controller.service.cf.internal:4190",
  },
  {
    key: 'controllerServerName',
    kind: 'string',
    def: '',
    emptyOk: true,
    describe: "name to verify in the controller's certificate (TLS SNI); '' = the URL's host",
  },
  {
    key: 'controllerSourceAddress',
    kind: 'ip',
    def: '',
    emptyOk: true,
    describe:
      "local address the agent's connections to the controller come from (the controller signs certificates only for requests from the cell's BBS address); '' = the kernel's choice",
  },
  {
    key: 'caCert',
    kind: 'path',
    describe: "CA certificate (PEM file) that signed the controller's certificate",
  },
  {
    key: 'clientCert',
    kind: 'path',
    describe:
      "this cell's client certificate (PEM file; written by the agent with bootstrapTokenFile); the controller takes the cell id from it",
  },
  { key: 'clientKey', kind: 'path', describe: 'private key (PEM file) of the client certificate' },
  {
    key: 'bootstrapTokenFile',
    kind: 'path',
    def: '',
    emptyOk: true,
    describe:
      "file holding this cell's bootstrap token: the agent then makes its own key, has the controller sign it, writes clientCert/clientKey and renews before expiry; '' = use clientCert/clientKey as they are",
  },
  {
    key: 'underlayIp',
    kind: 'ip',
    def: '',
    emptyOk: true,
    describe:
      "this cell's underlay IPv4 address (VXLAN source); '' = the source address of the default route",
  },
  {
    key: 'underlayInterface',
    kind: 'ifname',
    def: '',
    emptyOk: true,
    describe: "underlay interface; '' = the interface holding the underlay address",
  },
  { key: 'vtepName', kind: 'ifname', def: 'cfnet-vtep', describe: 'name of the VXLAN device' },
  { key: 'vtepPort', kind: 'int', def: 4789, min: 1, max: 65535, describe: 'UDP port of the VXLAN device' },
  { key: 'vni', kind: 'int', def: 1, min: 1, max: 16_777_215, describe: 'VXLAN network identifier' },
  {
    key: 'vtepMtu',
    kind: 'int',
    def: 0,
    min: 0,
    max: 65535,
    describe: 'MTU of the VXLAN device; 0 = the underlay MTU minus 50 (VXLAN overhead)',
  },
  {
    key: 'leasePollIntervalSeconds',
    kind: 'int',
    def: 30,
    min: 1,
    max: 86_400,
    describe: "renew the lease and re-read every cell's lease this often (only changes reach the kernel)",
  },
  {
    key: 'longPollTimeoutSeconds',
    kind: 'int',
    def: 60,
    min: 1,
    max: 600,
    describe: 'how long one rule-set long-poll waits at the controller before it is re-issued',
  },
  {
    key: 'driftCheckIntervalSeconds',
    kind: 'int',
    def: 60,
    min: 0,
    max: 86_400,
    describe: 'read the nft table and the overlay routes back this often and repair drift; 0 = never',
  },
  {
    key: 'nftWatchDelayMs',
    kind: 'int',
    def: 20,
    min: 0,
    max: 1000,
    describe:
      'watch the nft table with `nft monitor`: a change made by another process is compared and repaired this many ms after it is seen; 0 = do not watch (the periodic check only)',
  },
  {
    key: 'statusIntervalSeconds',
    kind: 'int',
    def: 30,
    min: 1,
    max: 86_400,
    describe:
      'report status (applied version, errors) at least this often; inventory changes are reported at once',
  },
  {
    key: 'reconnectMinMs',
    kind: 'int',
    def: 500,
    min: 1,
    max: 600_000,
    describe: 'first retry delay after a failed controller request (doubles per failure, with jitter)',
  },
  {
    key: 'reconnectMaxMs',
    kind: 'int',
    def: 30_000,
    min: 1,
    max: 3_600_000,
    describe: 'upper bound of the retry delay',
  },
  {
    key: 'stateDir',
    kind: 'path',
    def: '/var/vcap/data/cfnet-agent',
    describe: 'where the agent persists its lease, leases and last applied rule set',
  },
  {
    key: 'executorSocket',
    kind: 'path',
    def: '/var/vcap/data/cfnet/cni.sock',
    emptyOk: true,
    describe:
      "unix socket of the warm CNI executor the agent hosts (the CNI config's executor_socket); '' = do not host",
  },
  {
    key: 'agentSocket',
    kind: 'path',
    def: '/var/vcap/data/cfnet/agent.sock',
    emptyOk: true,
    describe: "the agent's local socket the CNI plugin reports ADD/DEL to (agent_socket); '' = none",
  },
  {
    key: 'datastore',
    kind: 'path',
    def: '/var/vcap/data/container-metadata/store.json',
    describe: 'container metadata store written by the CNI plugin (its datastore)',
  },
  {
    key: 'subnetFile',
    kind: 'path',
    def: '/var/vcap/data/cfnet/subnet.json',
    describe: "where the agent writes the cell's subnet lease for the CNI plugin (its subnet_file)",
  },
  {
    key: 'cniStateDir',
    kind: 'path',
    def: '/var/vcap/data/cfnet/state',
    describe: "lock directory shared with the CNI plugin's nft writes (its state_dir)",
  },
  {
    key: 'nftTable',
    kind: 'string',
    def: 'cfnet',
    describe: "cfnet's nftables table, family inet (the CNI config's nft_table)",
  },
  { key: 'nftBinary', kind: 'string', def: 'nft', describe: 'nft executable' },
  {
    key: 'filterMode',
    kind: 'choice',
    choices: FILTER_MODES,
    def: DEFAULT_FILTER_MODE,
    describe:
      "who has the last word on container→host and ASG-denied egress packets: iptables = cfnet's rules appended to the filter INPUT and FORWARD chains of each iptables backend confirm its denials, so operators' earlier iptables ACCEPTs (legacy or nft) win (Silk's ordering; the agent refuses to start when none of iptablesBinaries runs); nftables = cfnet's table rejects by itself",
  },
  {
    key: 'iptablesBinaries',
    kind: 'list',
    def: DEFAULT_IPTABLES_BINARIES,
    describe:
      "iptables executables for filterMode iptables (comma list): cfnet keeps its rules in the backend of each one that runs (one per backend, legacy or nft; the others are skipped and logged), so an operator's ACCEPT written with either backend wins",
  },
  {
    key: 'metricsAddress',
    kind: 'ip',
    def: '127.0.0.1',
    describe: 'address of the Prometheus metrics and health endpoint (/metrics, /healthz, /readyz)',
  },
  {
    key: 'metricsPort',
    kind: 'int',
    def: 4192,
    min: 0,
    max: 65535,
    describe: 'port of the metrics and health endpoint; 0 = no endpoint',
  },
  { key: 'logLevel', kind: 'level', def: 'info', describe: `log level (${LEVELS.join(', ')})` },
];

/** `controllerUrl` → `--controller-url`. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** `controllerUrl` → `CFNET_AGENT_CONTROLLER_URL`. */
export function envName(key: string): string {
  return `CFNET_AGENT_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const TABLE = /^cf[a-z0-9_]{0,30}$/;

type SettingValue = string | number | string[];

function coerce(def: SettingDef, raw: unknown, source: string): SettingValue {
  const field = def.key;
  const bad = (reason: string) => new ValidationError(field, raw, `${reason} (from ${source})`);
  if (def.kind === 'list') {
    // a JSON array in the config file, a comma list from the environment or a flag
    const items = typeof raw === 'string' ? raw.split(',') : Array.isArray(raw) ? raw : null;
    if (!items?.every((x) => typeof x === 'string')) throw bad('must be a list of strings');
    const list = (items as string[]).map((x) => x.trim()).filter((x) => x !== '');
    if (list.length === 0) throw bad('must name at least one value');
    if (list.some((x) => x.includes('\0'))) throw bad('must not contain NUL');
    return list;
  }
  if (def.kind === 'int') {
    const n =
      typeof raw === 'number'
        ? raw
        : typeof raw === 'string' && /^-?\d+$/.test(raw.trim())
          ? Number(raw)
          : NaN;
    if (!Number.isInteger(n)) throw bad('must be an integer');
    if ((def.min !== undefined && n < def.min) || (def.max !== undefined && n > def.max)) {
      throw bad(`must be in ${def.min}..${def.max}`);
    }
    return n;
  }
  if (typeof raw !== 'string') throw bad('must be a string');
  const s = raw.trim();
  if (s === '') {
    if (def.emptyOk) return '';
    throw bad('must not be empty');
  }
  switch (def.kind) {
    case 'path':
      if (!s.startsWith('/') || s.includes('\0')) throw bad('must be an absolute path');
      return s;
    case 'url': {
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        throw bad('must be a URL like https://host:port');
      }
      if (u.protocol !== 'https:') throw bad('must be an https:// URL (the agent API is mutual TLS)');
      return s.replace(/\/+$/, '');
    }
    case 'ip':
      if (isIP(s) !== 4) throw bad('must be an IPv4 address');
      return s;
    case 'ifname':
      if (!IFNAME.test(s)) throw bad('must be an interface name (1-15 of [A-Za-z0-9_.-])');
      return s;
    case 'level':
      if (!LEVELS.includes(s)) throw bad(`must be one of ${LEVELS.join(', ')}`);
      return s;
    case 'choice':
      if (!def.choices?.includes(s)) throw bad(`must be one of ${def.choices?.join(', ')}`);
      return s;
    default:
      return s;
  }
}

export interface ConfigSources {
  /** Parsed JSON config file content (keys as AgentConfig). */
  file?: Record<string, unknown>;
  /** Environment (CFNET_AGENT_*). */
  env?: Record<string, string | undefined>;
  /** Command-line values by AgentConfig key (commander's camelCase). */
  flags?: Record<string, unknown>;
}

/** Resolves every setting from its sources; throws ValidationError naming the first bad setting. */
export function resolveAgentConfig(src: ConfigSources): AgentConfig {
  const file = src.file ?? {};
  const known = new Set(AGENT_SETTINGS.map((d) => d.key as string));
  for (const k of Object.keys(file)) {
    if (!known.has(k)) throw new ValidationError(k, file[k], 'unknown setting in the config file');
  }
  const out: Record<string, SettingValue> = {};
  for (const def of AGENT_SETTINGS) {
    const flag = src.flags?.[def.key];
    const env = src.env?.[envName(def.key)];
    const fromFile = file[def.key];
    let value: SettingValue;
    if (flag !== undefined) value = coerce(def, flag, flagName(def.key));
    else if (env !== undefined) value = coerce(def, env, envName(def.key));
    else if (fromFile !== undefined && fromFile !== null) value = coerce(def, fromFile, 'config file');
    else if (def.def !== undefined)
      value = Array.isArray(def.def) ? [...def.def] : (def.def as string | number);
    else {
      throw new ValidationError(
        def.key,
        undefined,
        `is required (${flagName(def.key)}, ${envName(def.key)} or "${def.key}" in the config file)`,
      );
    }
    out[def.key] = value;
  }
  const cfg = out as unknown as AgentConfig;
  checkCellId('cellId', cfg.cellId);
  if (!TABLE.test(cfg.nftTable)) {
    throw new ValidationError('nftTable', cfg.nftTable, 'must match /^cf[a-z0-9_]{0,30}$/');
  }
  if (cfg.reconnectMaxMs < cfg.reconnectMinMs) {
    throw new ValidationError('reconnectMaxMs', cfg.reconnectMaxMs, 'must be >= reconnectMinMs');
  }
  return cfg;
}

/** Reads a JSON config file (an object of settings). */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ValidationError('config', path, `cannot read: ${(err as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch (err) {
    throw new ValidationError('config', path, `is not JSON: ${(err as Error).message}`);
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
    throw new ValidationError('config', path, 'must hold a JSON object of settings');
  }
  return obj as Record<string, unknown>;
}
