/**
 * cfnet's iptables rules in `iptables` filter mode (src/dataplane/host-filter.ts), in each iptables
 * backend the host can run (legacy and nft keep separate rule sets; an operator may write with
 * either): cfnet's rules appended to the filter table's INPUT and FORWARD chains of every backend
 * move its pending denials towards CONFIRMED. Rules inserted before them (an operator's ACCEPT)
 * win, as they did against Silk's appended jumps, whichever backend holds them. `ensure` is
 * idempotent: missing rules are appended, duplicate or outdated ones of cfnet's (same comment)
 * removed; rules of anyone else are never touched. Host commands go through the agent's runner
 * (exec.ts), with `-w` so a held xtables lock is waited for, not failed on.
 */
import {
  backendOfVersion,
  backendRuleArgs,
  IPTABLES_CHAINS,
  type IptablesBackend,
  type IptablesChain,
  ownRules,
  sameRules,
} from '../dataplane/host-filter.js';
import { CommandError, type Runner, runCommand } from '../host/index.js';
import { CfnetError } from '../lib/errors.js';

/** `iptables` filter mode without any runnable iptables executable: the agent refuses to start. */
export class IptablesMissingError extends CfnetError {
  constructor(binaries: readonly string[], reasons: readonly string[]) {
    super(
      'CFNET_AGENT_IPTABLES_MISSING',
      `filterMode is iptables but none of ${binaries.join(', ')} can be run (${reasons.join('; ')}): install iptables, set iptablesBinaries, or set filterMode nftables (operators' iptables ACCEPTs then no longer override cfnet's denials)`,
      { binaries: [...binaries], reasons: [...reasons] },
    );
  }
}

/** Why a command could not be run, short (for logs and the error above). */
function failure(err: unknown): string {
  if (!(err instanceof CommandError)) return String(err);
  return err.exitCode === null ? err.stderr.trim() : `exit ${err.exitCode}`;
}

export interface IptablesRulesOptions {
  /** iptables executable of `backend`. */
  binary: string;
  /** The backend this executable writes to. */
  backend: IptablesBackend;
  /** Every backend cfnet keeps rules in (distinct; includes `backend`): decides the marks. */
  backends: readonly IptablesBackend[];
  /** cfnet's nft table: named in the rules' comment, so two tables never share a rule. */
  table: string;
  run?: Runner;
}

/** cfnet's rules in one backend. */
export class IptablesRules {
  readonly binary: string;
  readonly backend: IptablesBackend;
  private readonly want: string[][];
  private readonly table: string;
  private readonly run: Runner;

  constructor(opts: IptablesRulesOptions) {
    this.binary = opts.binary;
    this.backend = opts.backend;
    this.table = opts.table;
    this.want = backendRuleArgs(opts.table, opts.backend, opts.backends);
    this.run = opts.run ?? runCommand;
  }

  /**
   * Makes each chain hold exactly cfnet's rules of this backend, appended when not so. Returns
   * what it did (`added INPUT` per rule appended, `removed FORWARD` per rule removed), empty when
   * everything was in place.
   */
  async ensure(): Promise<string[]> {
    const done: string[] = [];
    for (const chain of IPTABLES_CHAINS) {
      const have = await this.list(chain);
      if (sameRules(have, this.want)) continue;
      for (const rule of have) {
        await this.run([this.binary, '-w', '-t', 'filter', '-D', chain, ...rule]);
        done.push(`removed ${chain}`);
      }
      for (const rule of this.want) {
        await this.run([this.binary, '-w', '-t', 'filter', '-A', chain, ...rule]);
        done.push(`added ${chain}`);
      }
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

/** A configured executable that is not used, and why. */
export interface SkippedBinary {
  binary: string;
  reason: string;
}

export interface IptablesBackendsOptions {
  /** iptables executables in order of preference (`iptablesBinaries`). */
  binaries: readonly string[];
  table: string;
  run?: Runner;
}

/**
 * cfnet's rules in every usable backend. `probe` decides which executables are used: each that
 * runs, one per backend (a second executable of a backend already taken, e.g. `iptables` next to
 * `iptables-nft`, would fight the first over the same chains).
 */
export class IptablesBackends {
  private readonly opts: IptablesBackendsOptions;
  private readonly run: Runner;
  private rules: IptablesRules[] = [];

  constructor(opts: IptablesBackendsOptions) {
    this.opts = opts;
    this.run = opts.run ?? runCommand;
  }

  /** The rule keepers of the probed backends (empty before `probe` or when none runs). */
  get used(): readonly IptablesRules[] {
    return this.rules;
  }

  /**
   * Runs each executable's `--version`; the usable ones (one per backend) are kept. With `required`
   * (filterMode iptables) no usable executable is an IptablesMissingError.
   */
  async probe(required: boolean): Promise<{ used: IptablesRules[]; skipped: SkippedBinary[] }> {
    const found: { binary: string; backend: IptablesBackend }[] = [];
    const skipped: SkippedBinary[] = [];
    for (const binary of this.opts.binaries) {
      let version: string;
      try {
        version = (await this.run([binary, '--version'])).stdout;
      } catch (err) {
        skipped.push({ binary, reason: failure(err) });
        continue;
      }
      const backend = backendOfVersion(version);
      const first = found.find((f) => f.backend === backend);
      if (first) skipped.push({ binary, reason: `same backend (${backend}) as ${first.binary}` });
      else found.push({ binary, backend });
    }
    if (required && found.length === 0) {
      throw new IptablesMissingError(
        this.opts.binaries,
        skipped.map((s) => `${s.binary}: ${s.reason}`),
      );
    }
    const backends = found.map((f) => f.backend);
    this.rules = found.map(
      (f) =>
        new IptablesRules({
          binary: f.binary,
          backend: f.backend,
          backends,
          table: this.opts.table,
          run: this.run,
        }),
    );
    return { used: this.rules, skipped };
  }

  /** `ensure` in every used backend; what was done, prefixed by the executable. */
  async ensure(): Promise<string[]> {
    const done: string[] = [];
    for (const r of this.rules) for (const d of await r.ensure()) done.push(`${r.binary}: ${d}`);
    return done;
  }

  /** `remove` in every used backend; how many rules in all. */
  async remove(): Promise<number> {
    let n = 0;
    for (const r of this.rules) n += await r.remove();
    return n;
  }
}
