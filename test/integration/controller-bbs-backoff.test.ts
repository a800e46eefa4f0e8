/**
 * The BBS informer's listing retry against the simulator: while listings fail, a stream of events
 * does not cut the backoff short (BBS is not hammered during its migrations), and the events that
 * arrived meanwhile are all applied, in order, after the listing that finally succeeds.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { BbsClient } from '../../src/cf/bbs-client.js';
import { BbsInformer } from '../../src/controller/sources/bbs-informer.js';
import { defaultLogger } from '../../src/lib/log.js';
import { World } from '../../src/rules/world.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { waitUntil } from '../helpers/wait.js';

describe('BBS informer: listing backoff under a stream of events', () => {
  let sim: SimHandle;
  let client: BbsClient;
  let informer: BbsInformer;
  const world = new World();

  before(async () => {
    sim = await startSimulator({ seed: 11, size: 'small' });
    client = new BbsClient({
      url: sim.urls.bbs,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      requestTimeoutMs: 5000,
    });
    informer = new BbsInformer(
      client,
      { world, changed: () => {}, log: defaultLogger('bbs-backoff-test') },
      { retryMs: 500, relistIntervalMs: 0 },
    );
    informer.start();
    await informer.synced;
  });
  after(async () => {
    await informer.stop();
    client.close();
    await sim.stop();
  });

  it('events do not shorten the backoff; they are applied after the listing that succeeds', async () => {
    const appGuid = [...sim.world.apps.values()].find((a) => a.state === 'STARTED')!.guid;
    const requestsBefore = sim.faults.requests.bbs;
    sim.faults.failNext('bbs', 1_000_000, 503);
    informer.requestRelist('test: BBS in a migration');
    // 2.5 s of events: each scale-up creates ActualLRPs the stream announces
    const deadline = Date.now() + 2500;
    let instances = 1;
    while (Date.now() < deadline) {
      instances = instances === 1 ? 3 : 1;
      await sim.apply({ kind: 'app-scale', appGuid, instances });
      await new Promise((r) => setTimeout(r, 50));
    }
    // backoff 500 ms doubling (±20 %): listings at about 0, 0.5, 1.5 s → at most 3 in 2.5 s, each
    // of 4 requests (desired LRPs, actual LRPs, tasks, cells)
    const listingRequests = sim.faults.requests.bbs - requestsBefore;
    assert.ok(listingRequests >= 4, `the listing was retried (${listingRequests} requests)`);
    assert.ok(listingRequests <= 3 * 4, `backoff honoured: ${listingRequests} requests in 2.5 s`);
    // the last scale is what the world must show once BBS answers again
    sim.faults.reset();
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
  });
});
