import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  C2C_BLOCK_BUDGET,
  C2C_BLOCK_SIZES,
  c2cBlockMask,
  c2cBlockSet,
  type PortBlock,
  portBlocks,
} from '../../src/dataplane/c2c-blocks.js';
import { C2C_ALLOW_RULES } from '../../src/dataplane/decision-order.js';
import { desiredState } from '../../src/dataplane/desired.js';
import { SET_BY_NAME } from '../../src/dataplane/elements.js';
import { sampleRuleSet } from '../../src/dataplane/sample.js';

/**
 * What the kernel does with a port: for each block size, the port masked as the rule masks it
 * looked up among the blocks of that size. True when any lookup hits.
 */
function matches(blocks: PortBlock[], port: number): boolean {
  return C2C_BLOCK_SIZES.some((size) => {
    const mask = 0xffff & ~(size - 1);
    return blocks.some((b) => b.size === size && b.start === (port & mask));
  });
}

/** Every port 1-65535 against the range, through the masked lookups. */
function assertExact(start: number, end: number, blocks: PortBlock[]): void {
  for (const b of blocks) {
    assert.ok((C2C_BLOCK_SIZES as readonly number[]).includes(b.size), `size ${b.size}`);
    assert.equal(b.start % b.size, 0, `block ${b.start}/${b.size} aligned`);
  }
  for (let p = 1; p <= 65535; p++) {
    const want = p >= start && p <= end;
    if (matches(blocks, p) !== want)
      assert.fail(`${start}-${end}: port ${p} ${want ? 'not allowed' : 'allowed'}`);
  }
}

test('a range is covered exactly by its blocks: every port in it allowed, every port outside denied (all 65,535 ports)', () => {
  const edges: Array<[number, number]> = [
    [1, 1],
    [65535, 65535],
    [65534, 65535],
    [65504, 65535], // the last 32-port block
    [65503, 65535],
    [1, 32],
    [1, 31],
    [2, 33],
    [31, 33],
    [32, 63],
    [33, 64],
    [8080, 8080],
    [8090, 8095],
    [8080, 8085],
    [8081, 8086],
    [9000, 9032],
    [9001, 9031],
    [4095, 4097],
    [40000, 40960],
    [65000, 65535],
  ];
  for (const [s, e] of edges) {
    const blocks = portBlocks({ start: s, end: e });
    assert.ok(blocks, `${s}-${e} fits the budget`);
    assertExact(s, e, blocks);
  }
});

test('every range of up to 64 ports starting at 1-600 or just below 65535 decomposes exactly into at most 10 blocks', () => {
  const starts = [
    ...Array.from({ length: 600 }, (_, i) => i + 1),
    ...Array.from({ length: 64 }, (_, i) => 65472 + i),
  ];
  for (const s of starts) {
    for (let len = 1; len <= 64 && s + len - 1 <= 65535; len++) {
      const e = s + len - 1;
      const blocks = portBlocks({ start: s, end: e })!;
      // covered exactly, without overlap, in order
      let next = s;
      for (const b of blocks) {
        assert.equal(b.start, next, `${s}-${e}`);
        assert.equal(b.start % b.size, 0);
        next += b.size;
      }
      assert.equal(next, e + 1, `${s}-${e}`);
      assert.ok(blocks.length <= 10, `${s}-${e}: ${blocks.length} blocks`);
      if (len <= 32) assert.ok(blocks.length <= 8, `${s}-${e}: ${blocks.length} blocks for ≤ 32 ports`);
    }
  }
});

test('ranges needing more blocks than the budget are left to the interval set', () => {
  assert.equal(portBlocks({ start: 1, end: 65535 }), null);
  assert.equal(portBlocks({ start: 1024, end: 65535 }), null);
  // 8000-9000: 33 blocks, one more than the budget; 8000-8999 exactly the budget
  assert.equal(portBlocks({ start: 8000, end: 9000 }), null);
  assert.equal(portBlocks({ start: 8000, end: 9000 }, 33)?.length, 33);
  assert.equal(portBlocks({ start: 8000, end: 8999 })?.length, C2C_BLOCK_BUDGET);
  assert.equal(portBlocks({ start: 1, end: 1024 }), null); // 37 blocks
  // 40000-40960: 31 blocks, within the budget
  assert.ok(portBlocks({ start: 40000, end: 40960 })!.length <= C2C_BLOCK_BUDGET);
  const state = desiredState({
    ...sampleRuleSet({ containers: 1, asgSets: 1, rulesPerSet: 1, c2cPerContainer: 0 }),
    c2c: [{ srcTag: 3, dstIp: '10.255.1.2', protocol: 'udp', ports: { start: 1, end: 65535 } }],
  });
  assert.equal(state.sets.get('c2c_range')!.size, 1);
  for (const size of C2C_BLOCK_SIZES) assert.equal(state.sets.get(c2cBlockSet('udp', size))!.size, 0);
});

test('each block set is a hash set of mark . address . port, and ctr_in looks it up with the port masked to the block', () => {
  for (const proto of ['tcp', 'udp'] as const) {
    for (const size of C2C_BLOCK_SIZES) {
      const name = c2cBlockSet(proto, size);
      const def = SET_BY_NAME.get(name);
      assert.ok(def, name);
      assert.equal(def.interval, false);
      assert.equal(def.type, 'mark . ipv4_addr . inet_service');
      assert.deepEqual(def.containerField, ['key', 1]);
      const mask = c2cBlockMask(size);
      assert.ok(
        C2C_ALLOW_RULES.includes(
          `meta mark . ip daddr . ${proto} dport${mask ? ` & ${mask}` : ''} @${name} goto c2c_ok`,
        ),
        name,
      );
    }
  }
  assert.equal(c2cBlockSet('tcp', 1), 'c2c_tcp');
  assert.equal(c2cBlockMask(4), '0xfffc');
  assert.equal(c2cBlockMask(32), '0xffe0');
  // one rule per set: a new connection costs one lookup per block size of its protocol + c2c_range
  assert.equal(C2C_ALLOW_RULES.length, 2 * C2C_BLOCK_SIZES.length + 1);
});
