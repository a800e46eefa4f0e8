/**
 * The security-group informer against a CC whose `asg_latest_update` has 1-second resolution (as
 * CC's database stores it): a second change within the same second leaves the timestamp as it was.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CapiClient, StableListing } from '../../src/cf/capi-client.js';
import { AsgInformer, SAME_STAMP_WINDOW_MS } from '../../src/controller/sources/asg-informer.js';
import { ManualClock } from '../../src/lib/clock.js';
import { defaultLogger } from '../../src/lib/log.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import type { SecurityGroup } from '../../src/model/types.js';
import { World } from '../../src/rules/world.js';

/** A CC with second-resolution `asg_latest_update` on the test's clock; counts listings. */
class SecondResolutionCc {
  groups: SecurityGroup[] = [];
  stamp = 0n;
  listings = 0;

  constructor(private readonly now: () => number) {}

  change(groups: SecurityGroup[]): void {
    this.groups = groups;
    this.stamp = BigInt(Math.floor(this.now() / 1000)) * 1_000_000_000n;
  }

  async asgLatestUpdate() {
    return { raw: String(this.stamp), nanos: this.stamp };
  }

  async listSecurityGroupsStable(): Promise<StableListing> {
    this.listings++;
    return {
      groups: [...this.groups],
      invalid: [],
      source: 'v3',
      requests: 1,
      lastUpdate: { raw: String(this.stamp), nanos: this.stamp },
      tries: 1,
    };
  }
}

function group(port: string): SecurityGroup {
  return {
    guid: 'g',
    name: 'g',
    rules: [parseCapiRule({ protocol: 'tcp', destination: '10.0.0.0/8', ports: port })],
    runningDefault: true,
    stagingDefault: false,
    runningSpaces: [],
    stagingSpaces: [],
  };
}

describe('security-group informer with asg_latest_update', () => {
  it('finds a second change that shares the first one’s timestamp, then checks cheaply again', async () => {
    // the clock starts early in a second, so two changes 100 ms apart share it
    const clock = new ManualClock(1_700_000_000_100);
    const cc = new SecondResolutionCc(() => clock.now());
    const world = new World();
    const informer = new AsgInformer(
      cc as unknown as CapiClient,
      { world, changed: () => {}, log: defaultLogger('asg-test'), clock },
      { useLatestUpdate: true, checkIntervalMs: 60_000, fullListIntervalMs: 3_600_000 },
    );
    cc.change([group('443')]);
    await informer.pollNow();
    assert.equal(cc.listings, 1);
    const first = cc.stamp;
    await clock.advance(100);
    cc.change([group('8443')]);
    assert.equal(cc.stamp, first, 'the second change did not move the timestamp');
    await informer.pollNow();
    assert.equal(cc.listings, 2, 'listed again: the timestamp may hide a change');
    assert.deepEqual(world.asgs()!.group('g')!.rules[0]!.ports, [{ start: 8443, end: 8443 }]);

    // once a listing started long enough after the value was first seen, checks are cheap again
    await clock.advance(SAME_STAMP_WINDOW_MS + 100);
    await informer.pollNow();
    assert.equal(cc.listings, 3, 'one more listing, past the window');
    await clock.advance(1_000);
    await informer.pollNow();
    await clock.advance(1_000);
    await informer.pollNow();
    assert.equal(cc.listings, 3, 'then the unchanged timestamp is trusted');
    assert.equal(informer.changes, 2);
  });
});
