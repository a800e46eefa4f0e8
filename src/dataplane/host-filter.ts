/**
 * Where cfnet's container→host (INPUT) and container egress (FORWARD) denials are decided: the
 * filter mode, the packet marks of the deferred verdict and the one iptables rule per chain that
 * confirms it. Pure; the agent installs the rules (src/agent/iptables.ts), layout.ts renders the
 * nft side. docs/dataplane.md ("Operator iptables rules") explains the design.
 *
 * Why: Silk enforces in iptables and appends its per-container jumps, so an operator's rule
 * inserted first in INPUT/FORWARD (CF's `iptables-writer` job, monitoring agents) wins. An ACCEPT
 * in iptables' base chain cannot stop a reject in cfnet's own nft base chain, so in `iptables`
 * mode cfnet defers those verdicts:
 *
 *   nft hook_input/hook_forward (priority -5)   would reject: mark PENDING, accept (this table only)
 *   iptables filter INPUT/FORWARD (priority 0)  operator rules first; cfnet's appended rule turns
 *                                               PENDING into CONFIRMED (a packet an earlier rule
 *                                               accepted never reaches it)
 *   nft deny_input/deny_forward (priority 5)    CONFIRMED: DENY_ log (egress) and reject, as today
 *
 * The marks live in the high 16 bits of the packet mark, compared as a whole under HIGH_MASK: the
 * low 16 bits carry the c2c policy tag (VXLAN GBP id) and are kept; INGRESS_MARK (0xffff0000) is
 * another high-half value, so none of the three can be mistaken for another.
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
/** No earlier iptables rule accepted it: cfnet rejects (and logs DENY_ for egress). */
export const CONFIRMED_MARK = 0x00020000;

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

/** The rule's arguments after `-A <chain>` (filter table). */
export function iptablesRuleArgs(table: string): string[] {
  return [
    '-m',
    'mark',
    '--mark',
    `${hex(PENDING_MARK)}/${hex(HIGH_MASK)}`,
    '-m',
    'comment',
    '--comment',
    iptablesComment(table),
    '-j',
    'MARK',
    '--set-xmark',
    `${hex(CONFIRMED_MARK)}/${hex(HIGH_MASK)}`,
  ];
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

/** Compares an `iptables -S` argument list with the rendered one (iptables may add `-m mark` order). */
export function sameRule(have: readonly string[], want: readonly string[]): boolean {
  return have.length === want.length && have.every((a, i) => a === want[i]);
}
