/**
 * The security-group informer against a CC whose `asg_latest_update` has 1-second resolution (as
 * CC's database stores it): a second change within the same second leaves the timestamp as it was.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CapiClient, StableListing } from '../../src/cf/capi-client.js';
import { AsgInformer, SAME_STAMP_WINDOW_MS } from '../../src/controller/informers/asg-informer.js';
import { World } from '../../src/controller/world/world.js';
import { defaultLogger } from '../../src/lib/log.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import type { SecurityGroup } from '../../src/model/types.js';

/** A CC with second-resolution `asg_latest_update`; counts listings. */
class SecondResolutionCc {
  groups: SecurityGroup[] = [];
  stamp = 0n;
  listings = 0;

  change(groups: SecurityGroup[]): void {
    this.groups = groups;
    this.stamp = BigInt(Math.floor(Date.now() / 1000)) * 1_000_000_000n;
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

/** Wait until the start of a second with at least `ms` of it left (so two changes share it). */
async function earlyInASecond(ms: number): Promise<void> {
  while (1000 - (Date.now() % 1000) < ms) await new Promise((r) => setTimeout(r, 5));
}

describe('security-group informer with asg_latest_update', () => {
  it('finds a second change that shares the first one’s timestamp, then checks cheaply again', async () => {
    const cc = new SecondResolutionCc();
    const world = new World();
    const informer = new AsgInformer(
      cc as unknown as CapiClient,
      { world, changed: () => {}, log: defaultLogger('asg-test') },
      { useLatestUpdate: true, checkIntervalMs: 60_000, fullListIntervalMs: 3_600_000 },
    );
    await earlyInASecond(600);
    cc.change([group('443')]);
    await informer.pollNow();
    assert.equal(cc.listings, 1);
    const first = cc.stamp;
    cc.change([group('8443')]);
    assert.equal(cc.stamp, first, 'the second change did not move the timestamp');
    await informer.pollNow();
    assert.equal(cc.listings, 2, 'listed again: the timestamp may hide a change');
    assert.deepEqual(world.asgs()!.group('g')!.rules[0]!.ports, [{ start: 8443, end: 8443 }]);

    // once a listing started long enough after the value was first seen, checks are cheap again
    await new Promise((r) => setTimeout(r, SAME_STAMP_WINDOW_MS + 100));
    await informer.pollNow();
    assert.equal(cc.listings, 3, 'one more listing, past the window');
    await informer.pollNow();
    await informer.pollNow();
    assert.equal(cc.listings, 3, 'then the unchanged timestamp is trusted');
    assert.equal(informer.changes, 2);
  });
});
