/**
 * The agent's settings: one table (AGENT_SETTINGS) on the settings engine (lib/settings) drives
 * the command-line flags, the environment variables, the JSON config file keys (camelCase, as the
 * BOSH job's agent.json) and docs/agent.md. Precedence: built-in default < config file <
 * environment < flag. Every problem is a SettingsError naming the setting.
 */
// the paths and table the agent shares with the CNI plugin: one default for both
import { DEFAULTS as CNI_DEFAULTS } from '../cni/config.js';
import {
  DEFAULT_FILTER_MODE,
  DEFAULT_IPTABLES_BINARIES,
  FILTER_MODES,
  type FilterMode,
} from '../dataplane/host-filter.js';
import {
  envNameOf,
  flagName,
  invalid,
  readSettingsFile,
  resolveSettings,
  type SettingSpec,
  type SettingsSources,
  type SettingsTable,
  withSetting,
} from '../lib/settings/index.js';
import { checkCellId } from '../model/identifiers.js';
import { AUDIT_TIMESTAMP_FORMATS, type AuditTimestampFormat } from './audit-record.js';
import { KMSG } from './audit-source.js';

export { flagName };

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
  auditLog: boolean;
  auditLogFile: string;
  auditKernelLog: string;
  auditTimestampFormat: AuditTimestampFormat;
  router: boolean;
  enableOverlayIngressRules: boolean;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const AGENT_SETTINGS: readonly SettingSpec<keyof AgentConfig>[] = [
  {
    key: 'cellId',
    kind: 'string',
    required: true,
    describe: "this cell's id as Diego knows it (BBS ActualLRP cell_id); must match the client certificate",
  },
  {
    key: 'controllerUrl',
    kind: 'url',
    protocols: ['https:'],
    required: true,
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
    absolute: true,
    required: true,
    describe: "CA certificate (PEM file) that signed the controller's certificate",
  },
  {
    key: 'clientCert',
    kind: 'path',
    absolute: true,
    required: true,
    describe:
      "this cell's client certificate (PEM file; written by the agent with bootstrapTokenFile); the controller takes the cell id from it",
  },
  {
    key: 'clientKey',
    kind: 'path',
    absolute: true,
    required: true,
    describe: 'private key (PEM file) of the client certificate',
  },
  {
    key: 'bootstrapTokenFile',
    kind: 'path',
    absolute: true,
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
    absolute: true,
    def: '/var/vcap/data/cfnet-agent',
    describe: 'where the agent persists its lease, leases and last applied rule set',
  },
  {
    key: 'executorSocket',
    kind: 'path',
    absolute: true,
    def: CNI_DEFAULTS.executorSocket,
    emptyOk: true,
    describe:
      "unix socket of the warm CNI executor the agent hosts (the CNI config's executor_socket); '' = do not host",
  },
  {
    key: 'agentSocket',
    kind: 'path',
    absolute: true,
    def: CNI_DEFAULTS.agentSocket,
    emptyOk: true,
    describe: "the agent's local socket the CNI plugin reports ADD/DEL to (agent_socket); '' = none",
  },
  {
    key: 'datastore',
    kind: 'path',
    absolute: true,
    def: CNI_DEFAULTS.datastore,
    describe: 'container metadata store written by the CNI plugin (its datastore)',
  },
  {
    key: 'subnetFile',
    kind: 'path',
    absolute: true,
    def: CNI_DEFAULTS.subnetFile,
    describe: "where the agent writes the cell's subnet lease for the CNI plugin (its subnet_file)",
  },
  {
    key: 'cniStateDir',
    kind: 'path',
    absolute: true,
    def: CNI_DEFAULTS.stateDir,
    describe: "lock directory shared with the CNI plugin's nft writes (its state_dir)",
  },
  {
    key: 'nftTable',
    kind: 'string',
    def: CNI_DEFAULTS.nftTable,
    describe: "cfnet's nftables table, family inet (the CNI config's nft_table)",
  },
  { key: 'nftBinary', kind: 'string', def: 'nft', describe: 'nft executable' },
  {
    key: 'filterMode',
    kind: 'enum',
    choices: FILTER_MODES,
    def: DEFAULT_FILTER_MODE,
    describe:
      "who has the last word on container→host and ASG-denied egress packets: iptables = cfnet's rules appended to the filter INPUT and FORWARD chains of each iptables backend confirm its denials, so operators' earlier iptables ACCEPTs (legacy or nft) win (Silk's ordering; the agent refuses to start when none of iptablesBinaries runs); nftables = cfnet's table rejects by itself",
  },
  {
    key: 'iptablesBinaries',
    kind: 'list',
    min: 1,
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
  {
    key: 'logLevel',
    kind: 'enum',
    choices: LOG_LEVELS,
    def: 'info',
    describe: `log level (${LOG_LEVELS.join(', ')})`,
  },
  {
    key: 'router',
    kind: 'bool',
    def: false,
    describe:
      "router mode, for a VM that is no Diego cell (gorouter, an Istio ingress): a single-address overlay lease (Silk's single_ip_only) from the reserved first subnet, the VXLAN device marking its outgoing overlay packets with the routers' tag (from the policy server, through the controller), routes to the cells' subnets; no CNI executor, no container rules",
  },
  {
    key: 'enableOverlayIngressRules',
    kind: 'bool',
    def: false,
    describe:
      "Silk's enable_overlay_ingress_rules, on cells: packets from routers (their tag, read from the routers' leases) are accepted to the containers' app ports (TCP, the containers' NetIn container ports) and to nothing else",
  },
  {
    key: 'auditLog',
    kind: 'bool',
    def: false,
    describe:
      "Silk's iptables-logger: write every kernel log line of cfnet's log chains (OK_, DENY_, DENY_C2C_, OK_C2C_; which packets are logged is the cell's logging configuration) as a JSON line enriched with the container, app, space and org to auditLogFile",
  },
  {
    key: 'auditLogFile',
    kind: 'path',
    absolute: true,
    def: '/var/vcap/sys/log/iptables-logger/iptables.log',
    describe:
      'file the audit lines are appended to (created with its directory; reopened within a second when rotated or removed)',
  },
  {
    key: 'auditKernelLog',
    kind: 'path',
    absolute: true,
    def: KMSG,
    describe: `where the audit log reads kernel log lines: ${KMSG} (the kernel's buffer, every network namespace, no syslog daemon needed) or a syslog file such as /var/log/kern.log (tailed; follows rotation)`,
  },
  {
    key: 'auditTimestampFormat',
    kind: 'enum',
    choices: AUDIT_TIMESTAMP_FORMATS,
    def: 'rfc3339',
    describe:
      'timestamps of the audit lines (Silk\'s logging.format.timestamp): rfc3339 ("2026-01-02T15:04:05.123000000Z", level "info") or deprecated ("1767366245.123000000", log_level 1)',
  },
];

/** The agent's table for the settings engine: '' from the environment is a value ("detect", "off"). */
export const AGENT_TABLE: SettingsTable<keyof AgentConfig> = {
  envPrefix: 'CFNET_AGENT_',
  settings: AGENT_SETTINGS,
  emptyEnv: 'value',
};

/** `controllerUrl` → `CFNET_AGENT_CONTROLLER_URL`. */
export function envName(key: string): string {
  return envNameOf(AGENT_TABLE.envPrefix, key);
}

const TABLE = /^cf[a-z0-9_]{0,30}$/;

/** Sources of the agent's settings: file keys as AgentConfig, flags by key, CFNET_AGENT_* variables. */
export type ConfigSources = SettingsSources;

/** Resolves every setting from its sources; throws SettingsError naming the first bad setting. */
export function resolveAgentConfig(src: ConfigSources): AgentConfig {
  const resolved = resolveSettings(AGENT_TABLE, src);
  const cfg = resolved.values as unknown as AgentConfig;
  withSetting(AGENT_TABLE, resolved, 'cellId', () => checkCellId('cellId', cfg.cellId));
  if (!TABLE.test(cfg.nftTable)) {
    throw invalid(AGENT_TABLE, resolved, 'nftTable', `${JSON.stringify(cfg.nftTable)} must match ${TABLE}`);
  }
  if (cfg.reconnectMaxMs < cfg.reconnectMinMs) {
    throw invalid(AGENT_TABLE, resolved, 'reconnectMaxMs', 'must be >= reconnectMinMs');
  }
  return cfg;
}

/** Reads a JSON config file (an object of settings). */
export const readConfigFile = readSettingsFile;
