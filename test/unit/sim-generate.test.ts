/**
 * Foundation generation: determinism (same seed → same world hash), the size table, addresses,
 * CC's egress compilation (A.6) and the v3 rule validator (B.2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/lib/errors.js';
import { rfc3339Nanos } from '../../src/sim/capi.js';
import { cellSubnet, generateWorld } from '../../src/sim/generate.js';
import { Prng } from '../../src/sim/prng.js';
import { validateRules } from '../../src/sim/rules.js';
import { summarize, worldHash } from '../../src/sim/summary.js';
import {
  type CcRule,
  compileEgressRules,
  FOUNDATION_SIZES,
  type SimSecurityGroup,
  tagHex,
} from '../../src/sim/world.js';

function group(guid: string, id: number, rules: CcRule[]): SimSecurityGroup {
  return {
    guid,
    id,
    name: guid,
    createdAt: '2024-01-01T00:00:00Z',
    updatedAt: '2024-01-01T00:00:00Z',
    rules,
    runningDefault: true,
    stagingDefault: false,
    runningSpaces: new Set(),
    stagingSpaces: new Set(),
  };
}

describe('sim generation', () => {
  it('is deterministic: same seed and size → same hash; another seed → another world', () => {
    const a = worldHash(generateWorld(7, 'small'));
    const b = worldHash(generateWorld(7, 'small'));
    const c = worldHash(generateWorld(8, 'small'));
    assert.equal(a, b);
    assert.notEqual(a, c);
    assert.match(a, /^[0-9a-f]{64}$/);
  });

  it('small matches the design table exactly', () => {
    const w = generateWorld(1, 'small');
    const s = summarize(w);
    const spec = FOUNDATION_SIZES.small;
    assert.equal(s.counts.cells, spec.cells);
    assert.equal(s.counts.actualLrps, spec.containers);
    assert.equal(s.counts.runningActualLrps, spec.containers);
    assert.equal(s.counts.apps, spec.apps);
    assert.equal(s.counts.desiredLrps, spec.apps);
    assert.equal(s.counts.spaces, spec.spaces);
    assert.equal(s.counts.securityGroups, spec.asgs);
    assert.equal(s.counts.asgRules, spec.asgRules);
    assert.equal(s.counts.policies, spec.policies);
    // At least one global running and one global staging group, and every space has a bound group.
    const groups = [...w.securityGroups.values()];
    assert.ok(groups.some((g) => g.runningDefault));
    assert.ok(groups.some((g) => g.stagingDefault));
    for (const space of w.spaces.keys())
      assert.ok(
        groups.some((g) => g.runningSpaces.has(space)),
        space,
      );
  });

  it('medium is generated with the table counts and a group bound to more than 50 spaces', () => {
    const w = generateWorld(3, 'medium');
    const s = summarize(w).counts;
    const spec = FOUNDATION_SIZES.medium;
    assert.deepEqual(
      [s.cells, s.actualLrps, s.apps, s.spaces, s.securityGroups, s.asgRules, s.policies],
      [spec.cells, spec.containers, spec.apps, spec.spaces, spec.asgs, spec.asgRules, spec.policies],
    );
    assert.ok([...w.securityGroups.values()].some((g) => g.runningSpaces.size > 50));
    // Unique container IPs inside each cell's subnet, unique host ports per cell.
    const ips = new Set<string>();
    const hostPorts = new Set<string>();
    for (const a of w.actualLrps.values()) {
      assert.ok(!ips.has(a.instanceAddress), `duplicate IP ${a.instanceAddress}`);
      ips.add(a.instanceAddress);
      const cell = w.cells.get(a.cellId);
      assert.ok(cell);
      assert.equal(a.address, cell.address);
      const [net] = cell.subnet.split('/');
      assert.equal(a.instanceAddress.split('.').slice(0, 3).join('.'), net?.split('.').slice(0, 3).join('.'));
      for (const p of a.ports) {
        const key = `${a.cellId}:${p.hostPort}`;
        assert.ok(!hostPorts.has(key));
        hostPorts.add(key);
        assert.ok(p.hostPort >= 61000);
      }
      assert.deepEqual(
        a.ports.map((p) => p.containerPort),
        [8080, 2222],
      );
    }
    // Process guids are `<process guid>-<version>`: 73 characters; the web process guid is the app guid.
    for (const d of w.desiredLrps.values()) {
      assert.equal(d.processGuid.length, 73);
      assert.ok(d.processGuid.startsWith(d.appGuid));
      assert.equal(d.network.policy_group_id, d.appGuid);
      assert.equal(d.network.container_workload, 'app');
    }
    // Tags: 1..n, unique.
    const tags = [...w.tags.values()].map((t) => t.tag);
    assert.equal(new Set(tags).size, tags.length);
  });

  it('large generates its 250,000 instances in a few seconds of CPU', () => {
    // CPU time, not wall time: the shared 2-core machine may be loaded by other suites.
    const t0 = process.cpuUsage();
    const w = generateWorld(1, 'large');
    const used = process.cpuUsage(t0);
    const ms = (used.user + used.system) / 1000;
    const s = summarize(w).counts;
    // docs/architecture.md, "Foundation sizes": 2,500 cells, 250,000 containers, 25,000 apps, 2,500 spaces, 1,000 ASGs (20,000 rules), 50,000 policies
    assert.deepEqual(
      [s.cells, s.actualLrps, s.apps, s.spaces, s.securityGroups, s.asgRules, s.policies],
      [2_500, 250_000, 25_000, 2_500, 1_000, 20_000, 50_000],
    );
    assert.equal(w.overlayNetwork, '10.32.0.0/11');
    assert.ok(ms < 15_000, `large generation took ${ms.toFixed(0)} ms of CPU`);
  });

  it('cell subnets are unique and valid for large cell counts', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 2500; i++) {
      const { subnet, overlay } = cellSubnet(i, 2500);
      assert.equal(overlay, '10.32.0.0/11');
      assert.match(subnet, /^10\.(3[2-9]|[4-5]\d|6[0-3])\.\d{1,3}\.\d{1,3}\/23$/);
      assert.ok(!seen.has(subnet));
      seen.add(subnet);
      const third = Number(subnet.split('.')[2]);
      assert.equal(third % 2, 0, `${subnet} is not /23-aligned`);
    }
    assert.equal(cellSubnet(0, 3).subnet, '10.255.1.0/24');
  });

  it('the PRNG is deterministic and uuids have the right shape', () => {
    const a = new Prng(42);
    const b = new Prng(42);
    const xs = Array.from({ length: 5 }, () => a.uuid());
    assert.deepEqual(
      xs,
      Array.from({ length: 5 }, () => b.uuid()),
    );
    for (const u of xs)
      assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.match(new Prng(1).instanceGuid(), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}$/);
  });
});

describe('sim egress compilation (CC EgressRules)', () => {
  it('merges identical rules with sorted annotations, orders log rules last, maps ports and icmp', () => {
    const shared: CcRule = { protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' };
    const rules = compileEgressRules([
      group('bbbb', 1, [
        { protocol: 'tcp', destination: '10.1.1.1', ports: '80', log: true },
        { ...shared },
        { protocol: 'udp', destination: '1.1.1.1-1.1.1.9', ports: ' 5000 - 5100 ' },
      ]),
      group('aaaa', 2, [
        { ...shared },
        { protocol: 'icmp', destination: '0.0.0.0/0', type: 8, code: -1 },
        { protocol: 'all', destination: '192.168.0.0/16' },
        { protocol: 'tcp', destination: '10.2.2.2', ports: '80, 443,8080' },
      ]),
    ]);
    assert.deepEqual(rules, [
      {
        protocol: 'tcp',
        destinations: ['10.0.0.0/8'],
        ports: [443],
        annotations: ['security_group_id:aaaa', 'security_group_id:bbbb'],
      },
      {
        protocol: 'udp',
        destinations: ['1.1.1.1-1.1.1.9'],
        portRange: { start: 5000, end: 5100 },
        annotations: ['security_group_id:bbbb'],
      },
      {
        protocol: 'icmp',
        destinations: ['0.0.0.0/0'],
        icmpInfo: { type: 8, code: -1 },
        annotations: ['security_group_id:aaaa'],
      },
      { protocol: 'all', destinations: ['192.168.0.0/16'], annotations: ['security_group_id:aaaa'] },
      {
        protocol: 'tcp',
        destinations: ['10.2.2.2'],
        ports: [80, 443, 8080],
        annotations: ['security_group_id:aaaa'],
      },
      {
        protocol: 'tcp',
        destinations: ['10.1.1.1'],
        ports: [80],
        log: true,
        annotations: ['security_group_id:bbbb'],
      },
    ]);
  });

  it('the world snapshots compiled rules per space and recompiles after an ASG change', () => {
    const w = generateWorld(1, 'small');
    const space = [...w.spaces.keys()][0] as string;
    const first = w.egressRulesFor(space, 'running');
    assert.equal(w.egressRulesFor(space, 'running'), first, 'cached');
    const g = [...w.securityGroups.values()].find((x) => x.runningDefault) as SimSecurityGroup;
    w.putSecurityGroup({
      ...g,
      rules: [...g.rules, { protocol: 'tcp', destination: '8.8.8.8', ports: '853' }],
    });
    const second = w.egressRulesFor(space, 'running');
    assert.notEqual(second, first);
    assert.ok(second.some((r) => r.destinations[0] === '8.8.8.8'));
  });
});

describe('sim helpers', () => {
  it('validates rules like CC v3 and names the field', () => {
    validateRules([
      { protocol: 'tcp', destination: '10.0.0.1-10.0.0.9', ports: '80,443' },
      { protocol: 'icmp', destination: '0.0.0.0/0', type: -1, code: -1 },
      { protocol: 'all', destination: '1.2.3.4', log: false, description: 'x' },
    ]);
    const cases: [unknown, string][] = [
      [[{ protocol: 'tcp', destination: '10.0.0.9-10.0.0.1', ports: '80' }], 'rules[0].destination'],
      [[{ protocol: 'tcp', destination: '10.0.0.0/33', ports: '80' }], 'rules[0].destination'],
      [[{ protocol: 'tcp', destination: '010.0.0.1', ports: '80' }], 'rules[0].destination'],
      [[{ protocol: 'udp', destination: '1.1.1.1', ports: '5000-4000' }], 'rules[0].ports'],
      [[{ protocol: 'all', destination: '1.1.1.1', ports: '80' }], 'rules[0].ports'],
      [[{ protocol: 'icmp', destination: '1.1.1.1', type: 256, code: 0 }], 'rules[0].type'],
      [[{ protocol: 'sctp', destination: '1.1.1.1' }], 'rules[0].protocol'],
      [[{ protocol: 'all', destination: '1.1.1.1', foo: 1 }], 'rules[0]'],
    ];
    for (const [rules, field] of cases) {
      assert.throws(
        () => validateRules(rules),
        (err: unknown) => err instanceof ValidationError && err.field === field,
        JSON.stringify(rules),
      );
    }
  });

  it('formats tags and asg_latest_update like the real systems', () => {
    assert.equal(tagHex(1), '0001');
    assert.equal(tagHex(0xbeef), 'BEEF');
    assert.equal(rfc3339Nanos(1_795_360_672_895_914_905n), '2026-11-22T15:17:52.895914905+00:00');
    assert.equal(rfc3339Nanos(0n), '1970-01-01T00:00:00.000000000+00:00');
  });
});
