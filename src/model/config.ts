/**
 * Operator settings that shape every cell's rule set, in Silk's vocabulary (silk-cni /
 * cni-wrapper-plugin job properties, docs/silk.md, "The CNI plugin's properties"), parsed into `CellConfig`.
 *
 * Accepted keys (all optional; missing keys keep the value of `opts.base`, by default
 * DEFAULT_CELL_CONFIG):
 * - `overlay_network`: IPv4 CIDR (silk-controller `network`), host bits cleared.
 * - `dns_servers`: IP addresses; order kept (it is resolver order), duplicates dropped.
 * - `host_tcp_services`, `host_udp_services`: `"ip:port"` (IPv6 as `"[addr]:port"`); sorted, deduped.
 * - `deny_networks`: `{always, running, staging}`, each a list of CIDRs (an address needs `/32`),
 *   merged into sorted ranges.
 * - `iptables_logging` or its wrapper-config name `iptables_asg_logging`: log accepted egress.
 * - `iptables_c2c_logging`: log c2c.
 * - `iptables_denied_logs_per_sec`, `iptables_accepted_udp_logs_per_sec`: integers >= 1.
 * - `outbound_connections`: `{limit, burst, rate_per_sec, logging, dry_run}` (silk-cni's), each
 *   optional; burst and rate_per_sec integers >= 1.
 * - `disable_container_network_policy` (vxlan-policy-agent's): c2c open to every overlay source.
 * Any other key is rejected (a typo must not silently drop a deny rule) unless `allowUnknownKeys`.
 */
import { ValidationError } from '../lib/errors.js';
import { bigIntToIp, cidrToRange, mergeRanges, parseCidr, parseIp } from './ip.js';
import {
  type CellConfig,
  DEFAULT_CELL_CONFIG,
  type DenyNetworks,
  type HostService,
  type IpRange,
  type OutboundConnectionsConfig,
  outboundConnectionsOf,
} from './types.js';

/** The Silk-style keys of a cell's configuration (the CNI config carries the same ones). */
export const CELL_CONFIG_KEYS = [
  'overlay_network',
  'dns_servers',
  'host_tcp_services',
  'host_udp_services',
  'deny_networks',
  'iptables_logging',
  'iptables_asg_logging',
  'iptables_c2c_logging',
  'iptables_denied_logs_per_sec',
  'iptables_accepted_udp_logs_per_sec',
  'outbound_connections',
  'disable_container_network_policy',
] as const;
const DENY_KEYS = ['always', 'running', 'staging'] as const;
const OUTBOUND_KEYS = ['limit', 'burst', 'rate_per_sec', 'logging', 'dry_run'] as const;

export interface CellConfigOptions {
  base?: CellConfig;
  allowUnknownKeys?: boolean;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function stringArray(v: unknown, field: string): string[] {
  if (!Array.isArray(v)) throw new ValidationError(field, v, 'must be an array of strings');
  v.forEach((s, i) => {
    if (typeof s !== 'string') throw new ValidationError(`${field}[${i}]`, s, 'must be a string');
  });
  return v as string[];
}

/** `"ip:port"` or `"[ipv6]:port"`, port 1..65535. */
export function parseHostService(text: unknown, field = 'host_service'): HostService {
  if (typeof text !== 'string') throw new ValidationError(field, text, 'must be a string "ip:port"');
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) throw new ValidationError(field, text, 'must be "ip:port" (IPv6 as "[addr]:port")');
  let ip: string;
  try {
    const p = parseIp(m[1]!, field);
    ip = bigIntToIp(p.value, p.family);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(field, text, `invalid address: ${m[1]}`);
    throw err;
  }
  const port = Number(m[2]);
  if (port < 1 || port > 65535)
    throw new ValidationError(field, text, `port ${port} is out of range 1..65535`);
  return { ip, port };
}

export function formatHostService(s: HostService): string {
  return s.ip.includes(':') ? `[${s.ip}]:${s.port}` : `${s.ip}:${s.port}`;
}

function hostServices(v: unknown, field: string): HostService[] {
  const list = stringArray(v, field).map((s, i) => parseHostService(s, `${field}[${i}]`));
  const seen = new Set<string>();
  const out: HostService[] = [];
  for (const s of list) {
    const k = formatHostService(s);
    if (!seen.has(k)) {
      seen.add(k);
      out.push(s);
    }
  }
  return out.sort((a, b) => {
    const x = parseIp(a.ip);
    const y = parseIp(b.ip);
    if (x.family !== y.family) return x.family - y.family;
    if (x.value !== y.value) return x.value < y.value ? -1 : 1;
    return a.port - b.port;
  });
}

function cidrList(v: unknown, field: string): IpRange[] {
  return mergeRanges(
    stringArray(v, field).map((s, i) => {
      if (!s.includes('/')) {
        throw new ValidationError(
          `${field}[${i}]`,
          s,
          'must be a CIDR (address/prefix; a single address is /32)',
        );
      }
      return cidrToRange(s, `${field}[${i}]`);
    }),
  );
}

function bool(v: unknown, field: string): boolean {
  if (typeof v !== 'boolean') throw new ValidationError(field, v, 'must be a boolean');
  return v;
}

function rate(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new ValidationError(field, v, 'must be an integer >= 1');
  }
  return v;
}

function outboundConnections(v: unknown, base: OutboundConnectionsConfig): OutboundConnectionsConfig {
  const f = 'outbound_connections';
  if (!isPlainObject(v)) {
    throw new ValidationError(f, v, 'must be an object {limit, burst, rate_per_sec, logging, dry_run}');
  }
  const unknown = Object.keys(v).filter((k) => !(OUTBOUND_KEYS as readonly string[]).includes(k));
  if (unknown.length > 0) {
    throw new ValidationError(
      `${f}.${unknown[0]}`,
      v[unknown[0]!],
      `unknown field(s): ${JSON.stringify(unknown)}`,
    );
  }
  const out = { ...base };
  if (v.limit !== undefined) out.limit = bool(v.limit, `${f}.limit`);
  if (v.burst !== undefined) out.burst = rate(v.burst, `${f}.burst`);
  if (v.rate_per_sec !== undefined) out.ratePerSec = rate(v.rate_per_sec, `${f}.rate_per_sec`);
  if (v.logging !== undefined) out.logging = bool(v.logging, `${f}.logging`);
  if (v.dry_run !== undefined) out.dryRun = bool(v.dry_run, `${f}.dry_run`);
  return out;
}

/** Parse operator settings into a CellConfig. Errors name the field, e.g. `deny_networks.always[1]`. */
export function parseCellConfig(input: unknown, opts: CellConfigOptions = {}): CellConfig {
  const base = structuredClone(opts.base ?? DEFAULT_CELL_CONFIG);
  if (input === undefined || input === null) return base;
  if (!isPlainObject(input)) throw new ValidationError('config', input, 'must be an object');
  if (!opts.allowUnknownKeys) {
    const unknown = Object.keys(input).filter((k) => !(CELL_CONFIG_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      throw new ValidationError(
        unknown[0]!,
        input[unknown[0]!],
        `unknown field(s): ${JSON.stringify(unknown)}`,
      );
    }
  }
  const out = base;

  if (input.overlay_network !== undefined) {
    const c = parseCidr(input.overlay_network as string, 'overlay_network');
    if (c.family !== 4)
      throw new ValidationError('overlay_network', input.overlay_network, 'must be an IPv4 CIDR');
    out.overlayNetwork = `${c.network}/${c.prefix}`;
  }

  if (input.dns_servers !== undefined) {
    const seen = new Set<string>();
    out.dnsServers = [];
    stringArray(input.dns_servers, 'dns_servers').forEach((s, i) => {
      const p = parseIp(s, `dns_servers[${i}]`);
      const ip = bigIntToIp(p.value, p.family);
      if (!seen.has(ip)) {
        seen.add(ip);
        out.dnsServers.push(ip);
      }
    });
  }

  if (input.host_tcp_services !== undefined) {
    out.hostTcpServices = hostServices(input.host_tcp_services, 'host_tcp_services');
  }
  if (input.host_udp_services !== undefined) {
    out.hostUdpServices = hostServices(input.host_udp_services, 'host_udp_services');
  }

  if (input.deny_networks !== undefined) {
    const dn = input.deny_networks;
    if (!isPlainObject(dn))
      throw new ValidationError('deny_networks', dn, 'must be an object {always, running, staging}');
    const unknown = Object.keys(dn).filter((k) => !(DENY_KEYS as readonly string[]).includes(k));
    if (unknown.length > 0) {
      throw new ValidationError(
        `deny_networks.${unknown[0]}`,
        dn[unknown[0]!],
        `unknown field(s): ${JSON.stringify(unknown)}`,
      );
    }
    const deny: DenyNetworks = { ...out.denyNetworks };
    for (const k of DENY_KEYS) {
      if (dn[k] !== undefined && dn[k] !== null) deny[k] = cidrList(dn[k], `deny_networks.${k}`);
    }
    out.denyNetworks = deny;
  }

  const asg = input.iptables_asg_logging ?? input.iptables_logging;
  if (
    input.iptables_asg_logging !== undefined &&
    input.iptables_logging !== undefined &&
    input.iptables_asg_logging !== input.iptables_logging
  ) {
    throw new ValidationError(
      'iptables_asg_logging',
      input.iptables_asg_logging,
      'contradicts iptables_logging (they are the same setting)',
    );
  }
  if (asg !== undefined)
    out.logging.asg = bool(
      asg,
      input.iptables_asg_logging !== undefined ? 'iptables_asg_logging' : 'iptables_logging',
    );
  if (input.iptables_c2c_logging !== undefined)
    out.logging.c2c = bool(input.iptables_c2c_logging, 'iptables_c2c_logging');
  if (input.iptables_denied_logs_per_sec !== undefined) {
    out.logging.deniedPerSec = rate(input.iptables_denied_logs_per_sec, 'iptables_denied_logs_per_sec');
  }
  if (input.iptables_accepted_udp_logs_per_sec !== undefined) {
    out.logging.acceptedUdpPerSec = rate(
      input.iptables_accepted_udp_logs_per_sec,
      'iptables_accepted_udp_logs_per_sec',
    );
  }
  if (input.outbound_connections !== undefined) {
    out.outboundConnections = outboundConnections(input.outbound_connections, outboundConnectionsOf(out));
  }
  if (input.disable_container_network_policy !== undefined) {
    out.disableContainerNetworkPolicy = bool(
      input.disable_container_network_policy,
      'disable_container_network_policy',
    );
  }
  return out;
}
