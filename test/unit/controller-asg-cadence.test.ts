/**
 * How soon the security-group informer sees a change that `asg_latest_update` does not show (a v2
 * write), and what it costs Cloud Controller, on an injected clock: CF's acceptance tests give an
 * ASG bind or unbind 180 s to take effect. No wall-clock waits: the test advances the clock by one
 * check interval and runs one poll, as the poller would.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CapiClient, SecurityGroupListing, StableListing } from '../../src/cf/capi-client.js';
import {
  ASG_FULL_LIST_DEFAULT_MS,
  parseControllerSettings,
  toControllerConfig,
} from '../../src/controller/settings.js';
import { AsgInformer } from '../../src/controller/sources/asg-informer.js';
import { ManualClock } from '../../src/lib/clock.js';
import { defaultLogger } from '../../src/lib/log.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import type { SecurityGroup } from '../../src/model/types.js';
import { World } from '../../src/rules/world.js';

/** A CC whose v2 writes leave `asg_latest_update` alone; counts checks and listings. */
class V2WritingCc {
  groups: SecurityGroup[] = [];
  readonly stamp = 1_700_000_000n * 1_000_000_000n;
  checks = 0;
  listings = 0;

  async asgLatestUpdate() {
    this.checks++;
    return { raw: String(this.stamp), nanos: this.stamp };
  }

  async listSecurityGroupsStable(): Promise<StableListing> {
    this.listings++;
    return {
      groups: [...this.groups],
      invalid: [],
      source: 'v2',
      requests: 1,
      lastUpdate: { raw: String(this.stamp), nanos: this.stamp },
      tries: 1,
    };
  }

  async listSecurityGroups(): Promise<SecurityGroupListing> {
    this.listings++;
    return { groups: [...this.groups], invalid: [], source: 'v2', requests: 1 };
  }
}

function bound(spaces: string[]): SecurityGroup {
  return {
    guid: 'g-v2',
    name: 'bound-through-v2',
    rules: [parseCapiRule({ protocol: 'tcp', destination: '10.9.0.0/16', ports: '443' })],
    runningDefault: false,
    stagingDefault: false,
    runningSpaces: spaces,
    stagingSpaces: [],
  };
}

const CHECK_MS = 5_000;

function setup(useLatestUpdate: boolean, fullListIntervalMs: number) {
  const cc = new V2WritingCc();
  cc.groups = [bound([])];
  const world = new World();
  const clock = new ManualClock(1_000_000);
  const informer = new AsgInformer(
    cc as unknown as CapiClient,
    { world, changed: () => {}, log: defaultLogger('asg-cadence-test'), clock },
    { useLatestUpdate, checkIntervalMs: CHECK_MS, fullListIntervalMs },
  );
  const boundTo = () => world.asgs()?.group('g-v2')?.runningSpaces ?? [];
  return { cc, world, clock, informer, boundTo };
}

/** Advance by `step` and poll until `seen()` holds; the elapsed clock time. */
async function pollUntil(
  s: ReturnType<typeof setup>,
  step: number,
  seen: () => boolean,
  limitMs: number,
): Promise<number> {
  const from = s.clock.now();
  while (!seen()) {
    assert.ok(s.clock.now() - from <= limitMs, `not seen within ${limitMs} ms`);
    await s.clock.advance(step);
    await s.informer.pollNow();
  }
  return s.clock.now() - from;
}

describe('security-group listing cadence (injected clock)', () => {
  it('defaults to a full listing every 60 s with asg_latest_update and every 30 s without', () => {
    assert.equal(ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate, 60_000);
    assert.equal(ASG_FULL_LIST_DEFAULT_MS.withoutLatestUpdate, 30_000);
    const capi = {
      capiUrl: 'https://api.example.com',
      uaaUrl: 'https://uaa.example.com',
      uaaClientId: 'network-policy',
      uaaClientSecret: 'secret-secret-secret',
    };
    const flags = { campaign: 'false', apiListen: 'off', ...capi };
    const withCheck = toControllerConfig(
      parseControllerSettings({ flags: { ...flags, ccInternalUrl: 'https://cc.example.com:9023' } }),
    );
    assert.equal(withCheck.capi?.fullListIntervalMs, ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate);
    const without = toControllerConfig(parseControllerSettings({ flags }));
    assert.equal(without.capi?.fullListIntervalMs, ASG_FULL_LIST_DEFAULT_MS.withoutLatestUpdate);
    const set = toControllerConfig(
      parseControllerSettings({ flags, env: { CFNET_ASG_FULL_LIST_INTERVAL_MS: '2000' } }),
    );
    assert.equal(set.capi?.fullListIntervalMs, 2000, 'the setting wins');
  });

  it('sees a v2 bind and a v2 unbind within one full interval plus one check, well inside CF’s 180 s', async () => {
    const full = ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate;
    const s = setup(true, full);
    await s.informer.pollNow();
    // settle: the first value of the timestamp is covered by a listing 2 s after it was first seen
    await pollUntil(s, CHECK_MS, () => s.cc.listings >= 2, 3 * CHECK_MS);
    const listingsBefore = s.cc.listings;

    s.cc.groups = [bound(['space-a'])]; // a v2 bind: asg_latest_update does not move
    const bindMs = await pollUntil(s, CHECK_MS, () => s.boundTo().includes('space-a'), 180_000);
    assert.ok(bindMs <= full + CHECK_MS, `bind seen after ${bindMs} ms`);
    assert.equal(s.cc.listings, listingsBefore + 1, 'one listing: the checks in between were cheap');

    s.cc.groups = [bound([])]; // a v2 unbind
    const unbindMs = await pollUntil(s, CHECK_MS, () => !s.boundTo().includes('space-a'), 180_000);
    assert.ok(unbindMs <= full + CHECK_MS, `unbind seen after ${unbindMs} ms`);
    assert.ok(unbindMs > full - CHECK_MS, `not before the full listing was due (${unbindMs} ms)`);
  });

  it('costs one listing per full interval while nothing moves, and a check every interval', async () => {
    const full = ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate;
    const s = setup(true, full);
    await s.informer.pollNow();
    await pollUntil(s, CHECK_MS, () => s.cc.listings >= 2, 3 * CHECK_MS);
    const [l0, c0] = [s.cc.listings, s.cc.checks];
    for (let i = 0; i < (10 * full) / CHECK_MS; i++) {
      await s.clock.advance(CHECK_MS);
      await s.informer.pollNow();
    }
    assert.equal(s.cc.listings - l0, 10, 'ten minutes: ten listings');
    assert.equal(s.cc.checks - c0, (10 * full) / CHECK_MS, 'a cheap check every interval');
  });

  it('without asg_latest_update every poll is a full listing', async () => {
    const s = setup(false, ASG_FULL_LIST_DEFAULT_MS.withoutLatestUpdate);
    await s.informer.pollNow();
    s.cc.groups = [bound(['space-b'])];
    await s.clock.advance(ASG_FULL_LIST_DEFAULT_MS.withoutLatestUpdate);
    await s.informer.pollNow();
    assert.deepEqual(s.boundTo(), ['space-b']);
    assert.equal(s.cc.checks, 0);
    assert.equal(s.cc.listings, 2);
  });

  it('a shorter setting shortens the wait (a lab or an acceptance run)', async () => {
    const s = setup(true, 2_000);
    await s.informer.pollNow();
    await pollUntil(s, 500, () => s.cc.listings >= 2, 5_000);
    s.cc.groups = [bound(['space-c'])];
    const ms = await pollUntil(s, 500, () => s.boundTo().includes('space-c'), 10_000);
    assert.ok(ms <= 2_500, `seen after ${ms} ms`);
  });
});
