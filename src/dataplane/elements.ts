/**
 * Typed set/map elements of cfnet's nft table. Every element has a canonical id (used to diff two
 * states and to compare with what the kernel reports) and an nft text form. Both are built only
 * from validated values: addresses in src/model's canonical text, range-checked numbers and
 * checked identifiers, never from raw input strings.
 */
import { containerIpv4 } from '../model/identifiers.js';
import { rangeToString } from '../model/ip.js';
import { C2C_BLOCK_SIZES, type C2CBlockSize, c2cBlockSet } from './c2c-blocks.js';

export type AtomKind = 'ip' | 'ipr' | 'port' | 'portr' | 'proto' | 'mark' | 'verdict';

/** Addresses (`ip`, `ipr` bounds) are canonical dotted quads (see ipv4Text). */
export type Atom =
  | { k: 'ip'; v: string }
  | { k: 'ipr'; s: string; e: string }
  | { k: 'port'; v: number }
  | { k: 'portr'; s: number; e: number }
  | { k: 'proto'; v: 'tcp' | 'udp' }
  | { k: 'mark'; v: number }
  | { k: 'verdict'; v: 'jump' | 'goto'; target: string };

/** Canonical text of an IPv4 address (src/model/ip), or null for anything else (IPv6 included). */
export const ipv4Text = containerIpv4;

export function atomId(a: Atom): string {
  switch (a.k) {
    case 'ip':
      return a.v;
    case 'ipr':
      return `${a.s}-${a.e}`;
    case 'port':
      return String(a.v);
    case 'portr':
      return `${a.s}-${a.e}`;
    case 'proto':
      return a.v;
    case 'mark':
      return `0x${a.v.toString(16).padStart(8, '0')}`;
    case 'verdict':
      return `${a.v} ${a.target}`;
  }
}

export function atomText(a: Atom): string {
  switch (a.k) {
    case 'ipr':
      return rangeToString({ family: 4, start: a.s, end: a.e });
    case 'portr':
      // always `s-e`: nft 1.0.6 cannot delete a single-value element of a concatenated interval
      // set written as `p` (ENOENT), only as `p-p`
      return `${a.s}-${a.e}`;
    default:
      return atomId(a);
  }
}

/** Comments are rendered in double quotes; only this character class can reach them. */
export const SAFE_COMMENT = /^[A-Za-z0-9_.:-]{0,128}$/;

export interface Element {
  key: Atom[];
  value?: Atom[];
  /** Element comment (we store the container handle on `ctr_addrs`); SAFE_COMMENT only. */
  comment?: string;
}

export function elementId(e: Element): string {
  let id = e.key.map(atomId).join(' . ');
  if (e.value) id += ` : ${e.value.map(atomId).join(' . ')}`;
  if (e.comment !== undefined) id += ` # ${e.comment}`;
  return id;
}

export function elementKeyText(e: Element): string {
  return e.key.map(atomText).join(' . ');
}

export function elementText(e: Element): string {
  let t = elementKeyText(e);
  if (e.comment !== undefined) {
    if (!SAFE_COMMENT.test(e.comment)) throw new Error(`unsafe element comment ${JSON.stringify(e.comment)}`);
    t += ` comment "${e.comment}"`;
  }
  if (e.value) t += ` : ${e.value.map(atomText).join(' . ')}`;
  return t;
}

/** Definition of one named set or map in the table. */
export interface SetDef {
  name: string;
  /** `type …` clause body (after `type `). */
  type: string;
  interval: boolean;
  keyKinds: AtomKind[];
  valueKinds?: AtomKind[];
  /** Where the local container address sits, for per-container removal: ['key'|'value', index]. */
  containerField?: ['key' | 'value', number];
  /** True when elements carry a comment. */
  comments?: boolean;
  /**
   * The kernel's own set: rules add and refresh its elements (a meter), cfnet never writes,
   * deletes, reads back or compares them. `decl` is the rest of its declaration.
   */
  kernelOwned?: { decl: string };
  doc: string;
}

const IP: AtomKind[] = ['ip'];

/** The hash set of c2c blocks of one protocol and size (c2c-blocks.ts). */
function c2cBlockSetDef(proto: 'tcp' | 'udp', size: C2CBlockSize): SetDef {
  const what =
    size === 1 ? 'single ports' : `aligned blocks of ${size} ports, the element being the block's first port`;
  return {
    name: c2cBlockSet(proto, size),
    type: 'mark . ipv4_addr . inet_service',
    interval: false,
    keyKinds: ['mark', 'ip', 'port'],
    containerField: ['key', 1],
    doc: `c2c allow list, ${proto.toUpperCase()} ${what} (hash: O(1) updates): source tag . destination . port`,
  };
}

export const SET_DEFS: SetDef[] = [
  {
    name: 'ctr_addrs',
    type: 'ipv4_addr',
    interval: false,
    keyKinds: IP,
    containerField: ['key', 0],
    comments: true,
    doc: 'every local container address; the element comment is the container handle',
  },
  {
    name: 'ctr_running',
    type: 'ipv4_addr',
    interval: false,
    keyKinds: IP,
    containerField: ['key', 0],
    doc: 'containers whose workload is app or task (deny_networks.running applies)',
  },
  {
    name: 'ctr_staging',
    type: 'ipv4_addr',
    interval: false,
    keyKinds: IP,
    containerField: ['key', 0],
    doc: 'staging containers (deny_networks.staging applies)',
  },
  {
    name: 'ctr_asg',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'container address -> jump to the shared chain of its ASG rule set',
  },
  {
    name: 'ctr_tag',
    type: 'ipv4_addr : mark',
    interval: false,
    keyKinds: IP,
    valueKinds: ['mark'],
    containerField: ['key', 0],
    doc: 'container address -> c2c policy tag, set as packet mark (carried by VXLAN GBP)',
  },
  {
    name: 'log_ok',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'container address -> goto its OK_<handle> log-and-accept chain',
  },
  {
    name: 'log_deny',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'container address -> goto its DENY_<handle> log-and-reject chain',
  },
  {
    name: 'log_c2c',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'destination container address -> goto its DENY_C2C_<handle> log-and-reject chain',
  },
  {
    name: 'log_c2c_ok',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'destination container address -> goto its OK_C2C_<handle> log-and-accept chain (c2c allowed)',
  },
  {
    name: 'ctr_orl',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'container address -> jump to its outbound connection limit chain (orl_<ip>, new TCP egress)',
  },
  {
    name: 'orl_cut',
    type: 'ipv4_addr : verdict',
    interval: false,
    keyKinds: IP,
    valueKinds: ['verdict'],
    containerField: ['key', 0],
    doc: 'container address -> goto its DENY_ORL_<handle> chain (log, then reject unless dry run)',
  },
  {
    name: 'orl_meter',
    type: 'ipv4_addr . ipv4_addr . inet_service',
    interval: false,
    keyKinds: ['ip', 'ip', 'port'],
    kernelOwned: { decl: 'size 65535; flags dynamic,timeout;' },
    doc: 'outbound connection limit buckets: container . destination . port, filled by the orl_<ip> chains; never written by cfnet, so no rule-set change resets them',
  },
  {
    name: 'c2c_open',
    type: 'ipv4_addr',
    interval: true,
    keyKinds: ['ipr'],
    doc: 'sources every container accepts c2c from, without a policy: the overlay when disable_container_network_policy is on, else empty',
  },
  ...C2C_BLOCK_SIZES.flatMap((size) => (['tcp', 'udp'] as const).map((proto) => c2cBlockSetDef(proto, size))),
  {
    name: 'c2c_range',
    type: 'mark . ipv4_addr . inet_proto . inet_service',
    interval: true,
    keyKinds: ['mark', 'ip', 'proto', 'portr'],
    containerField: ['key', 1],
    doc: 'c2c allow list, port ranges wider than C2C_BLOCK_BUDGET blocks (concatenated interval set)',
  },
  {
    name: 'netin_dnat',
    type: 'inet_service : ipv4_addr . inet_service',
    interval: false,
    keyKinds: ['port'],
    valueKinds: ['ip', 'port'],
    containerField: ['value', 0],
    doc: 'NetIn: cell host port -> container address . container port',
  },
  {
    name: 'overlay_net',
    type: 'ipv4_addr',
    interval: true,
    keyKinds: ['ipr'],
    doc: 'the overlay network (c2c, not egress; not masqueraded)',
  },
  {
    name: 'deny_always',
    type: 'ipv4_addr',
    interval: true,
    keyKinds: ['ipr'],
    doc: 'deny_networks.always',
  },
  {
    name: 'deny_running',
    type: 'ipv4_addr',
    interval: true,
    keyKinds: ['ipr'],
    doc: 'deny_networks.running',
  },
  {
    name: 'deny_staging',
    type: 'ipv4_addr',
    interval: true,
    keyKinds: ['ipr'],
    doc: 'deny_networks.staging',
  },
  {
    name: 'dns_servers',
    type: 'ipv4_addr',
    interval: false,
    keyKinds: IP,
    doc: 'DNS servers containers may query on the host (udp and tcp 53)',
  },
  {
    name: 'host_tcp',
    type: 'ipv4_addr . inet_service',
    interval: false,
    keyKinds: ['ip', 'port'],
    doc: 'host TCP services containers may reach',
  },
  {
    name: 'host_udp',
    type: 'ipv4_addr . inet_service',
    interval: false,
    keyKinds: ['ip', 'port'],
    doc: 'host UDP services containers may reach',
  },
];

export const SET_BY_NAME: ReadonlyMap<string, SetDef> = new Map(SET_DEFS.map((d) => [d.name, d]));

export function setDecl(d: SetDef): string {
  const kind = d.valueKinds ? 'map' : 'set';
  if (d.kernelOwned) return `${kind} ${d.name} { type ${d.type}; ${d.kernelOwned.decl} }`;
  const flags = d.interval ? ' flags interval;' : '';
  return `${kind} ${d.name} { type ${d.type};${flags} }`;
}
