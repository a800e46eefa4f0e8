/**
 * The plugin keys of cfnet's CNI network config: one table (CNI_SETTINGS) in the settings engine's
 * vocabulary gives each key's kind, range, default and meaning; `readKey` coerces and checks a
 * value by it. Only the zod-free part of the engine (lib/settings/spec.ts) is used: the plugin is a
 * short-lived process on every container start, and loading zod would cost it hundreds of ms.
 * config.ts reads the keys in the order the plugin always has (the first problem is the one reported).
 */

import { DEFAULT_LOCK_DIR } from '../dataplane/layout.js';
import { ValidationError } from '../lib/errors.js';
import { type SettingSpec, snakeKey } from '../lib/settings/spec.js';
import { interfaceNameProblem } from './env.js';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** The defaults of the plugin keys (CNI_SETTINGS) and of the cell keys; the agent shares the paths. */
export const DEFAULTS = {
  datastore: '/var/vcap/data/container-metadata/store.json',
  stateDir: DEFAULT_LOCK_DIR,
  subnetFile: '/var/vcap/data/cfnet/subnet.json',
  nftTable: 'cfnet',
  executorSocket: '/var/vcap/data/cfnet/cni.sock',
  agentSocket: '/var/vcap/data/cfnet/agent.sock',
  agentTimeoutMs: 250,
  overlayNetwork: '10.255.0.0/16',
  dnsServers: ['169.254.0.2'],
  logLevel: 'warn',
} as const;

/** A plugin key of the table: a setting of the engine's vocabulary, plus a pattern for strings. */
export interface CniSettingSpec extends SettingSpec {
  /** A `string` value must match it (the error names the pattern). */
  pattern?: RegExp;
}

/**
 * The plugin's own keys, one entry each (JSON key = the key in snake_case): kind, range, default
 * and meaning, in the vocabulary of the settings engine (lib/settings/spec.ts). `parseNetConfig`
 * reads each through `readKey`; README.md documents them (a packaging test checks the list).
 * Besides these the plugin reads `cniVersion`,
 * `name`, `ipam`, `prevResult` of the CNI contract and the cell keys `CELL_CONFIG_KEYS` of
 * model/config.ts, which it hands to `parseCellConfig`.
 */
export const CNI_SETTINGS: readonly CniSettingSpec[] = [
  { key: 'type', kind: 'string', required: true, describe: 'the plugin: `cfnet-cni`' },
  {
    key: 'subnet',
    kind: 'string',
    describe: 'a fixed cell subnet (IPv4 CIDR, prefix 1..30) instead of subnet_file (standalone use)',
  },
  {
    key: 'subnetFile',
    kind: 'path',
    absolute: true,
    def: DEFAULTS.subnetFile,
    describe: "the cell's lease `{subnet, gateway}`, written by the agent (unset with subnet)",
  },
  {
    key: 'mtu',
    kind: 'int',
    min: 68,
    max: 65535,
    describe: "container MTU; absent or 0 = the underlay interface's MTU − 50",
  },
  {
    key: 'underlayInterface',
    kind: 'ifname',
    describe: "interface whose MTU is the underlay's; absent = the default route's",
  },
  {
    key: 'datastore',
    kind: 'path',
    absolute: true,
    def: DEFAULTS.datastore,
    describe: "container metadata (Silk's format; also the address allocations)",
  },
  {
    key: 'executorSocket',
    kind: 'path',
    absolute: true,
    def: DEFAULTS.executorSocket,
    describe: "the agent's warm executor",
  },
  {
    key: 'agentSocket',
    kind: 'path',
    absolute: true,
    emptyOk: true,
    def: DEFAULTS.agentSocket,
    describe: 'the agent\'s socket told about ADD/DEL; "" (or false) = none',
  },
  {
    key: 'agentTimeoutMs',
    kind: 'int',
    min: 1,
    max: 10_000,
    def: DEFAULTS.agentTimeoutMs,
    describe: "how long to wait for the agent's acknowledgement (never fatal)",
  },
  {
    key: 'stateDir',
    kind: 'path',
    absolute: true,
    def: DEFAULTS.stateDir,
    describe: 'lock files shared with the agent',
  },
  {
    key: 'nftTable',
    kind: 'string',
    pattern: /^cf[a-z0-9_]{0,30}$/,
    def: DEFAULTS.nftTable,
    describe: "cfnet's table (family inet)",
  },
  {
    key: 'logLevel',
    kind: 'enum',
    choices: LOG_LEVELS,
    def: DEFAULTS.logLevel,
    describe: 'plugin log level',
  },
  { key: 'logFile', kind: 'path', absolute: true, describe: 'plugin log file; absent = stderr' },
];

const SPEC_OF = new Map(CNI_SETTINGS.map((s) => [snakeKey(s.key), s]));

/** The JSON keys of CNI_SETTINGS (`subnet_file`, …): the plugin keys `parseNetConfig` reads. */
export const PLUGIN_KEYS: readonly string[] = [...SPEC_OF.keys()];

/** Why `v` is not a valid value of `spec`, or null (the messages the plugin has always given). */
function problemOf(spec: CniSettingSpec, v: unknown): string | null {
  switch (spec.kind) {
    case 'path':
      return typeof v !== 'string' ||
        (spec.absolute && !v.startsWith('/')) ||
        v.includes('\0') ||
        v.includes('\n')
        ? 'must be an absolute path'
        : null;
    case 'int':
      return typeof v !== 'number' || !Number.isInteger(v) || v < spec.min! || v > spec.max!
        ? `must be an integer in ${spec.min}..${spec.max}`
        : null;
    case 'enum':
      return typeof v !== 'string' || !spec.choices!.includes(v)
        ? `must be one of ${spec.choices!.join(', ')}`
        : null;
    case 'ifname':
      return typeof v === 'string' ? interfaceNameProblem(v) : 'must be a string';
    default:
      if (spec.pattern)
        return typeof v !== 'string' || !spec.pattern.test(v) ? `must match ${spec.pattern}` : null;
      return typeof v !== 'string' || v === '' ? 'must be a non-empty string' : null;
  }
}

/**
 * The value of plugin key `key` (its JSON name) in `raw`: absent or null → the table's default
 * (null without one; a ValidationError when required); '' or false of an `emptyOk` key → null (off);
 * otherwise the value, which must be valid for its kind (ValidationError naming the key → code 7).
 */
export function readKey<T>(raw: Record<string, unknown>, key: string): T | null {
  const spec = SPEC_OF.get(key)!;
  const v = raw[key];
  if (v === undefined || v === null) {
    if (spec.required) throw new ValidationError(key, v, problemOf(spec, v)!);
    return (spec.def ?? null) as T | null;
  }
  if (spec.emptyOk && (v === '' || v === false)) return null;
  const problem = problemOf(spec, v);
  if (problem) throw new ValidationError(key, v, problem);
  return v as T;
}
