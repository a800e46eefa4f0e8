/**
 * Invalid input is left out item by item, against a real controller (simulator + Redis): a hostile
 * and an overlong BBS instance guid, two ActualLRPs on one cell with one host port, and a policy
 * whose port range is reversed. Each is left out by itself — the cell's rule set keeps every other
 * container and policy — counted in `cfnet_controller_rejected_total{source,reason}`, recorded once
 * in the event journal, and shown with its reason by `cfnet events` and the dashboard's API.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import type { CellRuleSet } from '../../src/model/types.js';
import type { JournalEntry } from '../../src/ops/journal.js';
import { Keys } from '../../src/state/keys.js';
import { RuleSetStore } from '../../src/state/ruleset-store.js';
import { cfnet, cfnetJson, type Foundation, REDIS_URL, startFoundation, waitUntil } from './ops-helpers.js';

const TOKEN = 'operator-token-for-the-rejections-test';
const HOSTILE = 'evil";flush ruleset;"';
const OVERLONG = `a${'b'.repeat(128)}`;

describe('ingest: one bad record touches only itself', () => {
  let f: Foundation;
  let redis: Redis;
  let store: RuleSetStore;
  let cell: string;
  let good: { processGuid: string; index: number; handle: string; ip: string };
  let dupHandle: string;
  let src: string;
  let dst: string;

  const events = (args: string[]) => cfnetJson<JournalEntry[]>(['events', ...args], f.ns);
  const ruleSet = async (): Promise<CellRuleSet | null> => store.get(cell);

  before(async () => {
    f = await startFoundation('rejections', { token: TOKEN });
    redis = createRedis(REDIS_URL);
    const keys = new Keys(f.ns);
    store = new RuleSetStore(redis, keys);
    const w = f.sim.world;
    // a cell with a RUNNING instance that has an address
    const running = [...w.actualLrps.values()].find((a) => a.state === 'RUNNING' && a.instanceAddress !== '');
    assert.ok(running, 'the simulated foundation has a running instance');
    cell = running.cellId;
    good = {
      processGuid: running.processGuid,
      index: running.index,
      handle: running.instanceGuid,
      ip: running.instanceAddress,
    };
    await waitUntil(
      'the cell rule set holds the instance',
      async () => (await ruleSet())?.containers.some((c) => c.handle === good.handle),
      30_000,
      25,
    );
    const apps = [...w.apps.values()].filter((a) => a.instances > 0);
    src = apps[0]!.guid;
    dst = apps[1]!.guid;
  });

  after(async () => {
    if (redis) await closeRedis(redis);
    await f?.stop();
  });

  it('hostile and overlong instance guids are left out; the rest of the cell is computed', async () => {
    const base = good.ip.split('.').slice(0, 3).join('.');
    for (const [i, guid] of [HOSTILE, OVERLONG].entries()) {
      await f.sim.apply({
        kind: 'lrp-place',
        processGuid: good.processGuid,
        index: 90 + i,
        instanceGuid: guid,
        cellId: cell,
        instanceAddress: `${base}.${240 + i}`,
      });
    }
    const entries = await waitUntil(
      'two rejected BBS records in the journal',
      async () => {
        const e = (await events(['--type', 'rejected'])).filter((x) => x.source === 'bbs');
        return e.length >= 2 ? e : null;
      },
      10_000,
      25,
    );
    const byGuid = new Map(entries.map((e) => [e.subject.guid, e]));
    const hostile = byGuid.get(HOSTILE);
    assert.ok(hostile, 'the hostile guid is named');
    assert.equal(hostile.detail?.reason, 'invalid-handle');
    assert.equal(hostile.detail?.field, 'instance_guid');
    assert.deepEqual(hostile.cells, [cell]);
    const long = byGuid.get(OVERLONG.slice(0, 128)); // subjects are bounded too
    assert.ok(long, 'the overlong guid is named');
    assert.match(String(long.detail?.message), /129 characters/);
    // a later change of the cell is still computed, without the bad records
    await f.sim.apply({
      kind: 'lrp-place',
      processGuid: good.processGuid,
      index: 92,
      instanceGuid: 'fine-instance-92',
      cellId: cell,
      instanceAddress: `${base}.242`,
    });
    const rs = await waitUntil(
      'the good record reaches the rule set',
      async () => {
        const r = await ruleSet();
        return r?.containers.some((c) => c.handle === 'fine-instance-92') ? r : null;
      },
      10_000,
      25,
    );
    assert.ok(rs.containers.some((c) => c.handle === good.handle));
    assert.ok(rs.containers.every((c) => c.handle !== HOSTILE && c.handle !== OVERLONG));
    // logged and journaled once per distinct problem: a re-list sees them again, no new entries
    const before = (await events(['--type', 'rejected'])).length;
    await f.sim.apply({ kind: 'lrp-remove', processGuid: good.processGuid, index: 92 });
    await waitUntil(
      'the removal is computed',
      async () => (await ruleSet())?.containers.every((c) => c.handle !== 'fine-instance-92'),
      10_000,
      25,
    );
    assert.equal((await events(['--type', 'rejected'])).length, before);
  });

  it('two instances on one host port: the first keeps it, the other loses that mapping only', async () => {
    const base = good.ip.split('.').slice(0, 3).join('.');
    await f.sim.apply({
      kind: 'lrp-place',
      processGuid: good.processGuid,
      index: 93,
      instanceGuid: 'aaa-port-holder',
      cellId: cell,
      instanceAddress: `${base}.243`,
      hostPorts: [{ hostPort: 61999, containerPort: 8080 }],
    });
    dupHandle = 'zzz-port-taker';
    await f.sim.apply({
      kind: 'lrp-place',
      processGuid: good.processGuid,
      index: 94,
      instanceGuid: dupHandle,
      cellId: cell,
      instanceAddress: `${base}.244`,
      hostPorts: [{ hostPort: 61999, containerPort: 8080 }],
    });
    const rs = await waitUntil(
      'both containers in the rule set',
      async () => {
        const r = await ruleSet();
        return r &&
          r.containers.filter((c) => c.handle === dupHandle || c.handle === 'aaa-port-holder').length === 2
          ? r
          : null;
      },
      10_000,
      25,
    );
    const holder = rs.containers.find((c) => c.handle === 'aaa-port-holder')!;
    const taker = rs.containers.find((c) => c.handle === dupHandle)!;
    assert.deepEqual(holder.netIn, [{ hostPort: 61999, containerPort: 8080 }]);
    assert.deepEqual(taker.netIn, []);
    const [conflict] = await waitUntil(
      'the conflict in the journal',
      async () => {
        const e = (await events(['--type', 'rejected', '--cell', cell])).filter(
          (x) => x.detail?.reason === 'host-port-conflict',
        );
        return e.length > 0 ? e : null;
      },
      10_000,
      25,
    );
    assert.equal(conflict!.source, 'controller');
    assert.equal(conflict!.subject.guid, dupHandle);
    assert.equal(conflict!.detail?.value, '61999');
    assert.match(String(conflict!.detail?.message), /aaa-port-holder/);
  });

  it('an invalid policy is left out by itself; the other policies are applied', async () => {
    const w = f.sim.world;
    w.allocateTag(src, 'app');
    w.allocateTag(dst, 'app');
    w.policies.push({ sourceId: src, destinationId: dst, protocol: 'tcp', start: 9000, end: 8000 });
    w.policiesLastUpdated += 1n;
    const [bad] = await waitUntil(
      'the invalid policy in the journal',
      async () => {
        const e = (await events(['--type', 'rejected'])).filter((x) => x.source === 'policy-server');
        return e.length > 0 ? e : null;
      },
      10_000,
      25,
    );
    assert.equal(bad!.detail?.reason, 'invalid-port');
    assert.match(String(bad!.detail?.field), /^policies\[\d+\]\.destination\.ports$/);
    assert.match(String(bad!.subject.guid), new RegExp(`${src} -> ${dst}`));
    // a valid change made while the bad policy exists reaches the destination's cells
    await f.sim.apply({ kind: 'policy-add', source: src, destination: dst, port: 7443 });
    const dstCell = [...w.actualLrps.values()].find(
      (a) =>
        a.state === 'RUNNING' &&
        a.instanceAddress !== '' &&
        w.desiredLrps.get(a.processGuid)?.appGuid === dst,
    )?.cellId;
    assert.ok(dstCell, 'the destination app runs somewhere');
    await waitUntil(
      'the valid policy is enforced',
      async () => {
        const r = await store.get(dstCell);
        return r?.c2c.some((a) => a.ports.start === 7443);
      },
      10_000,
      25,
    );
  });

  it('`cfnet events` prints each rejection with its reason; the metric counts them', async () => {
    const human = await cfnet(['events', '--type', 'rejected'], { namespace: f.ns });
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /rejected\s+evil";flush ruleset;"\s+/);
    assert.match(human.stdout, /reason=invalid-handle/);
    assert.match(human.stdout, /reason=host-port-conflict/);
    assert.match(human.stdout, /reason=invalid-port/);
    const metrics = await (await fetch(`${f.controller.operatorUrl}/metrics`)).text();
    const count = (source: string, reason: string) =>
      Number(
        new RegExp(
          `cfnet_controller_rejected_total\\{[^}]*source="${source}"[^}]*reason="${reason}"[^}]*\\} (\\d+)`,
        ).exec(metrics)?.[1] ?? 0,
      );
    assert.ok(count('bbs', 'invalid-handle') >= 2, metrics);
    assert.ok(count('compute', 'host-port-conflict') >= 1);
    assert.ok(count('policy', 'invalid-port') >= 1);
  });

  it('the dashboard shows the rejected items with their reason', async () => {
    const res = await fetch(`${f.controller.operatorUrl}/dashboard/api/snapshot`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.status, 200);
    const snap = (await res.json()) as { rejected: JournalEntry[] };
    const reasons = new Set(snap.rejected.map((e) => e.detail?.reason));
    for (const r of ['invalid-handle', 'host-port-conflict', 'invalid-port']) assert.ok(reasons.has(r), r);
    assert.ok(snap.rejected.some((e) => e.subject.guid === HOSTILE));
    const page = await fetch(`${f.controller.operatorUrl}/dashboard/assets/app.js`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const script = await page.text();
    assert.match(script, /fill\('rejected'/);
    assert.doesNotThrow(() => new Function(script), 'the page script parses');
  });
});
