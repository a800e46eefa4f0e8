/**
 * The journal recorder describes each enqueue by the security groups and policies its own write
 * carried. The live world may already hold the next change when an enqueue returns; diffing
 * against it recorded that change twice — once as "touched no cell" under an unrelated enqueue,
 * then with no additions under its own (the ops-events flake, seen in CI).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { C2CPolicy } from '../../src/model/types.js';
import { JournalRecorder } from '../../src/ops/recorder.js';
import { PolicyIndex } from '../../src/rules/indexes.js';

const policy = (src: string, dst: string, port: number): C2CPolicy => ({
  source: { appGuid: src, tag: 1 },
  destination: { appGuid: dst, tag: 2, protocol: 'tcp', ports: { start: port, end: port } },
});

describe('journal recorder', () => {
  const before = new PolicyIndex([policy('a', 'b', 8080)]);
  const after = new PolicyIndex([policy('a', 'b', 8080), policy('c', 'd', 7101)]);

  it('an enqueue that carried no policies records no policy entry, whatever the live world holds', () => {
    const r = new JournalRecorder();
    r.entriesFor([], null, { policies: before }); // the leader's first write
    // a names or ASG-heartbeat flush enqueues nothing while the next policy change is in the world
    assert.deepEqual(r.entriesFor([], null, {}), []);
    // the policy change's own enqueue: one entry with its cells, jobs and what it added
    const t = { kind: 'policy' as const, id: '42', at: 1 };
    const entries = r.entriesFor([{ cellId: 'cell-1', triggers: [t], jobId: 'j1' }], null, {
      policies: after,
    });
    assert.equal(entries.length, 1);
    assert.deepEqual(entries[0]!.cells, ['cell-1']);
    assert.deepEqual(entries[0]!.jobIds, ['j1']);
    assert.deepEqual(entries[0]!.subject.apps, ['c', 'd']);
    assert.deepEqual(entries[0]!.detail, { added: 1, removed: 0 });
  });

  it('a policy change that touched no cell is recorded once, with an empty cell list', () => {
    const r = new JournalRecorder();
    r.entriesFor([], null, { policies: before });
    const entries = r.entriesFor([], null, { policies: after });
    assert.equal(entries.length, 1);
    assert.equal(entries[0]!.type, 'policy');
    assert.deepEqual(entries[0]!.cells, []);
    assert.deepEqual(entries[0]!.detail, { added: 1, removed: 0 });
    assert.deepEqual(r.entriesFor([], null, { policies: after }), []);
  });

  it("the leader's first write records no change (nothing known to compare with)", () => {
    const r = new JournalRecorder();
    assert.deepEqual(r.entriesFor([], null, { policies: after }), []);
  });
});
