/**
 * cfnet's iptables rules in `iptables` filter mode (src/dataplane/host-filter.ts): exactly one
 * appended rule in each of the filter table's INPUT and FORWARD chains that confirms cfnet's pending
 * denials. Rules inserted before it (an operator's ACCEPT) win, as they did against Silk's appended
 * jumps. `ensure` is idempotent: a missing rule is appended, a duplicate or outdated one of cfnet's
 * (same comment) removed; rules of anyone else are never touched. Host commands go through the
 * agent's runner (exec.ts), with `-w` so a held xtables lock is waited for, not failed on.
 */
import {
  IPTABLES_CHAINS,
  type IptablesChain,
  iptablesRuleArgs,
  ownRules,
  sameRule,
} from '../dataplane/host-filter.js';
import { CfnetError } from '../lib/errors.js';
import { CommandError, type Runner, runCommand } from './exec.js';

/** `iptables` filter mode without an iptables executable: the agent refuses to start. */
export class IptablesMissingError extends CfnetError {
  constructor(binary: string, reason: string) {
    super(
      'CFNET_AGENT_IPTABLES_MISSING',
      `filterMode is iptables but ${binary} cannot be run (${reason}): install iptables, set iptablesBinary, or set filterMode nftables (operators' iptables ACCEPTs then no longer override cfnet's denials)`,
      { binary, reason },
    );
  }
}

export interface IptablesRulesOptions {
  /** iptables executable: the one operators' rules are written with (same backend, legacy or nft). */
  binary: string;
  /** cfnet's nft table: named in the rule's comment, so two tables never share a rule. */
  table: string;
  run?: Runner;
}

export class IptablesRules {
  private readonly binary: string;
  private readonly table: string;
  private readonly run: Runner;

  constructor(opts: IptablesRulesOptions) {
    this.binary = opts.binary;
    this.table = opts.table;
    this.run = opts.run ?? runCommand;
  }

  /** Throws IptablesMissingError when the executable cannot be run. */
  async checkAvailable(): Promise<void> {
    try {
      await this.run([this.binary, '--version']);
    } catch (err) {
      const reason =
        err instanceof CommandError
          ? err.exitCode === null
            ? err.stderr.trim()
            : `exit ${err.exitCode}`
          : String(err);
      throw new IptablesMissingError(this.binary, reason);
    }
  }

  /**
   * Makes each chain hold exactly one cfnet rule, appended when missing. Returns what it did
   * (`added INPUT`, `removed FORWARD`), empty when everything was in place.
   */
  async ensure(): Promise<string[]> {
    const done: string[] = [];
    const want = iptablesRuleArgs(this.table);
    for (const chain of IPTABLES_CHAINS) {
      const have = await this.list(chain);
      if (have.length === 1 && sameRule(have[0]!, want)) continue;
      for (const rule of have) {
        await this.run([this.binary, '-w', '-t', 'filter', '-D', chain, ...rule]);
        done.push(`removed ${chain}`);
      }
      await this.run([this.binary, '-w', '-t', 'filter', '-A', chain, ...want]);
      done.push(`added ${chain}`);
    }
    return done;
  }

  /** Removes cfnet's rules of this table (switching to `nftables` mode). Returns how many. */
  async remove(): Promise<number> {
    let n = 0;
    for (const chain of IPTABLES_CHAINS) {
      for (const rule of await this.list(chain)) {
        await this.run([this.binary, '-w', '-t', 'filter', '-D', chain, ...rule]);
        n++;
      }
    }
    return n;
  }

  /** cfnet's rules in `chain`, as `iptables -S` prints them (arguments after `-A <chain>`). */
  async list(chain: IptablesChain): Promise<string[][]> {
    const { stdout } = await this.run([this.binary, '-w', '-t', 'filter', '-S', chain]);
    return ownRules(stdout, chain, this.table);
  }
}
