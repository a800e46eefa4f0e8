/**
 * ADD's check that the address it is about to use is free on the cell beyond the datastore (which
 * allocation already consulted): the nft table (a ctr_addrs element naming another attachment, a
 * NetIn mapping to it), routes (a /32 to it), interfaces (it as a local address, or a host veth with
 * the MAC cfnet derives from it) and neighbours (a resolved entry for it). A holder is something the
 * datastore does not know: a second datastore path on one cell (an operator's mistake), or a
 * leftover. The cell side is read synchronously from /proc and getifaddrs (well under a millisecond,
 * run inside the datastore lock); the table side is listed by the dataplane when ADD starts.
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { CNI_ERR, CniError } from './errors.js';

/** What the table holds by address: ctr_addrs (address → handle) and netin_dnat (host port → address). */
export interface TableAddressUse {
  handles: Map<string, string>;
  netIn: Map<number, string>;
}

export const NO_TABLE_USE: TableAddressUse = { handles: new Map(), netIn: new Map() };

/** An address the datastore thinks free is in use on the cell: ADD refused, nothing changed. */
export class AddressInUseError extends CniError {
  readonly ip: string;
  readonly holders: string[];

  constructor(ip: string, holders: string[], datastore: string) {
    super(
      CNI_ERR.INTERNAL,
      `address ${ip} is free in the datastore ${datastore} but in use on the cell (${holders.join('; ')}): ADD refused, nothing changed (is a second datastore path configured on this cell?)`,
      '',
      { ip, holders, datastore },
    );
    this.ip = ip;
    this.holders = holders;
  }
}

/** /proc/net/route's Destination field for `ip` (the address's bytes as a host-order hex word). */
function procRouteHex(ip: string): string {
  const b = ip.split('.').map(Number);
  return Buffer.from(b).readUInt32LE(0).toString(16).toUpperCase().padStart(8, '0');
}

function readProc(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

/** Routes, interfaces and neighbours of this network namespace that hold `ip` (`mac`: cfnet's host MAC for it). */
export function cellHolders(ip: string, mac: string): string[] {
  const out: string[] = [];
  const dest = procRouteHex(ip);
  for (const line of readProc('/proc/net/route').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[1] === dest && f[7] === 'FFFFFFFF') out.push(`route ${ip}/32 dev ${f[0]}`);
  }
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.address === ip) out.push(`address of interface ${name}`);
      else if (a.mac === mac && a.family === 'IPv4') out.push(`interface ${name} with its MAC ${mac}`);
    }
  }
  for (const line of readProc('/proc/net/arp').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 6 && f[0] === ip && f[2] !== '0x0') out.push(`neighbour entry on ${f[5]}`);
  }
  return [...new Set(out)];
}

/** What the table says about an address: holders attached on this cell, and stale entries. */
export interface TableHolding {
  /** Another attachment holds it and its host veth exists on the cell: in use. */
  live: string[];
  /** Handles of ctr_addrs entries for it whose attachment is not on the cell (a controller record
   * the datastore does not know, a leftover): ADD may take the address over. */
  stale: string[];
}

/**
 * Classifies the table's entries for `ip`. A ctr_addrs element of another handle is in use only
 * when that attachment is on the cell (its host veth, named by the same scheme, exists); otherwise
 * it is stale: a rule set that still lists a departed container (the agent's merge lets such a
 * stale entry give way to the attached container, src/agent/merge.ts), or a leftover. NetIn
 * mappings to the address go with it (they are replaced by ADD's own).
 */
export function tableHolding(
  use: TableAddressUse,
  ip: string,
  self: string,
  hostIfOf: (handle: string) => string,
): TableHolding {
  const owner = use.handles.get(ip);
  if (owner === undefined || owner === self) return { live: [], stale: [] };
  const veth = hostIfOf(owner);
  if (attachedOnCell(owner, hostIfOf)) {
    const ports = [...use.netIn].filter(([, to]) => to === ip).map(([port]) => port);
    const netIn =
      ports.length > 0 ? `, NetIn host port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}` : '';
    return { live: [`nft ctr_addrs element of ${owner} (attached: ${veth}${netIn})`], stale: [] };
  }
  return { live: [], stale: [owner] };
}

/** Whether the attachment `handle` is on the cell: its host veth (named by `hostIfOf`) exists. */
export function attachedOnCell(handle: string, hostIfOf: (handle: string) => string): boolean {
  return handle !== '' && interfaceNames().has(hostIfOf(handle));
}

function interfaceNames(): Set<string> {
  return new Set(Object.keys(networkInterfaces()));
}
