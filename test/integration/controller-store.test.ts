import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { applyPatch, ruleSetsEqual, sortRuleSet } from '../../src/model/ruleset.js';
import type { CellRuleSet, RuleSetPatch } from '../../src/model/types.js';
import { MissingAsgSetError, StaleWriteError } from '../../src/state/errors.js';
import { changesJson, RuleSetStore } from '../../src/state/ruleset-store.js';
import { ruleSetOfHandles } from '../helpers/fixtures.js';
import { openTestRedis, REDIS_URL, type TestRedis } from './controller-helpers.js';

const rs = (cell: string, handles: string[]) => ruleSetOfHandles(cell, handles, 'x');
/** One egress rule to 10.9.0.1 on `port` (ASG set contents distinguished by their port). */
const rule = (port: number) => ({
  protocol: 'tcp' as const,
  destinations: [{ family: 4 as const, start: '10.9.0.1', end: '10.9.0.1' }],
  ports: [{ start: port, end: port }],
  log: false,
});

describe('rule-set store (real Redis)', () => {
  let t: TestRedis;
  let store: RuleSetStore;
  before(async () => {
    t = await openTestRedis('store');
    store = new RuleSetStore(t.redis, t.keys, { logLength: 3 });
  });
  after(async () => t.cleanup());

  it('assigns strictly increasing time-based versions and refuses a stale compare-and-set', async () => {
    const v1 = await store.write(rs('c1', ['h1']), null);
    assert.ok(v1 >= Date.now() - 60_000, 'version is a Redis-clock timestamp');
    const s1 = (await store.get('c1'))!;
    assert.equal(s1.version, v1);
    const v2 = await store.write(rs('c1', ['h1', 'h2']), s1);
    assert.ok(v2 > v1);
    // a worker that still believes v1 is current is refused and nothing changes
    await assert.rejects(store.write(rs('c1', []), s1), (err: unknown) => {
      assert.ok(err instanceof StaleWriteError);
      assert.equal(err.context.actual, v2);
      return true;
    });
    // and one that believes nothing was stored yet, too
    await assert.rejects(store.write(rs('c1', []), null), StaleWriteError);
    assert.equal((await store.meta('c1'))!.version, v2);
    assert.deepEqual(
      (await store.get('c1'))!.containers.map((c) => c.handle),
      ['h1', 'h2'],
    );
  });

  it('serves a composed patch when the log covers the version, else the snapshot', async () => {
    let prev: CellRuleSet | null = null;
    const versions: number[] = [];
    const states = [['a'], ['a', 'b'], ['b'], ['b', 'c'], ['c', 'd']];
    for (const hs of states) {
      const v: number = await store.write(rs('c2', hs), prev);
      versions.push(v);
      prev = (await store.get('c2'))!;
    }
    const current = versions.at(-1)!;
    assert.deepEqual(await store.changesSince('c2', current), { kind: 'current', version: current });
    // log length 3 covers the last three versions as starting points
    const ch = await store.changesSince('c2', versions[2]!);
    assert.equal(ch.kind, 'patch');
    if (ch.kind !== 'patch') return;
    assert.equal(ch.patch.from, versions[2]);
    assert.equal(ch.patch.to, current);
    const base = { ...rs('c2', ['b']), version: versions[2]! };
    assert.ok(ruleSetsEqual(applyPatch(base, ch.patch), rs('c2', ['c', 'd'])));
    // too old, zero, unknown → snapshot
    for (const since of [versions[0]!, 0, versions[0]! - 5]) {
      const s = await store.changesSince('c2', since);
      assert.equal(s.kind, 'snapshot', `since=${since}`);
      if (s.kind === 'snapshot') assert.equal(s.ruleSet.version, current);
    }
    assert.deepEqual(await store.changesSince('nothing-here', 0), { kind: 'none' });
  });

  it('logs asg sets by key only and serves patches with their rules, also for sets another replica wrote', async () => {
    // set keys unique to this run, so the process-wide rules cache cannot know them in advance
    const k = (n: number) => `${t.keys.ruleSetChannel}-set${n}`;
    const withSet = (key: string, port: number): CellRuleSet => ({
      ...rs('c5', ['h1']),
      containers: [{ ...rs('c5', ['h1']).containers[0]!, egress: key }],
      asgSets: { [key]: [rule(port)] },
    });
    const v1 = await store.write(withSet(k(1), 1001), null);
    const s1 = (await store.get('c5'))!;
    const v2 = await store.write(withSet(k(2), 1002), s1);
    const [line] = await t.redis.lrange(t.keys.ruleSetLog('c5'), 0, -1);
    assert.ok(line!.includes(k(2)), 'the entry names the upserted set');
    assert.ok(!line!.includes('1002'), 'the entry does not carry the rules');
    const ch = await store.changesSince('c5', v1);
    assert.equal(ch.kind, 'patch');
    if (ch.kind !== 'patch') return;
    assert.deepEqual(ch.patch.asgSets, { upsert: { [k(2)]: [rule(1002)] }, remove: [k(1)] });
    assert.ok(ruleSetsEqual(applyPatch(s1, ch.patch), withSet(k(2), 1002)));

    // another replica wrote v3 with a set this process never saw: its rules come from the snapshot
    const foreign = withSet(k(3), 1003);
    const body = JSON.stringify({ ...foreign, version: 0 });
    const v3 = v2 + 1;
    const entry = {
      patch: {
        cellId: 'c5',
        from: 0,
        to: 0,
        containers: { upsert: foreign.containers, remove: [] },
        asgSets: { upsert: {}, remove: [k(2)] },
        c2c: { add: [], remove: [] },
      },
      addedHandles: [],
      addedSets: [k(3)],
      upsertSets: [k(3)],
    };
    await t.redis.hset(t.keys.ruleSet('c5'), { version: String(v3), snapshot: body, hash: 'foreign' });
    await t.redis.rpush(t.keys.ruleSetLog('c5'), `${v2} ${v3} ${JSON.stringify(entry)}`);
    const fromV1 = await store.changesSince('c5', v1);
    assert.equal(fromV1.kind, 'patch');
    if (fromV1.kind !== 'patch') return;
    assert.equal(fromV1.patch.to, v3);
    assert.deepEqual(fromV1.patch.asgSets, { upsert: { [k(3)]: [rule(1003)] }, remove: [k(1)] });
    assert.ok(ruleSetsEqual(applyPatch(s1, fromV1.patch), foreign));

    // an entry in the older form (rules inline) composes alike
    const v4 = v3 + 1;
    const old = withSet(k(4), 1004);
    const oldEntry = {
      patch: { ...entry.patch, asgSets: { upsert: old.asgSets, remove: [k(3)] } },
      addedHandles: [],
      addedSets: [k(4)],
    };
    await t.redis.hset(t.keys.ruleSet('c5'), { version: String(v4), snapshot: JSON.stringify(old) });
    await t.redis.rpush(t.keys.ruleSetLog('c5'), `${v3} ${v4} ${JSON.stringify(oldEntry)}`);
    const fromV2 = await store.changesSince('c5', v2);
    assert.equal(fromV2.kind, 'patch');
    if (fromV2.kind !== 'patch') return;
    assert.deepEqual(fromV2.patch.asgSets, { upsert: { [k(4)]: [rule(1004)] }, remove: [k(2)] });
    // the API's text of each answer (sets from the text cache) is JSON.stringify's, byte for byte
    for (const answer of [ch, fromV1, fromV2, await store.changesSince('c5', 0)]) {
      assert.equal(changesJson(answer), JSON.stringify(answer));
    }
    // leave the cell list as the later tests expect it
    await t.redis.del(t.keys.ruleSet('c5'), t.keys.ruleSetLog('c5'));
    await t.redis.srem(t.keys.ruleSetCells, 'c5');
  });

  it('concurrent writes of several cells each keep their compare-and-set', async () => {
    const cells = ['b1', 'b2', 'b3', 'b4'];
    const first = await Promise.all(cells.map((c) => store.write(rs(c, ['h1']), null)));
    const stored = await Promise.all(cells.map(async (c) => (await store.get(c))!));
    for (const [i, s] of stored.entries()) assert.equal(s.version, first[i]);
    // same turn: three current writes and one stale one (b4 believes nothing was stored)
    const results = await Promise.allSettled([
      ...cells.slice(0, 3).map((c, i) => store.write(rs(c, ['h1', 'h2']), stored[i]!)),
      store.write(rs('b4', ['h9']), null),
    ]);
    for (const r of results.slice(0, 3)) assert.equal(r.status, 'fulfilled');
    assert.equal(results[3]!.status, 'rejected');
    assert.ok((results[3] as PromiseRejectedResult).reason instanceof StaleWriteError);
    for (const [i, c] of cells.slice(0, 3).entries()) {
      const now = (await store.get(c))!;
      assert.ok(now.version > first[i]!);
      assert.deepEqual(
        now.containers.map((x) => x.handle),
        ['h1', 'h2'],
      );
      const ch = await store.changesSince(c, first[i]!);
      assert.equal(ch.kind, 'patch');
    }
    assert.deepEqual(
      (await store.get('b4'))!.containers.map((x) => x.handle),
      ['h1'],
    );
    for (const c of cells) await t.redis.del(t.keys.ruleSet(c), t.keys.ruleSetLog(c));
    await t.redis.srem(t.keys.ruleSetCells, ...cells);
  });

  it('publishes every new version on the change channel', async () => {
    const sub = createRedis(REDIS_URL, { role: 'blocking' });
    try {
      const got: string[] = [];
      await sub.subscribe(t.keys.ruleSetChannel);
      sub.on('message', (_ch, msg) => got.push(msg));
      const v = await store.write(rs('c3', ['z']), null);
      for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(got, [`c3 ${v}`]);
    } finally {
      await closeRedis(sub);
    }
  });

  it('versions keep increasing after the store lost its data', async () => {
    const before = (await store.meta('c1'))!.version;
    await t.redis.del(t.keys.ruleSet('c1'), t.keys.ruleSetLog('c1'));
    const v = await store.write(rs('c1', ['h9']), null);
    assert.ok(v > before, `${v} > ${before}`);
  });

  it('tracks desired vs applied versions', async () => {
    const meta = (await store.meta('c3'))!;
    let conv = await store.convergence();
    assert.equal(conv.find((c) => c.cellId === 'c3')!.applied, 0);
    await store.reportStatus('c3', { appliedVersion: meta.version, appliedAt: Date.now(), error: '' });
    conv = await store.convergence();
    const c3 = conv.find((c) => c.cellId === 'c3')!;
    assert.deepEqual([c3.desired, c3.applied, c3.lagMs], [meta.version, meta.version, 0]);
    assert.deepEqual(await store.cells(), ['c1', 'c2', 'c3']);
  });

  it('never serves an agent older content than it holds: ahead → floor → the next write goes above it', async () => {
    const v1 = await store.write(rs('c9', ['a']), null);
    const held = v1 + 1_000_000; // the agent applied a version the store lost (failover)
    assert.deepEqual(await store.changesSince('c9', held), { kind: 'ahead', version: v1 });
    // even rewriting the same content must lift the version above the agent's
    const v2 = await store.write(rs('c9', ['a']), (await store.get('c9'))!);
    assert.ok(v2 > held, `${v2} > ${held}`);
    const ch = await store.changesSince('c9', held);
    assert.equal(ch.kind, 'snapshot');
    // a store that lost everything for the cell: ahead of nothing, and the first write goes above
    assert.deepEqual(await store.changesSince('c10', held), { kind: 'ahead', version: 0 });
    assert.ok((await store.write(rs('c10', ['a']), null)) > held);
  });
});

describe('rule-set store: the tag table (real Redis)', () => {
  let t: TestRedis;
  let store: RuleSetStore;
  before(async () => {
    t = await openTestRedis('store-tags');
    store = new RuleSetStore(t.redis, t.keys, { logLength: 3 });
  });
  after(async () => t.cleanup());

  it('stores the tag table once for every cell, serves it in snapshots and only its changes in patches', async () => {
    const big: Record<string, number> = {};
    for (let i = 0; i < 200; i++) big[`app-${String(i).padStart(3, '0')}`] = i + 1;
    const withTags = (cell: string, tags: Record<string, number> | undefined) =>
      sortRuleSet({ ...rs(cell, ['h1']), ...(tags ? { tags } : {}) });
    const t1 = sortRuleSet(withTags('t1', big)).tags!;
    const a1 = await store.write(withTags('ta', t1), null);
    const b1 = await store.write(withTags('tb', t1), null);
    // one stored table, named by both snapshots, whose own text does not carry it
    assert.equal(await t.redis.hlen(t.keys.tagTables), 1);
    assert.deepEqual(Object.values(await t.redis.hgetall(t.keys.tagTableRefs)), ['2']);
    assert.ok(!(await t.redis.hget(t.keys.ruleSet('ta'), 'snapshot'))!.includes('app-000'));
    const ta = (await store.get('ta'))!;
    assert.deepEqual(ta.tags, t1);
    assert.equal(ta.version, a1);
    // one tag changes on one cell: a second table; the agent at a1 gets a patch of that tag alone
    const t2 = { ...t1, 'app-007': 999 };
    const a2 = await store.write(withTags('ta', t2), ta);
    assert.equal(await t.redis.hlen(t.keys.tagTables), 2);
    const ch = await store.changesSince('ta', a1);
    assert.equal(ch.kind, 'patch');
    const patch = (ch as { patch: RuleSetPatch }).patch;
    assert.deepEqual(patch.tags, { upsert: { 'app-007': 999 }, remove: [] });
    assert.equal(changesJson(ch), JSON.stringify(ch), "the API's text of a patch with tags");
    assert.ok(ruleSetsEqual(applyPatch(ta, patch), withTags('ta', t2)));
    assert.equal(applyPatch(ta, patch).version, a2);
    // the other cell moves too: the first table is named by none and goes
    const tb = (await store.get('tb'))!;
    assert.equal(tb.version, b1);
    await store.write(withTags('tb', t2), tb);
    assert.equal(await t.redis.hlen(t.keys.tagTables), 1);
    // no policy source left: no table at all
    await store.write(withTags('ta', undefined), (await store.get('ta'))!);
    await store.write(withTags('tb', undefined), (await store.get('tb'))!);
    assert.equal(await t.redis.hlen(t.keys.tagTables), 0);
    assert.equal(await t.redis.hlen(t.keys.tagTableRefs), 0);
    assert.equal((await store.get('tb'))!.tags, undefined);
  });
});

describe('rule-set store: ASG sets stored once (real Redis)', () => {
  let t: TestRedis;
  let store: RuleSetStore;
  before(async () => {
    t = await openTestRedis('store-sets');
    store = new RuleSetStore(t.redis, t.keys, { logLength: 3 });
  });
  after(async () => t.cleanup());

  // keys unique to this run: the process-wide caches cannot know them in advance
  const k = (n: number) => `${t.keys.ruleSetChannel}-shared${n}`;
  const withSets = (cell: string, ...sets: number[]): CellRuleSet =>
    sortRuleSet({
      ...rs(cell, ['h1']),
      containers: sets.map((n, i) => ({ ...rs(cell, [`h${i}`]).containers[0]!, egress: k(n) })),
      asgSets: Object.fromEntries(sets.map((n) => [k(n), [rule(n)]])),
    });
  const refs = async () => Object.fromEntries(Object.entries(await t.redis.hgetall(t.keys.asgSetRefs)));

  it('stores each set once for every cell, counts the snapshots naming it and drops it when none does', async () => {
    await store.write(withSets('s1', 1, 2), null);
    await store.write(withSets('s2', 1, 3), null);
    assert.deepEqual(Object.keys(await t.redis.hgetall(t.keys.asgSets)).sort(), [k(1), k(2), k(3)].sort());
    assert.deepEqual(await refs(), { [k(1)]: '2', [k(2)]: '1', [k(3)]: '1' });
    // a snapshot's own text carries no rules
    const text = (await t.redis.hget(t.keys.ruleSet('s1'), 'snapshot'))!;
    assert.ok(!text.includes(JSON.stringify(rule(1))), text);
    assert.equal(JSON.parse(text).asgSets, null);
    // readers get the whole rule set
    const s1 = (await store.get('s1'))!;
    assert.ok(ruleSetsEqual(s1, withSets('s1', 1, 2)));
    const first = await store.changesSince('s1', 0);
    assert.equal(changesJson(first), JSON.stringify(first));
    // s2 moves from set 3 to set 2: 3 is named by none and goes
    await store.write(withSets('s2', 1, 2), (await store.get('s2'))!);
    assert.deepEqual(await refs(), { [k(1)]: '2', [k(2)]: '2' });
    assert.equal(await t.redis.hexists(t.keys.asgSets, k(3)), 0);
    assert.ok(ruleSetsEqual((await store.get('s2'))!, withSets('s2', 1, 2)));
  });

  it('sends the rules again when Redis lost a set it believed stored, and writes nothing before', async () => {
    await store.write(withSets('s3', 4), null);
    await t.redis.del(t.keys.asgSets, t.keys.asgSetRefs); // lost (e.g. a restore from an older copy)
    const prev = (await store.get('s3'))!; // served from this process's cache of set 4
    const v = await store.write(withSets('s3', 4, 5), prev);
    assert.ok(v > prev.version);
    assert.deepEqual(Object.keys(await t.redis.hgetall(t.keys.asgSets)).sort(), [k(4), k(5)].sort());
    assert.ok(ruleSetsEqual((await store.get('s3'))!, withSets('s3', 4, 5)));
  });

  it('refuses a snapshot naming a set that is not stored, with a typed error, after reading again', async () => {
    await store.write(withSets('s4', 6), null);
    // a set this process never saw, and that Redis does not hold
    await t.redis.hset(t.keys.ruleSet('s4'), 'sets', `${k(6)} ${k(99)}`);
    await assert.rejects(store.get('s4'), (err: unknown) => {
      assert.ok(err instanceof MissingAsgSetError);
      assert.equal(err.code, 'CFNET_MISSING_ASG_SET');
      assert.equal(err.context.cellId, 's4');
      return true;
    });
    // the other cells are untouched
    assert.ok(ruleSetsEqual((await store.get('s3'))!, withSets('s3', 4, 5)));
  });
});
