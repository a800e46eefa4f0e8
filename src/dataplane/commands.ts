/**
 * `cfnet dataplane …`: render, apply, inspect and check cfnet's nft table from the command line.
 * Rule-set files are CellRuleSet JSON (as the controller serves them). `show` and `drift` print a
 * table, or `--json`; `drift` answers with its exit status (0 none, EXIT.drift found).
 */
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { helpFooter } from '../lib/command.js';
import { errorMessage, ValidationError } from '../lib/errors.js';
import { EXIT, exitHelp } from '../lib/exit-codes.js';
import { table } from '../lib/text-table.js';
import type { CellRuleSet } from '../model/types.js';
import { NftDataplane } from './apply.js';
import { DEFAULT_LOCK_DIR, DEFAULT_TABLE } from './layout.js';
import type { DriftReport } from './readback.js';
import { renderFull, renderUpdate } from './render.js';

/** `cfnet dataplane show` as JSON. */
export interface TableSummary {
  exists: boolean;
  sets: Record<string, number>;
  chains: string[];
}

export function summaryText(table_: string, s: TableSummary): string {
  if (!s.exists) return `table inet ${table_} does not exist\n`;
  const sets = Object.entries(s.sets).map(([set, elements]) => ({ set, elements }));
  return [
    `table inet ${table_}: ${sets.length} sets, ${s.chains.length} chains`,
    '',
    sets.length === 0 ? 'no sets' : table(sets, ['set', 'elements']),
    '',
    `chains: ${s.chains.join(', ') || 'none'}`,
    '',
  ].join('\n');
}

/** One line per difference of a drift report (what, kind, where), for the table of `drift`. */
export function driftRows(r: DriftReport): { kind: string; what: string }[] {
  const rows: { kind: string; what: string }[] = [];
  const add = (kind: string, items: readonly string[]) => {
    for (const what of items) rows.push({ kind, what });
  };
  if (r.tableMissing) rows.push({ kind: 'table missing', what: '' });
  if (r.tableFlags) rows.push({ kind: 'table flags', what: 'the table carries flags (e.g. dormant)' });
  add('set declaration', r.changedSetDecls);
  add('foreign object', r.foreignObjects);
  add('chain header', r.changedHeaders);
  add(
    'rule',
    r.changedRules.map((d) => `${d.chain}[${d.index}] ${d.kind}`),
  );
  add('missing set', r.missingSets);
  add(
    'missing element',
    r.missingElements.map((e) => `${e.set} ${e.element}`),
  );
  add(
    'extra element',
    r.extraElements.map((e) => `${e.set} ${e.element}`),
  );
  add('missing chain', r.missingChains);
  add('extra chain', r.extraChains);
  add('changed chain', r.changedChains);
  add('unknown set', r.unknownSets);
  add(
    'unparsed',
    r.unparsed.map((u) => u.set),
  );
  return rows;
}

export function driftText(table_: string, r: DriftReport, repaired: boolean): string {
  if (!r.drift) return `no drift: table inet ${table_} matches the rule set\n`;
  const rows = driftRows(r);
  return `${table(rows, ['kind', 'what'])}\n${rows.length} difference(s) in table inet ${table_}${
    repaired ? ': repaired (the rule set was re-applied in full)' : ''
  }\n`;
}

/** A rule-set file: unreadable is an error (1), not JSON is invalid input (2), as for `asg validate`. */
async function loadRuleSet(path: string): Promise<CellRuleSet> {
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text) as CellRuleSet;
  } catch (err) {
    throw new ValidationError('rule-set file', path, `not valid JSON (${errorMessage(err)})`);
  }
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
  helpFooter(dp, {
    examples: [
      'cfnet dataplane render rules.json',
      'cfnet dataplane drift rules.json --netns cell-1',
      'cfnet dataplane show --json',
    ],
  });
  const render = dp
    .command('render')
    .description('print the nft script for a rule set (full replace, or incremental with --from)')
    .argument('<rules.json>', 'CellRuleSet JSON file')
    .option('--from <prev.json>', 'previous CellRuleSet: print the incremental update from it instead')
    .option('--table <name>', 'nft table (family inet)', DEFAULT_TABLE);
  helpFooter(render, {
    examples: [
      'cfnet dataplane render rules.json                  # full replace',
      'cfnet dataplane render new.json --from old.json    # incremental',
    ],
    exit: exitHelp(['ok', 'error']),
  }).action(async (file: string, o: { from?: string; table: string }) => {
    const next = await loadRuleSet(file);
    const out = o.from
      ? renderUpdate(await loadRuleSet(o.from), next, { table: o.table })
      : renderFull(next, { table: o.table });
    process.stdout.write(out);
  });
  helpFooter(
    common(dp.command('apply'))
      .description('replace the table with a rule set in one nft transaction')
      .argument('<rules.json>', 'CellRuleSet JSON file'),
    {
      examples: ['cfnet dataplane apply rules.json', 'cfnet dataplane apply rules.json --netns cell-1'],
      exit: exitHelp(['ok', 'error', 'invalid']),
    },
  ).action(async (file: string, o: CommonOpts) => {
    const res = await dataplane(o).applyFull(await loadRuleSet(file));
    console.log(JSON.stringify({ mode: res.mode, ms: Math.round(res.ms), bytes: res.bytes }));
  });
  helpFooter(
    common(dp.command('drift'))
      .description(
        `compare the kernel's table with a rule set: the differences, exit ${EXIT.drift} on drift (--repair re-applies)`,
      )
      .argument('<rules.json>', 'CellRuleSet JSON file')
      .option('--repair', 're-apply the rule set in full when drift is found')
      .option('--json', 'print the drift report as JSON instead of a table'),
    {
      examples: [
        'cfnet dataplane drift rules.json',
        'cfnet dataplane drift rules.json --repair',
        'cfnet dataplane drift rules.json --json || echo "drift or error: $?"',
      ],
      exit: exitHelp(['ok', 'drift', 'error', 'invalid'], {
        ok: 'no drift (or drift repaired with --repair)',
        drift: 'drift found (not repaired)',
      }),
    },
  ).action(async (file: string, o: CommonOpts & { repair?: boolean; json?: boolean }) => {
    const rs = await loadRuleSet(file);
    const d = dataplane(o);
    const { report, repaired } = o.repair
      ? await d.repair(rs)
      : { report: await d.detectDrift(rs), repaired: false };
    process.stdout.write(
      o.json ? `${JSON.stringify({ ...report, repaired }, null, 2)}\n` : driftText(o.table, report, repaired),
    );
    if (report.drift && !repaired) process.exitCode = EXIT.drift;
  });
  helpFooter(
    common(dp.command('show'))
      .description("summarise the kernel's table: elements per set, chains")
      .option('--json', 'print the summary as JSON instead of a table'),
    {
      examples: ['cfnet dataplane show', 'cfnet dataplane show --netns cell-1 --json'],
      exit: exitHelp(['ok', 'error', 'invalid']),
    },
  ).action(async (o: CommonOpts & { json?: boolean }) => {
    const k = await dataplane(o).readBack();
    const sets = Object.fromEntries([...k.sets].map(([name, m]) => [name, m.size]));
    const summary: TableSummary = { exists: k.exists, sets, chains: [...k.chains.keys()].sort() };
    process.stdout.write(o.json ? `${JSON.stringify(summary, null, 2)}\n` : summaryText(o.table, summary));
  });
}
