import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { StaleWriteError } from '../../src/controller/errors.js';
import { RuleSetStore } from '../../src/controller/store/ruleset-store.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { applyPatch, ruleSetsEqual } from '../../src/model/ruleset.js';
import { type CellContainer, type CellRuleSet, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { openTestRedis, REDIS_URL, type TestRedis } from './controller-helpers.js';

function container(handle: string, ip: string): CellContainer {
  return {
    handle,
    ip,
    appGuid: 'a',
    spaceGuid: 's',
    orgGuid: 'o',
    workload: 'app',
    tag: null,
    egress: 'x',
    netIn: [],
  };
}

function rs(cell: string, handles: string[]): CellRuleSet {
  return {
    cellId: cell,
    version: 0,
    containers: handles.map((h, i) => container(h, `10.255.1.${i + 2}`)),
    asgSets: handles.length ? { x: [] } : {},
    c2c: [],
    config: DEFAULT_CELL_CONFIG,
  };
}

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
    // too old, zero, unknown, ahead → snapshot
    for (const since of [versions[0]!, 0, versions[0]! - 5, current + 1000]) {
      const s = await store.changesSince('c2', since);
      assert.equal(s.kind, 'snapshot', `since=${since}`);
      if (s.kind === 'snapshot') assert.equal(s.ruleSet.version, current);
    }
    assert.deepEqual(await store.changesSince('nothing-here', 5), { kind: 'none' });
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
});
