/**
 * `cfnet events` against a real controller (simulator + Redis): the journal records the leader's
 * resync, BBS events and policy changes with the cells they touched and the jobs they caused;
 * filters by type, cell, app and time; `--replay` re-enqueues exactly the cells of the matching
 * entries; `--follow` streams new entries; and the tools fail clearly (and change nothing) when
 * Redis or the controller is missing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import type { JournalEntry } from '../../src/ops/journal.js';
import type { JobDetail } from '../../src/ops/queue-admin.js';
import { loadRedisWorld } from '../../src/ops/world-reader.js';
import { Keys } from '../../src/state/keys.js';
import {
  cfnet,
  cfnetJson,
  type Foundation,
  REDIS_URL,
  startFoundation,
  testNamespace,
  waitUntil,
} from './ops-helpers.js';

describe('cfnet events', () => {
  let f: Foundation;
  let redis: Redis;
  let keys: Keys;
  let cells: string[];
  let src: string;
  let dst: string;
  let dstCells: string[];

  const events = (args: string[]) => cfnetJson<JournalEntry[]>(['events', ...args], f.ns);

  before(async () => {
    f = await startFoundation('events');
    redis = createRedis(REDIS_URL);
    keys = new Keys(f.ns);
    cells = [...f.sim.world.cells.keys()].sort();
    await waitUntil(
      'initial reconciles',
      async () => (await redis.scard(keys.ruleSetCells)) === cells.length,
      30_000,
      25,
    );
    const world = await loadRedisWorld(redis, keys);
    const apps = world.apps().filter((a) => world.containersOf(a).length > 0);
    src = apps[0]!;
    dst = apps[1]!;
    dstCells = [...world.cellsOfApp(dst)];
  });

  after(async () => {
    await closeRedis(redis);
    await f?.stop();
  });

  it("records the leader's resync with every cell and the jobs it caused", async () => {
    const resync = await waitUntil(
      'a resync entry',
      async () => {
        const e = await events(['--type', 'resync']);
        return e.length > 0 ? e : null;
      },
      10_000,
      25,
    );
    const first = resync[0]!;
    assert.equal(first.source, 'controller');
    assert.deepEqual(first.cells, cells);
    assert.equal(first.jobIds.length, cells.length);
    // each job the entry names reconciled one of its cells
    for (const id of first.jobIds) {
      const job = await cfnetJson<JobDetail>(['queue', 'show', id], f.ns);
      assert.ok(first.cells.includes(job.cellId));
      assert.ok(job.triggerDetails.some((t) => t.kind === 'resync'));
    }
    const human = await cfnet(['events', '--type', 'resync'], { namespace: f.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^SEEN\s+TYPE\s+SUBJECT\s+CELLS\s+JOBS/m);
    assert.match(human.stdout, /resync/);
  });

  it('a policy change: its entry names the apps, the cells and the jobs; filters by type, app, cell and time', async () => {
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, 5)); // entries written after t0 have a later stream id
    await f.sim.apply({ kind: 'policy-add', source: src, destination: dst, port: 7101 });
    const [entry] = await waitUntil(
      'the policy entry',
      async () => {
        const e = await events(['--type', 'policy', '--since', new Date(t0).toISOString()]);
        return e.length > 0 ? e : null;
      },
      10_000,
      25,
    );
    assert.equal(entry!.source, 'policy-server');
    assert.deepEqual(entry!.subject.apps, [src, dst].sort());
    assert.deepEqual(entry!.detail, { added: 1, removed: 0 });
    for (const c of dstCells) assert.ok(entry!.cells.includes(c), `destination cell ${c}`);
    assert.ok(entry!.jobIds.length >= 1);

    // "why did cell C reconcile?": the cell's entries since t0 include the policy change
    const forCell = await events(['--cell', dstCells[0]!, '--since', new Date(t0).toISOString()]);
    assert.ok(forCell.some((e) => e.id === entry!.id));
    assert.ok(forCell.every((e) => e.cells.includes(dstCells[0]!)));
    const forApp = await events(['--app', dst]);
    assert.ok(forApp.some((e) => e.id === entry!.id));
    const other = cells.find((c) => !entry!.cells.includes(c));
    if (other) {
      const none = await events(['--cell', other, '--type', 'policy', '--since', new Date(t0).toISOString()]);
      assert.deepEqual(none, []);
    }
    // time window: before the change there is no such entry; --until excludes it
    const until = await events(['--type', 'policy', '--until', new Date(t0).toISOString()]);
    assert.ok(until.every((e) => e.id !== entry!.id));
    const all = await events(['--limit', '1000']);
    const limited = await events(['--limit', '1']);
    assert.equal(limited.length, 1);
    // the newest entry (a later one may have been written in between, never an older one)
    const ms = (id: string) => id.split('-').map(Number) as [number, number];
    const [a, b] = [ms(limited[0]!.id), ms(all.at(-1)!.id)];
    assert.ok(a[0] > b[0] || (a[0] === b[0] && a[1] >= b[1]), 'the newest entry');
  });

  it('--replay re-enqueues exactly the cells of the matching entries and records a replay entry', async () => {
    const policy = (await events(['--type', 'policy'])).at(-1)!;
    const since = new Date(Number(policy.id.split('-')[0])).toISOString();
    const r = await cfnetJson<{ cells: string[]; jobIds: string[]; outcomes: Array<{ state: string }> }>(
      ['events', '--type', 'policy', '--since', since, '--replay', '--wait', '--no-progress'],
      f.ns,
    );
    assert.deepEqual(r.cells, [...policy.cells].sort());
    assert.equal(r.jobIds.length, r.cells.length);
    assert.ok(r.outcomes.every((o) => o.state === 'completed'));
    const replays = await events(['--type', 'replay']);
    const mine = replays.at(-1)!;
    assert.equal(mine.source, 'operator');
    assert.deepEqual(mine.cells, r.cells);
    assert.deepEqual(mine.jobIds, r.jobIds);
    assert.match(mine.subject.guid ?? '', /^events:type=policy,since=/);
    const nothing = await cfnet(['events', '--type', 'task', '--replay'], { namespace: f.ns });
    assert.equal(nothing.code, 2);
    assert.match(nothing.stderr, /touched no cell/);
  });

  it('--follow prints new entries as they are written, until stopped', async () => {
    const ac = new AbortController();
    const lines: JournalEntry[] = [];
    let buffer = '';
    const following = cfnet(['events', '--follow', '--json', '--type', 'policy', '--limit', '1'], {
      namespace: f.ns,
      signal: ac.signal,
      onStdout: (t) => {
        buffer += t;
        let nl = buffer.indexOf('\n');
        while (nl >= 0) {
          lines.push(JSON.parse(buffer.slice(0, nl)) as JournalEntry);
          buffer = buffer.slice(nl + 1);
          nl = buffer.indexOf('\n');
        }
      },
    });
    try {
      await waitUntil('the newest policy entry first', () => lines.length === 1, 10_000, 25);
      await f.sim.apply({ kind: 'policy-remove', source: src, destination: dst, port: 7101 });
      const removal = await waitUntil(
        'the removal streamed',
        () => lines.find((e) => (e.detail as { removed?: number } | undefined)?.removed === 1),
        15_000,
        25,
      );
      assert.deepEqual(removal.subject.apps, [src, dst].sort());
      assert.ok(lines.every((e) => e.type === 'policy'));
    } finally {
      ac.abort();
    }
    const r = await following;
    assert.equal(r.code, 0, r.stderr);
  });

  it('every operator command explains itself with --help', async () => {
    const commands = [
      ['queue'],
      ...['counts', 'list', 'show', 'retry', 'replay', 'pause', 'resume', 'clean'].map((c) => ['queue', c]),
      ['events'],
      ['rules'],
      ['cells'],
      ['explain'],
    ];
    for (const c of commands) {
      const r = await cfnet([...c, '--help']);
      assert.equal(r.code, 0, c.join(' '));
      assert.match(r.stdout, new RegExp(`^Usage: cfnet ${c.join(' ')} `), c.join(' '));
      if (c.length > 1 || c[0] !== 'queue') assert.match(r.stdout, /--redis-namespace <ns>/, c.join(' '));
    }
  });

  it('bad input, no Redis, no controller: clear errors, exit status, nothing changed', async () => {
    const before = await events(['--limit', '1000']);
    const cases: Array<[string[], number, RegExp]> = [
      [['events', '--type', 'bogus'], 2, /invalid type "bogus"/],
      [['events', '--since', 'yesterdayish'], 2, /invalid since "yesterdayish"/],
      [['events', '--since', '1m', '--until', '1h'], 2, /is before --since/],
      [['events', '--follow', '--replay'], 2, /cannot be combined with --replay or --until/],
      [['events', '--cell', 'bad cell'], 2, /invalid cell/],
      [['events', '--limit', '-3'], 2, /invalid limit/],
    ];
    for (const [args, code, msg] of cases) {
      const r = await cfnet(args, { namespace: f.ns });
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg, args.join(' '));
    }
    // Redis unreachable: exit 3, quickly, with the URL (password redacted)
    const t = Date.now();
    const down = await cfnet(
      ['events', '--redis-url', 'redis://:secret@127.0.0.1:1/0', '--connect-timeout', '2s'],
      {
        namespace: f.ns,
      },
    );
    assert.equal(down.code, 3, down.stderr);
    assert.match(down.stderr, /Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0 is unreachable/);
    assert.ok(!down.stderr.includes('secret'));
    assert.ok(Date.now() - t < 10_000);
    // a namespace no controller runs in: exit 4 for what needs a controller, and nothing enqueued
    const empty = testNamespace('events-empty');
    try {
      const wait = await cfnet(['queue', 'replay', '--cell', cells[0]!, '--wait'], { namespace: empty });
      assert.equal(wait.code, 4, wait.stderr);
      assert.match(wait.stderr, /no reconcile worker is connected/);
      const app = await cfnet(['queue', 'replay', '--app', src], { namespace: empty });
      assert.equal(app.code, 4, app.stderr);
      assert.match(app.stderr, /no controller leader has written the world/);
      // a wrong namespace is not an empty foundation: the read commands exit 4, as explain does
      for (const args of [['cells'], ['queue', 'counts'], ['events'], ['rules', '--cell', cells[0]!]]) {
        const r = await cfnet(args, { namespace: empty });
        assert.equal(r.code, 4, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /no controller in namespace/, args.join(' '));
        assert.equal(r.stdout, '', args.join(' '));
      }
      // (BullMQ writes its queue's version record on connect; no job, journal or world key)
      assert.deepEqual(
        (await redis.keys(`${empty}*`)).filter((k) => k !== `${empty}:reconcile:meta`),
        [],
        'nothing written into the empty namespace',
      );
    } finally {
      const left = await redis.keys(`${empty}*`);
      if (left.length > 0) await redis.del(...left);
    }
    const afterAll = await events(['--limit', '1000']);
    assert.deepEqual(afterAll, before, 'the journal is unchanged');
  });
});
