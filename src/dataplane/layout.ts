/**
 * The fixed part of cfnet's nft table: base chains (hooks) and helper chains. They never change for
 * a given table: everything a rule set varies lives in sets, maps and per-ASG / per-container
 * chains (see desired.ts), so every update is element and chain work only.
 *
 * Packet paths (inet family, IPv4 container addresses):
 *
 *  prerouting (mangle)  meta mark set ip saddr map @ctr_tag          source side of c2c identity
 *                       NetIn packets: meta mark set INGRESS_MARK      (Silk's ingress tag)
 *  prerouting (dstnat)  NetIn: host port -> container . port           (not for overlay sources)
 *  forward (filter)     established,related accept
 *                       ip daddr @ctr_addrs  goto ctr_in   (c2c / NetIn, destination side;
 *                                                          an allowed c2c goes on to c2c_ok)
 *                       ip saddr @ctr_addrs  goto ctr_out  (egress)
 *                       ip saddr @overlay_net reject      (unknown overlay source leaving: spoofed)
 *  input (filter)       ip saddr @ctr_addrs  goto ctr_host (DNS + host services, else reject)
 *  postrouting (srcnat) masquerade containers -> anything but the overlay
 *
 * hook_forward, hook_input, ctr_out, ctr_in and ctr_host are rendered from the decision steps of
 * decision-order.ts, the one description of that order (`cfnet explain` walks the same steps).
 *
 * In `iptables` filter mode (host-filter.ts) ctr_host and egress_deny do not reject: they mark the
 * packet PENDING and accept, hook_input and hook_forward run before iptables' filter chains
 * (priority -5), and deny_input / deny_forward (priority 5, after them) reject what cfnet's iptables
 * rules CONFIRMED (in every configured backend), logging DENY_ for egress as egress_deny does in
 * `nftables` mode. These chains are the same for one or two iptables backends: only the iptables
 * rules differ (host-filter.ts), CONFIRMED is the one value rejected either way.
 */
import { createHash } from 'node:crypto';
import { ValidationError } from '../lib/errors.js';
import {
  chainRules,
  type DecisionOrder,
  decisionOrder,
  INGRESS_MARK,
  PENDING,
  REJECT,
} from './decision-order.js';
import {
  CLASSIFY_PRIORITY,
  CONFIRMED_MARK,
  type FilterMode,
  HIGH_MASK,
  hex,
  REJECT_PRIORITY,
  SELF_CONTAINED_MODE,
} from './host-filter.js';

// the verdict texts live with the decision steps; desired.ts and the tests import them from here
export { INGRESS_MARK, REJECT };

/** Table names: a conservative identifier that can never collide with an nft keyword. */
export const TABLE_NAME = /^cf[a-z0-9_]{0,30}$/;
export const DEFAULT_TABLE = 'cfnet';

/**
 * The one directory of the cross-process nft lock on a cell: the agent (its `cniStateDir`), the CNI
 * plugin's fallback (`state_dir`) and `cfnet dataplane apply/drift` default to it, so an operator
 * running the CLI with its defaults on a cell waits for the agent's transactions instead of
 * interleaving with them. On /var/vcap/data because bpm lets the agent write only there.
 */
export const DEFAULT_LOCK_DIR = '/var/vcap/data/cfnet/state';

/** The lock file of one table's nft writes (per network namespace) in a lock directory. */
export function nftLockFile(lockDir: string, table: string, netns?: string): string {
  return `${lockDir.replace(/\/+$/, '')}/nft-${table}${netns ? `.${netns}` : ''}`;
}

export function checkTable(table: string): string {
  if (!TABLE_NAME.test(table)) {
    throw new ValidationError('table', table, 'must match /^cf[a-z0-9_]{0,30}$/ (never an nft keyword)');
  }
  return table;
}

export interface ChainSpec {
  name: string;
  /** Rule texts; the last one carries `comment "cfnet:<digest>"` (see withMarker). */
  rules: string[];
  /** `cfnet:<digest>`: the kernel reports it back as the last rule's comment. */
  marker: string;
  /** Base-chain header (`type filter hook forward priority filter; policy accept;`), if any. */
  hook?: string;
}

/** Appends the content marker to the last rule of a chain (adds a `return` when the body is empty). */
export function withMarker(name: string, body: string[], hook?: string, terminal = 'return'): ChainSpec {
  const digest = createHash('sha256')
    .update(`${hook ?? ''}\n${body.join('\n')}`)
    .digest('hex')
    .slice(0, 16);
  const marker = `cfnet:${digest}`;
  const rules = body.length > 0 ? [...body] : [terminal];
  rules[rules.length - 1] = `${rules[rules.length - 1]} comment "${marker}"`;
  const spec: ChainSpec = { name, rules, marker };
  if (hook) spec.hook = hook;
  return spec;
}

// ---------------------------------------------------------------- dynamic chain names

const SAFE_HASH = /^[A-Za-z0-9_]{1,64}$/;

/** Name of the shared chain of one ASG rule set: `asg_<hash>` or `asgh_<sha256(hash)>`. */
export function asgChainName(hash: string): string {
  if (SAFE_HASH.test(hash)) return `asg_${hash}`;
  return `asgh_${createHash('sha256').update(hash).digest('hex').slice(0, 32)}`;
}

export const ASG_CHAIN = /^asgh?_[A-Za-z0-9_]+$/;

/**
 * Per-container chains: the log chains (`lok`, `ldeny`, `lc2c`, `lc2cok`) and the outbound
 * connection limit's meter (`orl`) and cut (`lorl`, DENY_ORL_ log and reject).
 */
export type LogKind = 'lok' | 'ldeny' | 'lc2c' | 'lc2cok' | 'orl' | 'lorl';

/** Per-container chain, e.g. `lok_10_255_0_5` (the address makes it unique on the cell). */
export function logChainName(kind: LogKind, ip: string): string {
  return `${kind}_${ip.replaceAll('.', '_')}`;
}

export const LOG_CHAIN = /^(lok|ldeny|lc2cok|lc2c|orl|lorl)_(\d{1,3})_(\d{1,3})_(\d{1,3})_(\d{1,3})$/;

/** The container address a per-container chain belongs to, or null. */
export function logChainIp(name: string): string | null {
  const m = LOG_CHAIN.exec(name);
  return m ? `${m[2]}.${m[3]}.${m[4]}.${m[5]}` : null;
}

// ---------------------------------------------------------------- static chains

/** NetIn: to a local address on a host port in netin_dnat, from outside the overlay (TCP, as Garden). */
const NETIN_MATCH = 'ip saddr != @overlay_net fib daddr type local tcp dport @netin_dnat';
const INGRESS = `0x${INGRESS_MARK.toString(16)}`;

/** Packets cfnet's iptables rules confirmed in every backend (high half exactly CONFIRMED). */
const CONFIRMED = `meta mark & ${hex(HIGH_MASK)} == ${hex(CONFIRMED_MARK)}`;

/**
 * A c2c connection a policy allows (ctr_in's c2c rules `goto` here): with logging on, its
 * destination's OK_C2C_ log chain (which accepts); a destination without one falls through to the
 * plain accept. One chain, so each c2c set costs one lookup per new connection, not two.
 */
const C2C_OK = ['ip daddr vmap @log_c2c_ok', 'accept'];

/** Every static chain name of either filter mode (read-back classifies chains by name). */
export const STATIC_CHAIN_NAMES = [
  'egress_deny',
  'egress_reject',
  'ctr_reject',
  'ctr_out',
  'c2c_ok',
  'ctr_in',
  'ctr_host',
  'hook_mark',
  'hook_netin',
  'hook_forward',
  'hook_input',
  'hook_masq',
  'deny_forward',
  'deny_input',
] as const;

/** Per-container DENY_<handle> log (present only when ASG logging is on), then reject. */
const EGRESS_REJECT = ['ip saddr vmap @log_deny', ...REJECT];

/**
 * Helper and base chains, in dependency order (a chain is defined before any jump to it). The
 * default mode is the self-contained one: a table rendered without knowing whether cfnet's iptables
 * rules are in place must reject by itself.
 */
export function staticChains(
  mode: FilterMode = SELF_CONTAINED_MODE,
  // the decision steps of hook_forward, hook_input, ctr_out, ctr_in and ctr_host (decision-order.ts)
  order: DecisionOrder = decisionOrder(mode),
): ChainSpec[] {
  const deferred = mode === 'iptables';
  // iptables' filter chains hook at priority 0: cfnet classifies before them, rejects after them
  const filterPrio = deferred ? String(CLASSIFY_PRIORITY) : 'filter';
  const chains = [
    ...(deferred ? [withMarker('egress_reject', EGRESS_REJECT), withMarker('ctr_reject', [...REJECT])] : []),
    withMarker('egress_deny', deferred ? [PENDING] : EGRESS_REJECT, undefined),
    withMarker('ctr_out', chainRules(order, 'ctr_out')),
    withMarker('c2c_ok', C2C_OK),
    withMarker('ctr_in', chainRules(order, 'ctr_in')),
    withMarker('ctr_host', chainRules(order, 'ctr_host')),
    withMarker(
      'hook_mark',
      ['meta mark set ip saddr map @ctr_tag', `${NETIN_MATCH} meta mark set ${INGRESS}`],
      'type filter hook prerouting priority mangle; policy accept;',
    ),
    withMarker(
      'hook_netin',
      [`${NETIN_MATCH} dnat ip to tcp dport map @netin_dnat`],
      'type nat hook prerouting priority dstnat; policy accept;',
    ),
    withMarker(
      'hook_forward',
      chainRules(order, 'hook_forward'),
      `type filter hook forward priority ${filterPrio}; policy accept;`,
    ),
    withMarker(
      'hook_input',
      chainRules(order, 'hook_input'),
      `type filter hook input priority ${filterPrio}; policy accept;`,
    ),
    withMarker(
      'hook_masq',
      ['ip saddr @ctr_addrs ip daddr != @overlay_net masquerade'],
      'type nat hook postrouting priority srcnat; policy accept;',
    ),
  ];
  if (deferred) {
    chains.push(
      withMarker(
        'deny_forward',
        [`${CONFIRMED} ip saddr @ctr_addrs goto egress_reject`],
        `type filter hook forward priority ${REJECT_PRIORITY}; policy accept;`,
      ),
      withMarker(
        'deny_input',
        [`${CONFIRMED} ip saddr @ctr_addrs goto ctr_reject`],
        `type filter hook input priority ${REJECT_PRIORITY}; policy accept;`,
      ),
    );
  }
  return chains;
}
