/** How the operator tools show times, durations and rule-set versions (src/ops/format.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, versionText } from '../../src/ops/format.js';

describe('operator formats', () => {
  const now = Date.parse('2026-12-07T18:30:00.000Z');

  it('a rule-set version shows as its write time: time of day within a day, date and time before', () => {
    assert.equal(versionText(Date.parse('2026-12-07T18:00:13.243Z'), now), '18:00:13.243Z');
    assert.equal(versionText(Date.parse('2026-12-06T18:30:00.001Z'), now), '18:30:00.001Z');
    assert.equal(versionText(Date.parse('2026-12-05T09:00:00.000Z'), now), '2026-12-05 09:00:00.000Z');
  });

  it('no version is a dash, whatever form the absence takes', () => {
    for (const v of [0, undefined, null]) assert.equal(versionText(v, now), '-');
  });

  it('durations read as people say them', () => {
    assert.equal(formatDuration(0), '0');
    assert.equal(formatDuration(250), '250ms');
    assert.equal(formatDuration(1234), '1.2s');
    assert.equal(formatDuration(61_000), '1m1s');
    assert.equal(formatDuration(Number.NaN), '-');
  });
});
