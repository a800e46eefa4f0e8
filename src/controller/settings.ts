/**
 * Controller settings: one table (CONTROLLER_SETTINGS) on the settings engine (lib/settings)
 * drives the command-line flags, the environment variables (`CFNET_<SNAKE_CASE>`), the JSON config
 * file keys (camelCase, snake_case also accepted) and the validation. Precedence: flag >
 * environment > config file > default. Errors name the setting and where its value came from.
 * `toControllerConfig` turns settings into the runtime config (reading the PEM files the agent API
 * needs; the CF clients read their own files).
 *
 * Longer than ~400 lines: it is the controller's settings table (one entry per setting, each with
 * its flag, environment, file key, default and description) and the compilation into
 * ControllerConfig; the engine is lib/settings.
 */
import { ValidationError } from '../lib/errors.js';
import { DEFAULT_LEASE_MS } from '../lib/leader.js';
import type { RedisAuth } from '../lib/redis.js';
import { parseRedisUrl } from '../lib/redis.js';
import {
  describeSettings as describeTable,
  envNameOf,
  flagName,
  invalid,
  type Resolved,
  readSettingsFile,
  required,
  resolveSettings,
  type SettingSpec,
  SettingsError,
  type SettingsSources,
  type SettingsTable,
  settingLabel,
  withSetting,
} from '../lib/settings/index.js';
import { loadPem } from '../lib/tls.js';
import { parseCellConfig } from '../model/config.js';
import { DEFAULT_OUTBOUND_CONNECTIONS } from '../model/types.js';
import { DEFAULT_NAMESPACE, validateNamespace } from '../state/keys.js';
import {
  DEFAULT_LEASE_RECOVERY_WINDOW_MS,
  DEFAULT_LEASE_TTL_HOURS,
  DEFAULT_OVERLAY_NETWORK,
  DEFAULT_SUBNET_PREFIX_LENGTH,
  subnetPlan,
} from '../state/lease-store.js';
import { DEFAULT_RULESET_LOG_LENGTH } from '../state/ruleset-store.js';
import type { ControllerConfig } from './controller.js';
import { DEFAULT_CELL_CERT_TTL_MINUTES } from './identity/authority.js';
import {
  DEFAULT_JOB_ATTEMPTS,
  DEFAULT_JOB_BACKOFF_MS,
  DEFAULT_KEEP_COMPLETED,
  DEFAULT_KEEP_FAILED,
} from './reconcile/queue.js';
import { DEFAULT_WORKER_CONCURRENCY, jobLockDurationMs } from './reconcile/worker.js';
import { DEFAULT_MAX_WAIT_SECONDS } from './serve/server.js';
import { DEFAULT_ASG_CHECK_INTERVAL_MS } from './sources/asg-informer.js';
import {
  DEFAULT_BBS_RELIST_INTERVAL_MS,
  DEFAULT_BBS_STREAM_IDLE_TIMEOUT_MS,
} from './sources/bbs-informer.js';
import {
  DEFAULT_POLICY_FULL_LIST_INTERVAL_MS,
  DEFAULT_POLICY_POLL_INTERVAL_MS,
} from './sources/policy-informer.js';

export type { SettingKind, SettingSpec, SettingsSources } from '../lib/settings/index.js';
export { flagName, readSettingsFile };

/**
 * Default full security-group listing interval (ms). With `asg_latest_update` (ccInternalUrl) the
 * check catches every v3 write within seconds, but v2 writes do not move it: only a full listing
 * finds them, and CF's acceptance tests give an ASG bind or unbind 180 s to take effect. 60 s
 * (the listing runs at the first check after it is due: at most 60 s + one jittered check interval,
 * then the listing, compute and delivery) keeps well inside that, and is the rate of CF's own
 * policy-server-asg-syncer (asg_poll_interval_seconds, 60). Without the check the listing is the
 * only change detection (its poll is jittered ±20 %: at most 36 s apart).
 */
/** How long a new leader waits for CAPI and the policy server before its first world write (ms). */
export const DEFAULT_INITIAL_SYNC_TIMEOUT_MS = 30_000;

export const ASG_FULL_LIST_DEFAULT_MS = { withLatestUpdate: 60_000, withoutLatestUpdate: 30_000 } as const;

/** The default full ASG listing interval: it depends on whether `asg_latest_update` is checked. */
export function asgFullListDefaultMs(withLatestUpdate: boolean): number {
  return withLatestUpdate
    ? ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate
    : ASG_FULL_LIST_DEFAULT_MS.withoutLatestUpdate;
}

export const CONTROLLER_SETTINGS: readonly SettingSpec[] = [
  // Redis and replicas
  {
    group: 'redis',
    key: 'redisUrl',
    kind: 'url',
    def: 'redis://127.0.0.1:6379/0',
    describe:
      'Redis URL (redis:// or rediss://, optional /db); through Sentinel: redis+sentinel://[user:password@]<master>[/db]?sentinels=host:port,host:port',
  },
  {
    group: 'redis',
    key: 'redisUsername',
    kind: 'string',
    describe: "Redis ACL user (Redis 6+; the URL's user wins); unset = the default user",
  },
  {
    group: 'redis',
    key: 'redisPassword',
    kind: 'secret',
    describe: "Redis password (the URL's wins; prefer the environment variable or the config file)",
  },
  {
    group: 'redis',
    key: 'redisCaCert',
    kind: 'path',
    describe: 'CA of a rediss:// server certificate (PEM file); unset = the public CAs Node.js trusts',
  },
  {
    group: 'redis',
    key: 'redisNamespace',
    kind: 'string',
    def: DEFAULT_NAMESPACE,
    describe: 'prefix of every Redis key and the BullMQ prefix; keep the {hash tag} for Redis Cluster',
  },
  {
    group: 'redis',
    key: 'instanceId',
    kind: 'string',
    describe: 'name of this replica (default host-pid-random)',
  },
  {
    group: 'leader',
    key: 'campaign',
    kind: 'bool',
    def: true,
    describe: 'take part in leader election (the leader runs the informers); false = workers and API only',
  },
  {
    group: 'leader',
    key: 'leaseMs',
    kind: 'int',
    min: 500,
    def: DEFAULT_LEASE_MS,
    describe: 'leadership lease in ms; a standby takes over within about this time',
  },
  {
    group: 'leader',
    key: 'initialSyncTimeoutMs',
    kind: 'int',
    min: 0,
    def: DEFAULT_INITIAL_SYNC_TIMEOUT_MS,
    describe: 'how long a new leader waits for CAPI and the policy server before its first world write',
  },
  // workers
  {
    group: 'queue',
    key: 'workerConcurrency',
    kind: 'int',
    min: 1,
    def: DEFAULT_WORKER_CONCURRENCY,
    describe:
      'reconcile jobs run at once by this replica (by each of its worker processes, when it has some)',
  },
  {
    group: 'queue',
    key: 'workerProcesses',
    kind: 'int',
    min: 0,
    max: 64,
    def: 0,
    describe:
      "child processes that run this replica's reconciles (0 = the controller process itself); one per core spreads a foundation-wide recompute of large cells over the cores (docs/controller.md, sizing)",
  },
  {
    group: 'queue',
    key: 'jobAttempts',
    kind: 'int',
    min: 1,
    def: DEFAULT_JOB_ATTEMPTS,
    describe: 'attempts per reconcile job',
  },
  {
    group: 'queue',
    key: 'jobBackoffMs',
    kind: 'int',
    min: 0,
    def: DEFAULT_JOB_BACKOFF_MS,
    describe: 'first retry delay (exponential backoff)',
  },
  {
    group: 'queue',
    key: 'keepCompletedJobs',
    kind: 'int',
    min: 0,
    def: DEFAULT_KEEP_COMPLETED.count,
    describe: 'completed jobs kept in Redis',
  },
  {
    group: 'queue',
    key: 'keepFailedJobs',
    kind: 'int',
    min: 0,
    def: DEFAULT_KEEP_FAILED.count,
    describe: 'failed jobs kept in Redis',
  },
  {
    group: 'queue',
    key: 'rulesetLogLength',
    kind: 'int',
    min: 1,
    def: DEFAULT_RULESET_LOG_LENGTH,
    describe: 'patches kept per cell (agents further behind get a snapshot)',
  },
  // BBS
  {
    group: 'bbs',
    key: 'bbsUrl',
    kind: 'url',
    describe: 'Diego BBS, e.g. https://bbs.service.cf.internal:8889 (required with campaign)',
  },
  { group: 'bbs', key: 'bbsCaCert', kind: 'path', describe: 'CA certificate of BBS (PEM file)' },
  { group: 'bbs', key: 'bbsClientCert', kind: 'path', describe: 'client certificate for BBS (PEM file)' },
  { group: 'bbs', key: 'bbsClientKey', kind: 'path', describe: 'client key for BBS (PEM file)' },
  {
    group: 'bbs',
    key: 'bbsRelistIntervalMs',
    kind: 'int',
    min: 0,
    def: DEFAULT_BBS_RELIST_INTERVAL_MS,
    describe: 'full BBS re-list interval (also after every stream reconnect); 0 = only after reconnects',
  },
  {
    group: 'bbs',
    key: 'bbsStreamIdleTimeoutMs',
    kind: 'int',
    min: 1000,
    def: DEFAULT_BBS_STREAM_IDLE_TIMEOUT_MS,
    describe: 'reconnect an event stream silent for this long',
  },
  // CAPI
  {
    group: 'capi',
    key: 'capiUrl',
    kind: 'url',
    describe: 'Cloud Controller API, e.g. https://api.sys.example.com (no ASGs without it)',
  },
  {
    group: 'capi',
    key: 'capiCaCert',
    kind: 'path',
    describe: "CA of CAPI's certificate (PEM file; default: system CAs)",
  },
  {
    group: 'capi',
    key: 'uaaUrl',
    kind: 'url',
    describe: 'UAA, e.g. https://uaa.service.cf.internal:8443 (required with capiUrl)',
  },
  { group: 'capi', key: 'uaaCaCert', kind: 'path', describe: "CA of UAA's certificate (PEM file)" },
  {
    group: 'capi',
    key: 'uaaClientId',
    kind: 'string',
    describe: 'UAA client (client_credentials, cloud_controller.admin_read_only)',
  },
  {
    group: 'capi',
    key: 'uaaClientSecret',
    kind: 'secret',
    describe: 'its secret (prefer the environment variable or the config file)',
  },
  {
    group: 'capi',
    key: 'ccInternalUrl',
    kind: 'url',
    describe:
      "CC's internal mTLS endpoint for asg_latest_update, e.g. https://cloud-controller-ng.service.cf.internal:9023",
  },
  {
    group: 'capi',
    key: 'ccInternalCaCert',
    kind: 'path',
    describe: 'CA of the internal endpoint (PEM file)',
  },
  {
    group: 'capi',
    key: 'ccInternalClientCert',
    kind: 'path',
    describe: 'client certificate for the internal endpoint',
  },
  {
    group: 'capi',
    key: 'ccInternalClientKey',
    kind: 'path',
    describe: 'client key for the internal endpoint',
  },
  {
    group: 'capi',
    key: 'asgCheckIntervalMs',
    kind: 'int',
    min: 100,
    def: DEFAULT_ASG_CHECK_INTERVAL_MS,
    describe: 'asg_latest_update check interval (with ccInternalUrl)',
  },
  {
    group: 'capi',
    key: 'asgFullListIntervalMs',
    kind: 'int',
    min: 1000,
    describe: `full ASG listing interval (default ${ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate} with ccInternalUrl: v2 writes do not move asg_latest_update and CF allows 180 s; ${ASG_FULL_LIST_DEFAULT_MS.withoutLatestUpdate} without)`,
  },
  {
    group: 'capi',
    key: 'dynamicAsgs',
    kind: 'bool',
    def: true,
    describe:
      "dynamic ASGs (CF's default): a container's egress follows Cloud Controller's security groups; false = static ASGs: the egress_rules BBS holds for the container's desired LRP or task (compiled at desire time), changed only by a restart; Cloud Controller is then not polled for security groups",
  },
  // policy server
  {
    group: 'policy',
    key: 'policyServerUrl',
    kind: 'url',
    describe:
      'policy server internal API, e.g. https://policy-server.service.cf.internal:4003 (no c2c without it)',
  },
  {
    group: 'policy',
    key: 'policyServerCaCert',
    kind: 'path',
    describe: 'CA of the policy server (PEM file)',
  },
  {
    group: 'policy',
    key: 'policyServerClientCert',
    kind: 'path',
    describe: 'client certificate for the policy server',
  },
  {
    group: 'policy',
    key: 'policyServerClientKey',
    kind: 'path',
    describe: 'client key for the policy server',
  },
  {
    group: 'policy',
    key: 'policyPollIntervalMs',
    kind: 'int',
    min: 100,
    def: DEFAULT_POLICY_POLL_INTERVAL_MS,
    describe: 'policies_last_updated poll interval',
  },
  {
    group: 'policy',
    key: 'policyFullListIntervalMs',
    kind: 'int',
    min: 1000,
    def: DEFAULT_POLICY_FULL_LIST_INTERVAL_MS,
    describe: 'full policy listing interval (safety net)',
  },
  // agent API and operator port
  {
    group: 'api',
    key: 'apiListen',
    kind: 'listen',
    def: '0.0.0.0:4443',
    describe: 'agent API (HTTPS, mTLS) host:port; "off" to disable',
  },
  {
    group: 'api',
    key: 'apiCaCert',
    kind: 'path',
    describe: 'CA that signs agent client certificates (PEM file)',
  },
  {
    group: 'api',
    key: 'apiCaKey',
    kind: 'path',
    describe:
      "private key of apiCaCert (PEM file): the controller then signs cells' certificate requests (docs/security.md); unset = agents bring their own certificates",
  },
  {
    group: 'api',
    key: 'cellBootstrapSecret',
    kind: 'secret',
    describe:
      "secret the per-cell bootstrap tokens derive from (a cell's first certificate request needs its token); unset = only renewals with a valid certificate",
  },
  {
    group: 'api',
    key: 'cellCertTtlMinutes',
    kind: 'int',
    min: 10,
    def: DEFAULT_CELL_CERT_TTL_MINUTES,
    describe: 'lifetime of a cell certificate the controller signs (agents renew at two thirds of it)',
  },
  { group: 'api', key: 'apiCert', kind: 'path', describe: 'server certificate of the agent API (PEM file)' },
  { group: 'api', key: 'apiKey', kind: 'path', describe: 'server key of the agent API (PEM file)' },
  {
    group: 'api',
    key: 'apiMaxWaitSeconds',
    kind: 'int',
    min: 0,
    def: DEFAULT_MAX_WAIT_SECONDS,
    describe: 'longest long-poll wait granted',
  },
  {
    group: 'api',
    key: 'operatorListen',
    kind: 'listen',
    def: '127.0.0.1:9090',
    describe: '/metrics, /healthz, /readyz (plain HTTP) host:port; "off" to disable',
  },
  {
    group: 'api',
    key: 'operatorToken',
    kind: 'secret',
    describe:
      'operator token (16+ characters) of the dashboard on the operator port (/dashboard); unset = dashboard disabled',
  },
  // overlay and leases
  {
    group: 'overlay',
    key: 'overlayNetwork',
    kind: 'string',
    def: DEFAULT_OVERLAY_NETWORK,
    describe: 'overlay network (cell subnets are leased from it; c2c traffic)',
  },
  {
    group: 'overlay',
    key: 'subnetPrefixLength',
    kind: 'int',
    min: 1,
    def: DEFAULT_SUBNET_PREFIX_LENGTH,
    describe: 'prefix length of each cell subnet',
  },
  {
    group: 'overlay',
    key: 'leaseRecoveryWindowMs',
    kind: 'int',
    min: 0,
    def: DEFAULT_LEASE_RECOVERY_WINDOW_MS,
    describe:
      'after the lease table is found empty (new foundation or Redis data lost), new cells get fresh subnets only this long after, so live cells claim theirs back first',
  },
  {
    group: 'overlay',
    key: 'leaseTtlHours',
    kind: 'int',
    min: 1,
    def: DEFAULT_LEASE_TTL_HOURS,
    describe: 'a subnet lease expires this long after its last renewal',
  },
  // rule-set shaping (Silk vocabulary)
  {
    group: 'rules',
    key: 'dnsServers',
    kind: 'list',
    def: ['169.254.0.2'],
    describe: 'DNS servers containers may reach (comma list)',
  },
  {
    group: 'rules',
    key: 'hostTcpServices',
    kind: 'list',
    def: [],
    describe: 'cell services containers may reach over TCP, ip:port (comma list)',
  },
  {
    group: 'rules',
    key: 'hostUdpServices',
    kind: 'list',
    def: [],
    describe: 'cell services containers may reach over UDP, ip:port (comma list)',
  },
  {
    group: 'rules',
    key: 'denyNetworksAlways',
    kind: 'list',
    def: [],
    describe: 'CIDRs no container may reach, whatever the ASGs (comma list)',
  },
  {
    group: 'rules',
    key: 'denyNetworksRunning',
    kind: 'list',
    def: [],
    describe: 'CIDRs app and task containers may not reach',
  },
  {
    group: 'rules',
    key: 'denyNetworksStaging',
    kind: 'list',
    def: [],
    describe: 'CIDRs staging containers may not reach',
  },
  {
    group: 'rules',
    key: 'asgLogging',
    kind: 'bool',
    def: false,
    describe: 'log accepted egress connections (Silk iptables_logging)',
  },
  { group: 'rules', key: 'c2cLogging', kind: 'bool', def: false, describe: 'log accepted c2c connections' },
  {
    group: 'rules',
    key: 'deniedLogsPerSec',
    kind: 'int',
    min: 0,
    def: 1,
    describe: 'rate of denied-packet log lines per container',
  },
  {
    group: 'rules',
    key: 'acceptedUdpLogsPerSec',
    kind: 'int',
    min: 0,
    def: 100,
    describe: 'rate of accepted-UDP log lines per container',
  },
  {
    group: 'rules',
    key: 'outboundConnLimit',
    kind: 'bool',
    def: DEFAULT_OUTBOUND_CONNECTIONS.limit,
    describe:
      "refuse a container's new TCP connections to one destination address and port beyond the rate (Silk outbound_connections.limit)",
  },
  {
    group: 'rules',
    key: 'outboundConnBurst',
    kind: 'int',
    min: 1,
    def: DEFAULT_OUTBOUND_CONNECTIONS.burst,
    describe:
      'new connections a container may open to one destination at once (Silk outbound_connections.burst)',
  },
  {
    group: 'rules',
    key: 'outboundConnRatePerSec',
    kind: 'int',
    min: 1,
    def: DEFAULT_OUTBOUND_CONNECTIONS.ratePerSec,
    describe:
      'sustained new connections per second to one destination (Silk outbound_connections.rate_per_sec)',
  },
  {
    group: 'rules',
    key: 'outboundConnLogging',
    kind: 'bool',
    def: DEFAULT_OUTBOUND_CONNECTIONS.logging,
    describe: 'log connections over the limit, prefix DENY_ORL_ (Silk outbound_connections.logging)',
  },
  {
    group: 'rules',
    key: 'outboundConnDryRun',
    kind: 'bool',
    def: DEFAULT_OUTBOUND_CONNECTIONS.dryRun,
    describe: 'only log connections over the limit, refuse none (Silk outbound_connections.dry_run)',
  },
  {
    group: 'rules',
    key: 'disableContainerNetworkPolicy',
    kind: 'bool',
    def: false,
    describe:
      'accept all container-to-container traffic on the overlay, with or without a policy (Silk disable_container_network_policy)',
  },
  {
    group: 'log',
    key: 'logLevel',
    kind: 'enum',
    choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
    def: 'info',
    describe: 'trace, debug, info, warn, error or fatal',
  },
];

export type ControllerSettings = {
  redisUrl: string;
  redisUsername?: string;
  redisPassword?: string;
  redisCaCert?: string;
  redisNamespace: string;
  instanceId?: string;
  campaign: boolean;
  leaseMs: number;
  initialSyncTimeoutMs: number;
  workerConcurrency: number;
  workerProcesses: number;
  jobAttempts: number;
  jobBackoffMs: number;
  keepCompletedJobs: number;
  keepFailedJobs: number;
  rulesetLogLength: number;
  bbsUrl?: string;
  bbsCaCert?: string;
  bbsClientCert?: string;
  bbsClientKey?: string;
  bbsRelistIntervalMs: number;
  bbsStreamIdleTimeoutMs: number;
  capiUrl?: string;
  capiCaCert?: string;
  uaaUrl?: string;
  uaaCaCert?: string;
  uaaClientId?: string;
  uaaClientSecret?: string;
  ccInternalUrl?: string;
  ccInternalCaCert?: string;
  ccInternalClientCert?: string;
  ccInternalClientKey?: string;
  asgCheckIntervalMs: number;
  asgFullListIntervalMs?: number;
  dynamicAsgs: boolean;
  policyServerUrl?: string;
  policyServerCaCert?: string;
  policyServerClientCert?: string;
  policyServerClientKey?: string;
  policyPollIntervalMs: number;
  policyFullListIntervalMs: number;
  apiListen: { host: string; port: number } | null;
  apiCaCert?: string;
  apiCaKey?: string;
  cellBootstrapSecret?: string;
  cellCertTtlMinutes: number;
  apiCert?: string;
  apiKey?: string;
  apiMaxWaitSeconds: number;
  operatorListen: { host: string; port: number } | null;
  operatorToken?: string;
  overlayNetwork: string;
  subnetPrefixLength: number;
  leaseTtlHours: number;
  leaseRecoveryWindowMs: number;
  dnsServers: string[];
  hostTcpServices: string[];
  hostUdpServices: string[];
  denyNetworksAlways: string[];
  denyNetworksRunning: string[];
  denyNetworksStaging: string[];
  asgLogging: boolean;
  c2cLogging: boolean;
  deniedLogsPerSec: number;
  acceptedUdpLogsPerSec: number;
  outboundConnLimit: boolean;
  outboundConnBurst: number;
  outboundConnRatePerSec: number;
  outboundConnLogging: boolean;
  outboundConnDryRun: boolean;
  disableContainerNetworkPolicy: boolean;
  logLevel: string;
};

/** The controller's table for the settings engine. */
export const CONTROLLER_TABLE: SettingsTable = {
  envPrefix: 'CFNET_',
  settings: CONTROLLER_SETTINGS,
  emptyEnv: 'unset',
};

/** `redisUrl` → `CFNET_REDIS_URL`. */
export function envName(key: string): string {
  return envNameOf(CONTROLLER_TABLE.envPrefix, key);
}

/** Merge the sources, validate every value and the combinations. */
export function parseControllerSettings(sources: SettingsSources): ControllerSettings {
  const resolved = resolveSettings(CONTROLLER_TABLE, sources);
  const settings = resolved.values as ControllerSettings;
  checkCombinations(settings, resolved);
  return settings;
}

function need(s: ControllerSettings, key: keyof ControllerSettings, because: string): void {
  if (s[key] === undefined) throw required(CONTROLLER_TABLE, key, because);
}

/** A secret that must be long enough to resist guessing. */
function atLeast16(
  s: ControllerSettings,
  resolved: Resolved,
  key: 'operatorToken' | 'cellBootstrapSecret',
): void {
  const v = s[key];
  if (v !== undefined && v.length < 16) {
    throw new SettingsError(
      `invalid setting ${settingLabel(CONTROLLER_TABLE, key)} [redacted] from ${resolved.from[key] ?? 'default'}: must be at least 16 characters`,
      { setting: key, from: resolved.from[key] ?? 'default' },
    );
  }
}

function checkCombinations(s: ControllerSettings, resolved: Resolved): void {
  const check = <T>(key: string, fn: () => T) => withSetting(CONTROLLER_TABLE, resolved, key, fn);
  check('redisNamespace', () => validateNamespace(s.redisNamespace));
  check('redisUrl', () => parseRedisUrl(s.redisUrl));
  if (s.redisCaCert && !/^rediss(\+sentinel)?:\/\//.test(s.redisUrl)) {
    throw new SettingsError('setting redisCaCert needs a rediss:// redisUrl', { setting: 'redisCaCert' });
  }
  atLeast16(s, resolved, 'operatorToken');
  if (s.campaign) need(s, 'bbsUrl', 'to run informers (or set campaign to false)');
  if (s.capiUrl) {
    need(s, 'uaaUrl', 'with capiUrl');
    need(s, 'uaaClientId', 'with capiUrl');
    need(s, 'uaaClientSecret', 'with capiUrl');
  }
  if (s.apiListen) {
    need(s, 'apiCaCert', 'to serve the agent API (or set apiListen to off)');
    need(s, 'apiCert', 'to serve the agent API');
    need(s, 'apiKey', 'to serve the agent API');
  }
  if (s.apiCaKey) need(s, 'bbsUrl', 'with apiCaKey (cells are verified against their BBS presence)');
  atLeast16(s, resolved, 'cellBootstrapSecret');
  check('overlayNetwork', () => parseCellConfig({ overlay_network: s.overlayNetwork }));
  check('subnetPrefixLength', () =>
    subnetPlan({ overlayNetwork: s.overlayNetwork, subnetPrefixLength: s.subnetPrefixLength }),
  );
  cellConfigOf(s, resolved);
}

/** Setting of each cell-config field (the model's snake_case names). */
const CELL_CONFIG_FIELDS: Record<string, string> = {
  dns_servers: 'dnsServers',
  host_tcp_services: 'hostTcpServices',
  host_udp_services: 'hostUdpServices',
  'deny_networks.always': 'denyNetworksAlways',
  'deny_networks.running': 'denyNetworksRunning',
  'deny_networks.staging': 'denyNetworksStaging',
  overlay_network: 'overlayNetwork',
  'outbound_connections.burst': 'outboundConnBurst',
  'outbound_connections.rate_per_sec': 'outboundConnRatePerSec',
};

function cellConfigOf(s: ControllerSettings, resolved: Resolved = { values: {}, from: {} }) {
  const input = {
    overlay_network: s.overlayNetwork,
    dns_servers: s.dnsServers,
    host_tcp_services: s.hostTcpServices,
    host_udp_services: s.hostUdpServices,
    deny_networks: {
      always: s.denyNetworksAlways,
      running: s.denyNetworksRunning,
      staging: s.denyNetworksStaging,
    },
    iptables_logging: s.asgLogging,
    iptables_c2c_logging: s.c2cLogging,
    iptables_denied_logs_per_sec: s.deniedLogsPerSec,
    iptables_accepted_udp_logs_per_sec: s.acceptedUdpLogsPerSec,
    outbound_connections: {
      limit: s.outboundConnLimit,
      burst: s.outboundConnBurst,
      rate_per_sec: s.outboundConnRatePerSec,
      logging: s.outboundConnLogging,
      dry_run: s.outboundConnDryRun,
    },
    disable_container_network_policy: s.disableContainerNetworkPolicy,
  };
  try {
    return parseCellConfig(input);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const prefix = Object.keys(CELL_CONFIG_FIELDS).find((p) => err.field.startsWith(p));
    const key = prefix ? CELL_CONFIG_FIELDS[prefix]! : err.field;
    throw invalid(CONTROLLER_TABLE, resolved, key, err.message, { field: err.field });
  }
}

function load(key: string, path: string): string {
  try {
    return loadPem(path);
  } catch (err) {
    throw new SettingsError(
      `setting ${key} (${flagName(key)}): cannot read ${path}: ${(err as Error).message}`,
      {
        setting: key,
      },
    );
  }
}

function redisAuthOf(s: ControllerSettings): { redisAuth?: RedisAuth } {
  const auth: RedisAuth = {
    ...(s.redisUsername ? { username: s.redisUsername } : {}),
    ...(s.redisPassword ? { password: s.redisPassword } : {}),
    ...(s.redisCaCert ? { tlsCa: load('redisCaCert', s.redisCaCert) } : {}),
  };
  return Object.keys(auth).length > 0 ? { redisAuth: auth } : {};
}

function tlsFiles(ca?: string, cert?: string, key?: string) {
  return {
    ...(ca ? { caFile: ca } : {}),
    ...(cert ? { certFile: cert } : {}),
    ...(key ? { keyFile: key } : {}),
  };
}

/**
 * Every setting at its default, compiled by the engine exactly as a run without flags, environment
 * or file would get it (the table is the one place a default is written).
 */
const DEFAULTS = resolveSettings(CONTROLLER_TABLE, {}).values as ControllerSettings;

/**
 * The tunables of every part, from settings: the one mapping from settings to ControllerConfig
 * fields, used for settings from sources (`toControllerConfig`) and for the table's defaults
 * (`controllerConfig`), so a code-built config gets exactly what the settings would give.
 */
function tunablesOf(s: ControllerSettings) {
  return {
    namespace: s.redisNamespace,
    campaign: s.campaign,
    leaseMs: s.leaseMs,
    initialSyncTimeoutMs: s.initialSyncTimeoutMs,
    workers: {
      concurrency: s.workerConcurrency,
      processes: s.workerProcesses,
      attempts: s.jobAttempts,
      backoffMs: s.jobBackoffMs,
      keepCompleted: s.keepCompletedJobs,
      keepFailed: s.keepFailedJobs,
      lockDurationMs: jobLockDurationMs(s.leaseMs),
    },
    rulesetLogLength: s.rulesetLogLength,
    leases: {
      overlayNetwork: s.overlayNetwork,
      subnetPrefixLength: s.subnetPrefixLength,
      ttlMs: s.leaseTtlHours * 3600_000,
      recoveryWindowMs: s.leaseRecoveryWindowMs,
    },
    bbs: { relistIntervalMs: s.bbsRelistIntervalMs, streamIdleTimeoutMs: s.bbsStreamIdleTimeoutMs },
    capi: {
      checkIntervalMs: s.asgCheckIntervalMs,
      fullListIntervalMs: (withLatestUpdate: boolean) =>
        s.asgFullListIntervalMs ?? asgFullListDefaultMs(withLatestUpdate),
    },
    policy: { intervalMs: s.policyPollIntervalMs, fullListIntervalMs: s.policyFullListIntervalMs },
    // "off" (null) only disables the port; a code-built api/operator section listens at the default
    api: { ...(s.apiListen ?? DEFAULTS.apiListen!), maxWaitSeconds: s.apiMaxWaitSeconds },
    operator: { ...(s.operatorListen ?? DEFAULTS.operatorListen!) },
    identity: { ttlMs: s.cellCertTtlMinutes * 60_000 },
  };
}

/** The runtime configuration (reads the agent API's PEM files). */
export function toControllerConfig(s: ControllerSettings): ControllerConfig {
  const t = tunablesOf(s);
  const cfg: ControllerConfig = {
    redisUrl: s.redisUrl,
    ...redisAuthOf(s),
    namespace: t.namespace,
    ...(s.instanceId ? { instanceId: s.instanceId } : {}),
    campaign: t.campaign,
    leaseMs: t.leaseMs,
    initialSyncTimeoutMs: t.initialSyncTimeoutMs,
    workers: t.workers,
    rulesetLogLength: t.rulesetLogLength,
    cellConfig: cellConfigOf(s),
    leases: t.leases,
  };
  if (s.bbsUrl) {
    cfg.bbs = {
      url: s.bbsUrl,
      tls: tlsFiles(s.bbsCaCert, s.bbsClientCert, s.bbsClientKey),
      ...t.bbs,
    };
  }
  // Static ASGs: the BBS snapshots are the whole truth, so Cloud Controller is not polled at all
  // (no CAPI load, and no leader waits for a CAPI listing before it publishes).
  if (s.dynamicAsgs && s.capiUrl && s.uaaUrl && s.uaaClientId && s.uaaClientSecret) {
    cfg.capi = {
      url: s.capiUrl,
      tls: tlsFiles(s.capiCaCert),
      uaa: {
        url: s.uaaUrl,
        clientId: s.uaaClientId,
        clientSecret: s.uaaClientSecret,
        tls: tlsFiles(s.uaaCaCert),
      },
      ...(s.ccInternalUrl
        ? {
            internal: {
              url: s.ccInternalUrl,
              tls: tlsFiles(s.ccInternalCaCert, s.ccInternalClientCert, s.ccInternalClientKey),
            },
          }
        : {}),
      checkIntervalMs: t.capi.checkIntervalMs,
      fullListIntervalMs: t.capi.fullListIntervalMs(!!s.ccInternalUrl),
    };
  }
  if (!s.dynamicAsgs) cfg.compute = { egressSource: 'static' };
  if (s.policyServerUrl) {
    cfg.policy = {
      url: s.policyServerUrl,
      tls: tlsFiles(s.policyServerCaCert, s.policyServerClientCert, s.policyServerClientKey),
      ...t.policy,
    };
  }
  if (s.apiListen && s.apiCaCert && s.apiCert && s.apiKey) {
    cfg.api = {
      ...t.api,
      tls: {
        ca: load('apiCaCert', s.apiCaCert),
        cert: load('apiCert', s.apiCert),
        key: load('apiKey', s.apiKey),
      },
    };
    if (s.apiCaKey) {
      cfg.identity = {
        ca: { cert: cfg.api.tls.ca, key: load('apiCaKey', s.apiCaKey) },
        ...t.identity,
        ...(s.cellBootstrapSecret ? { bootstrapSecret: s.cellBootstrapSecret } : {}),
      };
    }
  }
  if (s.operatorListen) {
    cfg.operator = {
      ...t.operator,
      ...(s.operatorToken ? { token: s.operatorToken } : {}),
    };
  }
  return cfg;
}

/** Settings as text for `--check` and logs (secrets and URL credentials redacted). */
export function describeSettings(s: ControllerSettings): Record<string, unknown> {
  return describeTable(CONTROLLER_TABLE, s);
}

/**
 * Every file a setting names must be readable PEM: checked by `--check` and before start, so that
 * a missing certificate is a settings error naming the setting (exit 2), not a crash of a new
 * leader when it first builds its clients.
 */
export function checkSettingFiles(s: ControllerSettings): void {
  for (const spec of CONTROLLER_SETTINGS) {
    const path = (s as Record<string, unknown>)[spec.key];
    if (spec.kind !== 'path' || typeof path !== 'string' || path === '') continue;
    try {
      loadPem(path);
    } catch (err) {
      throw new SettingsError(
        `setting ${spec.key} (${flagName(spec.key)} / ${envName(spec.key)}): cannot use ${path}: ${(err as Error).message}`,
        { setting: spec.key, path },
      );
    }
  }
}

type Section<T> = T extends object ? T : never;
type Loose<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;

/**
 * A ControllerConfig built in code (tests, the lab, benchmarks) rather than from settings: every
 * tunable it leaves out takes the settings table's default (see `controllerConfig`).
 */
export type ControllerOptions = Omit<
  ControllerConfig,
  | 'namespace'
  | 'leaseMs'
  | 'workers'
  | 'leases'
  | 'rulesetLogLength'
  | 'initialSyncTimeoutMs'
  | 'campaign'
  | 'cellConfig'
  | 'bbs'
  | 'capi'
  | 'policy'
  | 'api'
  | 'identity'
  | 'operator'
> & {
  namespace?: string;
  leaseMs?: number;
  workers?: Partial<ControllerConfig['workers']>;
  leases?: Partial<ControllerConfig['leases']>;
  rulesetLogLength?: number;
  initialSyncTimeoutMs?: number;
  campaign?: boolean;
  cellConfig?: ControllerConfig['cellConfig'];
  bbs?: Loose<Section<ControllerConfig['bbs']>, 'relistIntervalMs' | 'streamIdleTimeoutMs'>;
  capi?: Loose<Section<ControllerConfig['capi']>, 'checkIntervalMs' | 'fullListIntervalMs'>;
  policy?: Loose<Section<ControllerConfig['policy']>, 'intervalMs' | 'fullListIntervalMs'>;
  api?: Loose<Section<ControllerConfig['api']>, 'host' | 'port' | 'maxWaitSeconds'>;
  identity?: Loose<Section<ControllerConfig['identity']>, 'ttlMs'>;
  operator?: Loose<Section<ControllerConfig['operator']>, 'host' | 'port'>;
};

/**
 * Completes a code-built config with the settings table's defaults, through the same mapping as
 * `toControllerConfig`: what `o` leaves out is exactly what settings left at their defaults give.
 * The job lock follows `o.leaseMs` as it follows the leaseMs setting.
 */
export function controllerConfig(o: ControllerOptions): ControllerConfig {
  const t = tunablesOf({ ...DEFAULTS, ...(o.leaseMs !== undefined ? { leaseMs: o.leaseMs } : {}) });
  const { bbs, capi, policy, api, identity, operator, ...rest } = o;
  return {
    ...rest,
    namespace: o.namespace ?? t.namespace,
    leaseMs: t.leaseMs,
    workers: { ...t.workers, ...o.workers },
    leases: { ...t.leases, ...o.leases },
    rulesetLogLength: o.rulesetLogLength ?? t.rulesetLogLength,
    initialSyncTimeoutMs: o.initialSyncTimeoutMs ?? t.initialSyncTimeoutMs,
    campaign: o.campaign ?? t.campaign,
    cellConfig: o.cellConfig ?? cellConfigOf(DEFAULTS),
    ...(bbs ? { bbs: { ...t.bbs, ...bbs } } : {}),
    ...(capi
      ? {
          capi: {
            checkIntervalMs: t.capi.checkIntervalMs,
            ...capi,
            fullListIntervalMs: capi.fullListIntervalMs ?? t.capi.fullListIntervalMs(!!capi.internal),
          },
        }
      : {}),
    ...(policy ? { policy: { ...t.policy, ...policy } } : {}),
    ...(api ? { api: { ...t.api, ...api } } : {}),
    ...(identity ? { identity: { ...t.identity, ...identity } } : {}),
    ...(operator ? { operator: { ...t.operator, ...operator } } : {}),
  };
}
