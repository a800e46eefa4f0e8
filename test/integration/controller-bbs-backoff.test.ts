/**
 * The BBS informer's listing retry against the simulator: while listings fail, a stream of events
 * does not cut the backoff short (BBS is not hammered during its migrations), the backoff doubles,
 * and the events that arrived meanwhile are all applied, in order, after the listing that finally
 * succeeds. The informer's time is a ManualClock: the backoff moves only when the test moves it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BbsClient } from '../../src/cf/bbs-client.js';
import { BbsInformer } from '../../src/controller/sources/bbs-informer.js';
import { ManualClock } from '../../src/lib/clock.js';
import { defaultLogger } from '../../src/lib/log.js';
import { createRegistry, METRICS } from '../../src/lib/metrics.js';
import { World } from '../../src/rules/world.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { waitUntil } from '../helpers/wait.js';

const RETRY_MS = 500;

describe('BBS informer: listing backoff under a stream of events', () => {
  let sim: SimHandle;
  let client: BbsClient;
  let informer: BbsInformer;
  const world = new World();
  const clock = new ManualClock(1_000_000);
  const registry = createRegistry();

  /** Failed BBS listings so far (the informer's poll-error counter). */
  async function failedListings(): Promise<number> {
    const m = await registry.getSingleMetric(METRICS.pollErrors)?.get();
    return m?.values.find((v) => v.labels.source === 'bbs')?.value ?? 0;
  }

  before(async () => {
    sim = await startSimulator({ seed: 11, size: 'small' });
    client = new BbsClient({
      url: sim.urls.bbs,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      requestTimeoutMs: 5000,
    });
    informer = new BbsInformer(
      client,
      { world, changed: () => {}, log: defaultLogger('bbs-backoff-test'), registry, clock },
      { retryMs: RETRY_MS, relistIntervalMs: 0 },
    );
    informer.start();
    await informer.synced;
  });
  after(async () => {
    await informer.stop();
    client.close();
    await sim.stop();
  });

  it('events do not shorten the backoff, which doubles; they are applied after the listing that succeeds', async () => {
    const appGuid = [...sim.world.apps.values()].find((a) => a.state === 'STARTED')!.guid;
    sim.faults.failNext('bbs', 1_000_000, 503);
    informer.requestRelist('test: BBS in a migration');
    await waitUntil('the first listing failed', async () => (await failedListings()) === 1, 10_000, 10);
    assert.equal(clock.pending, 1, 'the informer waits out its backoff');

    // a stream of events while the clock stands still: each scale-up creates ActualLRPs
    let instances = 1;
    for (let i = 0; i < 20; i++) {
      instances = instances === 1 ? 3 : 1;
      await sim.apply({ kind: 'app-scale', appGuid, instances });
    }
    await new Promise((r) => setTimeout(r, 300)); // let the stream deliver them
    assert.equal(await failedListings(), 1, 'events did not start a listing during the backoff');

    // first backoff: RETRY_MS ±20 %. Time moves to that timer and stands there, so the second
    // backoff is set at exactly this clock time however long the failing listing takes.
    const first = await clock.advanceToNext();
    assert.ok(
      first !== null && first >= RETRY_MS * 0.8 && first <= RETRY_MS * 1.2,
      `first backoff ${first} ms`,
    );
    await waitUntil('the second listing failed', async () => (await failedListings()) === 2, 10_000, 10);
    // second backoff: 2 × RETRY_MS ±20 %, so nothing before 0.8 × that
    await clock.advance(RETRY_MS * 2 * 0.8 - 1);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(await failedListings(), 2, 'the backoff doubled');

    // the last scale is what the world must show once BBS answers again
    sim.faults.reset();
    await clock.advance(RETRY_MS * 2 * 0.4 + 1);
    const processGuid = sim.world.desiredOfApp(appGuid)!.processGuid;
    const want = [...sim.world.actualsOf(processGuid)].map((a) => a.instanceGuid).sort();
    const inWorld = () =>
      [...world.handles()].filter((h) => world.instance(h)?.processGuid === processGuid).sort();
    await waitUntil(
      `the world holds exactly the instances BBS has (${want.length})`,
      () => JSON.stringify(inWorld()) === JSON.stringify(want),
      15_000,
      10,
    );
    assert.equal(await failedListings(), 2, 'the third listing succeeded');
    assert.equal(clock.pending, 0, 'no retry left scheduled');
  });
});
