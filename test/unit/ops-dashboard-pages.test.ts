/**
 * The dashboard's pure parts: the charts' history is a bounded ring (oldest samples drop, order
 * kept, a sample not newer than the last ignored) and a sample summarises the snapshot's lag and
 * queue; every page carries the dry-run banner when any cell's agent runs in dry-run and escapes
 * what it shows; a cell's c2c entries name their source apps through the tag table; a patch log
 * line reads as a version step and what it changed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { NameDirectory } from '../../src/model/names.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { c2cRows, desiredVersion } from '../../src/ops/cell-detail.js';
import { History, type HistorySample, sampleOf } from '../../src/ops/dashboard/history.js';
import { html, page } from '../../src/ops/dashboard/layout.js';
import type { DashboardSnapshot } from '../../src/ops/dashboard/snapshot.js';

const sample = (at: number): HistorySample => ({
  at,
  maxLagMs: 0,
  p90LagMs: 0,
  p50LagMs: 0,
  behind: 0,
  backlog: 0,
  oldestJobAgeMs: 0,
});

describe('dashboard history', () => {
  it('keeps the newest `capacity` samples, oldest first, and ignores a sample not newer than the last', () => {
    const h = new History(3);
    for (const at of [1, 2, 3, 4, 5]) h.add(sample(at));
    h.add(sample(5));
    h.add(sample(4));
    assert.deepEqual(
      h.samples().map((s) => s.at),
      [3, 4, 5],
    );
  });

  it('a sample is the max, p90 and p50 lag, the cells behind, the backlog and the oldest job age', () => {
    const cells = [0, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 60_000].map((lagMs, i) => ({
      cellId: `cell-${i}`,
      lagMs,
      state: lagMs === 0 ? 'converged' : 'lagging',
      job: i === 9 ? { state: 'waiting', createdAt: 0, ageMs: 42_000 } : null,
    }));
    const s = sampleOf({
      at: 7,
      cells,
      queue: { counts: { waiting: 2, prioritized: 1, delayed: 1, active: 3, failed: 9, completed: 50 } },
    } as unknown as DashboardSnapshot);
    assert.deepEqual(s, {
      at: 7,
      maxLagMs: 60_000,
      p90LagMs: 8000,
      p50LagMs: 4000,
      behind: 9,
      backlog: 7,
      oldestJobAgeMs: 42_000,
    });
  });
});

describe('dashboard page frame', () => {
  it('shows the dry-run banner with the number of cells, and hides it when no cell is in dry-run', () => {
    const dry = page({ title: 't', active: 'charts', body: html`<main></main>`, dryRunCells: ['c1', 'c2'] });
    assert.match(
      dry,
      /<p class="banner" id="dry-run-banner" title="c1, c2">2 cells run their agents in dry-run/,
    );
    const none = page({ title: 't', active: 'charts', body: html`<main></main>` });
    assert.match(none, /<p class="banner" id="dry-run-banner" title="" hidden><\/p>/);
  });

  it('escapes interpolated values and keeps nested fragments', () => {
    const x = html`<td>${'<script>"x"</script>'}</td>${[html`<b>${'a&b'}</b>`]}`;
    assert.equal(x.html, '<td>&lt;script&gt;&quot;x&quot;&lt;/script&gt;</td><b>a&amp;b</b>');
  });
});

describe('cell detail', () => {
  it('names the source apps of a c2c entry by the tag table, and the destination by its container', () => {
    const names = new NameDirectory({
      orgs: [{ guid: 'o1', name: 'acme' }],
      spaces: [{ guid: 's1', name: 'prod', orgGuid: 'o1' }],
      apps: [
        { guid: 'a-web', name: 'web', spaceGuid: 's1' },
        { guid: 'a-api', name: 'api', spaceGuid: 's1' },
      ],
    });
    const rs = {
      cellId: 'cell-1',
      version: 1,
      containers: [
        {
          handle: 'h1',
          ip: '10.255.1.2',
          appGuid: 'a-api',
          spaceGuid: 's1',
          orgGuid: 'o1',
          workload: 'app',
          tag: null,
          egress: 'e1',
          netIn: [],
        },
      ],
      asgSets: { e1: [] },
      c2c: [{ srcTag: 7, dstIp: '10.255.1.2', protocol: 'tcp', ports: { start: 8080, end: 8081 } }],
      config: DEFAULT_CELL_CONFIG,
      tags: { 'a-web': 7, 'a-gone': 7 },
    } as unknown as CellRuleSet;
    assert.deepEqual(c2cRows(rs, names), [
      {
        sources: [
          { guid: 'a-web', label: 'acme/prod/web' },
          { guid: 'a-gone', label: 'a-gone' },
        ],
        srcTag: 7,
        destination: { ip: '10.255.1.2', guid: 'a-api', label: 'acme/prod/api' },
        protocol: 'tcp',
        ports: '8080-8081',
      },
    ]);
  });

  it('reads a patch log line as its version step and what the patch changed', () => {
    const patch = {
      containers: { upsert: [{}, {}], remove: ['x'] },
      asgSets: { upsert: {}, remove: [] },
      c2c: { add: [{}], remove: [] },
    };
    const line = `100 105 ${JSON.stringify({ patch, addedHandles: [], addedSets: [], upsertSets: ['k1'] })}`;
    assert.deepEqual(desiredVersion(line), {
      from: 100,
      to: 105,
      change: '~2 containers, -1 containers, +1 c2c, +1 egress sets',
    });
    assert.equal(desiredVersion('1 2 {not json').change, 'unreadable log entry');
  });
});
