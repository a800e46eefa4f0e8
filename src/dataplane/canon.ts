/**
 * The canonical form of what cfnet renders, learned from nft itself: the rules of each distinct
 * chain content (by its marker) and the set declarations, as the kernel reports them back. Drift
 * detection then compares every rule of the kernel's table, in order, with these texts
 * (readback.ts compareStates), so a rule replaced in place (`nft replace rule … handle N accept`)
 * is a difference even when the rule count and the last rule's marker are unchanged.
 *
 * How it is learned: a probe transaction writes the chains (without hooks: never traversed, and
 * their sets are empty) into a throwaway table `cfp_<random>` with `nft --echo --json`, which
 * prints the rules exactly as the kernel holds them; a second transaction deletes the table. Each
 * content is probed once (static chains and set declarations once per process, an ASG chain when
 * its rule set first appears), so the cost is one pair of nft runs per new content.
 */
import { randomBytes } from 'node:crypto';
import { unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { SET_DEFS, setDecl } from './elements.js';
import type { FilterMode } from './host-filter.js';
import { type ChainSpec, staticChains } from './layout.js';
import { applyScript, type NftRunOptions, runNft } from './nft.js';
import { canonicalRule, type ExpectedCanon, setDeclOf } from './readback.js';

/** The probe script: the set declarations and the chains (hooks left out) in table `probe`. */
export function probeScript(probe: string, chains: readonly ChainSpec[]): string {
  const lines = [`table inet ${probe} {`];
  for (const d of SET_DEFS) lines.push(`  ${setDecl(d)}`);
  for (const c of chains) {
    lines.push(`  chain ${c.name} {`);
    for (const r of c.rules) lines.push(`    ${r}`);
    lines.push('  }');
  }
  lines.push('}');
  return `${lines.join('\n')}\n`;
}

type Json = Record<string, unknown>;

function objOf(v: unknown): Json | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
}

/** Parses the echo of a probe: canonical rules by chain name, canonical set declarations. */
export function parseProbeEcho(
  json: string,
  probe: string,
): { rules: Map<string, string[]>; setDecls: Map<string, string> } {
  const rules = new Map<string, string[]>();
  const setDecls = new Map<string, string>();
  const doc = objOf(JSON.parse(json));
  const items = Array.isArray(doc?.nftables) ? (doc.nftables as unknown[]) : [];
  for (const item of items) {
    const add = objOf(objOf(item)?.add);
    if (!add) continue;
    const rule = objOf(add.rule);
    if (rule && rule.table === probe && typeof rule.chain === 'string') {
      const list = rules.get(rule.chain) ?? [];
      list.push(canonicalRule(rule));
      rules.set(rule.chain, list);
    }
    const chain = objOf(add.chain);
    if (chain && chain.table === probe && typeof chain.name === 'string' && !rules.has(chain.name)) {
      rules.set(chain.name, []);
    }
    const set = objOf(add.set) ?? objOf(add.map);
    if (set && set.table === probe && typeof set.name === 'string') setDecls.set(set.name, setDeclOf(set));
  }
  return { rules, setDecls };
}

export class CanonLearner implements ExpectedCanon {
  private readonly rules = new Map<string, string[]>();
  private decls: Map<string, string> | null = null;
  private readonly maxEntries: number;
  private readonly scratchDir: string;
  /** The static chains of the table's filter mode (probed once). */
  private readonly statics: ChainSpec[];

  constructor(
    private readonly run: NftRunOptions,
    private readonly log: Logger,
    opts: { maxEntries?: number; scratchDir?: string; filterMode?: FilterMode } = {},
  ) {
    this.statics = staticChains(opts.filterMode);
    this.maxEntries = opts.maxEntries ?? 4096;
    this.scratchDir = opts.scratchDir ?? tmpdir();
  }

  rulesOf(marker: string): readonly string[] | undefined {
    return this.rules.get(marker);
  }

  get setDecls(): ReadonlyMap<string, string> | null {
    return this.decls;
  }

  /** Chains whose canonical form is not known yet (static chains until the first probe). */
  unknown(chains: Iterable<ChainSpec>): ChainSpec[] {
    const out: ChainSpec[] = [];
    const seen = new Set<string>();
    for (const c of chains) {
      if (this.rules.has(c.marker) || seen.has(c.marker)) continue;
      seen.add(c.marker);
      out.push(c);
    }
    return out;
  }

  /**
   * Learns the canonical form of `chains` (and of the static chains and set declarations, the first
   * time). A failed probe is logged: those chains are then compared by count and marker only.
   */
  async learn(chains: Iterable<ChainSpec>): Promise<void> {
    // Static chains jump to each other: they are probed together, under their own names. A name
    // appears once per probe (another content of the same chain name waits for the next call).
    const statics = this.statics;
    const firstTime = this.decls === null || statics.some((c) => !this.rules.has(c.marker));
    const names = new Set<string>();
    const todo: ChainSpec[] = [];
    for (const c of this.unknown([...(firstTime ? statics : []), ...chains])) {
      if (names.has(c.name)) continue;
      names.add(c.name);
      todo.push(c);
    }
    if (todo.length === 0) return;
    const probe = `cfp_${randomBytes(6).toString('hex')}`;
    const file = join(this.scratchDir, `${probe}.nft`);
    try {
      // a file, not stdin: with --json, nft 1.0.6 first tries to read the input as JSON and
      // cannot open a socket's /dev/stdin (Node's child stdio)
      await writeFile(file, probeScript(probe, todo), { mode: 0o600 });
      const { stdout } = await runNft(['--echo', '--json', '-f', file], undefined, this.run);
      const echo = parseProbeEcho(stdout, probe);
      for (const c of todo) {
        const rules = echo.rules.get(c.name);
        if (rules && rules.length === c.rules.length) this.rules.set(c.marker, rules);
      }
      if (!this.decls && echo.setDecls.size > 0) this.decls = echo.setDecls;
      while (this.rules.size > this.maxEntries) this.rules.delete(this.rules.keys().next().value!);
    } catch (err) {
      this.log.warn({ err, chains: todo.length }, 'probing the canonical rule form failed');
    } finally {
      await unlink(file).catch(() => undefined);
      await applyScript(`table inet ${probe} {}\ndelete table inet ${probe}\n`, this.run).catch((err) =>
        this.log.warn({ err, probe }, 'could not delete the probe table'),
      );
    }
  }
}
