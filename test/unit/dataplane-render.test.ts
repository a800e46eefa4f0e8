import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { atomId, elementId, elementKeyText } from '../../src/dataplane/elements.js';
import {
  asgChainName,
  asgRuleLines,
  desiredState,
  diffStates,
  failingLine,
  logPrefix,
  renderFull,
  renderUpdate,
} from '../../src/dataplane/index.js';
import { sampleRuleSet } from '../../src/dataplane/sample.js';
import { ValidationError } from '../../src/lib/errors.js';
import type { CellRuleSet, EgressRule } from '../../src/model/types.js';

const base = () => sampleRuleSet({ containers: 40, asgSets: 5, rulesPerSet: 6, c2cPerContainer: 2 });

test('renderFull replaces only its own table, atomically, one chain per distinct ASG set', () => {
  const rs = sampleRuleSet({ containers: 250, asgSets: 15, rulesPerSet: 20, c2cPerContainer: 3 });
  const s = renderFull(rs, { table: 'cfnet' });
  const lines = s.split('\n');
  assert.deepEqual(lines.slice(0, 3), [
    'table inet cfnet {}',
    'delete table inet cfnet',
    'table inet cfnet {',
  ]);
  for (const l of lines) {
    const m = /\b(?:table|element|chain|rule) inet (\S+)/.exec(l);
    if (m) assert.equal(m[1], 'cfnet', l);
  }
  const asgChains = lines.filter((l) => /^ {2}chain asg_/.test(l));
  assert.equal(asgChains.length, 15);
  const logged = rs.containers.filter((c) => rs.asgSets[c.egress]!.some((r) => r.log)).length;
  assert.ok(logged > 0);
  // + 10 static chains + one OK_ log chain per container whose ASG set has a logged rule
  assert.equal(lines.filter((l) => /^ {2}chain /.test(l)).length, 15 + 10 + logged);
  const has = (re: RegExp) =>
    assert.ok(
      lines.some((l) => re.test(l)),
      String(re),
    );
  has(/^add element inet cfnet ctr_asg \{ .*\b10\.255\.1\.2 : jump asg_h00000000\b/);
  has(/^add element inet cfnet c2c_tcp \{ 0x[0-9a-f]{8} \. 10\.255\.1\.\d+ \. 8080,/);
  // a 6-port range (8090-8095) is two aligned blocks: 8090/2 and 8092/4
  has(/^add element inet cfnet c2c_tcp_2 \{ 0x[0-9a-f]{8} \. 10\.255\.1\.\d+ \. 8090\b/);
  has(/^add element inet cfnet c2c_tcp_4 \{ 0x[0-9a-f]{8} \. 10\.255\.1\.\d+ \. 8092\b/);
  assert.ok(!lines.some((l) => /^add element inet cfnet c2c_tcp \{ .* 809[1-5]\b/.test(l)));
  assert.ok(!lines.some((l) => l.startsWith('add element inet cfnet c2c_range')));
  has(/^add element inet cfnet netin_dnat \{ .*\b61001 : 10\.255\.1\.3 \. 8080\b/);
  assert.throws(() => renderFull(rs, { table: 'filter; flush ruleset' }), ValidationError);
  assert.throws(() => renderFull(rs, { table: 'ip' }), ValidationError);
});

test('ASG rule rendering: ranges, ports, icmp, all, IPv6 and portless rules', () => {
  const r = (x: Partial<EgressRule>): EgressRule => ({
    protocol: 'tcp',
    destinations: [{ family: 4, start: '10.0.0.0', end: '10.0.0.255' }],
    ports: [{ start: 443, end: 443 }],
    log: false,
    ...x,
  });
  assert.deepEqual(asgRuleLines('r', r({}), false), ['ip daddr 10.0.0.0/24 tcp dport 443 accept']);
  // single values share an anonymous (hash) set; every range or CIDR is a rule of its own
  assert.deepEqual(
    asgRuleLines(
      'r',
      r({
        destinations: [
          { family: 4, start: '10.0.0.0', end: '10.0.0.255' },
          { family: 4, start: '10.0.1.0', end: '10.0.1.9' }, // touching: merged
          { family: 4, start: '192.0.2.7', end: '192.0.2.7' },
          { family: 4, start: '192.0.2.9', end: '192.0.2.9' },
          { family: 6, start: '::1', end: '::1' }, // IPv6: skipped
        ],
        ports: [
          { start: 80, end: 80 },
          { start: 81, end: 90 },
          { start: 443, end: 443 },
          { start: 8443, end: 8443 },
        ],
      }),
      true,
    ),
    [
      'ip daddr { 192.0.2.7, 192.0.2.9 } tcp dport { 443, 8443 } ip saddr vmap @log_ok',
      'ip daddr { 192.0.2.7, 192.0.2.9 } tcp dport 80-90 ip saddr vmap @log_ok',
      'ip daddr 10.0.0.0-10.0.1.9 tcp dport { 443, 8443 } ip saddr vmap @log_ok',
      'ip daddr 10.0.0.0-10.0.1.9 tcp dport 80-90 ip saddr vmap @log_ok',
    ],
  );
  const everywhere = [{ family: 4 as const, start: '0.0.0.0', end: '255.255.255.255' }];
  assert.deepEqual(asgRuleLines('r', r({ protocol: 'all', ports: [], destinations: everywhere }), false), [
    'accept',
  ]);
  assert.deepEqual(
    asgRuleLines('r', r({ protocol: 'icmp', ports: [], icmp: { type: -1, code: -1 } }), false),
    ['ip daddr 10.0.0.0/24 meta l4proto icmp accept'],
  );
  assert.deepEqual(asgRuleLines('r', r({ protocol: 'icmp', ports: [], icmp: { type: 3, code: 4 } }), false), [
    'ip daddr 10.0.0.0/24 icmp type 3 icmp code 4 accept',
  ]);
  assert.deepEqual(
    asgRuleLines('r', r({ protocol: 'icmp', ports: [], icmp: { type: 8, code: -1 } }), false),
    ['ip daddr 10.0.0.0/24 icmp type 8 accept'],
  );
  assert.deepEqual(asgRuleLines('r', r({ ports: [] }), false), []); // tcp without ports: matches nothing
  assert.deepEqual(
    asgRuleLines('r', r({ destinations: [{ family: 6, start: '::', end: '::ffff' }] }), false),
    [],
  );
  assert.throws(
    () => asgRuleLines('rules[0]', r({ ports: [{ start: 10, end: 5 }] }), false),
    (e: unknown) => e instanceof ValidationError && e.field === 'rules[0].ports[0]',
  );
  assert.throws(
    () =>
      asgRuleLines(
        'rules[0]',
        r({ destinations: [{ family: 4, start: '10.0.0.1;', end: '10.0.0.2' }] }),
        false,
      ),
    (e: unknown) => e instanceof ValidationError && e.field === 'rules[0].destinations[0].start',
  );
  assert.throws(
    () =>
      asgRuleLines('rules[0]', r({ destinations: [{ family: 6, start: '::1', end: '10.0.0.1' }] }), false),
    (e: unknown) => e instanceof ValidationError && e.field === 'rules[0].destinations[0]',
  );
  assert.throws(
    () => asgRuleLines('rules[0]', r({ protocol: 'tcp; flush ruleset' as 'tcp' }), false),
    (e: unknown) => e instanceof ValidationError && e.field === 'rules[0].protocol',
  );
});

test('ASG chains hold no anonymous interval set (nft re-reads those on every transaction)', () => {
  const rs = sampleRuleSet({
    containers: 50,
    asgSets: 15,
    rulesPerSet: 20,
    c2cPerContainer: 1,
    cfDefaults: true,
  });
  for (const c of desiredState(rs).chains.values()) {
    for (const rule of c.rules) {
      for (const set of rule.match(/\{[^}]*\}/g) ?? []) {
        assert.doesNotMatch(set, /[-/]/, `${c.name}: ${rule}`);
      }
    }
  }
});

test('hostile identifiers are rejected with a ValidationError naming the field', () => {
  const bad: [string, (rs: CellRuleSet) => void, string][] = [
    ['handle quote', (rs) => (rs.containers[0]!.handle = 'x" ; flush ruleset ; "'), 'containers[0].handle'],
    ['handle newline', (rs) => (rs.containers[1]!.handle = 'abc\nflush ruleset'), 'containers[1].handle'],
    ['handle brace', (rs) => (rs.containers[2]!.handle = 'a}b'), 'containers[2].handle'],
    ['ip', (rs) => (rs.containers[0]!.ip = '10.255.1.2 }'), 'containers[0].ip'],
    ['tag', (rs) => (rs.containers[0]!.tag = 70000), 'containers[0].tag'],
    ['egress missing', (rs) => (rs.containers[0]!.egress = 'nope'), 'containers[0].egress'],
    [
      'hostPort',
      (rs) => (rs.containers[1]!.netIn = [{ hostPort: 0, containerPort: 1 }]),
      'containers[1].netIn[0].hostPort',
    ],
    ['dup ip', (rs) => (rs.containers[1]!.ip = rs.containers[0]!.ip), 'containers[1].ip'],
    ['c2c ip', (rs) => (rs.c2c[0]!.dstIp = '1.2.3.4; drop'), 'c2c[0].dstIp'],
    ['c2c proto', (rs) => (rs.c2c[0]!.protocol = 'icmp' as 'tcp'), 'c2c[0].protocol'],
    ['overlay', (rs) => (rs.config.overlayNetwork = '10.0.0.0/8 }'), 'config.overlayNetwork'],
    ['dns', (rs) => (rs.config.dnsServers = ['8.8.8.8"']), 'config.dnsServers[0]'],
    ['rate', (rs) => (rs.config.logging.deniedPerSec = 0), 'config.logging.deniedPerSec'],
  ];
  for (const [name, mutate, field] of bad) {
    const rs = base();
    mutate(rs);
    assert.throws(
      () => renderFull(rs),
      (e: unknown) => e instanceof ValidationError && e.field === field,
      name,
    );
  }
});

test('asg chain names are safe identifiers for any hash; log prefixes stay below 64 bytes', () => {
  assert.equal(asgChainName('abc_123'), 'asg_abc_123');
  for (const h of ['a-b', 'x"y', 'fwd', '', 'é', 'a'.repeat(100), 'sha256:ab/cd+ef=']) {
    const name = asgChainName(h);
    assert.match(name, /^asgh?_[A-Za-z0-9_]+$/);
  }
  assert.notEqual(asgChainName('a-b'), asgChainName('a_b'));
  const handle = 'a'.repeat(128);
  assert.ok(Buffer.byteLength(`${logPrefix('DENY_C2C_', handle)} `) < 64);
  assert.equal(
    logPrefix('OK_', '3f1e0c2a-1b2c-4d5e-8f90-0123456789ab'),
    'OK_3f1e0c2a-1b2c-4d5e-8f90-0123456789ab',
  );
});

/** Elements named by `delete element` lines, by set. */
function deletedElements(script: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const l of script.split('\n')) {
    const m = /^delete element inet cfnet (\S+) \{ (.*) \}$/.exec(l);
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), ...m[2]!.split(', ')]);
  }
  return out;
}

const mutation = fc.record({
  drop: fc.array(fc.nat(39), { maxLength: 10 }),
  retag: fc.array(fc.tuple(fc.nat(39), fc.option(fc.integer({ min: 1, max: 65535 }), { nil: null })), {
    maxLength: 5,
  }),
  reasg: fc.array(fc.tuple(fc.nat(39), fc.nat(4)), { maxLength: 5 }),
  c2cDrop: fc.array(fc.nat(79), { maxLength: 10 }),
  c2cAdd: fc.array(
    fc.record({
      tag: fc.integer({ min: 1, max: 65535 }),
      ctr: fc.nat(39),
      lo: fc.integer({ min: 1, max: 60000 }),
    }),
    { maxLength: 5 },
  ),
  logging: fc.record({ asg: fc.boolean(), c2c: fc.boolean(), deniedPerSec: fc.integer({ min: 1, max: 10 }) }),
  denyAlways: fc.array(fc.tuple(fc.nat(255), fc.nat(255)), { maxLength: 3 }),
});

type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(rs: CellRuleSet, m: Mutation): CellRuleSet {
  const out = structuredClone(rs);
  for (const [i, tag] of m.retag) out.containers[i]!.tag = tag;
  for (const [i, h] of m.reasg) out.containers[i]!.egress = `h${h.toString(16).padStart(8, '0')}`;
  for (const a of m.c2cAdd) {
    out.c2c.push({
      srcTag: a.tag,
      dstIp: out.containers[a.ctr]!.ip,
      protocol: 'udp',
      ports: { start: a.lo, end: a.lo + 10 },
    });
  }
  const dropC2C = new Set(m.c2cDrop);
  out.c2c = out.c2c.filter((_, i) => !dropC2C.has(i));
  const drop = new Set(m.drop);
  const gone = new Set(out.containers.filter((_, i) => drop.has(i)).map((c) => c.ip));
  out.containers = out.containers.filter((_, i) => !drop.has(i));
  out.c2c = out.c2c.filter((a) => !gone.has(a.dstIp));
  out.config.logging = { ...out.config.logging, ...m.logging };
  out.config.denyNetworks.always = m.denyAlways.map(([a, b]) => ({
    family: 4,
    start: `192.0.2.${Math.min(a, b)}`,
    end: `192.0.2.${Math.max(a, b)}`,
  }));
  return out;
}

test('renderUpdate never deletes an element or chain absent from prev, and reaches next', () => {
  fc.assert(
    fc.property(mutation, mutation, (m1, m2) => {
      const prev = mutate(base(), m1);
      const next = mutate(base(), m2);
      const p = desiredState(prev);
      const n = desiredState(next);
      const script = renderUpdate(prev, next);
      for (const [set, keys] of deletedElements(script)) {
        const present = new Set([...p.sets.get(set)!.values()].map(elementKeyText));
        for (const k of keys) assert.ok(present.has(k), `delete of ${set} ${k} absent from prev`);
      }
      for (const l of script.split('\n')) {
        const m = /^delete chain inet cfnet (\S+)$/.exec(l);
        if (m) {
          assert.ok(p.chains.has(m[1]!), `delete of chain ${m[1]} absent from prev`);
          assert.ok(!n.chains.has(m[1]!));
        }
        assert.doesNotMatch(l, /^(delete|flush) (table|set|map)/); // element and chain work only
      }
      // replaying the script's element lines on prev's keys yields exactly next's keys
      const keys = new Map<string, Set<string>>();
      for (const [set, m] of p.sets) keys.set(set, new Set([...m.values()].map(elementKeyText)));
      for (const l of script.split('\n')) {
        const m = /^(add|delete) element inet cfnet (\S+) \{ (.*) \}$/.exec(l);
        if (!m) continue;
        const ks = keys.get(m[2]!)!;
        for (const e of m[3]!.split(', ')) {
          const k = e.split(' : ')[0]!.split(' comment ')[0]!;
          if (m[1] === 'add') ks.add(k);
          else assert.ok(ks.delete(k), `delete of ${k} not present at that point`);
        }
      }
      for (const [set, m] of n.sets) {
        assert.deepEqual([...keys.get(set)!].sort(), [...m.values()].map(elementKeyText).sort(), set);
      }
      assert.equal(diffStates(p, n).script, script);
      assert.equal(renderUpdate(next, next), '');
    }),
    { numRuns: 150 },
  );
});

test('an incremental change touches only what changed', () => {
  const prev = base();
  const next = structuredClone(prev);
  next.containers[3]!.egress = 'h00000001';
  const s = renderUpdate(prev, next);
  assert.equal(
    s,
    [
      `delete element inet cfnet ctr_asg { ${prev.containers[3]!.ip} }`,
      `add element inet cfnet ctr_asg { ${prev.containers[3]!.ip} : jump asg_h00000001 }`,
      '',
    ].join('\n'),
  );
  const grow = structuredClone(prev);
  grow.asgSets.h00000009 = [
    {
      protocol: 'udp',
      destinations: [{ family: 4, start: '192.0.2.1', end: '192.0.2.1' }],
      ports: [{ start: 53, end: 53 }],
      log: false,
    },
  ];
  grow.containers[0]!.egress = 'h00000009';
  const s2 = renderUpdate(prev, grow);
  assert.match(
    s2,
    /^add chain inet cfnet asg_h00000009\nflush chain inet cfnet asg_h00000009\nadd rule inet cfnet asg_h00000009 ip daddr 192\.0\.2\.1 udp dport 53 accept\n/,
  );
});

test('failingLine reads nft error positions', () => {
  assert.equal(failingLine('/dev/stdin:12:5-9: Error: syntax error, unexpected fwd'), 12);
  assert.equal(failingLine('Error: Could not process rule: No such file or directory'), null);
});

test('memoised ASG chains follow every change of the rules and the logging switch', () => {
  const rs = base();
  const name = rs.containers[0]!.egress;
  const chain = (r: CellRuleSet) => desiredState(r).chains.get(`asg_${name}`)!;
  const first = chain(rs);
  assert.equal(chain(structuredClone(rs)), first, 'same rules: the memoised chain is reused');
  // a changed port, the per-rule log flag and the global ASG logging switch each render anew
  const port = structuredClone(rs);
  port.asgSets[name]![0] = {
    protocol: 'tcp',
    destinations: [{ family: 4, start: '192.0.2.7', end: '192.0.2.7' }],
    ports: [{ start: 4444, end: 4444 }],
    log: false,
  };
  assert.ok(chain(port).rules.some((l) => l.startsWith('ip daddr 192.0.2.7 tcp dport 4444 accept')));
  const logged = structuredClone(port);
  logged.asgSets[name]![0]!.log = true;
  assert.ok(chain(logged).rules.some((l) => l.includes('tcp dport 4444 ip saddr vmap @log_ok')));
  const global = structuredClone(port);
  global.config.logging.asg = true;
  assert.ok(chain(global).rules.every((l) => !/ accept( comment|$)/.test(l)));
  assert.notEqual(chain(global).marker, chain(port).marker);
  // a rule list that was valid once is validated again when it turns invalid
  const bad = structuredClone(port);
  bad.asgSets[name]![0]!.ports = [{ start: 70000, end: 70000 }];
  assert.throws(() => desiredState(bad), ValidationError);
  assert.equal(chain(port).marker, chain(structuredClone(port)).marker);
});

test('c2c ranges are aligned blocks in the hash set of their protocol and block size; ranges needing more than C2C_BLOCK_BUDGET blocks one interval element', () => {
  const rs = sampleRuleSet({ containers: 1, asgSets: 1, rulesPerSet: 1, c2cPerContainer: 0 });
  const ip = rs.containers[0]!.ip;
  rs.c2c = [
    { srcTag: 7, dstIp: ip, protocol: 'tcp', ports: { start: 9024, end: 9055 } }, // 32 ports, aligned
    { srcTag: 7, dstIp: ip, protocol: 'tcp', ports: { start: 8090, end: 8095 } },
    { srcTag: 7, dstIp: ip, protocol: 'udp', ports: { start: 9000, end: 9032 } }, // 33 ports, 4 blocks
    { srcTag: 8, dstIp: ip, protocol: 'udp', ports: { start: 53, end: 53 } },
    { srcTag: 8, dstIp: ip, protocol: 'tcp', ports: { start: 1, end: 65535 } }, // 2,052 blocks
  ];
  const state = desiredState(rs);
  const keys = (set: string) =>
    [...state.sets.get(set)!.values()].map((e) => e.key.map(atomId).join(' ')).sort();
  assert.deepEqual(keys('c2c_tcp_32'), [`0x00000007 ${ip} 9024`]);
  assert.deepEqual(keys('c2c_tcp_2'), [`0x00000007 ${ip} 8090`]);
  assert.deepEqual(keys('c2c_tcp_4'), [`0x00000007 ${ip} 8092`]);
  assert.deepEqual(keys('c2c_tcp'), []);
  // 9000-9032: 9000/8, 9008/16, 9024/8, 9032/1
  assert.deepEqual(keys('c2c_udp_8'), [`0x00000007 ${ip} 9000`, `0x00000007 ${ip} 9024`]);
  assert.deepEqual(keys('c2c_udp_16'), [`0x00000007 ${ip} 9008`]);
  assert.deepEqual(keys('c2c_udp'), [`0x00000007 ${ip} 9032`, `0x00000008 ${ip} 53`]);
  assert.deepEqual(keys('c2c_range'), [`0x00000008 ${ip} tcp 1-65535`]);
});

test('a rule set mutated in place and rendered again gives what a fresh copy gives (the per-container memo compares content)', () => {
  const rs = sampleRuleSet({ containers: 6, asgSets: 2, rulesPerSet: 3, c2cPerContainer: 1 });
  const same = (what: string) =>
    assert.deepEqual(renderFull(rs), renderFull(structuredClone(rs)), `after ${what}`);
  same('nothing');
  rs.containers[0]!.tag = 4242;
  same('a tag change');
  rs.containers[1]!.netIn.push({ hostPort: 61999, containerPort: 9999 });
  same('a NetIn mapping added to the same list');
  rs.containers[2]!.workload = 'staging';
  same('a workload change');
  rs.config.logging.c2c = !rs.config.logging.c2c;
  same('a logging switch in the same config object');
  rs.asgSets[rs.containers[3]!.egress]![0]!.log = true;
  same('a logged rule in the same rule list');
  const asgRule = rs.asgSets[rs.containers[3]!.egress]!.find(
    (r) => r.protocol === 'tcp' || r.protocol === 'udp',
  )!;
  asgRule.ports[0]!.end = asgRule.ports[0]!.start + 7;
  same('a port range widened in the same ASG rule');
  asgRule.destinations[0]!.start = asgRule.destinations[0]!.end;
  same('a destination narrowed in the same ASG rule');
  asgRule.protocol = asgRule.protocol === 'tcp' ? 'udp' : 'tcp';
  same('a protocol changed in the same ASG rule');
  rs.c2c[0]!.ports.end += 3;
  same('a c2c port range widened in the same entry');
  rs.c2c[0]!.srcTag = 77;
  same('a c2c source tag changed in the same entry');
  rs.c2c[0]!.protocol = rs.c2c[0]!.protocol === 'tcp' ? 'udp' : 'tcp';
  same('a c2c protocol changed in the same entry');
  rs.c2c[0]!.dstIp = rs.containers[5]!.ip;
  same('a c2c destination changed in the same entry');
  rs.c2c.push({ ...rs.c2c[0]!, ports: { start: 1, end: 65535 } });
  same("a c2c entry joining another one's group in the same list");
  const asgPorts = asgRule.ports[0]!.start;
  asgRule.ports[0]!.start = 70000;
  assert.throws(() => desiredState(rs), ValidationError, 'an invalid ASG port is caught on a memo hit too');
  asgRule.ports[0]!.start = asgPorts;
  rs.containers[4]!.tag = '5' as unknown as number;
  assert.throws(() => desiredState(rs), ValidationError, 'an invalid value is caught on a memo hit too');
});

test('every element of a desired state is stored under its elementId (c2c ids are built as one string)', () => {
  const rs = sampleRuleSet({ containers: 12, asgSets: 2, rulesPerSet: 3, c2cPerContainer: 3 });
  rs.c2c.push({ srcTag: 9, dstIp: rs.containers[0]!.ip, protocol: 'udp', ports: { start: 100, end: 2000 } });
  for (const state of [desiredState(rs), desiredState(rs)]) {
    let n = 0;
    for (const m of state.sets.values()) {
      for (const [id, e] of m) {
        assert.equal(id, elementId(e));
        n++;
      }
    }
    assert.ok(
      state.sets.get('c2c_tcp')!.size > 0 &&
        state.sets.get('c2c_tcp_4')!.size > 0 &&
        state.sets.get('c2c_udp')!.size > 0 &&
        state.sets.get('c2c_range')!.size === 1,
      `${n} elements`,
    );
  }
});

test('a memoised ASG chain is not reused when a skipped hole in its rule list becomes an undefined rule', () => {
  const rs = sampleRuleSet({ containers: 2, asgSets: 1, rulesPerSet: 3, c2cPerContainer: 0 });
  const rules = rs.asgSets[rs.containers[0]!.egress]!;
  delete rules[1]; // a hole: forEach (and so the chain) skips it
  assert.doesNotThrow(() => desiredState(rs));
  rules[1] = undefined as unknown as EgressRule;
  assert.throws(() => desiredState(rs), ValidationError);
});
