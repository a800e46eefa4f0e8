/**
 * `cfnet dataplane …`: render, apply, inspect and check cfnet's nft table from the command line.
 * Rule-set files are CellRuleSet JSON (as the controller serves them).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import type { CellRuleSet } from '../model/types.js';
import { NftDataplane } from './apply.js';
import { DEFAULT_LOCK_DIR, DEFAULT_TABLE } from './layout.js';
import { renderFull, renderUpdate } from './render.js';

async function loadRuleSet(path: string): Promise<CellRuleSet> {
  return JSON.parse(await readFile(path, 'utf8')) as CellRuleSet;
}

interface CommonOpts {
  table: string;
  netns?: string;
  stateDir: string;
}

function dataplane(o: CommonOpts): NftDataplane {
  const opts: ConstructorParameters<typeof NftDataplane>[0] = { table: o.table, stateDir: o.stateDir };
  if (o.netns) opts.netns = o.netns;
  return new NftDataplane(opts);
}

function common(cmd: Command): Command {
  return cmd
    .option('--table <name>', 'nft table (family inet) cfnet owns', DEFAULT_TABLE)
    .option('--netns <name>', 'run nft inside this network namespace (ip netns exec)')
    .option(
      '--state-dir <dir>',
      "directory of the cross-process apply lock (the agent's and the CNI plugin's on a cell)",
      DEFAULT_LOCK_DIR,
    );
}

export function registerDataplaneCommands(program: Command): void {
  const dp = program.command('dataplane').description("render, apply and check cfnet's nftables table");
  dp.command('render')
    .description('print the nft script for a rule set (full replace, or incremental with --from)')
    .argument('<rules.json>', 'CellRuleSet JSON file')
    .option('--from <prev.json>', 'previous CellRuleSet: print the incremental update from it instead')
    .option('--table <name>', 'nft table (family inet)', DEFAULT_TABLE)
    .action(async (file: string, o: { from?: string; table: string }) => {
      const next = await loadRuleSet(file);
      const out = o.from
        ? renderUpdate(await loadRuleSet(o.from), next, { table: o.table })
        : renderFull(next, { table: o.table });
      process.stdout.write(out);
    });
  common(dp.command('apply'))
    .description('replace the table with a rule set in one nft transaction')
    .argument('<rules.json>', 'CellRuleSet JSON file')
    .action(async (file: string, o: CommonOpts) => {
      const res = await dataplane(o).applyFull(await loadRuleSet(file));
      console.log(JSON.stringify({ mode: res.mode, ms: Math.round(res.ms), bytes: res.bytes }));
    });
  common(dp.command('drift'))
    .description("compare the kernel's table with a rule set; exit 1 on drift (--repair re-applies)")
    .argument('<rules.json>', 'CellRuleSet JSON file')
    .option('--repair', 're-apply the rule set in full when drift is found')
    .action(async (file: string, o: CommonOpts & { repair?: boolean }) => {
      const rs = await loadRuleSet(file);
      const d = dataplane(o);
      const report = o.repair ? (await d.repair(rs)).report : await d.detectDrift(rs);
      console.log(JSON.stringify(report, null, 2));
      if (report.drift && !o.repair) process.exitCode = 1;
    });
  common(dp.command('show'))
    .description("summarise the kernel's table: elements per set, chains")
    .action(async (o: CommonOpts) => {
      const k = await dataplane(o).readBack();
      const sets = Object.fromEntries([...k.sets].map(([name, m]) => [name, m.size]));
      console.log(JSON.stringify({ exists: k.exists, sets, chains: [...k.chains.keys()].sort() }, null, 2));
    });
}
