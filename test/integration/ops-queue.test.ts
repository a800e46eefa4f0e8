/**
 * `cfnet queue …` against a real controller (simulator + Redis): counts, list, show, a failing
 * reconcile retried once its cause is gone, retry of all failed jobs, pause/resume, clean, replay
 * of a cell / app / space / everything with the progress bar, and bad input that changes nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import type { JobDetail, JobSummary, QueueCounts } from '../../src/ops/queue-admin.js';
import { loadRedisWorld } from '../../src/ops/world-reader.js';
import { Keys } from '../../src/state/keys.js';
import { cfnet, cfnetJson, type Foundation, REDIS_URL, startFoundation, waitUntil } from './ops-helpers.js';

/** Make every reconcile of `cell` fail (an unreadable world record), as a corrupt write would. */
async function breakCell(redis: Redis, keys: Keys, cell: string): Promise<void> {
  await redis.hset(keys.cellWorld(cell), 'zz-broken', '{not json');
}

async function repairCell(redis: Redis, keys: Keys, cell: string): Promise<void> {
  await redis.hdel(keys.cellWorld(cell), 'zz-broken');
}

describe('cfnet queue', () => {
  let f: Foundation;
  let redis: Redis;
  let keys: Keys;
  let cells: string[];

  before(async () => {
    f = await startFoundation('queue', { attempts: 2, backoffMs: 20 });
    redis = createRedis(REDIS_URL);
    keys = new Keys(f.ns);
    cells = [...f.sim.world.cells.keys()].sort();
    // the leader's first resync reconciled every cell
    await waitUntil(
      'initial reconciles',
      async () => (await redis.scard(keys.ruleSetCells)) === cells.length,
      30_000,
      25,
    );
  });

  after(async () => {
    await closeRedis(redis);
    await f?.stop();
  });

  it('counts: jobs per state, paused, workers; as a table and as JSON', async () => {
    const c = await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns);
    assert.ok(c.counts.completed >= cells.length, `completed ${c.counts.completed}`);
    assert.equal(c.paused, false);
    assert.ok((c.workers ?? 0) >= 1, `workers ${c.workers}`);
    const human = await cfnet(['queue', 'counts'], { namespace: f.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^STATE\s+COUNT/m);
    assert.match(human.stdout, /completed\s+\d+/);
    assert.match(human.stdout, /paused: no/);
  });

  it('list filters by state and cell; show gives data, attempts and trigger times', async () => {
    const all = await cfnetJson<JobSummary[]>(
      ['queue', 'list', '--state', 'completed', '--limit', '500'],
      f.ns,
    );
    assert.deepEqual([...new Set(all.map((j) => j.cellId))].sort(), cells);
    assert.ok(all.every((j) => j.state === 'completed'));
    const one = await cfnetJson<JobSummary[]>(['queue', 'list', '--cell', cells[0]!], f.ns);
    assert.ok(one.length > 0 && one.every((j) => j.cellId === cells[0]));
    const limited = await cfnetJson<JobSummary[]>(['queue', 'list', '--limit', '1'], f.ns);
    assert.equal(limited.length, 1);

    const resync = all.find((j) => j.triggers.some((t) => t.startsWith('resync:')))!;
    assert.ok(resync, 'a job of the leader’s resync');
    const job = await cfnetJson<JobDetail>(['queue', 'show', resync.id], f.ns);
    assert.equal(job.id, resync.id);
    assert.equal(job.data.cellId, resync.cellId);
    assert.equal(job.state, 'completed');
    assert.equal(job.attemptsMade, 1);
    assert.ok(job.triggerDetails[0]!.iso.endsWith('Z'));
    assert.ok(job.latencyMs !== null && job.latencyMs >= 0);
    const human = await cfnet(['queue', 'show', resync.id], { namespace: f.ns });
    assert.match(human.stdout, new RegExp(`cell:\\s+${resync.cellId}`));
    assert.match(human.stdout, /triggers:\n\s+KIND\s+ID\s+SEEN/);
    const table = await cfnet(['queue', 'list', '--state', 'completed'], { namespace: f.ns });
    assert.match(table.stdout, /^ID\s+STATE\s+CELL/m);
  });

  it('a failing reconcile: its error and stack are shown; retried after the cause is gone, it completes', async () => {
    const cell = cells[1]!;
    await breakCell(redis, keys, cell);
    // the cell is repaired even when an assert fails: later tests read the whole world
    try {
      await failThenRetry(cell);
    } finally {
      await repairCell(redis, keys, cell);
    }
  });

  /** The body of the test above (its cell is broken on entry). */
  async function failThenRetry(cell: string): Promise<void> {
    const rep = await cfnet(['queue', 'replay', '--cell', cell, '--wait', '--timeout', '20s'], {
      namespace: f.ns,
    });
    assert.equal(rep.code, 1, rep.stderr);
    assert.match(rep.stderr, /1 reconcile\(s\) failed/);
    assert.match(rep.stdout, new RegExp(`${cell}\\s+\\S+\\s+failed`));
    const failed = await cfnetJson<JobSummary[]>(
      ['queue', 'list', '--state', 'failed', '--cell', cell],
      f.ns,
    );
    assert.equal(failed.length, 1);
    const job = await cfnetJson<JobDetail>(['queue', 'show', failed[0]!.id], f.ns);
    assert.equal(job.state, 'failed');
    // the controller's attempts (published by it), not BullMQ's or the tool's defaults
    assert.equal(job.maxAttempts, 2);
    assert.equal(job.attemptsMade, 2);
    assert.match(job.failedReason, /unreadable world record|JSON/);
    assert.ok(job.stacktrace.length >= 1 && /at /.test(job.stacktrace[0]!), 'stack trace kept');
    assert.ok(job.triggerDetails.some((t) => t.kind === 'replay'));

    // not failed → refused, nothing moves
    const done = (
      await cfnetJson<JobSummary[]>(['queue', 'list', '--state', 'completed', '--limit', '1'], f.ns)
    )[0]!;
    const refused = await cfnet(['queue', 'retry', done.id, failed[0]!.id], { namespace: f.ns });
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /only failed jobs can be retried \(nothing retried\)/);
    assert.equal((await cfnetJson<JobDetail>(['queue', 'show', failed[0]!.id], f.ns)).state, 'failed');

    await repairCell(redis, keys, cell);
    const retried = await cfnet(['queue', 'retry', failed[0]!.id], { namespace: f.ns });
    assert.equal(retried.code, 0, retried.stderr);
    assert.match(retried.stdout, /retried 1 job/);
    await waitUntil(
      'the retried job completes',
      async () => {
        const j = await cfnetJson<JobDetail>(['queue', 'show', failed[0]!.id], f.ns);
        return j.state === 'completed' && j.attemptsMade === 1;
      },
      10_000,
      25,
    );
  }

  it('retry --all-failed moves every failed job back', async () => {
    let failed: JobSummary[];
    for (const c of cells.slice(0, 2)) await breakCell(redis, keys, c);
    try {
      const rep = await cfnet(
        ['queue', 'replay', '--cell', cells.slice(0, 2).join(','), '--wait', '--no-progress'],
        { namespace: f.ns },
      );
      assert.equal(rep.code, 1, rep.stderr);
      failed = await cfnetJson<JobSummary[]>(['queue', 'list', '--state', 'failed'], f.ns);
      assert.deepEqual(failed.map((j) => j.cellId).sort(), cells.slice(0, 2));
    } finally {
      for (const c of cells.slice(0, 2)) await repairCell(redis, keys, c);
    }
    const r = await cfnetJson<{ retried: string[] }>(['queue', 'retry', '--all-failed'], f.ns);
    assert.deepEqual(r.retried.sort(), failed.map((j) => j.id).sort());
    await waitUntil(
      'no failed job left',
      async () => (await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns)).counts.failed === 0,
      10_000,
      25,
    );
    const none = await cfnet(['queue', 'retry', '--all-failed'], { namespace: f.ns });
    assert.match(none.stdout, /no failed jobs/);
  });

  it('pause holds new jobs for every replica; resume runs them', async () => {
    const p = await cfnet(['queue', 'pause'], { namespace: f.ns });
    assert.equal(p.code, 0, p.stderr);
    try {
      assert.equal((await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns)).paused, true);
      const r = await cfnetJson<{ jobIds: string[] }>(['queue', 'replay', '--cell', cells[2]!], f.ns);
      const id = r.jobIds[0]!;
      // workers poll continuously: give them time to (wrongly) take the job
      await new Promise((res) => setTimeout(res, 800));
      const held = await cfnetJson<JobDetail>(['queue', 'show', id], f.ns);
      assert.equal(held.state, 'waiting');
      assert.equal(held.processedAt, null);
    } finally {
      const r = await cfnet(['queue', 'resume'], { namespace: f.ns });
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal((await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns)).paused, false);
    await waitUntil(
      'the held job ran',
      async () => {
        const c = await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns);
        return c.counts.waiting === 0 && c.counts.active === 0;
      },
      10_000,
      25,
    );
  });

  it('replay --app / --space / --all enqueues exactly their cells, with a progress bar, and waits', async () => {
    const world = await loadRedisWorld(redis, keys);
    const app = world.apps().find((a) => [...world.cellsOfApp(a)].length >= 1)!;
    const appCells = [...world.cellsOfApp(app)];
    const byApp = await cfnet(['queue', 'replay', '--app', app, '--wait', '--progress'], { namespace: f.ns });
    assert.equal(byApp.code, 0, byApp.stderr);
    assert.match(byApp.progress, /reconciled .*100% \| \d+\/\d+ cells/);
    for (const c of appCells) assert.match(byApp.stdout, new RegExp(`${c}\\s+\\S+\\s+completed`));
    assert.match(byApp.stdout, new RegExp(`replayed ${appCells.length} cell\\(s\\) \\(app:${app}\\)`));

    const space = world.spaces()[0]!;
    const bySpace = await cfnetJson<{ cells: string[]; outcomes: Array<{ state: string }> }>(
      ['queue', 'replay', '--space', space, '--wait', '--no-progress'],
      f.ns,
    );
    assert.deepEqual(bySpace.cells, [...world.cellsOfSpace(space)]);
    assert.ok(bySpace.outcomes.every((o) => o.state === 'completed'));

    const all = await cfnetJson<{ cells: string[]; jobIds: string[]; outcomes: Array<{ state: string }> }>(
      ['queue', 'replay', '--all', '--wait', '--no-progress'],
      f.ns,
    );
    assert.deepEqual(all.cells, cells);
    assert.equal(all.jobIds.length, cells.length);
    assert.ok(all.outcomes.every((o) => o.state === 'completed'));
    const quiet = await cfnet(['queue', 'replay', '--all', '--no-progress'], { namespace: f.ns });
    assert.equal(quiet.progress, '', 'no bar with --no-progress');
  });

  it('clean removes finished jobs older than the grace period, never waiting ones', async () => {
    const removed = await cfnetJson<Record<string, string[]>>(
      ['queue', 'clean', '--older-than', '0s', '--state', 'completed'],
      f.ns,
    );
    assert.ok(removed.completed!.length >= cells.length, `removed ${removed.completed!.length}`);
    assert.equal(removed.failed, undefined);
    const left = await cfnetJson<JobSummary[]>(['queue', 'list', '--state', 'completed'], f.ns);
    const cleanedIds = new Set(removed.completed);
    assert.ok(left.every((j) => !cleanedIds.has(j.id)));
    const human = await cfnet(['queue', 'clean', '--older-than', '1h'], { namespace: f.ns });
    assert.match(human.stdout, /removed 0 completed job\(s\) finished more than 1h ago/);
  });

  it('bad input is refused with a clear message and changes nothing', async () => {
    const before = await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns);
    const cases: Array<[string[], number, RegExp]> = [
      [
        ['queue', 'replay', '--cell', cells[0]!, '--all'],
        2,
        /exactly one of --cell, --app, --space or --all/,
      ],
      [['queue', 'replay'], 2, /exactly one of/],
      [['queue', 'replay', '--cell', 'no such cell!'], 2, /invalid cell "no such cell!"/],
      [['queue', 'replay', '--app', 'no-such-app'], 5, /app "no-such-app" not found/],
      [['queue', 'list', '--state', 'bogus'], 2, /invalid state "bogus": must be one of/],
      [['queue', 'list', '--limit', '0'], 2, /invalid limit "0"/],
      [['queue', 'show', '424242'], 5, /job "424242" not found/],
      [['queue', 'retry', '424242'], 5, /job "424242" not found/],
      [['queue', 'retry'], 2, /give job ids or --all-failed/],
      [['queue', 'clean', '--older-than', 'soon'], 2, /invalid older-than "soon"/],
      [['queue', 'clean', '--state', 'waiting'], 2, /Allowed choices are completed, failed, both/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cfnet(args, { namespace: f.ns });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
    }
    const after = await cfnetJson<QueueCounts>(['queue', 'counts'], f.ns);
    assert.deepEqual(
      { ...after.counts, completed: 0 },
      { ...before.counts, completed: 0 },
      'no job was added, moved or removed',
    );
  });
});
