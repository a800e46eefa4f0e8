/**
 * BBS events the controller skips as a whole — a payload that does not decode, an event without
 * what it is about, a name it does not know — are counted by reason
 * (`cfnet_controller_bbs_events_skipped_total`) and recorded in the event journal (type `rejected`,
 * source `bbs`), each distinct name and reason once; the stream and the world go on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { METRICS } from '../../src/lib/metrics.js';
import { encodeEvent, type models } from '../../src/model/bbs-messages.js';
import type { JournalEntry } from '../../src/ops/journal.js';
import { cfnetJson, type Foundation, startFoundation, waitUntil } from './ops-helpers.js';

describe('skipped BBS events (simulator, controller, journal)', () => {
  let f: Foundation;
  before(async () => {
    f = await startFoundation('bbs-skipped');
  });
  after(async () => f?.stop());

  const skipped = async () => {
    const m = f.controller.registry.getSingleMetric(METRICS.bbsEventsSkipped);
    if (!m) return {};
    return Object.fromEntries((await m.get()).values.map((v) => [v.labels.reason, v.value]));
  };
  const rejectedBbs = async () =>
    (await cfnetJson<JournalEntry[]>(['events', '--type', 'rejected'], f.ns)).filter(
      (e) => e.source === 'bbs',
    );

  it('every reason is a series from start-up, at 0', async () => {
    await waitUntil('the streams open', () => f.sim.eventStreams() >= 2, 10_000, 25);
    assert.deepEqual(await skipped(), { undecodable: 0, malformed: 0, unknown: 0 });
  });

  it('undecodable, malformed and unknown events are counted and journaled once per name and reason', async () => {
    const valid = encodeEvent('actual_lrp_crashed', {
      actualLrpKey: { processGuid: 'pg-x', index: 1, domain: 'cf-apps' },
      actualLrpInstanceKey: { instanceGuid: 'ig-x', cellId: 'cell-x' },
      crashCount: 3,
      crashReason: 'boom',
    } as models.ActualLRPCrashedEvent);
    const truncated = Buffer.from(valid, 'base64').subarray(0, 7).toString('base64');
    // an ActualLRPInstanceCreatedEvent with only its trace id: no actual LRP in it
    const noLrp = Buffer.from([0x12, 0x01, 0x78]).toString('base64');
    for (let i = 0; i < 2; i++) {
      f.sim.faults.injectEvent('lrp', { name: 'actual_lrp_instance_teleported', dataBase64: valid });
      f.sim.faults.injectEvent('lrp', { name: 'actual_lrp_crashed', dataBase64: truncated });
      f.sim.faults.injectEvent('lrp', { name: 'actual_lrp_instance_created', dataBase64: noLrp });
    }
    const counts = await waitUntil(
      'every skipped event counted',
      async () => {
        const c = await skipped();
        return c.undecodable === 2 && c.malformed === 2 && c.unknown === 2 ? c : null;
      },
      10_000,
      50,
    );
    assert.deepEqual(counts, { undecodable: 2, malformed: 2, unknown: 2 });

    const entries = await waitUntil(
      'the journal entries',
      async () => {
        const es = await rejectedBbs();
        return es.length >= 3 ? es : null;
      },
      10_000,
      100,
    );
    const byReason = new Map(entries.map((e) => [String(e.detail?.reason), e]));
    assert.deepEqual([...byReason.keys()].sort(), ['malformed-event', 'undecodable-event', 'unknown-event']);
    assert.equal(entries.length, 3, 'a repeated problem is journaled once');
    assert.equal(byReason.get('unknown-event')!.subject.guid, 'actual_lrp_instance_teleported');
    assert.equal(byReason.get('undecodable-event')!.subject.guid, 'actual_lrp_crashed');
    assert.equal(byReason.get('malformed-event')!.subject.guid, 'actual_lrp_instance_created');
    assert.match(String(byReason.get('malformed-event')!.detail?.message), /no actual LRP/);
    // the stream was not dropped for them
    assert.ok(f.sim.eventStreams() >= 2);
  });
});
