/**
 * Where cfnet's container→host (INPUT) and container egress (FORWARD) denials are decided: the
 * filter mode, the packet marks of the deferred verdict and cfnet's iptables rules that confirm
 * it, per iptables backend. Pure; the agent installs the rules (src/agent/iptables.ts), layout.ts
 * renders the nft side. docs/dataplane.md ("Operators' iptables rules") explains the design.
 *
 * Why: Silk enforces in iptables and appends its per-container jumps, so an operator's rule
 * inserted first in INPUT/FORWARD (CF's `iptables-writer` job, monitoring agents) wins. An ACCEPT
 * in iptables' base chain cannot stop a reject in cfnet's own nft base chain, so in `iptables`
 * mode cfnet defers those verdicts:
 *
 *   nft hook_input/hook_forward (priority -5)   would reject: mark PENDING, accept (this table only)
 *   iptables filter INPUT/FORWARD (priority 0)  operator rules first; cfnet's appended rules move
 *                                               the mark on (a packet an earlier rule accepted
 *                                               never reaches them)
 *   nft deny_input/deny_forward (priority 5)    CONFIRMED: DENY_ log (egress) and reject, as today
 *
 * iptables has two backends with separate rule sets, legacy (xtables) and nft, each with its own
 * filter INPUT/FORWARD base chains at priority 0; an ACCEPT in one does not stop the other's chain,
 * and the kernel's order between the two is not ours to choose. With both configured each backend
 * records "I confirmed" on top of what the other recorded:
 *
 *   legacy: PENDING → LEGACY_ONLY, NFT_ONLY → CONFIRMED
 *   nft:    PENDING → NFT_ONLY,    LEGACY_ONLY → CONFIRMED
 *
 * so a packet ends CONFIRMED only when both backends ran cfnet's rule (neither had an earlier
 * ACCEPT), whichever ran first. With one backend its rule is PENDING → CONFIRMED. CONFIRMED is the
 * same value in both cases: the nft side does not depend on how many backends are configured.
 *
 * The marks live in the high 16 bits of the packet mark, compared as a whole under HIGH_MASK: the
 * low 16 bits carry the c2c policy tag (VXLAN GBP id) and are kept; INGRESS_MARK (0xffff0000) is
 * another high-half value, so none of them can be mistaken for another.
 */
import { ValidationError } from '../lib/errors.js';

export const FILTER_MODES = ['iptables', 'nftables'] as const;

/**
 * `iptables`: container→host and egress denials are confirmed by one appended iptables rule per
 * chain, so operators' earlier iptables ACCEPTs win (Silk's ordering). `nftables`: cfnet's table
 * rejects by itself; operators' iptables rules cannot override it.
 */
export type FilterMode = (typeof FILTER_MODES)[number];

/** The agent's default (Silk-compatible). The one place this default lives. */
export const DEFAULT_FILTER_MODE: FilterMode = 'iptables';

/**
 * What a writer that does not manage the iptables rules (a one-off CNI process creating a missing
 * table, tools, tests) renders: a table that rejects by itself, so nothing opens before the agent
 * has its iptables rules in place.
 */
export const SELF_CONTAINED_MODE: FilterMode = 'nftables';

export function checkFilterMode(field: string, v: unknown): FilterMode {
  if (typeof v === 'string' && (FILTER_MODES as readonly string[]).includes(v)) return v as FilterMode;
  throw new ValidationError(field, v, `must be one of ${FILTER_MODES.join(', ')}`);
}

/** The high half of the packet mark: the verdict value (the low half is the c2c tag). */
export const HIGH_MASK = 0xffff0000;
/** cfnet would reject; an operator's earlier iptables ACCEPT may still let it through. */
export const PENDING_MARK = 0x00010000;
/** No earlier iptables rule in any backend accepted it: cfnet rejects (and logs DENY_ for egress). */
export const CONFIRMED_MARK = 0x00020000;

/** The iptables backends: their rule sets (and base chains) are separate. */
export const IPTABLES_BACKENDS = ['legacy', 'nft'] as const;
export type IptablesBackend = (typeof IPTABLES_BACKENDS)[number];

/**
 * Two backends: confirmed by this backend's rule, the other backend not yet run or accepted it.
 * Never rejected by itself.
 */
export const ONLY_CONFIRMED_MARK: Readonly<Record<IptablesBackend, number>> = {
  legacy: 0x00030000,
  nft: 0x00040000,
};

/**
 * The agent's default iptables executables: one per backend, each used when it can be run. The one
 * place this default lives (the BOSH job names absolute paths of the same two).
 */
export const DEFAULT_IPTABLES_BINARIES: readonly string[] = ['iptables-legacy', 'iptables-nft'];

/** The backend an executable writes to, from its `--version` line (`(nf_tables)` or `(legacy)`). */
export function backendOfVersion(version: string): IptablesBackend {
  // iptables before 1.8 prints no backend: it only had the legacy one
  return /\(nf_tables\)/.test(version) ? 'nft' : 'legacy';
}

/** One of cfnet's iptables rules: a packet whose high half is `from` gets high half `to`. */
export interface MarkTransition {
  from: number;
  to: number;
}

/**
 * cfnet's rules in `backend` when `backends` (distinct) are configured, in the order they are
 * appended. Their targets never match another rule of the same backend, so order does not matter.
 */
export function backendTransitions(
  backend: IptablesBackend,
  backends: readonly IptablesBackend[],
): MarkTransition[] {
  if (!backends.includes(backend)) throw new Error(`backend ${backend} not among ${backends.join(', ')}`);
  if (backends.length === 1) return [{ from: PENDING_MARK, to: CONFIRMED_MARK }];
  const other = backends.find((b) => b !== backend);
  if (backends.length !== 2 || !other) throw new Error(`backends must be distinct: ${backends.join(', ')}`);
  return [
    { from: PENDING_MARK, to: ONLY_CONFIRMED_MARK[backend] },
    { from: ONLY_CONFIRMED_MARK[other], to: CONFIRMED_MARK },
  ];
}

/** One backend's base chain as the kernel runs it for a packet (tests, docs: the model). */
export interface ChainPass {
  backend: IptablesBackend;
  /** An operator's rule before cfnet's accepted the packet: cfnet's rules are not reached. */
  operatorAccepts: boolean;
}

/**
 * The high half after the backends' priority-0 chains ran in `order` (the kernel's), starting
 * from PENDING: the pure model of what the deny chains then see.
 */
export function markAfter(order: readonly ChainPass[], backends: readonly IptablesBackend[]): number {
  let mark = PENDING_MARK;
  for (const pass of order) {
    if (pass.operatorAccepts) continue;
    for (const t of backendTransitions(pass.backend, backends)) {
      if (mark === t.from) {
        mark = t.to;
        break;
      }
    }
  }
  return mark;
}

export const hex = (n: number): string => `0x${n.toString(16)}`;

/** nft priorities of the classifying and the rejecting chains around iptables' filter (0). */
export const CLASSIFY_PRIORITY = -5;
export const REJECT_PRIORITY = 5;

/** The iptables chains that carry cfnet's confirming rule. */
export const IPTABLES_CHAINS = ['INPUT', 'FORWARD'] as const;
export type IptablesChain = (typeof IPTABLES_CHAINS)[number];

/** The comment that names cfnet's rule (and its nft table: two tables never share a rule). */
export function iptablesComment(table: string): string {
  return `cfnet ${table}: confirms cfnet denials not accepted by an earlier rule`;
}

/** One rule's arguments after `-A <chain>` (filter table). */
export function iptablesRuleArgs(
  table: string,
  t: MarkTransition = { from: PENDING_MARK, to: CONFIRMED_MARK },
): string[] {
  return [
    '-m',
    'mark',
    '--mark',
    `${hex(t.from)}/${hex(HIGH_MASK)}`,
    '-m',
    'comment',
    '--comment',
    iptablesComment(table),
    '-j',
    'MARK',
    '--set-xmark',
    `${hex(t.to)}/${hex(HIGH_MASK)}`,
  ];
}

/** cfnet's rules of one chain in `backend`, as appended (arguments after `-A <chain>`). */
export function backendRuleArgs(
  table: string,
  backend: IptablesBackend,
  backends: readonly IptablesBackend[],
): string[][] {
  return backendTransitions(backend, backends).map((t) => iptablesRuleArgs(table, t));
}

/**
 * Splits one `iptables -S` line into arguments (double-quoted words as iptables prints comments;
 * `\"` and `\\` inside them).
 */
export function splitRuleLine(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (line[i] === ' ') i++;
    if (i >= line.length) break;
    let word = '';
    if (line[i] === '"') {
      i++;
      while (i < line.length && line[i] !== '"') {
        if (line[i] === '\\' && i + 1 < line.length) i++;
        word += line[i++];
      }
      i++;
    } else {
      while (i < line.length && line[i] !== ' ') word += line[i++];
    }
    out.push(word);
  }
  return out;
}

/** cfnet's rules in one chain's `iptables -S <chain>` listing, as argument lists after `-A <chain>`. */
export function ownRules(listing: string, chain: IptablesChain, table: string): string[][] {
  const comment = iptablesComment(table);
  const out: string[][] = [];
  for (const line of listing.split('\n')) {
    const args = splitRuleLine(line.trim());
    if (args[0] !== '-A' || args[1] !== chain) continue;
    const rest = args.slice(2);
    const at = rest.indexOf('--comment');
    if (at >= 0 && rest[at + 1] === comment) out.push(rest);
  }
  return out;
}

/** Compares an `iptables -S` argument list with the rendered one. */
export function sameRule(have: readonly string[], want: readonly string[]): boolean {
  return have.length === want.length && have.every((a, i) => a === want[i]);
}

/** True when a chain's cfnet rules are exactly the wanted ones, each once, in that order. */
export function sameRules(
  have: readonly (readonly string[])[],
  want: readonly (readonly string[])[],
): boolean {
  return have.length === want.length && have.every((r, i) => sameRule(r, want[i]!));
}
