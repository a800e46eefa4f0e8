import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  canonicalJson,
  normalizeRule,
  normalizeRules,
  ruleSetHash,
  shortHash,
} from '../../src/model/canonical.js';
import type { EgressRule, IpRange, PortRange } from '../../src/model/types.js';

const v4 = (start: string, end = start): IpRange => ({ family: 4, start, end });

describe('canonicalJson', () => {
  it('sorts keys recursively, keeps array order, drops undefined members', () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, 1], c: 'x' }, u: undefined }),
      '{"a":{"c":"x","d":[3,1]},"b":1}',
    );
    assert.equal(canonicalJson([undefined, null, true, 'é"']), '[null,null,true,"é\\""]');
    assert.equal(canonicalJson({ b: 1, a: 2 }), canonicalJson({ a: 2, b: 1 }));
    assert.equal(canonicalJson({ t: new Date(0) }), '{"t":"1970-01-01T00:00:00.000Z"}');
  });

  it('refuses values without a faithful JSON form', () => {
    assert.throws(() => canonicalJson(1n), TypeError);
    assert.throws(() => canonicalJson({ a: Number.NaN }), TypeError);
    assert.throws(() => canonicalJson({ a: Number.POSITIVE_INFINITY }), TypeError);
    assert.throws(() => canonicalJson(undefined), TypeError);
    assert.throws(() => canonicalJson({ f: () => 1 }), TypeError);
  });

  it('agrees with JSON.parse round trip', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const text = canonicalJson(v);
        assert.equal(canonicalJson(JSON.parse(text)), text);
      }),
      { numRuns: 200 },
    );
  });
});

describe('normalizeRules and ruleSetHash', () => {
  const tcp: EgressRule = {
    protocol: 'tcp',
    destinations: [v4('10.0.0.5', '10.0.0.9'), v4('10.0.0.0', '10.0.0.4')],
    ports: [
      { start: 443, end: 443 },
      { start: 80, end: 80 },
    ],
    log: false,
  };
  const icmp: EgressRule = {
    protocol: 'icmp',
    destinations: [v4('0.0.0.0', '255.255.255.255')],
    ports: [],
    icmp: { type: 8, code: 0 },
    log: false,
  };

  it('normalises each rule (merged destinations and ports, fixed keys)', () => {
    assert.deepEqual(normalizeRule(tcp), {
      protocol: 'tcp',
      destinations: [v4('10.0.0.0', '10.0.0.9')],
      ports: [
        { start: 80, end: 80 },
        { start: 443, end: 443 },
      ],
      log: false,
    });
    assert.equal('icmp' in normalizeRule({ ...tcp, icmp: undefined }), false);
  });

  it('removes exact duplicates and sorts stably', () => {
    const a = normalizeRules([icmp, tcp, tcp, normalizeRule(tcp), icmp]);
    assert.equal(a.length, 2);
    assert.deepEqual(normalizeRules([tcp, icmp]), a);
    assert.deepEqual(normalizeRules(a), a);
    // different log flag is a different rule
    assert.equal(normalizeRules([tcp, { ...tcp, log: true }]).length, 2);
  });

  it('hash is 16 hex digits and changes with content', () => {
    const h = ruleSetHash([tcp, icmp]);
    assert.match(h, /^[0-9a-f]{16}$/);
    assert.equal(ruleSetHash([icmp, tcp, tcp]), h);
    assert.notEqual(ruleSetHash([tcp]), h);
    assert.notEqual(ruleSetHash([tcp, { ...icmp, icmp: { type: 8, code: 1 } }]), h);
    assert.equal(ruleSetHash([]), shortHash('[]'));
  });

  const range = fc
    .tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 }))
    .map(([a, b]) => v4(`10.0.0.${Math.min(a, b)}`, `10.0.0.${Math.max(a, b)}`));
  const ports = fc
    .tuple(fc.integer({ min: 1, max: 30 }), fc.integer({ min: 1, max: 30 }))
    .map(([a, b]): PortRange => ({ start: Math.min(a, b), end: Math.max(a, b) }));
  const rule: fc.Arbitrary<EgressRule> = fc.oneof(
    fc.record({
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      destinations: fc.array(range, { minLength: 1, maxLength: 3 }),
      ports: fc.array(ports, { minLength: 1, maxLength: 3 }),
      log: fc.boolean(),
    }),
    fc.record({
      protocol: fc.constant('icmp' as const),
      destinations: fc.array(range, { minLength: 1, maxLength: 3 }),
      ports: fc.constant<PortRange[]>([]),
      icmp: fc.record({ type: fc.integer({ min: -1, max: 3 }), code: fc.integer({ min: -1, max: 1 }) }),
      log: fc.boolean(),
    }),
    fc.record({
      protocol: fc.constant('all' as const),
      destinations: fc.array(range, { minLength: 1, maxLength: 3 }),
      ports: fc.constant<PortRange[]>([]),
      log: fc.boolean(),
    }),
  );
  const shuffle = <T>(list: T[]) =>
    fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length });

  it('ruleSetHash is independent of rule order, destination/port order and duplicates', () => {
    fc.assert(
      fc.property(
        fc.array(rule, { maxLength: 8 }).chain((rules) =>
          fc.tuple(
            fc.constant(rules),
            shuffle(rules).chain((s) =>
              fc.tuple(
                ...s.map((r) =>
                  fc
                    .tuple(shuffle(r.destinations), shuffle(r.ports))
                    .map(([d, p]): EgressRule => ({ ...r, destinations: d, ports: p })),
                ),
              ),
            ),
            fc.array(fc.nat(), { maxLength: 3 }),
          ),
        ),
        ([rules, reordered, dupIdx]) => {
          const withDups = [
            ...reordered,
            ...dupIdx.filter(() => rules.length > 0).map((i) => rules[i % rules.length]!),
          ];
          assert.equal(ruleSetHash(withDups), ruleSetHash(rules));
          assert.deepEqual(normalizeRules(withDups), normalizeRules(rules));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('different normal forms give different hashes', () => {
    fc.assert(
      fc.property(fc.array(rule, { maxLength: 5 }), fc.array(rule, { maxLength: 5 }), (a, b) => {
        const same = canonicalJson(normalizeRules(a)) === canonicalJson(normalizeRules(b));
        assert.equal(ruleSetHash(a) === ruleSetHash(b), same);
        // the fast path hashes exactly the generic canonical JSON of the normal form
        assert.equal(ruleSetHash(a), shortHash(canonicalJson(normalizeRules(a))));
        const n = normalizeRules(a);
        const sorted = [...n].sort((x, y) => (canonicalJson(x) < canonicalJson(y) ? -1 : 1));
        assert.deepEqual(n, sorted);
      }),
      { numRuns: 200 },
    );
  });
});
