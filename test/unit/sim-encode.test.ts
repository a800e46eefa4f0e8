/**
 * The simulator's BBS encoding: per-record caches return the generated code's exact bytes, and list
 * responses spliced from cached messages decode as the real list messages.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { longToBigInt, models } from '../../src/model/bbs-messages.js';
import {
  ActualEncoder,
  actualMessage,
  embed,
  encodeDesired,
  encodeLrpEvent,
  listResponse,
  listResponseLength,
  listResponsePieces,
} from '../../src/sim/bbs-encode.js';
import { generateWorld } from '../../src/sim/generate.js';
import type { SimActualLrp } from '../../src/sim/world.js';

const world = generateWorld(2, 'small');

/** Every record of the small foundation plus unclaimed and crashed variants (defaults, unicode, TLS ports). */
function actualVariants(): SimActualLrp[] {
  const variants: SimActualLrp[] = [];
  for (const a of world.actualLrps.values()) {
    variants.push(a);
    variants.push({
      ...a,
      state: 'UNCLAIMED',
      instanceGuid: '',
      cellId: '',
      address: '',
      instanceAddress: '',
      ports: [],
      routable: false,
      availabilityZone: '',
      since: 0n,
      modificationTag: { epoch: a.modificationTag.epoch, index: 0 },
    });
    variants.push({
      ...a,
      state: 'CRASHED',
      crashCount: 300,
      crashReason: 'APP/PROC/WEB: Exited with status 137 — ünïcode',
      placementError: 'insufficient resources',
      ports: [
        { containerPort: 8080, hostPort: 61000, containerTlsProxyPort: 61443, hostTlsProxyPort: 62443 },
      ],
    });
  }
  return variants;
}

describe('sim BBS encoding', () => {
  it('ActualLRP: cached bytes == the generated encoder, for every state and field combination', () => {
    for (const withTags of [true, false]) {
      const enc = new ActualEncoder(world, withTags);
      for (const a of actualVariants()) {
        const cached = enc.encode(a);
        const reference = models.ActualLRP.encode(actualMessage(world, a, withTags)).finish();
        assert.ok(
          Buffer.from(cached).equals(Buffer.from(reference)),
          `${a.processGuid}/${a.index} ${a.state}`,
        );
        const decoded = models.ActualLRP.decode(cached);
        assert.equal(longToBigInt(decoded.since), a.since);
        assert.equal(decoded.routable, a.routable);
        assert.equal(decoded.crashReason, a.crashReason);
        assert.equal(Object.keys(decoded.metricTags).length > 0, withTags && a.state === 'RUNNING');
      }
    }
  });

  it('ActualLRP: the cache is keyed by record identity (same object → same bytes, a new record → new bytes)', () => {
    const enc = new ActualEncoder(world, true);
    const a = [...world.actualLrps.values()][0] as SimActualLrp;
    const first = enc.encode(a);
    assert.equal(enc.encode(a), first, 'the same record is served from the cache');
    const changed: SimActualLrp = { ...a, crashCount: a.crashCount + 1 };
    const next = enc.encode(changed);
    assert.notEqual(next, first);
    assert.equal(models.ActualLRP.decode(next).crashCount, a.crashCount + 1);
  });

  it('a list response spliced from cached messages decodes as ActualLRPsResponse, across piece boundaries', () => {
    const enc = new ActualEncoder(world, true);
    const actuals = actualVariants();
    const messages = actuals.map((a) => enc.encode(a));
    const whole = listResponse(messages);
    assert.equal(whole.length, listResponseLength(messages), 'Content-Length is computed up front');
    for (const pieceBytes of [1, 500, 4096, 1 << 20]) {
      // pieces are views into one reused buffer: copy each before asking for the next
      const pieces = Array.from(listResponsePieces(messages, pieceBytes), (p) => Buffer.from(p));
      if (pieceBytes === 1) assert.equal(pieces.length, messages.length, 'one message per piece');
      const body = Buffer.concat(pieces);
      assert.ok(body.equals(Buffer.from(whole)), `pieces of ${pieceBytes} B make the same body`);
      const decoded = models.ActualLRPsResponse.decode(body);
      assert.equal(decoded.error, null);
      assert.equal(decoded.actualLrps.length, actuals.length);
      decoded.actualLrps.forEach((d, i) => {
        const a = actuals[i] as SimActualLrp;
        assert.equal(d.actualLrpKey?.processGuid, a.processGuid);
        assert.equal(d.actualLrpKey?.index, a.index);
        assert.equal(d.state, a.state);
        assert.equal(longToBigInt(d.since), a.since);
      });
    }
    assert.equal(listResponse([]).length, 0, 'an empty list is an empty (all-defaults) message');
    assert.equal(listResponseLength([]), 0);
    // a message longer than 127 bytes needs a 2-byte length: the size is protobuf's, not a guess
    const big = new Uint8Array(300);
    assert.equal(listResponseLength([big]), 1 + 2 + 300);
  });

  it('DesiredLRP: egress rules spliced from their shared cache decode as field 20, alone and in lists', () => {
    const desired = [...world.desiredLrps.values()];
    assert.ok(
      desired.some((d) => d.egressRules.length > 0),
      'the foundation has ASG rules',
    );
    for (const d of desired) {
      const decoded = models.DesiredLRP.decode(encodeDesired(world, d));
      assert.equal(decoded.processGuid, d.processGuid);
      assert.equal(decoded.instances, d.instances);
      assert.equal(decoded.network?.properties?.policy_group_id, d.network.policy_group_id);
      assert.deepEqual(
        decoded.egressRules.map((r) => [r.protocol, r.destinations]),
        d.egressRules.map((r) => [r.protocol, r.destinations]),
      );
      assert.equal(encodeDesired(world, d), encodeDesired(world, d), 'cached per record');
    }
    const list = models.DesiredLRPsResponse.decode(listResponse(desired.map((d) => encodeDesired(world, d))));
    assert.deepEqual(
      list.desiredLrps.map((d) => d.processGuid),
      desired.map((d) => d.processGuid),
    );
    const single = models.DesiredLRPResponse.decode(embed(2, encodeDesired(world, desired[0]!)));
    assert.equal(single.desiredLrp?.processGuid, desired[0]?.processGuid);
  });

  it('LRP events decode with the event types the client uses', () => {
    const enc = new ActualEncoder(world, true);
    const d = [...world.desiredLrps.values()][0]!;
    const after = { ...d, instances: d.instances + 1 };
    const changed = models.DesiredLRPChangedEvent.decode(
      encodeLrpEvent(world, enc, { name: 'desired_lrp_changed', before: d, after }),
    );
    assert.equal(changed.before?.instances, d.instances);
    assert.equal(changed.after?.instances, d.instances + 1);
    assert.equal(changed.after?.egressRules?.length, d.egressRules.length);
    const a = [...world.actualLrps.values()][0]!;
    const created = models.ActualLRPInstanceCreatedEvent.decode(
      encodeLrpEvent(world, enc, { name: 'actual_lrp_instance_created', actual: a }),
    );
    assert.equal(created.actualLrp?.actualLrpInstanceKey?.instanceGuid, a.instanceGuid);
  });
});
