/**
 * `cfnet events`: tail, filter, follow and replay the event journal.
 */
import type { Command } from 'commander';
import { helpFooter } from '../../lib/command.js';
import { ValidationError } from '../../lib/errors.js';
import { exitHelp } from '../../lib/exit-codes.js';
import type { NameDirectory } from '../../model/names.js';
import { isoTime, parsePositiveInt, parseTime, table, truncate } from '../../ops/format.js';
import type { JournalEntry, JournalFilter } from '../../ops/journal.js';
import {
  type ConnFlags,
  connectionOptions,
  jsonOption,
  type OpsIo,
  printJson,
  run,
  withContext,
} from './common.js';
import { type ReplayFlags, replayAndReport, replayOptions } from './queue.js';

/** How an entry names apps and spaces: org/space/app and org/space, or with `guids` the guids too. */
interface Naming {
  names: NameDirectory;
  guids: boolean;
}

const appName = (n: Naming, guid: string) => {
  const label = n.names.appLabel(guid);
  return n.guids && label !== guid ? `${label}(${guid})` : label;
};
const spaceName = (n: Naming, guid: string) => {
  const label = n.names.spaceLabel(guid);
  return n.guids && label !== guid ? `${label}(${guid})` : label;
};

function subjectText(e: JournalEntry, n: Naming): string {
  const s = e.subject;
  const parts = [s.guid ?? ''];
  if (s.apps?.length) parts.push(`app ${s.apps.map((g) => appName(n, g)).join(',')}`);
  if (s.spaces?.length) parts.push(`space ${s.spaces.map((g) => spaceName(n, g)).join(',')}`);
  if (s.groups?.length) parts.push(`asg ${s.groups.join(',')}`);
  return parts.filter(Boolean).join(' ');
}

function listText(items: readonly string[], max = 4): string {
  if (items.length === 0) return '-';
  return items.length <= max ? items.join(',') : `${items.slice(0, max).join(',')},…(${items.length})`;
}

function detailText(d: Record<string, unknown> | undefined): string {
  return d
    ? Object.entries(d)
        .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
        .join(' ')
    : '';
}

/** An entry for `--json`: as journaled, plus `names` (guid → org/space/app or org/space) of its subject. */
function withNames(e: JournalEntry, names: NameDirectory): JournalEntry & { names?: Record<string, string> } {
  const out: Record<string, string> = {};
  for (const g of e.subject.apps ?? []) if (names.app(g)) out[g] = names.appLabel(g);
  for (const g of e.subject.spaces ?? []) if (names.space(g)) out[g] = names.spaceLabel(g);
  return Object.keys(out).length > 0 ? { ...e, names: out } : e;
}

function eventLine(e: JournalEntry, n: Naming): string {
  return [
    isoTime(e.at),
    e.type.padEnd(12),
    subjectText(e, n),
    `cells=${listText(e.cells)}`,
    `jobs=${listText(e.jobIds)}`,
    detailText(e.detail),
  ]
    .filter(Boolean)
    .join('  ');
}

export function registerEvents(program: Command, io: OpsIo): void {
  const cmd = program
    .command('events')
    .description(
      'the event journal: every platform change the controller acted on (BBS lrp/desired/task events, ASG and policy changes, agent inventories and reports, resyncs, replays) with the cells it touched and the jobs it caused; newest last',
    )
    .option('--cell <cell>', 'only entries that touched this cell')
    .option('--app <app>', 'only entries about this app: name, org/space/app, or guid')
    .option('--space <space>', 'only entries about this space: name, org/space, or guid')
    .option('--guids', 'show app and space guids next to their names')
    .option(
      '--type <types>',
      'comma list of lrp, desired, task, asg, policy, inventory, agent-report, resync, replay, rejected (input left out: invalid records, per-cell conflicts, containers the agent refused)',
    )
    .option('--since <time>', 'written at or after: a duration ago (10m), ISO-8601 time or epoch ms')
    .option('--until <time>', 'written at or before (same forms as --since)')
    .option('--limit <n>', 'at most this many (the newest)', '100')
    .option('-f, --follow', 'keep printing new entries as they are written (Ctrl-C ends)')
    .option('--replay', 're-enqueue the cells the matching entries touched (recorded as a replay entry)');
  helpFooter(
    jsonOption(
      replayOptions(connectionOptions(cmd)),
      'the entries (with --follow: one JSON object per line)',
    ),
    {
      examples: [
        'cfnet events --type asg,policy --since 1h',
        'cfnet events --app acme/prod/web --since 30m',
        'cfnet events --cell cell-7 --since 2024-05-01T10:00:00Z \\',
        '    --until 2024-05-01T10:05:00Z',
        'cfnet events --cell cell-7 --since 10m --replay --wait',
        'cfnet events --follow --json',
      ],
      exit: exitHelp(),
    },
  ).action(
    run(
      io,
      'events',
      async (
        o: ConnFlags &
          ReplayFlags & {
            cell?: string;
            app?: string;
            space?: string;
            type?: string;
            since?: string;
            until?: string;
            limit: string;
            follow?: boolean;
            replay?: boolean;
            guids?: boolean;
          },
      ) => {
        const { parseJournalTypes, Journal } = await import('../../ops/journal.js');
        const { validateCellId } = await import('../../state/keys.js');
        const now = Date.now();
        const filter: JournalFilter = {};
        if (o.cell !== undefined) filter.cell = validateCellId(o.cell, 'cell');
        if (o.type !== undefined) filter.types = parseJournalTypes(o.type, 'type');
        if (o.since !== undefined) filter.since = parseTime(o.since, 'since', now);
        if (o.until !== undefined) filter.until = parseTime(o.until, 'until', now);
        if (filter.since !== undefined && filter.until !== undefined && filter.since > filter.until) {
          throw new ValidationError('until', o.until, 'is before --since');
        }
        const limit = parsePositiveInt(o.limit, 'limit');
        if (o.follow && (o.replay || o.until !== undefined)) {
          throw new ValidationError('follow', true, 'cannot be combined with --replay or --until');
        }
        await withContext(io, o, async (ctx) => {
          const { loadNames } = await import('../../ops/world-reader.js');
          const { resolveApp, resolveSpace } = await import('../../ops/names.js');
          const names = await loadNames(ctx.redis, ctx.keys);
          const naming: Naming = { names, guids: o.guids === true };
          // the journal keeps apps that no longer exist: a value no name fits is taken as a guid
          if (o.app !== undefined)
            filter.app = resolveApp(
              names,
              { app: o.app },
              { app: '--app', space: '--app', org: '--app' },
              () => true,
            );
          if (o.space !== undefined) filter.space = resolveSpace(names, o.space, 'space');
          const entries = await ctx.journal.read(filter, limit);
          if (o.replay) {
            const cells = Journal.cellsOf(entries);
            const desc = [
              o.cell && `cell=${o.cell}`,
              o.app && `app=${o.app}`,
              o.space && `space=${o.space}`,
              o.type && `type=${o.type}`,
              o.since && `since=${o.since}`,
              o.until && `until=${o.until}`,
            ]
              .filter(Boolean)
              .join(',');
            if (cells.length === 0) {
              throw new ValidationError(
                'replay',
                desc || 'all',
                `the ${entries.length} matching entries touched no cell`,
              );
            }
            await replayAndReport(io, ctx, { kind: 'events', cells, filter: desc || 'all' }, cells, o);
            return;
          }
          if (!o.follow) {
            if (o.json)
              return printJson(
                io,
                entries.map((e) => withNames(e, names)),
              );
            io.stdout(
              entries.length === 0
                ? 'no journal entries match\n'
                : `${table(
                    entries.map((e) => ({
                      seen: isoTime(e.at),
                      type: e.type,
                      subject: truncate(subjectText(e, naming), 70),
                      cells: listText(e.cells),
                      jobs: listText(e.jobIds),
                      detail: truncate(detailText(e.detail), 60),
                    })),
                    ['seen', 'type', 'subject', 'cells', 'jobs', 'detail'],
                  )}\n`,
            );
            return;
          }
          const print = (e: JournalEntry) =>
            io.stdout(o.json ? `${JSON.stringify(withNames(e, names))}\n` : `${eventLine(e, naming)}\n`);
          for (const e of entries) print(e);
          const ac = new AbortController();
          const stop = () => ac.abort();
          const signal = io.signal ?? ac.signal;
          if (!io.signal) {
            process.once('SIGINT', stop);
            process.once('SIGTERM', stop);
          }
          try {
            const from = entries.at(-1)?.id ?? (await ctx.journal.lastId()) ?? '0-0';
            await ctx.journal.follow(await ctx.blocking(), filter, print, signal, from);
          } finally {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
          }
        });
      },
    ),
  );
}
