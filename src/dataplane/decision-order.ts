/**
 * The order in which a cell decides a new packet from one of its containers, written once: the nft
 * layout renders its hook and container chains from these steps (layout.ts) and `cfnet explain`
 * walks the same steps with `decide` (src/ops/explain.ts), so the two cannot disagree. Pure.
 *
 * The kernel's routing picks the hook, and with it the chain that decides:
 *
 *   destination local to the cell    input   hook_input  → ctr_host  established, DNS servers
 *                                                                    port 53, host services, reject
 *   destination a container here     forward hook_forward → ctr_in   NetIn, c2c open (switch),
 *                                                                    c2c entries, reject
 *   anything else                    forward hook_forward → ctr_out  overlay accept, outbound
 *                                                                    connection limit, deny networks
 *                                                                    (always, then the container's
 *                                                                    lifecycle), its ASG chain, deny
 *
 * So DNS servers and host services are accepted only when they are addresses of the cell itself:
 * a DNS server elsewhere is egress like any other address, decided by the deny networks and the
 * ASGs. ASGs never apply to the cell's own addresses.
 *
 * Which destinations are local (`localDestination`): the kernel knows every address of the cell,
 * a reader of the rule set does not. What it can know: the cell's underlay address and its VTEP
 * address (the first address of its overlay subnet), both from the cell's subnet lease, the
 * containers' gateway (169.254.0.1, on every host-side veth), and the DNS servers and host services the config lists at link-local addresses (169.254.0.0/16). The
 * config is foundation-wide, so an address listed there is the same on every cell; a service every
 * cell answers on at one address is one each cell binds itself, by CF's convention link-local
 * (BOSH DNS on 169.254.0.2). Other addresses count as remote: a DNS server or host service listed
 * at a routable address is reached through the forward path (Silk, too, lets containers reach only
 * link-local DNS servers on the host). Some other address the cell holds (a second interface) is
 * local to the kernel but unknown here; explain names the reason for every local verdict.
 *
 * The steps a new connection cannot match (conntrack established/invalid, NetIn's ingress mark)
 * are listed with their rules but never match in `decide`: it evaluates the first packet of a
 * connection a container opens. The outbound connection limit (`rate-limit`) depends on how many
 * connections came before, which a rule set does not say: `decide` takes its bucket as not empty.
 * In the `iptables` filter mode a denial is deferred (the packet is
 * marked PENDING and an operator's earlier iptables ACCEPT still wins, host-filter.ts); `decide`
 * reports cfnet's own verdict.
 *
 * Longer than ~400 lines: every step of every decision chain, with its nft rules and its evaluator,
 * has to be in this one list.
 */
import { cidrToRange, ipInRange, parseIp } from '../model/ip.js';
import { portInRanges } from '../model/ports.js';
import type { CellRuleSet, EgressRule } from '../model/types.js';
import { C2C_BLOCK_SIZES, c2cBlockMask, c2cBlockSet } from './c2c-blocks.js';
import { type FilterMode, hex, PENDING_MARK, SELF_CONTAINED_MODE } from './host-filter.js';

/**
 * Default-deny ending: TCP gets a reset (immediate, and not subject to the kernel's ICMP error
 * rate limit), everything else ICMP port-unreachable (as Silk's REJECT).
 */
export const REJECT = ['meta l4proto tcp reject with tcp reset', 'reject'] as const;

/**
 * Silk's ingress tag: the mark of NetIn packets, set in prerouting on exactly the packets that
 * hook_netin DNATs. ctr_in lets a DNATed connection in only when it carries it, so a DNAT made by
 * some other table (a host port-forward, another tool) never bypasses the c2c default deny. Its
 * low 16 bits are 0, so it can neither be carried in nor be forged through a VXLAN GBP id.
 */
export const INGRESS_MARK = 0xffff0000;
const INGRESS = `0x${INGRESS_MARK.toString(16)}`;

/** Keeps the c2c tag (low half), sets the high half to PENDING, ends this table's evaluation. */
export const PENDING = `meta mark set meta mark & ${hex(0xffff)} | ${hex(PENDING_MARK)} accept`;

/**
 * ctr_in's c2c allow rules: single ports first (the usual policy), then ever larger blocks. A tcp
 * packet skips the udp rules at their protocol match, so a new connection costs one lookup per
 * block size and one in c2c_range. c2c_ok logs (when accepted c2c logging is on) and accepts.
 */
export const C2C_ALLOW_RULES: readonly string[] = [
  ...(['tcp', 'udp'] as const).flatMap((proto) =>
    C2C_BLOCK_SIZES.map((size) => {
      const mask = c2cBlockMask(size);
      return `meta mark . ip daddr . ${proto} dport${mask ? ` & ${mask}` : ''} @${c2cBlockSet(proto, size)} goto c2c_ok`;
    }),
  ),
  'meta mark . ip daddr . meta l4proto . th dport @c2c_range goto c2c_ok',
];

/** The chains whose rules are the decision steps below. */
export type DecisionChain = 'hook_forward' | 'hook_input' | 'ctr_out' | 'ctr_in' | 'ctr_host';

/**
 * Step ids; the ones that decide an egress packet are explain's `by` values (`deny-network:*`,
 * `dns`, `host-service`, `asg`, `default-deny`, `overlay`).
 */
export type StepId =
  | 'established'
  | 'to-container'
  | 'from-container'
  | 'spoofed-overlay'
  | 'ct-invalid'
  | 'overlay'
  | 'rate-limit'
  | 'deny-network:always'
  | 'deny-network:running'
  | 'deny-network:staging'
  | 'asg'
  | 'default-deny'
  | 'netin'
  | 'c2c-open'
  | 'c2c'
  | 'dns'
  | 'host-service'
  | 'hook-policy';

/** A new connection from a local container, as `decide` sees it. */
export interface DecisionPacket {
  /** The source container's entry in the cell's rule set. */
  src: Pick<CellRuleSet['containers'][number], 'ip' | 'workload' | 'tag' | 'egress'>;
  /** Destination address (IPv4 or IPv6 text; containers have IPv4 only). */
  dst: string;
  protocol: 'tcp' | 'udp' | 'icmp';
  /** Destination port (tcp/udp). */
  port?: number;
}

/** The parts of a cell's rule set the decision reads. */
export type DecisionCell = Pick<CellRuleSet, 'config' | 'containers' | 'asgSets' | 'c2c'>;

/** What a matching step does; a step that does not match lets the packet on to the next one. */
export type StepVerdict =
  | { verdict: 'accept'; matched?: EgressRule[] }
  | { verdict: 'deny' }
  | { verdict: 'goto'; chain: DecisionChain };

export interface DecisionStep {
  id: StepId;
  /** The nft rules the layout renders for this step, in order. */
  nft: readonly string[];
  /** The step's verdict for a new connection, or null when it does not match. */
  evaluate(p: DecisionPacket, cell: DecisionCell): StepVerdict | null;
}

export type DecisionOrder = Record<DecisionChain, readonly DecisionStep[]>;

// ---------------------------------------------------------------- matching, as the kernel does

const ACCEPT: StepVerdict = { verdict: 'accept' };
const DENY: StepVerdict = { verdict: 'deny' };
const goto = (chain: DecisionChain): StepVerdict => ({ verdict: 'goto', chain });
/** Conntrack state and marks a new connection from a container never has. */
const neverNew = (): null => null;

/** Canonical address text, or null for text that is not an address (never matches a set). */
function canon(ip: string): string | null {
  try {
    return parseIp(ip).text;
  } catch {
    return null;
  }
}

function sameIp(a: string, b: string): boolean {
  const x = canon(a);
  return x !== null && x === canon(b);
}

function inOverlay(ip: string, cell: DecisionCell): boolean {
  return ipInRange(ip, cidrToRange(cell.config.overlayNetwork, 'config.overlayNetwork'));
}

function isContainer(ip: string, cell: DecisionCell): boolean {
  return cell.containers.some((c) => sameIp(c.ip, ip));
}

/**
 * Does one egress rule let (protocol, address, port) out? As the ASG chain's rules (desired.ts,
 * asgRuleLines): tcp/udp need a listed port, `all` matches every protocol, and an ICMP query
 * matches any `icmp` rule (type and code are not part of the question).
 */
export function ruleMatches(
  r: EgressRule,
  protocol: DecisionPacket['protocol'],
  ip: string,
  port?: number,
): boolean {
  if (!r.destinations.some((d) => ipInRange(ip, d))) return false;
  if (r.protocol === 'all') return true;
  if (protocol === 'icmp') return r.protocol === (parseIp(ip).family === 6 ? 'icmpv6' : 'icmp');
  return r.protocol === protocol && port !== undefined && portInRanges(port, r.ports);
}

/**
 * Does the cell's c2c step let a packet tagged `tag` in to `dst` on (protocol, port)? The tag is
 * the source app's (the packet mark, carried between cells as the VXLAN GBP id).
 */
export function c2cAllows(
  cell: Pick<CellRuleSet, 'c2c'>,
  tag: number | null,
  dst: string,
  protocol: DecisionPacket['protocol'],
  port: number | undefined,
): boolean {
  if (tag === null || port === undefined) return false;
  return cell.c2c.some(
    (e) =>
      e.srcTag === tag &&
      sameIp(e.dstIp, dst) &&
      e.protocol === protocol &&
      port >= e.ports.start &&
      port <= e.ports.end,
  );
}

// ---------------------------------------------------------------- the steps

function denyNetwork(kind: 'always' | 'running' | 'staging', nft: string): DecisionStep {
  return {
    id: `deny-network:${kind}`,
    nft: [nft],
    evaluate: (p, cell) => {
      const staging = p.src.workload === 'staging';
      if ((kind === 'running' && staging) || (kind === 'staging' && !staging)) return null;
      return cell.config.denyNetworks[kind].some((r) => ipInRange(p.dst, r)) ? DENY : null;
    },
  };
}

const ESTABLISHED: DecisionStep = {
  id: 'established',
  nft: ['ct state established,related accept'],
  evaluate: neverNew,
};

/**
 * The decision steps per chain, for a filter mode: in `iptables` mode ctr_host's default deny
 * marks the packet PENDING instead of rejecting (host-filter.ts).
 */
export function decisionOrder(mode: FilterMode = SELF_CONTAINED_MODE): DecisionOrder {
  const deferred = mode === 'iptables';
  return {
    hook_forward: [
      ESTABLISHED,
      {
        id: 'to-container',
        nft: ['ip daddr @ctr_addrs goto ctr_in'],
        evaluate: (p, cell) => (isContainer(p.dst, cell) ? goto('ctr_in') : null),
      },
      {
        id: 'from-container',
        nft: ['ip saddr @ctr_addrs goto ctr_out'],
        evaluate: (p, cell) => (isContainer(p.src.ip, cell) ? goto('ctr_out') : null),
      },
      {
        // an overlay source that is no local container, leaving the overlay: spoofed
        id: 'spoofed-overlay',
        nft: [
          'ip saddr @overlay_net ip daddr != @overlay_net meta l4proto tcp reject with tcp reset',
          'ip saddr @overlay_net ip daddr != @overlay_net reject',
        ],
        evaluate: (p, cell) => (inOverlay(p.src.ip, cell) && !inOverlay(p.dst, cell) ? DENY : null),
      },
    ],
    hook_input: [
      {
        id: 'from-container',
        nft: ['ip saddr @ctr_addrs goto ctr_host'],
        evaluate: (p, cell) => (isContainer(p.src.ip, cell) ? goto('ctr_host') : null),
      },
    ],
    ctr_out: [
      { id: 'ct-invalid', nft: ['meta l4proto tcp ct state invalid drop'], evaluate: neverNew },
      {
        // c2c: the destination cell enforces it (the source tag travels as mark / VXLAN GBP id)
        id: 'overlay',
        nft: ['ip daddr @overlay_net accept'],
        evaluate: (p, cell) => (inOverlay(p.dst, cell) ? ACCEPT : null),
      },
      {
        // Silk's outbound_connections: a new TCP connection over its container's limit to this
        // destination and port is refused (orl_<ip>, the meter; never decided from a rule set)
        id: 'rate-limit',
        nft: ['meta l4proto tcp ct state new ip saddr vmap @ctr_orl'],
        evaluate: neverNew,
      },
      // deny_networks beat ASG accepts
      denyNetwork('always', 'ip daddr @deny_always goto egress_deny'),
      denyNetwork('running', 'ip saddr @ctr_running ip daddr @deny_running goto egress_deny'),
      denyNetwork('staging', 'ip saddr @ctr_staging ip daddr @deny_staging goto egress_deny'),
      {
        // the container's shared ASG chain (accepts or returns)
        id: 'asg',
        nft: ['ip saddr vmap @ctr_asg'],
        evaluate: (p, cell) => {
          const rules = Object.hasOwn(cell.asgSets, p.src.egress) ? cell.asgSets[p.src.egress]! : [];
          const matched = rules.filter((r) => ruleMatches(r, p.protocol, p.dst, p.port));
          return matched.length > 0 ? { verdict: 'accept', matched } : null;
        },
      },
      { id: 'default-deny', nft: ['goto egress_deny'], evaluate: () => DENY },
    ],
    ctr_in: [
      // NetIn: connections hook_netin DNATed (ingress mark set in hook_mark on the same packets)
      { id: 'netin', nft: [`meta mark ${INGRESS} ct status dnat accept`], evaluate: neverNew },
      {
        // Silk's disable_container_network_policy: c2c_open holds the overlay when it is on
        id: 'c2c-open',
        nft: ['ip saddr @c2c_open accept'],
        evaluate: (p, cell) =>
          cell.config.disableContainerNetworkPolicy === true && inOverlay(p.src.ip, cell) ? ACCEPT : null,
      },
      {
        // c2c allow: source tag (mark) . destination . port block, one hash set per protocol and
        // block size (c2c-blocks.ts: the port masked to the block's start), and ranges wider than
        // the blocks' budget with the protocol in the key; a match goes to c2c_ok (one lookup per
        // set: c2c_ok, not a second rule, logs it)
        id: 'c2c',
        nft: C2C_ALLOW_RULES,
        evaluate: (p, cell) => (c2cAllows(cell, p.src.tag, p.dst, p.protocol, p.port) ? ACCEPT : null),
      },
      { id: 'default-deny', nft: ['ip daddr vmap @log_c2c', ...REJECT], evaluate: () => DENY },
    ],
    ctr_host: [
      ESTABLISHED,
      {
        id: 'dns',
        nft: ['ip daddr @dns_servers meta l4proto { tcp, udp } th dport 53 accept'],
        evaluate: (p, cell) =>
          p.protocol !== 'icmp' &&
          p.port === 53 &&
          parseIp(p.dst).family === 4 &&
          cell.config.dnsServers.some((s) => sameIp(s, p.dst))
            ? ACCEPT
            : null,
      },
      {
        id: 'host-service',
        nft: ['ip daddr . tcp dport @host_tcp accept', 'ip daddr . udp dport @host_udp accept'],
        evaluate: (p, cell) => {
          const c = cell.config;
          const list =
            p.protocol === 'tcp' ? c.hostTcpServices : p.protocol === 'udp' ? c.hostUdpServices : [];
          return list.some((s) => s.port === p.port && sameIp(s.ip, p.dst)) ? ACCEPT : null;
        },
      },
      { id: 'default-deny', nft: deferred ? [PENDING] : [...REJECT], evaluate: () => DENY },
    ],
  };
}

/** The rule texts of one chain: its steps' rules in order. */
export function chainRules(order: DecisionOrder, chain: DecisionChain): string[] {
  return order[chain].flatMap((s) => s.nft);
}

// ---------------------------------------------------------------- locality and the walk

/** Addresses of a cell that only its subnet lease knows (absent when it holds none). */
export interface CellAddresses {
  underlayIp?: string;
  /** The cell's overlay subnet, e.g. 10.255.7.0/24: its first address is the VTEP's. */
  subnet?: string;
}

const LINK_LOCAL = cidrToRange('169.254.0.0/16');

/**
 * The gateway every container routes through, held by each host-side veth (silk-cni's; the CNI
 * plugin's GATEWAY, src/cni/names.ts, which this layer may not import; a unit test keeps them equal).
 */
export const CONTAINER_GATEWAY = '169.254.0.1';

/**
 * Why `dst` is an address of the cell (so the input hook decides it), or null when it counts as
 * remote. See the module header for what can and cannot be known.
 */
export function localDestination(
  dst: string,
  cell: DecisionCell,
  addrs: CellAddresses | null,
): string | null {
  if (canon(dst) === null) return null;
  if (addrs?.underlayIp && sameIp(addrs.underlayIp, dst)) return "the cell's underlay address";
  if (addrs?.subnet && sameIp(addrs.subnet.split('/')[0]!, dst)) return "the cell's VTEP address";
  if (sameIp(CONTAINER_GATEWAY, dst)) return "the containers' gateway on the cell";
  if (!ipInRange(dst, LINK_LOCAL)) return null;
  const c = cell.config;
  if (c.dnsServers.some((s) => sameIp(s, dst))) return 'a link-local DNS server of the cell';
  if ([...c.hostTcpServices, ...c.hostUdpServices].some((s) => sameIp(s.ip, dst))) {
    return 'a link-local host service address of the cell';
  }
  return null;
}

export interface Decision {
  allowed: boolean;
  /** The step that decided. */
  step: StepId;
  /** The chains the packet went through, hook first. */
  chains: DecisionChain[];
  /** ASG rules that accept it (step `asg`). */
  matched: EgressRule[];
}

/**
 * Walks a new connection through the steps as the kernel does: from hook_input when the
 * destination is local to the cell, else from hook_forward; `goto` continues in the named chain;
 * the end of a chain is the base chain's policy (accept).
 */
export function decide(
  p: DecisionPacket,
  cell: DecisionCell,
  local: boolean,
  order: DecisionOrder = decisionOrder(),
): Decision {
  const chains: DecisionChain[] = [local ? 'hook_input' : 'hook_forward'];
  for (let i = 0; i < 8; i++) {
    const chain = chains[chains.length - 1]!;
    let next: DecisionChain | null = null;
    for (const step of order[chain]) {
      const v = step.evaluate(p, cell);
      if (v === null) continue;
      if (v.verdict === 'goto') {
        next = v.chain;
        break;
      }
      return {
        allowed: v.verdict === 'accept',
        step: step.id,
        chains,
        matched: v.verdict === 'accept' ? (v.matched ?? []) : [],
      };
    }
    if (next === null) break;
    chains.push(next);
  }
  return { allowed: true, step: 'hook-policy', chains, matched: [] };
}
