/**
 * The dashboard's journal rows (src/ops/dashboard/journal-rows.ts): a run of agent reports is one
 * row that counts them and names their cells, so reports cannot push every other entry off the list.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { foldAgentReports } from '../../src/ops/dashboard/journal-rows.js';
import type { JournalEntry } from '../../src/ops/journal.js';

let seq = 0;
function entry(type: JournalEntry['type'], cells: string[]): JournalEntry {
  seq++;
  return {
    id: `${1000 - seq}-0`,
    type,
    source: type === 'agent-report' ? 'agent' : 'bbs',
    subject: { guid: cells[0] ?? '' },
    cells,
    jobIds: [],
    at: 1_800_000_000_000 - seq,
  } as JournalEntry;
}

describe('dashboard journal rows', () => {
  it('folds each run of agent reports into one row with their count and cells; other entries stay', () => {
    const newestFirst = [
      entry('agent-report', ['cell-002']),
      entry('agent-report', ['cell-001']),
      entry('agent-report', ['cell-002']),
      entry('lrp', ['cell-001']),
      entry('agent-report', ['cell-003']),
      entry('policy', ['cell-001', 'cell-002']),
    ];
    const rows = foldAgentReports(newestFirst, 20);
    assert.deepEqual(
      rows.map((r) => [r.type, r.count, r.cells]),
      [
        ['agent-report', 3, ['cell-001', 'cell-002']],
        ['lrp', 1, ['cell-001']],
        ['agent-report', 1, ['cell-003']],
        ['policy', 1, ['cell-001', 'cell-002']],
      ],
    );
    assert.equal(rows[0]!.id, newestFirst[0]!.id, 'a folded row is its newest report');
    assert.deepEqual(newestFirst[1]!.cells, ['cell-001'], 'the entries read are not changed');
  });

  it('a flood of reports leaves room for the other entries: at most `limit` rows', () => {
    const flood = [
      ...Array.from({ length: 150 }, (_, i) => entry('agent-report', [`cell-${i % 7}`])),
      entry('lrp', ['cell-1']),
      ...Array.from({ length: 30 }, () => entry('asg', [])),
    ];
    const rows = foldAgentReports(flood, 5);
    assert.equal(rows.length, 5);
    assert.deepEqual(
      rows.map((r) => [r.type, r.count]),
      [
        ['agent-report', 150],
        ['lrp', 1],
        ['asg', 1],
        ['asg', 1],
        ['asg', 1],
      ],
    );
    assert.equal(rows[0]!.cells.length, 7);
  });
});
