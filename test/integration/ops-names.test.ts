/**
 * Apps by name: the controller lists org, space and app names from the simulated Cloud Controller
 * (v3, on the security groups' cadence) into the world in Redis, and `cfnet explain` takes names
 * the way the `cf` CLI does and shows apps as org/space/app.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { EXIT } from '../../src/lib/exit-codes.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import type { C2CExplanation } from '../../src/ops/explain.js';
import type { NamedRuleSet } from '../../src/ops/rules.js';
import { loadRedisWorld } from '../../src/ops/world-reader.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { cfnet, cfnetJson, type Foundation, REDIS_URL, startFoundation, waitUntil } from './ops-helpers.js';

describe('cfnet explain by org/space/app name', () => {
  let f: Foundation;
  let redis: Redis;
  let keys: Keys;
  let src: string;
  let dst: string;
  /** `nm-twin` runs in two spaces of the same org. */
  let twins: Array<{ guid: string; space: string }>;
  let org: string;
  let srcSpace: string;

  before(async () => {
    f = await startFoundation('names');
    redis = createRedis(REDIS_URL);
    keys = new Keys(f.ns);
    const cells = [...f.sim.world.cells.keys()].sort();
    const spaces = [...f.sim.world.spaces.values()].sort((a, b) => a.name.localeCompare(b.name));
    const [s1, s2] = [spaces[0]!, spaces.find((s) => s.orgGuid === spaces[0]!.orgGuid && s !== spaces[0])!];
    assert.ok(s2, 'the small foundation has two spaces in one org');
    srcSpace = s1.name;
    org = f.sim.world.orgs.get(s1.orgGuid)!.name;
    const start = async (name: string, spaceGuid: string, cell: string) =>
      (await f.sim.apply({ kind: 'app-start', name, spaceGuid, instances: 1, cellIds: [cell] })).result
        .appGuid as string;
    src = await start('nm-src', s1.guid, cells[0]!);
    dst = await start('nm-dst', s2.guid, cells[1]!);
    twins = [
      { guid: await start('nm-twin', s1.guid, cells[0]!), space: s1.name },
      { guid: await start('nm-twin', s2.guid, cells[1]!), space: s2.name },
    ];
    await f.sim.apply({ kind: 'policy-add', source: src, destination: dst, port: 7001 });
    await waitUntil(
      'the new apps, their names and the policy in the stored world',
      async () => {
        const w = await loadRedisWorld(redis, keys);
        return w.ready &&
          w.names.appsNamed('nm-twin').length === 2 &&
          w.names.appsNamed('nm-dst').length === 1 &&
          w.containersOf(src).length === 1 &&
          w.containersOf(dst).length === 1 &&
          w.policies().from(src).length === 1
          ? w
          : null;
      },
      30_000,
      100,
    );
  });

  after(async () => {
    await closeRedis(redis);
    await f?.stop();
  });

  it('explain --from <name> --to <name> answers for those apps, JSON carrying guids and names', async () => {
    const x = await cfnetJson<C2CExplanation>(
      ['explain', '--from', 'nm-src', '--to', 'nm-dst', '--port', '7001'],
      f.ns,
    );
    assert.equal(x.allowed, true);
    assert.equal(x.query.from, src);
    assert.equal(x.query.to, dst);
    assert.deepEqual(
      { guid: x.from.guid, app: x.from.app, space: x.from.space, org: x.from.org },
      { guid: src, app: 'nm-src', space: srcSpace, org },
    );
    assert.equal(x.to.guid, dst);
    assert.equal(x.to.app, 'nm-dst');
    // guids are still accepted, and give the same answer
    const byGuid = await cfnetJson<C2CExplanation>(
      ['explain', '--from', src, '--to', dst, '--port', '7001'],
      f.ns,
    );
    assert.deepEqual(byGuid.policies, x.policies);
  });

  it('the table names apps org/space/app, with guids on request', async () => {
    const human = await cfnet(['explain', '--from', 'nm-src', '--to', 'nm-dst', '--port', '7001'], {
      namespace: f.ns,
    });
    assert.equal(human.code, EXIT.ok, human.stderr);
    assert.ok(human.stdout.includes(`from app ${org}/${srcSpace}/nm-src `), human.stdout);
    assert.ok(!human.stdout.includes(src), 'no guid without --guids');
    const withGuids = await cfnet(
      ['explain', '--from', 'nm-src', '--to', 'nm-dst', '--port', '7001', '--guids'],
      { namespace: f.ns },
    );
    assert.ok(withGuids.stdout.includes(`${org}/${srcSpace}/nm-src (${src})`), withGuids.stdout);
  });

  it('an ambiguous name exits 2 naming the candidates; --space (or org/space/app) picks one', async () => {
    const amb = await cfnet(['explain', '--from', 'nm-twin', '--to', 'nm-dst', '--port', '7001'], {
      namespace: f.ns,
    });
    assert.equal(amb.code, EXIT.invalid);
    assert.equal(amb.stdout, '');
    for (const t of twins) assert.ok(amb.stderr.includes(`${org}/${t.space}/nm-twin`), amb.stderr);
    const picked = await cfnetJson<C2CExplanation>(
      ['explain', '--from', 'nm-twin', '--space', twins[1]!.space, '--to', 'nm-dst', '--port', '7001'],
      f.ns,
    );
    assert.equal(picked.query.from, twins[1]!.guid);
    const path = await cfnetJson<C2CExplanation>(
      ['explain', '--from', 'nm-src', '--to', `${org}/${twins[0]!.space}/nm-twin`, '--port', '7001'],
      f.ns,
    );
    assert.equal(path.query.to, twins[0]!.guid);
    assert.equal(path.allowed, false);
    const toAmb = await cfnet(['explain', '--from', 'nm-src', '--to', 'nm-twin', '--port', '7001'], {
      namespace: f.ns,
    });
    assert.equal(toAmb.code, EXIT.invalid);
    assert.match(toAmb.stderr, /--to-space/);
  });

  it('an unknown name exits 5', async () => {
    const r = await cfnet(['explain', '--from', 'nm-nothing', '--to', 'nm-dst', '--port', '7001'], {
      namespace: f.ns,
    });
    assert.equal(r.code, EXIT.notFound);
    assert.match(r.stderr, /nm-nothing/);
  });

  it('rules --app narrows a cell to an app by name; the table names apps org/space/app', async () => {
    const w = await loadRedisWorld(redis, keys);
    const cell = w.containersOf(src)[0]!.cellId;
    const r = await cfnet(['rules', '--cell', cell, '--app', 'nm-src'], { namespace: f.ns });
    assert.equal(r.code, EXIT.ok, r.stderr);
    assert.match(r.stdout, new RegExp(`^cell ${cell}, app ${org}/${srcSpace}/nm-src$`, 'm'));
    assert.match(r.stdout, /containers \(1\):/);
    assert.ok(!r.stdout.includes(src), 'no guid without --guids');
    const guids = await cfnet(['rules', '--cell', cell, '--app', 'nm-src', '--guids'], { namespace: f.ns });
    assert.ok(guids.stdout.includes(src));
    const amb = await cfnet(['rules', '--cell', cell, '--app', 'nm-twin'], { namespace: f.ns });
    assert.equal(amb.code, EXIT.invalid);
    assert.match(amb.stderr, /ambiguous/);
  });

  it('rules --json carries the names beside the guids, every stored field kept', async () => {
    const w = await loadRedisWorld(redis, keys);
    const cell = w.containersOf(src)[0]!.cellId;
    const stored = (await new RuleSetStore(redis, keys).get(cell))!;
    const json = await cfnetJson<NamedRuleSet>(['rules', '--cell', cell], f.ns);
    // without the added names, exactly the stored rule set
    assert.deepEqual({ ...json, containers: json.containers.map(({ names: _n, ...c }) => c) }, stored);
    const mine = json.containers.find((c) => c.appGuid === src)!;
    assert.deepEqual(mine.names, { app: 'nm-src', space: srcSpace, org });
    assert.equal(mine.spaceGuid, w.names.app(src)!.spaceGuid, 'the guids stay beside the names');
    const twin = json.containers.find((c) => c.appGuid === twins[0]!.guid)!;
    assert.deepEqual(twin.names, { app: 'nm-twin', space: twins[0]!.space, org });
    // narrowed to an app, the same
    const one = await cfnetJson<NamedRuleSet>(['rules', '--cell', cell, '--app', 'nm-src'], f.ns);
    assert.deepEqual(
      one.containers.map((c) => [c.appGuid, c.names.app]),
      [[src, 'nm-src']],
    );
    // an app the controller has no name for: null names, the guids still there
    const unnamed = await cfnetJson<NamedRuleSet>(['rules', '--cell', cell], f.ns).then((r) =>
      r.containers.filter((c) => w.names.app(c.appGuid) === undefined),
    );
    for (const c of unnamed) assert.equal(c.names.app, null, c.handle);
  });

  it('events by app name: subjects name the app, --json entries carry a names map', async () => {
    const replay = await cfnet(['queue', 'replay', '--app', 'nm-src'], { namespace: f.ns });
    assert.equal(replay.code, EXIT.ok, replay.stderr);
    const entries = await cfnetJson<Array<{ subject: { apps?: string[] }; names?: Record<string, string> }>>(
      ['events', '--app', `${org}/${srcSpace}/nm-src`, '--type', 'replay'],
      f.ns,
    );
    assert.ok(entries.length > 0);
    for (const e of entries) {
      assert.ok(e.subject.apps?.includes(src));
      assert.equal(e.names?.[src], `${org}/${srcSpace}/nm-src`);
    }
    const human = await cfnet(['events', '--app', 'nm-src', '--type', 'replay'], { namespace: f.ns });
    assert.ok(human.stdout.includes(`app ${org}/${srcSpace}/nm-src`), human.stdout);
  });
});
