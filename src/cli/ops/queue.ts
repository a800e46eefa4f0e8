/**
 * `cfnet queue …`: counts, list, show, retry, replay (with the progress bar), pause, resume, clean.
 * Longer than ~400 lines: it is eight small subcommands, each with its options, examples and action
 * side by side; the shared parts (replay and its report, used by `events --replay`) are the only
 * code above them.
 */
import { type Command, Option } from 'commander';
import { helpFooter } from '../../lib/command.js';
import { CfnetError, ValidationError } from '../../lib/errors.js';
import { exitHelp } from '../../lib/exit-codes.js';
import type { OpsContext } from '../../ops/connect.js';
import {
  formatDuration,
  isoTime,
  parseDuration,
  parsePositiveInt,
  table,
  truncate,
} from '../../ops/format.js';
import type { JobDetail, JobState, JobSummary } from '../../ops/queue-admin.js';
import type { CellOutcome, ReplayResult, ReplayTarget } from '../../ops/replay.js';
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

function jobRows(jobs: readonly JobSummary[]) {
  return jobs.map((j) => ({
    id: j.id,
    state: j.state,
    cell: j.cellId,
    attempts: j.attemptsMade,
    created: isoTime(j.createdAt),
    finished: isoTime(j.finishedAt),
    latency: j.latencyMs === null ? '' : formatDuration(j.latencyMs),
    triggers: truncate(j.triggers.join(','), 60),
    reason: truncate(j.failedReason, 80),
  }));
}

function printJob(io: OpsIo, j: JobDetail): void {
  const lines = [
    `job ${j.id} (${j.name}) ${j.state}`,
    `cell:        ${j.cellId}`,
    `attempts:    ${j.attemptsMade} of ${j.maxAttempts}`,
    `created:     ${isoTime(j.createdAt)}`,
    `started:     ${isoTime(j.processedAt) || '-'}`,
    `finished:    ${isoTime(j.finishedAt) || '-'}`,
    `event→done:  ${j.latencyMs === null ? '-' : formatDuration(j.latencyMs)}`,
  ];
  if (j.delayMs > 0) lines.push(`delay:       ${formatDuration(j.delayMs)}`);
  if (j.failedReason) lines.push(`error:       ${j.failedReason}`);
  if (j.returnValue !== null && j.returnValue !== undefined)
    lines.push(`result:      ${JSON.stringify(j.returnValue)}`);
  lines.push('triggers:');
  lines.push(
    j.triggerDetails.length === 0
      ? '  (none)'
      : table(
          j.triggerDetails.map((t) => ({
            kind: t.kind,
            id: t.id,
            seen: t.iso,
            waited: t.waitedMs === null ? '' : formatDuration(t.waitedMs),
          })),
          ['kind', 'id', 'seen', 'waited'],
        )
          .split('\n')
          .map((l) => `  ${l}`)
          .join('\n'),
  );
  if (j.stacktrace.length > 0) {
    lines.push('stack traces (one per failed attempt):');
    for (const s of j.stacktrace) lines.push(s.replace(/^/gm, '  '));
  }
  io.stdout(`${lines.join('\n')}\n`);
}

function replayTargetOf(o: { cell?: string; app?: string; space?: string; all?: boolean }): ReplayTarget {
  const given = [o.cell !== undefined, o.app !== undefined, o.space !== undefined, o.all === true].filter(
    Boolean,
  ).length;
  if (given !== 1) {
    throw new ValidationError('target', given, 'give exactly one of --cell, --app, --space or --all');
  }
  if (o.cell !== undefined) {
    const cells = list(o.cell);
    if (cells.length === 0) throw new ValidationError('cell', o.cell, 'must name at least one cell');
    return { kind: 'cell', cells };
  }
  // a name, org/space/app (or org/space) or a guid: resolved against the world's names later
  const ref = /^[^\p{Cc}]{1,512}$/u;
  if (o.app !== undefined) {
    if (!ref.test(o.app)) throw new ValidationError('app', o.app, 'must be an app name or guid');
    return { kind: 'app', guid: o.app };
  }
  if (o.space !== undefined) {
    if (!ref.test(o.space)) throw new ValidationError('space', o.space, 'must be a space name or guid');
    return { kind: 'space', guid: o.space };
  }
  return { kind: 'all' };
}

export interface ReplayFlags extends JsonFlag {
  wait?: boolean;
  timeout: string;
  progress?: boolean;
}

/** Enqueue (and with --wait, wait for) the reconciles of `cells`; prints the outcome. */
export async function replayAndReport(
  io: OpsIo,
  ctx: OpsContext,
  target: ReplayTarget,
  cells: string[],
  o: ReplayFlags,
): Promise<void> {
  const { replay, waitForReplay } = await import('../../ops/replay.js');
  const { ControllerUnavailableError } = await import('../../ops/errors.js');
  const { progressBar } = await import('../../ops/progress.js');
  const { readJobOptions } = await import('../../ops/job-options.js');
  const timeoutMs = parseDuration(o.timeout, 'timeout');
  const { workers } = await ctx.admin.counts();
  if (o.wait && workers === 0) {
    throw new ControllerUnavailableError(
      'no reconcile worker is connected to this queue (is a controller running on this namespace?); nothing was enqueued',
    );
  }
  const bar = progressBar(io.progress, o.progress ?? io.progress.isTTY === true);
  let result: ReplayResult;
  try {
    bar.phase('enqueued', cells.length);
    result = await replay(ctx.queue, target, cells, {
      journal: ctx.journal,
      jobOptions: await readJobOptions(ctx.redis, ctx.keys),
      onProgress: (done) => bar.update(done),
    });
    let outcomes: CellOutcome[] | null = null;
    if (o.wait) {
      bar.phase('reconciled', cells.length);
      outcomes = await waitForReplay(ctx.admin, result, {
        timeoutMs,
        onProgress: (done) => bar.update(done),
        ...(io.signal ? { signal: io.signal } : {}),
      });
    }
    bar.stop();
    if (workers === 0) {
      io.stderr(
        'warning: no reconcile worker is connected to this queue: the jobs wait until a controller runs\n',
      );
    }
    const pending = outcomes?.filter((x) => x.state === 'pending').length ?? 0;
    const failed = outcomes?.filter((x) => x.state === 'failed').length ?? 0;
    if (o.json) printJson(io, { ...result, ...(outcomes ? { outcomes } : {}) });
    else {
      io.stdout(
        `replayed ${result.cells.length} cell(s) (${result.target}); journal entry ${result.journalId}\n`,
      );
      if (outcomes) {
        io.stdout(
          `${table(
            outcomes.map((x) => ({ cell: x.cellId, job: x.jobId, state: x.state })),
            ['cell', 'job', 'state'],
          )}\n`,
        );
      } else {
        io.stdout(
          `${table(
            result.cells.map((c, i) => ({ cell: c, job: result.jobIds[i] })),
            ['cell', 'job'],
          )}\n`,
        );
      }
    }
    if (pending > 0) {
      throw new CfnetError(
        'CFNET_REPLAY_TIMEOUT',
        `${pending} of ${cells.length} cell(s) not reconciled within ${o.timeout} (see cfnet queue list --state waiting,active,delayed)`,
      );
    }
    if (failed > 0) {
      throw new CfnetError(
        'CFNET_REPLAY_FAILED',
        `${failed} reconcile(s) failed (see cfnet queue list --state failed)`,
      );
    }
  } finally {
    bar.stop();
  }
}

export function replayOptions(cmd: Command): Command {
  return cmd
    .option('--wait', 'wait until every replayed cell has been reconciled (needs a running controller)')
    .option('--timeout <duration>', 'with --wait: give up after this long', '5m')
    .option('--progress', 'draw the progress bar even when stderr is not a terminal')
    .option('--no-progress', 'never draw the progress bar');
}

export function registerQueue(program: Command, io: OpsIo): void {
  const queue = program
    .command('queue')
    .description(
      'inspect and operate the reconcile queue (BullMQ "reconcile": one job = "recompute cell X", deduplicated per cell). ' +
        'Retries and replays only enqueue cell keys: workers recompute from the current world, so nothing stale can be applied.',
    );
  helpFooter(queue, {
    examples: [
      'cfnet queue counts',
      'cfnet queue list --state failed',
      'cfnet queue replay --cell cell-7 --wait',
    ],
    exit: exitHelp(),
  });
  /** `cfnet queue <name>` with its examples and the exit statuses. */
  const sub = (name: string, examples: string[]) =>
    helpFooter(connectionOptions(queue.command(name)), { examples, exit: exitHelp() });

  jsonOption(sub('counts', ['cfnet queue counts', 'cfnet queue counts --json']), 'the counts')
    .description('jobs per state, whether the queue is paused, connected workers')
    .action(
      run(io, 'queue counts', async (o: ConnFlags & JsonFlag) => {
        const c = await withContext(io, o, (ctx) => ctx.admin.counts());
        if (o.json) return printJson(io, c);
        const rows = Object.entries(c.counts).map(([state, count]) => ({ state, count }));
        io.stdout(
          `${table(rows, ['state', 'count'])}\npaused: ${c.paused ? 'yes' : 'no'}   workers: ${c.workers ?? 'unknown'}\n`,
        );
      }),
    );

  jsonOption(
    sub('list', [
      'cfnet queue list --state failed',
      'cfnet queue list --cell cell-7 --limit 10',
      'cfnet queue list --state waiting,active --json',
    ]),
    'the jobs',
  )
    .description('list jobs, newest first per state')
    .option(
      '--state <states>',
      'comma list of waiting, prioritized, delayed, active, failed, completed [default: all]',
    )
    .option('--cell <cell>', 'only jobs of this cell')
    .option('--limit <n>', 'at most this many jobs', '50')
    .action(
      run(
        io,
        'queue list',
        async (o: ConnFlags & JsonFlag & { state?: string; cell?: string; limit: string }) => {
          const { parseJobState } = await import('../../ops/queue-admin.js');
          const { validateCellId } = await import('../../state/keys.js');
          const states: JobState[] = list(o.state).map((s) => parseJobState(s, 'state'));
          if (o.cell !== undefined) validateCellId(o.cell, 'cell');
          const limit = parsePositiveInt(o.limit, 'limit');
          const jobs = await withContext(io, o, (ctx) =>
            ctx.admin.list({ states, ...(o.cell !== undefined ? { cell: o.cell } : {}), limit }),
          );
          if (o.json) return printJson(io, jobs);
          io.stdout(
            jobs.length === 0
              ? 'no jobs\n'
              : `${table(jobRows(jobs), ['id', 'state', 'cell', 'attempts', 'created', 'finished', 'latency', 'triggers', 'reason'])}\n`,
          );
        },
      ),
    );

  jsonOption(sub('show', ['cfnet queue show 1234', 'cfnet queue show 1234 --json']), 'the job')
    .description('one job in detail: data, attempts, error and stack traces, trigger timestamps')
    .argument('<jobId>', 'job id (cfnet queue list)')
    .action(
      run(io, 'queue show', async (id: string, o: ConnFlags & JsonFlag) => {
        if (!/^[A-Za-z0-9:_-]{1,128}$/.test(id)) throw new ValidationError('jobId', id, 'not a job id');
        const job = await withContext(io, o, (ctx) => ctx.admin.show(id));
        if (o.json) return printJson(io, job);
        printJob(io, job);
      }),
    );

  jsonOption(
    sub('retry', ['cfnet queue retry 1234 1240', 'cfnet queue retry --all-failed']),
    'the retried job ids',
  )
    .description(
      'move failed jobs back to waiting, attempts reset (the cell is recomputed from the current world)',
    )
    .argument('[jobIds...]', 'failed jobs to retry')
    .option('--all-failed', 'retry every failed job')
    .action(
      run(io, 'queue retry', async (ids: string[], o: ConnFlags & JsonFlag & { allFailed?: boolean }) => {
        if (ids.length > 0 === (o.allFailed === true)) {
          throw new ValidationError('jobIds', ids, 'give job ids or --all-failed (not both)');
        }
        for (const id of ids) {
          if (!/^[A-Za-z0-9:_-]{1,128}$/.test(id)) throw new ValidationError('jobId', id, 'not a job id');
        }
        const retried = await withContext(
          io,
          o,
          async (ctx) => {
            if (o.allFailed) return ctx.admin.retryAllFailed();
            // all named jobs must exist and be failed before any is touched
            for (const id of ids) {
              const j = await ctx.admin.show(id);
              if (j.state !== 'failed') {
                throw new ValidationError(
                  'jobId',
                  id,
                  `job is ${j.state}; only failed jobs can be retried (nothing retried)`,
                );
              }
            }
            for (const id of ids) await ctx.admin.retry(id);
            return ids;
          },
          { controller: false },
        );
        if (o.json) return printJson(io, { retried });
        io.stdout(
          retried.length === 0
            ? 'no failed jobs\n'
            : `retried ${retried.length} job(s): ${retried.join(', ')}\n`,
        );
      }),
    );

  jsonOption(
    replayOptions(
      sub('replay', [
        'cfnet queue replay --cell cell-7,cell-9 --wait',
        'cfnet queue replay --app <app-guid>',
        'cfnet queue replay --all --wait --timeout 10m',
      ]),
    ),
    'the replay',
  )
    .description(
      're-enqueue reconciles: of cells, of the cells running an app or a space, or of every cell (recorded in the event journal)',
    )
    .option('--cell <cells>', 'comma list of cell ids')
    .option('--app <app>', "the cells running the app's containers (name, org/space/app, or guid)")
    .option('--space <space>', "the cells running the space's containers (name, org/space, or guid)")
    .option('--all', 'every cell the controller knows')
    .action(
      run(
        io,
        'queue replay',
        async (
          o: ConnFlags & ReplayFlags & { cell?: string; app?: string; space?: string; all?: boolean },
        ) => {
          const named = replayTargetOf(o);
          const { replayCells } = await import('../../ops/replay.js');
          const { loadRedisWorld } = await import('../../ops/world-reader.js');
          const { resolveApp, resolveSpace } = await import('../../ops/names.js');
          await withContext(
            io,
            o,
            async (ctx) => {
              const world = named.kind === 'cell' ? null : await loadRedisWorld(ctx.redis, ctx.keys);
              // names as explain takes them; a value no name fits stays a guid (as before)
              const target: ReplayTarget =
                world && named.kind === 'app'
                  ? {
                      kind: 'app',
                      guid: resolveApp(
                        world.names,
                        { app: named.guid },
                        { app: '--app', space: '--app', org: '--app' },
                        () => true,
                      ),
                    }
                  : world && named.kind === 'space'
                    ? { kind: 'space', guid: resolveSpace(world.names, named.guid, 'space') }
                    : named;
              await replayAndReport(io, ctx, target, replayCells(target, world), o);
            },
            { controller: false },
          );
        },
      ),
    );

  jsonOption(sub('pause', ['cfnet queue pause', 'cfnet queue resume']), 'the queue state')
    .description(
      'pause the queue for every replica: running jobs finish, no new job starts (events keep queueing)',
    )
    .action(
      run(io, 'queue pause', async (o: ConnFlags & JsonFlag) => {
        await withContext(io, o, (ctx) => ctx.admin.pause(), { controller: false });
        if (o.json) return printJson(io, { paused: true });
        io.stdout('queue paused: jobs wait until cfnet queue resume\n');
      }),
    );

  jsonOption(sub('resume', ['cfnet queue resume']), 'the queue state')
    .description('resume a paused queue')
    .action(
      run(io, 'queue resume', async (o: ConnFlags & JsonFlag) => {
        await withContext(io, o, (ctx) => ctx.admin.resume(), { controller: false });
        if (o.json) return printJson(io, { paused: false });
        io.stdout('queue resumed\n');
      }),
    );

  jsonOption(
    sub('clean', ['cfnet queue clean', 'cfnet queue clean --older-than 1d --state failed']),
    'the removed job ids',
  )
    .description(
      'remove finished (completed and/or failed) jobs older than a grace period; waiting jobs are never touched',
    )
    .option('--older-than <duration>', 'finished more than this long ago', '1h')
    .addOption(
      new Option('--state <state>', 'which finished jobs')
        .choices(['completed', 'failed', 'both'])
        .default('both'),
    )
    .action(
      run(io, 'queue clean', async (o: ConnFlags & JsonFlag & { olderThan: string; state: string }) => {
        const grace = parseDuration(o.olderThan, 'older-than');
        const states: Array<'completed' | 'failed'> =
          o.state === 'both' ? ['completed', 'failed'] : [o.state as 'completed' | 'failed'];
        const removed = await withContext(io, o, (ctx) => ctx.admin.clean(grace, states), {
          controller: false,
        });
        if (o.json) return printJson(io, removed);
        io.stdout(
          `${Object.entries(removed)
            .map(([s, ids]) => `removed ${ids.length} ${s} job(s) finished more than ${o.olderThan} ago`)
            .join('\n')}\n`,
        );
      }),
    );
}
