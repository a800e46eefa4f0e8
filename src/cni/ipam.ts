/**
 * The cell subnet and address allocation. The subnet comes from the agent's lease file
 * (`subnet_file`: JSON `{subnet, gateway?}`) or a static `subnet`; allocation is round-robin
 * from the last address handed out, skipping the network and broadcast addresses, the gateway
 * and every address in use. Callers hold the datastore lock (store.ts) around allocate + record.
 */
import { readFileSync } from 'node:fs';
import { ValidationError } from '../lib/errors.js';
import { intToIpv4, ipv4ToInt, parseIp } from '../model/ip.js';
import { checkSubnet, checkSubnetInOverlay, type NetConfig } from './config.js';
import { CNI_ERR, CniConfigError, CniError } from './errors.js';

export interface CellSubnet {
  /** Canonical CIDR. */
  subnet: string;
  /** Address inside the subnet that containers must not get (e.g. the agent's VTEP), or null. */
  gateway: string | null;
  network: number;
  prefix: number;
}

/** First and last assignable address (network + 1 .. broadcast - 1). */
export function hostRange(s: CellSubnet): { first: number; last: number } {
  const size = 2 ** (32 - s.prefix);
  return { first: s.network + 1, last: s.network + size - 2 };
}

export function inSubnet(s: CellSubnet, ip: string): boolean {
  const n = ipv4ToInt(ip);
  return n >= s.network && n < s.network + 2 ** (32 - s.prefix);
}

export function makeSubnet(cidr: string, gateway: string | null, field: string): CellSubnet {
  const canonical = checkSubnet(cidr, field);
  const [net, len] = canonical.split('/') as [string, string];
  const s: CellSubnet = { subnet: canonical, gateway: null, network: ipv4ToInt(net), prefix: Number(len) };
  if (gateway !== null) {
    const g = parseIp(gateway, `${field.replace(/subnet$/, '')}gateway`);
    if (g.family !== 4 || !inSubnet(s, g.text)) {
      throw new ValidationError(
        `${field.replace(/subnet$/, '')}gateway`,
        gateway,
        `is not inside ${canonical}`,
      );
    }
    s.gateway = g.text;
  }
  return s;
}

/**
 * The cell's subnet now. Code 11 (try again) when the agent has not written its lease yet;
 * code 7 naming the field when the file or value is malformed.
 */
export async function readSubnet(cfg: NetConfig): Promise<CellSubnet> {
  try {
    if (cfg.subnet !== null) return makeSubnet(cfg.subnet, null, 'subnet');
    if (cfg.subnetFile === null) {
      throw new ValidationError('subnet_file', null, 'one of subnet or subnet_file is required');
    }
    let text: string;
    try {
      // a small local file: a synchronous read skips a thread-pool round trip on ADD's path
      text = readFileSync(cfg.subnetFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') {
        throw new CniError(
          CNI_ERR.TRY_AGAIN,
          `no cell subnet yet: ${cfg.subnetFile} does not exist (the cell agent writes it when it holds a lease)`,
          '',
          { subnetFile: cfg.subnetFile },
        );
      }
      throw new CniError(CNI_ERR.IO, `cannot read subnet_file ${cfg.subnetFile}: ${String(err)}`);
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch {
      throw new ValidationError('subnet_file', cfg.subnetFile, 'does not hold JSON {"subnet": "<cidr>"}');
    }
    if (typeof obj !== 'object' || obj === null || typeof (obj as { subnet?: unknown }).subnet !== 'string') {
      throw new ValidationError('subnet_file', cfg.subnetFile, 'does not hold JSON {"subnet": "<cidr>"}');
    }
    const { subnet, gateway } = obj as { subnet: string; gateway?: unknown };
    if (gateway !== undefined && gateway !== null && typeof gateway !== 'string') {
      throw new ValidationError('subnet_file.gateway', gateway, 'must be an IPv4 address');
    }
    const s = makeSubnet(subnet, (gateway as string | undefined) ?? null, 'subnet_file.subnet');
    checkSubnetInOverlay(s.subnet, cfg.cell.overlayNetwork, 'subnet_file.subnet');
    return s;
  } catch (err) {
    if (err instanceof ValidationError) throw new CniConfigError(err);
    throw err;
  }
}

/** Number of addresses containers can get. */
export function capacity(s: CellSubnet): number {
  const { first, last } = hostRange(s);
  const n = last - first + 1;
  return s.gateway !== null && ipv4ToInt(s.gateway) >= first && ipv4ToInt(s.gateway) <= last ? n - 1 : n;
}

/**
 * Next free address after `lastReserved` (wrapping), or a code-999 error naming the subnet when
 * every address is taken (as host-local's "no IP addresses available").
 */
export function allocate(s: CellSubnet, used: ReadonlySet<string>, lastReserved: string | null): string {
  const { first, last } = hostRange(s);
  const size = last - first + 1;
  let start = first;
  if (lastReserved !== null && inSubnet(s, lastReserved)) {
    const n = ipv4ToInt(lastReserved);
    if (n >= first && n < last) start = n + 1;
  }
  const gw = s.gateway === null ? -1 : ipv4ToInt(s.gateway);
  for (let i = 0; i < size; i++) {
    const n = first + ((start - first + i) % size);
    if (n === gw) continue;
    const ip = intToIpv4(n);
    if (!used.has(ip)) return ip;
  }
  throw new CniError(
    CNI_ERR.INTERNAL,
    `no IP addresses available in ${s.subnet}: all ${capacity(s)} are allocated`,
    '',
    { subnet: s.subnet },
  );
}
