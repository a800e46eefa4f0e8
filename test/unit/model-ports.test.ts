import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ValidationError } from '../../src/lib/errors.js';
import {
  mergePortRanges,
  parsePortRangeObject,
  parsePorts,
  portInRanges,
  portRangesToString,
} from '../../src/model/ports.js';
import { rejectsInvalid } from '../helpers/assert.js';

describe('ports: CAPI ports string', () => {
  it('parses a port, a list and a range', () => {
    assert.deepEqual(parsePorts('443'), [{ start: 443, end: 443 }]);
    assert.deepEqual(parsePorts('8080,80,443'), [
      { start: 80, end: 80 },
      { start: 443, end: 443 },
      { start: 8080, end: 8080 },
    ]);
    assert.deepEqual(parsePorts('4000-5000'), [{ start: 4000, end: 5000 }]);
    assert.deepEqual(parsePorts('1-65535'), [{ start: 1, end: 65535 }]);
  });

  it('tolerates whitespace around numbers, commas and "-" (TransportRuleValidator)', () => {
    assert.deepEqual(parsePorts(' 80 , 443 '), [
      { start: 80, end: 80 },
      { start: 443, end: 443 },
    ]);
    assert.deepEqual(parsePorts('4000 - 5000'), [{ start: 4000, end: 5000 }]);
    assert.deepEqual(parsePorts('\t53\t'), [{ start: 53, end: 53 }]);
  });

  it('merges adjacent and duplicate single ports', () => {
    assert.deepEqual(parsePorts('81,80,82,80,90'), [
      { start: 80, end: 82 },
      { start: 90, end: 90 },
    ]);
  });

  it('accepts a trailing comma as CAPI (Ruby split) does, and leading zeros in numbers', () => {
    assert.deepEqual(parsePorts('80,'), [{ start: 80, end: 80 }]);
    assert.deepEqual(parsePorts('0080'), [{ start: 80, end: 80 }]);
  });

  it('rejects everything CAPI rejects, naming the field', () => {
    rejectsInvalid(() => parsePorts('80-80'), 'ports', /start of a port range must be lower than its end/);
    rejectsInvalid(() => parsePorts('90-80'), 'ports', /start of a port range must be lower than its end/);
    rejectsInvalid(() => parsePorts('0'), 'ports', /port 0 is out of range 1\.\.65535/);
    rejectsInvalid(() => parsePorts('65536'), 'ports', /port 65536 is out of range/);
    rejectsInvalid(() => parsePorts('0-80'), 'ports', /port 0 is out of range/);
    rejectsInvalid(() => parsePorts('80-70000'), 'ports', /port 70000 is out of range/);
    rejectsInvalid(() => parsePorts('99999999999999999999'), 'ports', /out of range/);
    rejectsInvalid(() => parsePorts('http'), 'ports', /may contain only digits/);
    rejectsInvalid(() => parsePorts('80;443'), 'ports', /may contain only digits/);
    rejectsInvalid(() => parsePorts('-80'), 'ports', /single port, a comma-separated list/);
    rejectsInvalid(() => parsePorts('80,4000-5000'), 'ports', /single port, a comma-separated list/);
    rejectsInvalid(() => parsePorts('80 443'), 'ports', /single port, a comma-separated list/);
    rejectsInvalid(() => parsePorts('80,,443'), 'ports', /single port, a comma-separated list/);
    rejectsInvalid(() => parsePorts(',80'), 'ports', /single port, a comma-separated list/);
    rejectsInvalid(() => parsePorts('1-2-3'), 'ports', /single port, a comma-separated list/);
    rejectsInvalid(() => parsePorts(''), 'ports', /no ports given/);
    rejectsInvalid(() => parsePorts(','), 'ports', /no ports given/);
    rejectsInvalid(() => parsePorts('\u00a080'), 'ports', /may contain only digits/); // Ruby \s is ASCII only
    rejectsInvalid(
      () => parsePorts(443 as unknown as string, 'rules[1].ports'),
      'rules[1].ports',
      /must be a string/,
    );
  });
});

describe('ports: {start,end} objects', () => {
  it('accepts start <= end within range', () => {
    assert.deepEqual(parsePortRangeObject({ start: 8080, end: 8080 }), { start: 8080, end: 8080 });
    assert.deepEqual(parsePortRangeObject({ start: 0, end: 10 }, 'p', 0), { start: 0, end: 10 });
  });

  it('rejects bad objects, naming the sub-field', () => {
    rejectsInvalid(
      () => parsePortRangeObject({ start: 9, end: 8 }, 'd.ports'),
      'd.ports',
      /must not be greater than its end/,
    );
    rejectsInvalid(
      () => parsePortRangeObject({ start: 0, end: 8 }, 'd.ports'),
      'd.ports.start',
      /port 0 is out of range 1\.\.65535/,
    );
    rejectsInvalid(
      () => parsePortRangeObject({ start: 1, end: 65536 }, 'd.ports'),
      'd.ports.end',
      /out of range/,
    );
    rejectsInvalid(
      () => parsePortRangeObject({ start: '1', end: 2 }, 'd.ports'),
      'd.ports.start',
      /must be an integer/,
    );
    rejectsInvalid(
      () => parsePortRangeObject({ start: 1.5, end: 2 }, 'd.ports'),
      'd.ports.start',
      /must be an integer/,
    );
    rejectsInvalid(() => parsePortRangeObject({ end: 2 }, 'd.ports'), 'd.ports.start', /must be an integer/);
    rejectsInvalid(() => parsePortRangeObject([1, 2], 'd.ports'), 'd.ports', /must be an object/);
    rejectsInvalid(() => parsePortRangeObject(null, 'd.ports'), 'd.ports', /must be an object/);
  });
});

describe('ports: helpers', () => {
  it('merge, membership and text form', () => {
    const merged = mergePortRanges([
      { start: 10, end: 20 },
      { start: 1, end: 5 },
      { start: 21, end: 30 },
      { start: 15, end: 16 },
    ]);
    assert.deepEqual(merged, [
      { start: 1, end: 5 },
      { start: 10, end: 30 },
    ]);
    assert.equal(portInRanges(25, merged), true);
    assert.equal(portInRanges(7, merged), false);
    assert.equal(portRangesToString([{ start: 80, end: 80 }, ...merged]), '80,1-5,10-30');
  });
});

describe('ports: properties', () => {
  const ws = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 2 }).map((a) => a.join(''));

  it('a generated port list with random whitespace parses to merged sorted ranges covering exactly those ports', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 1, max: 65535 }), ws, ws), { minLength: 1, maxLength: 30 }),
        fc.boolean(),
        (items, clustered) => {
          // Half the runs use a narrow window so neighbouring ports (and merges) are common.
          const ports = items.map(([p]) => (clustered ? 1000 + (p % 40) : p));
          const text = items.map(([, a, b], i) => `${a}${ports[i]}${b}`).join(',');
          const ranges = parsePorts(text);
          const want = new Set(ports);
          let count = 0;
          for (let i = 0; i < ranges.length; i++) {
            const r = ranges[i]!;
            assert.ok(r.start <= r.end);
            if (i > 0) assert.ok(ranges[i - 1]!.end + 1 < r.start, 'ranges sorted, disjoint, not adjacent');
            for (let p = r.start; p <= r.end; p++) assert.ok(want.has(p), `port ${p} was not generated`);
            count += r.end - r.start + 1;
          }
          assert.equal(count, want.size);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('a generated range with random whitespace parses to itself', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 65535 }),
        fc.integer({ min: 1, max: 65535 }),
        ws,
        ws,
        ws,
        ws,
        (a, b, w1, w2, w3, w4) => {
          const text = `${w1}${a}${w2}-${w3}${b}${w4}`;
          if (a < b) assert.deepEqual(parsePorts(text), [{ start: a, end: b }]);
          else assert.throws(() => parsePorts(text), ValidationError);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('mergePortRanges is idempotent and order-independent', () => {
    const range = fc
      .tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 200 }))
      .map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }));
    fc.assert(
      fc.property(
        fc
          .array(range, { maxLength: 15 })
          .chain((l) =>
            fc.tuple(fc.constant(l), fc.shuffledSubarray(l, { minLength: l.length, maxLength: l.length })),
          ),
        ([list, shuffled]) => {
          const merged = mergePortRanges(list);
          assert.deepEqual(mergePortRanges(merged), merged);
          assert.deepEqual(mergePortRanges(shuffled), merged);
          for (let p = 0; p <= 200; p++) assert.equal(portInRanges(p, merged), portInRanges(p, list));
        },
      ),
      { numRuns: 200 },
    );
  });
});
