/**
 * The demo's live view (src/demo/view.ts), pure: every line fits the width it is given, what an
 * operator needs (cell, state) stays, columns go as the width shrinks, one short line per cell at
 * 80 columns, versions as `#N` (and a time of day), never as 13-digit numbers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CellHistory, CellView, Snapshot } from '../../src/demo/convergence.js';
import {
  churnHeader,
  clip,
  DEFAULT_VIEW_WIDTH,
  formatLag,
  renderFrame,
  versionLabel,
  versionTime,
  viewWidth,
} from '../../src/demo/view.js';

// 2027-01-15T08:00:00.000Z: rule-set versions are Redis times in ms
const T = 1_800_000_000_000;

function cell(over: Partial<CellView> & { cellId: string }): CellView {
  return {
    desired: T + 3000,
    applied: T + 3000,
    state: 'converged',
    lagMs: 0,
    error: '',
    agent: { subnet: '10.255.17.0/24', containers: 12, rssMb: 70, controllerReachable: true },
    ...over,
  };
}

function history(desiredSeen: number[], over: Partial<CellHistory> = {}): CellHistory {
  return {
    versionsApplied: desiredSeen.length,
    maxLagMs: 1234,
    enforceMs: [20, 35, 400],
    desiredSeen,
    desiredDropped: 0,
    ...over,
  };
}

const seen = [T + 1000, T + 2000, T + 3000];
const snapshot: Snapshot = {
  at: T + 5000,
  cells: [
    cell({ cellId: 'cell-001' }),
    cell({ cellId: 'cell-002', applied: T + 2000, state: 'lagging', lagMs: 13_400 }),
    cell({
      cellId: 'cell-003',
      applied: T + 1000,
      state: 'error',
      lagMs: 750,
      error: `nft: syntax error, unexpected string ${'x'.repeat(200)}\nline 2`,
      agent: null,
    }),
    cell({ cellId: 'cell-004', desired: 0, applied: 0, state: 'no-rule-set' }),
    cell({ cellId: 'cell-005', state: 'pending', lagMs: 2500 }),
  ],
};
const hist = new Map(snapshot.cells.map((c) => [c.cellId, history(seen)]));
const churn = {
  elapsedS: 42,
  durationS: 600,
  phase: 'churn stopped; settling',
  churn: {
    applied: 1234,
    failed: 3,
    byKind: Object.fromEntries(
      [
        'app-start',
        'app-stop',
        'app-scale',
        'asg-bind',
        'asg-unbind',
        'policy-add',
        'policy-remove',
        'lrp-crash',
      ].map((k, i) => [k, 100 + i]),
    ),
  },
};

/** The frame's line for `cellId`. */
const rowOf = (lines: string[], cellId: string) => lines.find((l) => l.startsWith(`${cellId} `));

describe('demo live view fitted to the width', () => {
  for (const width of [80, 120, 200]) {
    it(`at ${width} columns: every line fits, every cell keeps its id and state, no epoch-ms version`, () => {
      const lines = [churnHeader(churn, width), ...renderFrame(snapshot, hist, width)];
      for (const l of lines) assert.ok(l.length <= width, `${l.length} > ${width}: ${l}`);
      for (const c of snapshot.cells) {
        const row = rowOf(lines, c.cellId);
        assert.ok(row, `${c.cellId} has a line:\n${lines.join('\n')}`);
        assert.match(row, new RegExp(`\\s${c.state}(:|\\s|$)`), `${c.cellId} shows ${c.state}: ${row}`);
      }
      assert.doesNotMatch(lines.join('\n'), /\d{13}/, 'versions are not shown as epoch ms');
      assert.match(lines[0]!, /^t=42s\/600s \(churn stopped; settling\) {2}churn: 1234 changes, 3 refused/);
      assert.match(lines.at(-1)!, /^converged 1\/5/);
    });
  }

  it('at 80 columns: one short line per cell with cell, state, lag and applied/desired counters', () => {
    const lines = renderFrame(snapshot, hist, 80);
    assert.equal(lines.length, 1 + snapshot.cells.length + 1, 'a heading, a line per cell, the summary');
    assert.match(lines[0]!, /^cell\s+state\s+lag\s+applied\/desired$/);
    assert.match(rowOf(lines, 'cell-001')!, /^cell-001\s+converged\s+0ms\s+#3\/#3$/);
    assert.match(rowOf(lines, 'cell-002')!, /^cell-002\s+lagging\s+13\.4s\s+#2\/#3$/);
    assert.match(rowOf(lines, 'cell-003')!, /^cell-003\s+error\s+750ms\s+#1\/#3\s+nft: syntax error, .*…$/);
    assert.match(rowOf(lines, 'cell-004')!, /^cell-004\s+no-rule-set\s+0ms\s+-\/-$/);
    assert.doesNotMatch(lines.join('\n'), /ctrs|subnet/, 'the wide columns are gone');
    assert.equal(lines.at(-1), 'converged 1/5; write→enforced p50 35 ms, p99 400 ms');
  });

  it('a degraded cell shows its overlay where an error shows its message', () => {
    const c = cell({ cellId: 'cell-009', state: 'degraded', overlay: '1/2 peers' });
    const lines = renderFrame({ at: T + 5000, cells: [c] }, new Map([['cell-009', history(seen)]]), 80);
    assert.match(rowOf(lines, 'cell-009')!, /^cell-009\s+degraded\s+0ms\s+#3\/#3\s+1\/2 peers$/);
  });

  it('at 200 columns: every column, versions with their time of day (UTC)', () => {
    const lines = renderFrame(snapshot, hist, 200);
    assert.match(
      lines[0]!,
      /^cell\s+subnet\s+desired\s+applied\s+lag\s+max lag\s+changes\s+rules for\s+state$/,
    );
    assert.match(
      rowOf(lines, 'cell-002')!,
      /^cell-002\s+10\.255\.17\.0\/24\s+#3 08:00:03\.000\s+#2 08:00:02\.000\s+13\.4s\s+1\.2s\s+3x\s+12 ctrs\s+lagging$/,
    );
    assert.match(
      rowOf(lines, 'cell-003')!,
      /\s-\s.*\sagent \?\s+error: nft: syntax error, unexpected string x+…$/,
    );
    assert.equal(
      lines.at(-1),
      'converged 1/5 cells; controller write → enforced: p50 35 ms, p99 400 ms (15 versions)',
    );
  });

  it('at 120 columns the subnet and the times fit; at the default 100 they go, the rest stays', () => {
    assert.match(renderFrame(snapshot, hist, 120)[0]!, /^cell\s+subnet\s+desired/);
    const lines = renderFrame(snapshot, hist, DEFAULT_VIEW_WIDTH);
    assert.match(lines[0]!, /^cell\s+desired\s+applied\s+lag\s+max lag\s+changes\s+rules for\s+state$/);
    assert.match(rowOf(lines, 'cell-002')!, /^cell-002\s+#3\s+#2\s+13\.4s\s+1\.2s\s+3x\s+12 ctrs\s+lagging$/);
    for (const l of lines) assert.ok(l.length <= DEFAULT_VIEW_WIDTH, l);
  });

  it('the default width keeps the row format the demo test reads (cell … Nx … ctrs|agent ? … state)', () => {
    const rowRe = /^(cell-\d+)\s.*?\s(\d+)x\s+(?:\d+ ctrs|agent \?)\s+(.+)$/;
    const lines = renderFrame(snapshot, hist);
    const rows = lines.map((l) => rowRe.exec(l)).filter((m) => m !== null);
    assert.deepEqual(
      rows.map((m) => [m[1], m[2], m[3]!.split(':')[0]]),
      snapshot.cells.map((c) => [c.cellId, '3', c.state]),
    );
  });

  it('a long cell id or error never pushes a line past the width', () => {
    const s: Snapshot = {
      at: T,
      cells: [cell({ cellId: `cell-${'9'.repeat(150)}`, state: 'error', error: 'e'.repeat(300) })],
    };
    for (const width of [40, 80, 120, 200])
      for (const l of renderFrame(s, new Map(), width)) assert.ok(l.length <= width, `${width}: ${l}`);
  });
});

describe('demo view versions, lag and widths', () => {
  it('numbers a version by the desired versions seen: #N, #N+ between two, old before all', () => {
    const h = history(seen);
    assert.equal(versionLabel(T + 2000, h), '#2');
    assert.equal(versionLabel(T + 2500, h), '#2+', 'written and superseded between two looks');
    assert.equal(versionLabel(T + 10, h), 'old');
    assert.equal(versionLabel(0, h), '-');
    assert.equal(versionLabel(T + 3000, history(seen, { desiredDropped: 40 })), '#43', 'counts dropped ones');
    assert.equal(versionLabel(T, undefined), 'old');
  });

  it('a version is shown as its time of day (UTC, ms)', () => {
    assert.equal(versionTime(T + 61_234), '08:01:01.234');
    assert.equal(versionTime(0), '');
  });

  it('lag reads as ms, seconds or minutes', () => {
    assert.deepEqual([0, 230, 999, 1000, 13_240, 59_999, 125_000].map(formatLag), [
      '0ms',
      '230ms',
      '999ms',
      '1.0s',
      '13.2s',
      '60.0s',
      '2m05s',
    ]);
  });

  it('the churn line is cut to the width, its start (time, phase, change count) kept', () => {
    const full = churnHeader(churn, 500);
    assert.match(full, /\(lrp-crash 107, .*app-start 100\)$/);
    const cut = churnHeader(churn, 60);
    assert.equal(cut.length, 60);
    assert.ok(cut.endsWith('…'));
    assert.equal(churnHeader({ elapsedS: 3, durationS: 0, churn: null }), 't=3s  churn: off');
  });

  it('the width is the terminal’s, or 100 without one', () => {
    assert.equal(viewWidth(150), 150);
    assert.equal(viewWidth(undefined), DEFAULT_VIEW_WIDTH);
    assert.equal(viewWidth(0), DEFAULT_VIEW_WIDTH);
    assert.equal(clip('abcdef', 4), 'abc…');
    assert.equal(clip('abc', 4), 'abc');
  });
});
