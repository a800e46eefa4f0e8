import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  allAddresses,
  bigIntToIp,
  canonicalCidr,
  canonicalIp,
  canonicalIpv4Value,
  cidrToRange,
  compareIpRanges,
  intToIpv4,
  ipFamily,
  ipInRange,
  ipToBigInt,
  ipv4ToInt,
  isCanonicalIpv4,
  mergeRanges,
  parseCidr,
  parseDestinations,
  parseIp,
  parseIpRange,
  rangeContains,
  rangeSize,
  rangesOverlap,
  rangeToCidrs,
  rangeToString,
} from '../../src/model/ip.js';
import type { IpFamily, IpRange } from '../../src/model/types.js';
import { rejectsInvalid } from '../helpers/assert.js';

const v4 = (start: string, end = start): IpRange => ({ family: 4, start, end });
const v6 = (start: string, end = start): IpRange => ({ family: 6, start, end });

describe('ip: addresses', () => {
  it('parses IPv4 and IPv6 to BigInt and back to canonical text', () => {
    assert.equal(ipToBigInt('10.0.0.1'), 0x0a000001n);
    assert.equal(ipToBigInt('255.255.255.255'), 0xffffffffn);
    assert.equal(ipToBigInt('::1'), 1n);
    assert.equal(ipToBigInt('::'), 0n);
    assert.equal(bigIntToIp(0x0a000001n, 4), '10.0.0.1');
    assert.equal(bigIntToIp(1n, 6), '::1');
    assert.equal(ipFamily('10.0.0.1'), 4);
    assert.equal(ipFamily('fe80::1'), 6);
  });

  it('writes IPv6 the RFC 5952 way', () => {
    assert.equal(canonicalIp('2001:0DB8:0000:0000:0000:0000:0000:0001'), '2001:db8::1');
    assert.equal(canonicalIp('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1'); // first longest run
    assert.equal(canonicalIp('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1'); // single 0 not compressed
    assert.equal(canonicalIp('1:0:0:2:0:0:0:3'), '1:0:0:2::3'); // the longer run wins
    assert.equal(canonicalIp('0:0:0:0:0:0:0:0'), '::');
    assert.equal(canonicalIp('1::'), '1::');
    assert.equal(canonicalIp('1:2:3:4:5:6:7::'), '1:2:3:4:5:6:7:0');
    assert.equal(canonicalIp('::ffff:1.2.3.4'), '::ffff:102:304');
    assert.equal(canonicalIp('64:ff9b::192.0.2.33'), '64:ff9b::c000:221');
  });

  it('rejects malformed addresses, naming the field', () => {
    rejectsInvalid(() => canonicalIp('10.01.0.1'), 'ip', /leading zeros in IPv4 octets are not allowed/);
    rejectsInvalid(() => canonicalIp('010.1.0.1'), 'ip', /leading zeros/);
    rejectsInvalid(() => canonicalIp('10.0.0.256'), 'ip', /octet out of range/);
    rejectsInvalid(() => canonicalIp('10.0.0'), 'ip', /not a dotted-quad/);
    rejectsInvalid(() => canonicalIp('10.0.0.1.2'), 'ip', /not a dotted-quad/);
    rejectsInvalid(() => canonicalIp('10.0.0.x'), 'ip', /not a dotted-quad/);
    rejectsInvalid(() => canonicalIp('10.0.0.-1'), 'ip', /not a dotted-quad/);
    rejectsInvalid(() => canonicalIp('localhost', 'dns'), 'dns', /not an IP address/);
    rejectsInvalid(() => canonicalIp(''), 'ip', /not an IP address/);
    rejectsInvalid(() => canonicalIp('1::2::3'), 'ip', /"::" may appear only once/);
    rejectsInvalid(() => canonicalIp('1:2:3:4:5:6:7'), 'ip', /needs 8 groups/);
    rejectsInvalid(() => canonicalIp('1:2:3:4:5:6:7:8:9'), 'ip', /needs 8 groups/);
    rejectsInvalid(() => canonicalIp('1:2:3:4::5:6:7:8'), 'ip', /too many groups/);
    rejectsInvalid(() => canonicalIp('12345::'), 'ip', /not a valid IPv6/);
    rejectsInvalid(() => canonicalIp(':1:2:3:4:5:6:7'), 'ip', /not a valid IPv6/);
    rejectsInvalid(() => canonicalIp('1:2:3:4:5:6:7:'), 'ip', /not a valid IPv6/);
    rejectsInvalid(() => canonicalIp('fe80::1%eth0'), 'ip', /zone identifiers/);
    rejectsInvalid(() => canonicalIp('::ffff:1.2.3.04'), 'ip', /embedded IPv4 part: leading zeros/);
    rejectsInvalid(() => canonicalIp('1.2.3.4::'), 'ip', /not a valid IPv6/);
    rejectsInvalid(() => canonicalIp(42 as unknown as string), 'ip', /must be a string/);
  });

  it('bigIntToIp refuses values outside the family', () => {
    assert.throws(() => bigIntToIp(1n << 32n, 4), RangeError);
    assert.throws(() => bigIntToIp(-1n, 6), RangeError);
  });
});

describe('ip: the canonical IPv4 check', () => {
  const byParse = (t: string): boolean => {
    try {
      const p = parseIp(t);
      return p.family === 4 && p.text === t;
    } catch {
      return false;
    }
  };

  it('accepts exactly the texts parseIp accepts as IPv4 and prints unchanged', () => {
    for (const t of ['0.0.0.0', '255.255.255.255', '10.255.0.1', '1.2.3.4', '100.20.3.0']) {
      assert.equal(isCanonicalIpv4(t), true, t);
    }
    for (const t of [
      '',
      '1.2.3',
      '1.2.3.4.',
      '.1.2.3.4',
      '1..2.3',
      '01.2.3.4',
      '1.2.3.00',
      '256.0.0.1',
      '1.2.3.4 ',
      '1.2.3.-4',
      '1.2.3.1000',
      '::1',
      '1.2.3.4/32',
      '10.0.0.0001',
    ]) {
      assert.equal(isCanonicalIpv4(t), false, JSON.stringify(t));
      assert.equal(byParse(t), false, JSON.stringify(t));
    }
  });

  it('agrees with parseIp on arbitrary strings of digits and dots', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[0-9.]{0,16}$/), (t) => isCanonicalIpv4(t) === byParse(t)),
      { numRuns: 20_000 },
    );
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 300 }), { minLength: 4, maxLength: 4 }), (o) => {
        const t = o.join('.');
        return (
          isCanonicalIpv4(t) === byParse(t) &&
          (!byParse(t) || canonicalIpv4Value(t) === Number(parseIp(t).value))
        );
      }),
    );
  });
});

describe('ip: CIDRs and ranges', () => {
  it('accepts host bits in a CIDR and normalises to the network', () => {
    assert.deepEqual(parseCidr('10.0.0.1/24'), { family: 4, network: '10.0.0.0', prefix: 24 });
    assert.deepEqual(cidrToRange('10.0.0.1/24'), v4('10.0.0.0', '10.0.0.255'));
    assert.equal(canonicalCidr('2001:DB8::1/32'), '2001:db8::/32');
    assert.deepEqual(cidrToRange('0.0.0.0/0'), allAddresses(4));
    assert.deepEqual(cidrToRange('::/0'), allAddresses(6));
    assert.deepEqual(cidrToRange('10.1.2.3/32'), v4('10.1.2.3'));
  });

  it('rejects bad CIDRs', () => {
    rejectsInvalid(() => parseCidr('10.0.0.0/33'), 'cidr', /prefix length 33 exceeds 32 for IPv4/);
    rejectsInvalid(() => parseCidr('::/129'), 'cidr', /prefix length 129 exceeds 128 for IPv6/);
    rejectsInvalid(() => parseCidr('10.0.0.0'), 'cidr', /not a CIDR/);
    rejectsInvalid(() => parseCidr('10.0.0.0/8/8'), 'cidr', /not a CIDR/);
    rejectsInvalid(() => parseCidr('10.0.0.0/'), 'cidr', /prefix length must be a decimal number/);
    rejectsInvalid(() => parseCidr('10.0.0.0/x'), 'cidr', /prefix length must be a decimal number/);
    rejectsInvalid(() => parseCidr('10.01.0.0/16', 'deny'), 'deny', /leading zeros/);
  });

  it('parses ranges: start <= end, same family, no CIDR inside', () => {
    assert.deepEqual(parseIpRange('10.0.0.1-10.0.0.9'), v4('10.0.0.1', '10.0.0.9'));
    assert.deepEqual(parseIpRange('10.0.0.1-10.0.0.1'), v4('10.0.0.1'));
    assert.deepEqual(parseIpRange('2001:db8::1-2001:db8::ff'), v6('2001:db8::1', '2001:db8::ff'));
    rejectsInvalid(
      () => parseIpRange('10.0.0.9-10.0.0.1'),
      'range',
      /start of the range is greater than its end/,
    );
    rejectsInvalid(() => parseIpRange('10.0.0.0/24-10.0.1.0'), 'range', /CIDR is not allowed inside a range/);
    rejectsInvalid(() => parseIpRange('10.0.0.1-::1'), 'range', /different IP families/);
    rejectsInvalid(() => parseIpRange('10.0.0.1-10.0.0.2-10.0.0.3'), 'range', /exactly "start-end"/);
    rejectsInvalid(() => parseIpRange('10.0.0.1-'), 'range', /range endpoint: not an IP address/);
    rejectsInvalid(() => parseIpRange('10.0.0.01-10.0.0.2'), 'range', /range endpoint: leading zeros/);
  });
});

describe('ip: destinations', () => {
  it('parses a single IP, a CIDR, a range and comma lists into sorted merged ranges', () => {
    assert.deepEqual(parseDestinations('10.0.0.1'), [v4('10.0.0.1')]);
    assert.deepEqual(parseDestinations('10.0.0.0/24'), [v4('10.0.0.0', '10.0.0.255')]);
    assert.deepEqual(parseDestinations('10.0.0.5-10.0.0.10'), [v4('10.0.0.5', '10.0.0.10')]);
    assert.deepEqual(parseDestinations('192.168.0.1,10.0.0.0/24,10.0.1.0-10.0.1.255,::1,10.0.0.7'), [
      v4('10.0.0.0', '10.0.1.255'),
      v4('192.168.0.1'),
      v6('::1'),
    ]);
    assert.deepEqual(parseDestinations('2001:db8::/64'), [v6('2001:db8::', '2001:db8::ffff:ffff:ffff:ffff')]);
  });

  it('rejects whitespace, empty items, bad items and over-long lists', () => {
    rejectsInvalid(
      () => parseDestinations('10.0.0.1, 10.0.0.2'),
      'destination',
      /must not contain whitespace/,
    );
    rejectsInvalid(() => parseDestinations(' 10.0.0.1'), 'destination', /must not contain whitespace/);
    rejectsInvalid(() => parseDestinations(''), 'destination', /must not be empty/);
    rejectsInvalid(() => parseDestinations('10.0.0.1,,10.0.0.2'), 'destination', /empty item/);
    rejectsInvalid(() => parseDestinations('10.0.0.1,'), 'destination', /empty item/);
    const e = rejectsInvalid(
      () => parseDestinations('10.0.0.1,10.0.0.9-10.0.0.1'),
      'destination',
      /greater than its end/,
    );
    assert.equal(e.value, '10.0.0.9-10.0.0.1');
    rejectsInvalid(
      () => parseDestinations('10.0.0.1,10.0.0.2', 'd', { allowList: false }),
      'd',
      /not enabled/,
    );
    const many = Array.from({ length: 6001 }, (_, i) => `10.0.${i >> 8}.${i & 255}`).join(',');
    rejectsInvalid(() => parseDestinations(many), 'destination', /at most 6000 items/);
    assert.equal(parseDestinations(many.split(',').slice(0, 6000).join(',')).length, 1);
    rejectsInvalid(
      () => parseDestinations(7 as unknown as string, 'rules[0].destination'),
      'rules[0].destination',
      /string/,
    );
  });
});

describe('ip: range helpers', () => {
  it('rangeToCidrs gives the minimal cover', () => {
    assert.deepEqual(rangeToCidrs(v4('10.0.0.1', '10.0.0.9')), [
      '10.0.0.1/32',
      '10.0.0.2/31',
      '10.0.0.4/30',
      '10.0.0.8/31',
    ]);
    assert.deepEqual(rangeToCidrs(v4('10.0.0.0', '10.0.0.255')), ['10.0.0.0/24']);
    assert.deepEqual(rangeToCidrs(allAddresses(4)), ['0.0.0.0/0']);
    assert.deepEqual(rangeToCidrs(allAddresses(6)), ['::/0']);
    assert.deepEqual(rangeToCidrs(v4('0.0.0.0', '0.0.0.2')), ['0.0.0.0/31', '0.0.0.2/32']);
    assert.deepEqual(rangeToCidrs(v6('::1', '::2')), ['::1/128', '::2/128']);
    assert.throws(() => rangeToCidrs(v4('10.0.0.2', '10.0.0.1')), RangeError);
  });

  it('rangeToString prefers an address, then a single CIDR, then a-b', () => {
    assert.equal(rangeToString(v4('10.0.0.1')), '10.0.0.1');
    assert.equal(rangeToString(v4('10.0.0.0', '10.0.0.255')), '10.0.0.0/24');
    assert.equal(rangeToString(v4('10.0.0.1', '10.0.0.9')), '10.0.0.1-10.0.0.9');
  });

  it('membership, overlap, containment, size, order', () => {
    const r = v4('10.0.0.0', '10.0.0.255');
    assert.equal(ipInRange('10.0.0.7', r), true);
    assert.equal(ipInRange('10.0.1.0', r), false);
    assert.equal(ipInRange('::a00:7', r), false); // other family
    assert.equal(rangesOverlap(r, v4('10.0.0.255', '10.0.1.0')), true);
    assert.equal(rangesOverlap(r, v4('10.0.1.0', '10.0.1.9')), false);
    assert.equal(rangesOverlap(allAddresses(4), allAddresses(6)), false);
    assert.equal(rangeContains(r, v4('10.0.0.3', '10.0.0.4')), true);
    assert.equal(rangeContains(r, v4('10.0.0.3', '10.0.1.4')), false);
    assert.equal(rangeSize(r), 256n);
    assert.equal(rangeSize(allAddresses(6)), 1n << 128n);
    assert.ok(compareIpRanges(v6('::'), v4('255.255.255.255')) > 0);
    assert.ok(compareIpRanges(v4('10.0.0.1'), v4('9.0.0.1')) > 0); // numeric, not textual
    assert.equal(compareIpRanges(r, { ...r }), 0);
  });

  it('mergeRanges merges overlapping and adjacent ranges per family', () => {
    assert.deepEqual(
      mergeRanges([
        v4('10.0.0.5', '10.0.0.9'),
        v6('::1'),
        v4('10.0.0.0', '10.0.0.4'),
        v4('10.0.0.20'),
        v6('::2'),
      ]),
      [v4('10.0.0.0', '10.0.0.9'), v4('10.0.0.20'), v6('::1', '::2')],
    );
    assert.deepEqual(mergeRanges([]), []);
    // 255.255.255.255 and :: are numerically adjacent but of different families
    assert.deepEqual(mergeRanges([v6('::'), v4('255.255.255.255')]), [v4('255.255.255.255'), v6('::')]);
  });
});

const familyArb = fc.constantFrom<IpFamily>(4, 6);
const bits = (f: IpFamily) => (f === 4 ? 32 : 128);

describe('ip: properties', () => {
  it('CIDR → range → CIDR cover round-trips', () => {
    fc.assert(
      fc.property(
        familyArb.chain((f) =>
          fc.tuple(
            fc.constant(f),
            fc.bigInt({ min: 0n, max: (1n << BigInt(bits(f))) - 1n }),
            fc.integer({ min: 0, max: bits(f) }),
          ),
        ),
        ([family, value, prefix]) => {
          const cidr = `${bigIntToIp(value, family)}/${prefix}`;
          const range = cidrToRange(cidr);
          assert.deepEqual(rangeToCidrs(range), [canonicalCidr(cidr)]);
          assert.equal(rangeSize(range), 1n << BigInt(bits(family) - prefix));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('rangeToCidrs covers a range exactly, in order, without mergeable neighbours', () => {
    fc.assert(
      fc.property(
        familyArb.chain((f) => {
          const max = (1n << BigInt(bits(f))) - 1n;
          return fc.tuple(fc.constant(f), fc.bigInt({ min: 0n, max }), fc.bigInt({ min: 0n, max }));
        }),
        ([family, a, b]) => {
          const [lo, hi] = a <= b ? [a, b] : [b, a];
          const range: IpRange = { family, start: bigIntToIp(lo, family), end: bigIntToIp(hi, family) };
          const cidrs = rangeToCidrs(range);
          let expectStart = lo;
          let prev: { start: bigint; prefix: number } | undefined;
          for (const c of cidrs) {
            const r = cidrToRange(c);
            const s = ipToBigInt(r.start);
            assert.equal(s, expectStart);
            assert.equal(canonicalCidr(c), c);
            const prefix = Number(c.split('/')[1]);
            if (prev && prev.prefix === prefix) {
              // two equal-size blocks that form an aligned parent block would not be minimal
              const size = 1n << BigInt(bits(family) - prefix);
              assert.ok(prev.start % (size * 2n) !== 0n, `${c} could merge with its predecessor`);
            }
            prev = { start: s, prefix };
            expectStart = ipToBigInt(r.end) + 1n;
          }
          assert.equal(expectStart, hi + 1n);
        },
      ),
      { numRuns: 200 },
    );
  });

  // Small address space so generated ranges overlap and touch often.
  const smallRange = fc
    .tuple(fc.constantFrom<IpFamily>(4, 6), fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 63 }))
    .map(([family, a, b]): IpRange => {
      const base = family === 4 ? 0x0a000000n : 0x20010db8n << 96n;
      const [lo, hi] = a <= b ? [a, b] : [b, a];
      return {
        family,
        start: bigIntToIp(base + BigInt(lo), family),
        end: bigIntToIp(base + BigInt(hi), family),
      };
    });

  it('mergeRanges is idempotent, order-independent and covers exactly the input', () => {
    fc.assert(
      fc.property(
        fc
          .array(smallRange, { maxLength: 12 })
          .chain((list) =>
            fc.tuple(
              fc.constant(list),
              fc.shuffledSubarray(list, { minLength: list.length, maxLength: list.length }),
            ),
          ),
        ([list, shuffled]) => {
          const merged = mergeRanges(list);
          assert.deepEqual(mergeRanges(merged), merged);
          assert.deepEqual(mergeRanges(shuffled), merged);
          for (let i = 1; i < merged.length; i++) {
            const a = merged[i - 1]!;
            const b = merged[i]!;
            if (a.family === b.family)
              assert.ok(ipToBigInt(a.end) + 1n < ipToBigInt(b.start), 'gap between merged ranges');
            else assert.ok(a.family < b.family);
          }
          for (const family of [4, 6] as const) {
            const base = family === 4 ? 0x0a000000n : 0x20010db8n << 96n;
            for (let i = 0n; i < 64n; i++) {
              const ip = bigIntToIp(base + i, family);
              const inInput = list.some((r) => ipInRange(ip, r));
              const inMerged = merged.some((r) => ipInRange(ip, r));
              assert.equal(inMerged, inInput, `${ip}`);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('ip: IPv4 as a 32-bit number', () => {
  it('converts dotted quads to unsigned numbers and back', () => {
    assert.equal(ipv4ToInt('0.0.0.0'), 0);
    assert.equal(ipv4ToInt('10.255.3.7'), 0x0aff0307);
    assert.equal(ipv4ToInt('255.255.255.255'), 0xffffffff);
    assert.equal(intToIpv4(0xc0a80001), '192.168.0.1');
    fc.assert(fc.property(fc.integer({ min: 0, max: 0xffffffff }), (n) => ipv4ToInt(intToIpv4(n)) === n));
  });

  it('agrees with the BigInt parser on every address', () => {
    fc.assert(fc.property(fc.ipV4(), (ip) => BigInt(ipv4ToInt(ip)) === ipToBigInt(ip)));
  });

  it('gives NaN for text that is not four dotted parts', () => {
    assert.ok(Number.isNaN(ipv4ToInt('10.0.0')));
    assert.ok(Number.isNaN(ipv4ToInt('::1')));
  });
});
