/**
 * Fuzzing the renderer against the real nft (in a scratch namespace): rule sets full of hostile
 * strings (quotes, newlines, `;`, braces, comments) and out-of-range numbers must either be
 * rejected with a ValidationError, or render to a script nft accepts and whose read-back holds
 * exactly the intended table: no extra chain, set, rule or table.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  compareStates,
  desiredState,
  NftDataplane,
  renderFull,
  staticChains,
} from '../../src/dataplane/index.js';
import { checkScript } from '../../src/dataplane/nft.js';
import { ValidationError } from '../../src/lib/errors.js';
import { ipv4ToInt } from '../../src/model/ip.js';
import type { CellContainer, CellRuleSet, EgressRule, IpRange } from '../../src/model/types.js';
import { exec, withNetns } from '../helpers/netns.js';

const nasty = fc.string({
  unit: fc.constantFrom(...'aZ09-_."\'\n\r\t ;{}#$\\/@:,*'.split(''), 'é', '\u0000', ' }; flush ruleset; '),
  maxLength: 40,
});
const guid = fc.uuid();
const rare = <T>(good: fc.Arbitrary<T>, bad: fc.Arbitrary<T>, odds = 40) =>
  fc.oneof({ arbitrary: good, weight: odds }, { arbitrary: bad, weight: 1 });
const handleArb = rare(guid, nasty, 15);
const ipArb = rare(fc.ipV4(), fc.oneof(nasty, fc.constantFrom('10.0.0.01', '1.2.3.4 ', '::1', '300.1.1.1')));
const portArb = rare(fc.integer({ min: 1, max: 65535 }), fc.constantFrom(0, -1, 65536, 1.5, Number.NaN), 60);

const rangeArb: fc.Arbitrary<IpRange> = fc
  .tuple(
    fc.ipV4(),
    fc.ipV4(),
    fc.oneof(
      { arbitrary: fc.constant(4 as const), weight: 9 },
      { arbitrary: fc.constant(6 as const), weight: 1 },
    ),
  )
  .map(([a, b, family]) => {
    const [s, e] = ipv4ToInt(a) <= ipv4ToInt(b) ? [a, b] : [b, a];
    return family === 4 ? { family, start: s, end: e } : { family, start: '2001:db8::1', end: '2001:db8::9' };
  });

const ruleArb: fc.Arbitrary<EgressRule> = fc
  .oneof(
    fc.record({
      protocol: fc.constantFrom('tcp' as const, 'udp' as const),
      destinations: fc.array(rangeArb, { minLength: 1, maxLength: 3 }),
      ports: fc.array(
        fc.tuple(portArb, portArb).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) })),
        { maxLength: 3 },
      ),
      log: fc.boolean(),
    }),
    fc.record({
      protocol: fc.constant('icmp' as const),
      destinations: fc.array(rangeArb, { minLength: 1, maxLength: 2 }),
      ports: fc.constant([]),
      icmp: fc.record({
        type: rare(fc.integer({ min: -1, max: 255 }), fc.constantFrom(256, -2)),
        code: rare(fc.integer({ min: -1, max: 255 }), fc.constantFrom(256, -2)),
      }),
      log: fc.boolean(),
    }),
    fc.record({
      protocol: rare(fc.constantFrom('all' as const, 'icmpv6' as const), fc.constant('sctp' as 'all')),
      destinations: fc.array(rangeArb, { minLength: 1, maxLength: 2 }),
      ports: fc.constant([]),
      log: fc.boolean(),
    }),
  )
  .map((r) => r as EgressRule);

const containerArb = (i: number): fc.Arbitrary<CellContainer> =>
  fc.record({
    handle: handleArb,
    ip: rare(fc.constant(`10.255.1.${i + 2}`), ipArb, 20),
    appGuid: nasty,
    spaceGuid: nasty,
    orgGuid: nasty,
    workload: fc.constantFrom('app' as const, 'task' as const, 'staging' as const),
    tag: rare(fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null }), fc.constantFrom(0, 65536)),
    egress: fc.constantFrom('h1', 'h2', 'weird'),
    netIn: fc.array(
      fc.record({
        hostPort: portArb.map((p) => (Number.isInteger(p) && p > 0 ? 61000 + (p % 4000) + i * 5000 : p)),
        containerPort: portArb,
      }),
      { maxLength: 2 },
    ),
  });

const ruleSetArb: fc.Arbitrary<CellRuleSet> = fc
  .record({
    containers: fc.tuple(containerArb(0), containerArb(1), containerArb(2)),
    n: fc.integer({ min: 0, max: 3 }),
    asg: fc.tuple(fc.array(ruleArb, { maxLength: 4 }), fc.array(ruleArb, { maxLength: 4 })),
    weird: rare(
      fc.constantFrom('sha256-abc/def+=', 'fwd', 'a b', '"}; flush ruleset; {"'),
      fc.constant('nope\n'),
      4,
    ),
    c2c: fc.array(
      fc.record({
        srcTag: rare(fc.integer({ min: 1, max: 65535 }), fc.constant(0)),
        dstIp: ipArb,
        protocol: fc.constantFrom('tcp' as const, 'udp' as const),
        ports: fc.tuple(portArb, portArb).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) })),
      }),
      { maxLength: 4 },
    ),
    dns: fc.array(ipArb, { maxLength: 2 }),
    deny: fc.array(rangeArb, { maxLength: 3 }),
    logging: fc.record({
      asg: fc.boolean(),
      c2c: fc.boolean(),
      deniedPerSec: rare(fc.integer({ min: 1, max: 1000 }), fc.constant(0)),
      acceptedUdpPerSec: fc.integer({ min: 1, max: 1000 }),
    }),
  })
  .map(({ containers, n, asg, weird, c2c, dns, deny, logging }) => {
    const asgSets: Record<string, EgressRule[]> = { h1: asg[0], h2: asg[1], [weird]: asg[1] };
    for (const c of containers) if (c.egress === 'weird') c.egress = weird;
    return {
      cellId: 'fuzz',
      version: 1,
      containers: containers.slice(0, n),
      asgSets,
      c2c,
      config: {
        overlayNetwork: '10.255.0.0/16',
        dnsServers: dns,
        hostTcpServices: [{ ip: '169.254.0.2', port: 9001 }],
        hostUdpServices: [],
        denyNetworks: { always: deny, running: [], staging: [] },
        logging,
      },
    };
  });

test('fuzz: hostile rule sets are rejected or render exactly what was intended (real nft)', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'cfnet-fuzz-'));
  let applied = 0;
  let rejected = 0;
  try {
    await withNetns(['fuzz'], async (ns) => {
      const dp = new NftDataplane({ netns: ns.fuzz!, stateDir, netnsEnter: true });
      await fc.assert(
        fc.asyncProperty(ruleSetArb, async (rs) => {
          let script: string;
          try {
            script = renderFull(rs);
          } catch (err) {
            assert.ok(err instanceof ValidationError, `not a ValidationError: ${String(err)}`);
            rejected++;
            return;
          }
          // values that are never rendered must not appear
          for (const c of rs.containers) {
            if (c.appGuid.length > 3 && /[;"{}\n]/.test(c.appGuid)) assert.ok(!script.includes(c.appGuid));
          }
          await checkScript(script, { netns: ns.fuzz!, nsenter: true });
          await dp.applyFull(rs);
          applied++;
          const kernel = await dp.readBack();
          const report = compareStates(desiredState(rs), kernel);
          assert.equal(report.drift, false, JSON.stringify(report));
          const want = new Set([...staticChains().map((c) => c.name), ...desiredState(rs).chains.keys()]);
          const have = new Set([...kernel.staticChains.keys(), ...kernel.chains.keys()]);
          assert.deepEqual([...have].sort(), [...want].sort());
          const tables = (await exec(ns.fuzz!, ['nft', 'list', 'tables'])).stdout.trim();
          assert.equal(tables, 'table inet cfnet');
        }),
        { numRuns: 120 },
      );
    });
  } finally {
    await rm(stateDir, { recursive: true, force: true });
  }
  assert.ok(applied > 10, `applied ${applied}`);
  assert.ok(rejected > 10, `rejected ${rejected}`);
});
