/**
 * `cfnet cells`: desired vs applied rule-set version, lag, state, overlay health and last error per
 * cell (states and lag as src/state/convergence.ts defines them); `[dry run]` marks a cell whose
 * agent enforces nothing.
 */
import { type Command, Option } from 'commander';
import { helpFooter } from '../../lib/command.js';
import { ValidationError } from '../../lib/errors.js';
import { exitHelp } from '../../lib/exit-codes.js';
import { ago, formatDuration, table, truncate, versionText } from '../../ops/format.js';
import {
  CELL_STATE_NAMES,
  CELL_STATES,
  type CellConvergence,
  overlaySummary,
} from '../../state/convergence.js';
import {
  type ConnFlags,
  connectionOptions,
  type JsonFlag,
  jsonOption,
  list,
  type OpsIo,
  printJson,
  run,
  withContext,
} from './common.js';

function cellRows(cells: readonly CellConvergence[], now: number) {
  return cells.map((c) => ({
    cell: c.cellId,
    desired: versionText(c.desired, now),
    applied: versionText(c.applied, now),
    lag: c.lagMs > 0 ? formatDuration(c.lagMs) : '0',
    state: `${c.job ? `${c.state} (job ${c.job.state})` : c.state}${c.dryRun ? ' [dry run]' : ''}`,
    overlay: overlaySummary(c.overlay),
    reported: ago(c.reportedAt, now),
    error: truncate(c.error, 80),
  }));
}

/** The states and their meaning, the first that holds wins; wrapped at 80 columns. */
function statesHelp(): string {
  const pad = Math.max(...CELL_STATE_NAMES.map((s) => s.length)) + 4;
  const lines = ['States, the first that holds wins (lag: how long the cell has been behind):'];
  for (const s of CELL_STATE_NAMES) {
    let line = `  ${s}`.padEnd(pad);
    for (const word of CELL_STATES[s].split(' ')) {
      if (line.length + word.length + 1 > 80 && line.trim() !== s) {
        lines.push(line.trimEnd());
        line = ' '.repeat(pad);
      }
      line += `${word} `;
    }
    lines.push(line.trimEnd());
  }
  return lines.join('\n');
}

export function registerCells(program: Command, io: OpsIo): void {
  const cmd = program
    .command('cells')
    .description(
      'per cell: desired rule-set version (stored by the controller) vs the version its agent applied, lag, state, overlay health, last report and error',
    )
    .addOption(
      new Option('--sort <key>', 'order of the rows').choices(['cell', 'lag', 'state']).default('cell'),
    )
    .option('--state <states>', `only cells in these states: ${CELL_STATE_NAMES.join(', ')}`);
  helpFooter(
    jsonOption(connectionOptions(cmd), 'the cells').addHelpText(
      'after',
      `\n${statesHelp()}\n\nOVERLAY: peer cells whose overlay entries the agent holds / those its lease list\nasks for; "no lease" when it does not hold its own.\n[dry run]: the agent computes but enforces nothing (--json: dryRun).`,
    ),
    {
      examples: [
        'cfnet cells                         # every cell, by id',
        'cfnet cells --sort lag              # the slowest first',
        'cfnet cells --state lagging,error,degraded   # only the cells that need a look',
        'cfnet cells --json | jq ".[].cellId"',
        'cfnet cells --json | jq ".[] | select(.dryRun) | .cellId"',
      ],
      exit: exitHelp(),
    },
  ).action(
    run(io, 'cells', async (o: ConnFlags & JsonFlag & { sort: string; state?: string }) => {
      const { cellConvergence, byLag, stateCounts, publishState, publishWarning } = await import(
        '../../ops/cells.js'
      );
      const valid: readonly string[] = CELL_STATE_NAMES;
      const states = list(o.state);
      for (const s of states)
        if (!valid.includes(s)) throw new ValidationError('state', s, `must be one of ${valid.join(', ')}`);
      const now = Date.now();
      const [all, publish] = await withContext(io, o, (ctx) =>
        Promise.all([
          cellConvergence(ctx.redis, ctx.keys, { now, queue: ctx.queue.queue }),
          publishState(ctx.redis, ctx.keys),
        ]),
      );
      let cells = all;
      const warning = publishWarning(publish, now);
      if (warning) io.stderr(`cfnet cells: ${warning}\n`);
      if (states.length > 0) cells = cells.filter((c) => states.includes(c.state));
      if (o.sort === 'lag') cells = byLag(cells);
      if (o.sort === 'state')
        cells = [...cells].sort((a, b) => a.state.localeCompare(b.state) || a.cellId.localeCompare(b.cellId));
      if (o.json) return printJson(io, cells);
      const dry = cells.filter((c) => c.dryRun).length;
      const counts = `${Object.entries(stateCounts(cells))
        .filter(([, n]) => n > 0)
        .map(([s, n]) => `${n} ${s}`)
        .join(', ')}${dry > 0 ? `; ${dry} in dry run (enforce nothing)` : ''}`;
      io.stdout(
        cells.length === 0
          ? 'no cells known in this namespace (is the controller running, is --redis-namespace right?)\n'
          : `${table(cellRows(cells, now), ['cell', 'desired', 'applied', 'lag', 'state', 'overlay', 'reported', 'error'])}\n${cells.length} cells: ${counts}\n`,
      );
    }),
  );
}
