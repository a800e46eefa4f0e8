/**
 * The names informer on an injected clock: a cheap fingerprint every check, a full listing only
 * when it moved or when the full-listing interval is due; new names reach the world's pending
 * changes (to be written to Redis) without touching any cell; a failed listing keeps the names.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CapiClient } from '../../src/cf/capi-client.js';
import { NamesInformer } from '../../src/controller/sources/names-informer.js';
import { ManualClock } from '../../src/lib/clock.js';
import { defaultLogger } from '../../src/lib/log.js';
import type { NameData } from '../../src/model/names.js';
import { World } from '../../src/rules/world.js';

class FakeCc {
  data: NameData = {
    orgs: [{ guid: 'o1', name: 'acme' }],
    spaces: [{ guid: 's1', name: 'prod', orgGuid: 'o1' }],
    apps: [{ guid: 'a1', name: 'web', spaceGuid: 's1' }],
  };
  stamp = 'v1';
  fingerprints = 0;
  listings = 0;
  fail = false;

  async namesFingerprint(): Promise<string> {
    this.fingerprints++;
    if (this.fail) throw new Error('CAPI down');
    return this.stamp;
  }

  async listNames(): Promise<NameData> {
    this.listings++;
    return structuredClone(this.data);
  }
}

const CHECK_MS = 5_000;
const FULL_MS = 60_000;

function setup() {
  const cc = new FakeCc();
  const world = new World();
  const clock = new ManualClock(1_000_000);
  let changed = 0;
  const informer = new NamesInformer(
    cc as unknown as CapiClient,
    {
      world,
      changed: () => {
        changed++;
      },
      log: defaultLogger('names-informer-test'),
      clock,
    },
    { checkIntervalMs: CHECK_MS, fullListIntervalMs: FULL_MS },
  );
  const tick = async () => {
    await clock.advance(CHECK_MS);
    await informer.pollNow();
  };
  return { cc, world, informer, tick, changes: () => changed };
}

describe('names informer (injected clock)', () => {
  it('lists once, then only when the fingerprint moves or the full listing is due', async () => {
    const s = setup();
    await s.informer.pollNow();
    assert.equal(s.cc.listings, 1);
    assert.equal(s.world.names().appLabel('a1'), 'acme/prod/web');
    for (let i = 0; i < 3; i++) await s.tick();
    assert.equal(s.cc.listings, 1, 'an unchanged fingerprint lists nothing');
    assert.equal(s.cc.fingerprints, 4);
    s.cc.data.apps[0]!.name = 'web-2';
    s.cc.stamp = 'v2';
    await s.tick();
    assert.equal(s.cc.listings, 2);
    assert.equal(s.world.names().appLabel('a1'), 'acme/prod/web-2');
    // a change the fingerprint does not show is found by the periodic full listing
    s.cc.data.apps.push({ guid: 'a2', name: 'api', spaceGuid: 's1' });
    let waited = 0;
    while (s.world.names().app('a2') === undefined) {
      assert.ok(waited <= FULL_MS + CHECK_MS, 'seen within one full-listing interval');
      await s.tick();
      waited += CHECK_MS;
    }
  });

  it('new names are a pending world change that touches no cell; an equal listing is none', async () => {
    const s = setup();
    await s.informer.pollNow();
    const first = s.world.takeChanges();
    assert.ok(first.names, 'the names are to be written');
    assert.equal(first.cells.size, 0, 'no cell is reconciled for a name');
    assert.equal(s.changes(), 1);
    s.cc.stamp = 'v2'; // moved, but the content is the same
    await s.tick();
    assert.equal(s.cc.listings, 2);
    assert.equal(s.world.hasChanges(), false);
    assert.equal(s.changes(), 1);
  });

  it('a failing CAPI keeps the names in effect', async () => {
    const s = setup();
    await s.informer.pollNow();
    s.cc.fail = true;
    await s.tick();
    await s.tick();
    assert.equal(s.world.names().appLabel('a1'), 'acme/prod/web');
  });
});
