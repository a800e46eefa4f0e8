/**
 * cfnet's domain types. Everything the controller computes and the dataplane enforces is expressed
 * in these shapes; parsers in this folder turn CF's wire formats (CAPI, BBS, policy server, Garden)
 * into them, so no other module has to know those formats' quirks.
 */

export type IpFamily = 4 | 6;

/** An inclusive address range in canonical text form (a single IP has start === end). */
export interface IpRange {
  family: IpFamily;
  start: string;
  end: string;
}

/** Inclusive port range, 0..65535; a single port has start === end. */
export interface PortRange {
  start: number;
  end: number;
}

export type Protocol = 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'all';

/** ICMP match; -1 means "any" for type or code (CAPI semantics). */
export interface IcmpMatch {
  type: number;
  code: number;
}

/**
 * One normalised egress (ASG) rule. Invariants enforced by the parsers:
 * - tcp/udp: `ports` non-empty, no `icmp`;
 * - icmp/icmpv6: `icmp` set, `ports` empty;
 * - all: `ports` empty, no `icmp`;
 * - `destinations` non-empty, sorted, merged where they overlap or touch.
 */
export interface EgressRule {
  protocol: Protocol;
  destinations: IpRange[];
  ports: PortRange[];
  icmp?: IcmpMatch;
  log: boolean;
}

/** An application security group as CAPI (v2/v3) or the policy server describes it. */
export interface SecurityGroup {
  guid: string;
  name: string;
  rules: EgressRule[];
  runningDefault: boolean;
  stagingDefault: boolean;
  runningSpaces: string[];
  stagingSpaces: string[];
}

/** c2c (container-to-container) policy from the policy server's internal API. */
export interface C2CPolicy {
  source: { appGuid: string; tag: number };
  destination: { appGuid: string; tag: number; protocol: 'tcp' | 'udp'; ports: PortRange };
}

/** What kind of container: CF's `network.properties.container_workload`. */
export type Workload = 'app' | 'task' | 'staging';

/**
 * A cell's overlay as its agent read it from its kernel for a status report: the peer cells its
 * lease list asks for, how many of them lack an entry (route, neighbour or FDB), and whether it
 * holds its own lease. The agent sends it (api/status.ts), the store keeps it, convergence reads it.
 */
export interface OverlayHealth {
  expectedPeers: number;
  missingPeers: number;
  leaseHeld: boolean;
}

/** NetIn: host port on the cell DNATed to a container port (TCP, as Garden's NetIn). */
export interface NetInMapping {
  hostPort: number;
  containerPort: number;
}

/** A host (cell) service containers may reach, e.g. Silk's `host_tcp_services: ["169.254.0.2:9001"]`. */
export interface HostService {
  ip: string;
  port: number;
}

/** A container on a cell, as the rule set needs it. */
export interface CellContainer {
  /** Garden handle = ActualLRP instance guid = CNI ContainerID. */
  handle: string;
  /** Overlay IPv4 address. */
  ip: string;
  /** `policy_group_id` (the app guid); '' when unknown. */
  appGuid: string;
  spaceGuid: string;
  orgGuid: string;
  workload: Workload;
  /** c2c source tag of the container's app (packet mark); null when the app is the source of no policy. */
  tag: number | null;
  /** Key into CellRuleSet.asgSets: content hash of the container's effective egress rules. */
  egress: string;
  netIn: NetInMapping[];
}

/** Allow c2c traffic marked with `srcTag` to `dstIp` on protocol/ports. */
export interface C2CAllow {
  srcTag: number;
  dstIp: string;
  protocol: 'tcp' | 'udp';
  ports: PortRange;
}

export interface DenyNetworks {
  always: IpRange[];
  running: IpRange[];
  staging: IpRange[];
}

export interface LoggingConfig {
  /**
   * Silk `iptables_logging`: log every accepted new egress connection, every denied egress packet
   * (rate-limited) and every new c2c connection a policy allows (on the destination's cell).
   */
  asg: boolean;
  /** Silk `iptables_c2c_logging`: log denied c2c packets (rate-limited) on the destination's cell. */
  c2c: boolean;
  /** Silk `iptables_denied_logs_per_sec` (default 1). */
  deniedPerSec: number;
  /** Silk `iptables_accepted_udp_logs_per_sec` (default 100). */
  acceptedUdpPerSec: number;
}

/**
 * Silk's `outbound_connections` (silk-cni): new TCP connections a container opens to one
 * destination address and port, beyond the overlay, are limited to `ratePerSec` with a `burst`.
 */
export interface OutboundConnectionsConfig {
  /** Refuse the connections over the limit. */
  limit: boolean;
  /** Connections a container may open to one destination at once before the rate applies. */
  burst: number;
  /** Sustained new connections per second to one destination. */
  ratePerSec: number;
  /** Log the connections over the limit (prefix `DENY_ORL_<handle>`, at `deniedPerSec`). */
  logging: boolean;
  /** Only log the connections over the limit, refuse none (on its own it measures; it wins over `limit`). */
  dryRun: boolean;
}

/** Cell-wide settings that shape the rule set (operator configuration, same on every cell). */
export interface CellConfig {
  /** Overlay network CIDR, e.g. 10.255.0.0/16: traffic to it is c2c, not egress. */
  overlayNetwork: string;
  dnsServers: string[];
  hostTcpServices: HostService[];
  hostUdpServices: HostService[];
  denyNetworks: DenyNetworks;
  logging: LoggingConfig;
  /**
   * Silk's `outbound_connections`. Absent = DEFAULT_OUTBOUND_CONNECTIONS (rule sets stored before
   * the setting existed read the same).
   */
  outboundConnections?: OutboundConnectionsConfig;
  /**
   * Silk's `disable_container_network_policy`: every overlay source may reach every container, on
   * every port, with or without a policy. Absent = false.
   */
  disableContainerNetworkPolicy?: boolean;
}

/**
 * Everything a cell enforces, computed by the controller (a pure function of world state) and
 * applied by the cell's agent. Collections are kept sorted so equal rule sets serialise equally.
 */
export interface CellRuleSet {
  cellId: string;
  /** Strictly increasing per cell; assigned by the rule-set store. 0 = never stored. */
  version: number;
  containers: CellContainer[];
  /** Distinct egress rule lists keyed by content hash, shared by every container using them. */
  asgSets: Record<string, EgressRule[]>;
  c2c: C2CAllow[];
  config: CellConfig;
  /**
   * The foundation's c2c source tags (app/policy group GUID → tag) of every app that is the source
   * of some policy: any of them may start an instance or task on this cell, and the agent tags it
   * at CNI ADD from this table, without asking the controller. Absent = empty (rule sets stored
   * before the table existed read the same).
   */
  tags?: Record<string, number>;
}

/** The difference between two versions of a cell's rule set (what goes on the wire). */
export interface RuleSetPatch {
  cellId: string;
  from: number;
  to: number;
  containers: { upsert: CellContainer[]; remove: string[] };
  asgSets: { upsert: Record<string, EgressRule[]>; remove: string[] };
  c2c: { add: C2CAllow[]; remove: C2CAllow[] };
  /** Present only when the config changed. */
  config?: CellConfig;
  /** Present only when the tag table changed: tags set (new or changed) and apps removed. */
  tags?: { upsert: Record<string, number>; remove: string[] };
}

/** Silk's silk-cni defaults: off, burst 1000, 100 per second, no logging, no dry run. */
export const DEFAULT_OUTBOUND_CONNECTIONS: OutboundConnectionsConfig = {
  limit: false,
  burst: 1000,
  ratePerSec: 100,
  logging: false,
  dryRun: false,
};

export const DEFAULT_CELL_CONFIG: CellConfig = {
  overlayNetwork: '10.255.0.0/16',
  dnsServers: ['169.254.0.2'],
  hostTcpServices: [],
  hostUdpServices: [],
  denyNetworks: { always: [], running: [], staging: [] },
  logging: { asg: false, c2c: false, deniedPerSec: 1, acceptedUdpPerSec: 100 },
  outboundConnections: DEFAULT_OUTBOUND_CONNECTIONS,
  disableContainerNetworkPolicy: false,
};

/** The outbound connection limits of a config (absent = the defaults). */
export function outboundConnectionsOf(
  config: Pick<CellConfig, 'outboundConnections'>,
): OutboundConnectionsConfig {
  return config.outboundConnections ?? DEFAULT_OUTBOUND_CONNECTIONS;
}
