import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CfnetError } from '../../src/lib/errors.js';
import { normalizeRules, ruleSetHash } from '../../src/model/canonical.js';
import { RuleSetPatchError } from '../../src/model/errors.js';
import { allAddresses } from '../../src/model/ip.js';
import {
  applyPatch,
  diffRuleSets,
  emptyRuleSet,
  isEmptyPatch,
  ruleSetsEqual,
  sortRuleSet,
} from '../../src/model/ruleset.js';
import {
  type C2CAllow,
  type CellConfig,
  type CellContainer,
  type CellRuleSet,
  DEFAULT_CELL_CONFIG,
  type EgressRule,
  type IpRange,
  type PortRange,
} from '../../src/model/types.js';

const dns: EgressRule = {
  protocol: 'udp',
  destinations: [allAddresses(4)],
  ports: [{ start: 53, end: 53 }],
  log: false,
};
const web: EgressRule = {
  protocol: 'tcp',
  destinations: [allAddresses(4)],
  ports: [{ start: 443, end: 443 }],
  log: false,
};
const H_DNS = ruleSetHash([dns]);
const H_WEB = ruleSetHash([dns, web]);

function container(
  handle: string,
  ip: string,
  egress: string,
  extra: Partial<CellContainer> = {},
): CellContainer {
  return {
    handle,
    ip,
    appGuid: 'app-1',
    spaceGuid: 'space-1',
    orgGuid: 'org-1',
    workload: 'app',
    tag: 1,
    egress,
    netIn: [],
    ...extra,
  };
}

function baseSet(): CellRuleSet {
  return {
    cellId: 'cell-1',
    version: 3,
    containers: [container('h-b', '10.255.1.3', H_DNS), container('h-a', '10.255.1.2', H_WEB)],
    asgSets: { [H_WEB]: normalizeRules([dns, web]), [H_DNS]: [dns] },
    c2c: [
      { srcTag: 2, dstIp: '10.255.1.10', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      { srcTag: 2, dstIp: '10.255.1.9', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      { srcTag: 1, dstIp: '10.255.1.9', protocol: 'udp', ports: { start: 53, end: 53 } },
    ],
    config: DEFAULT_CELL_CONFIG,
  };
}

describe('ruleset basics', () => {
  it('emptyRuleSet is version 0 with a private copy of the config', () => {
    const rs = emptyRuleSet('cell-9');
    assert.deepEqual(rs, {
      cellId: 'cell-9',
      version: 0,
      containers: [],
      asgSets: {},
      c2c: [],
      config: DEFAULT_CELL_CONFIG,
    });
    rs.config.dnsServers.push('1.1.1.1');
    assert.deepEqual(DEFAULT_CELL_CONFIG.dnsServers, ['169.254.0.2']);
  });

  it('sortRuleSet orders containers, netIn, asgSets keys and c2c (IPs numerically) and drops duplicate c2c', () => {
    const rs = baseSet();
    rs.containers[0]!.netIn = [
      { hostPort: 61002, containerPort: 8080 },
      { hostPort: 61001, containerPort: 2222 },
    ];
    rs.c2c.push({ ...rs.c2c[0]!, ports: { ...rs.c2c[0]!.ports } });
    const s = sortRuleSet(rs);
    assert.deepEqual(
      s.containers.map((c) => c.handle),
      ['h-a', 'h-b'],
    );
    assert.deepEqual(
      s.containers[1]!.netIn.map((n) => n.hostPort),
      [61001, 61002],
    );
    assert.deepEqual(Object.keys(s.asgSets), [H_DNS, H_WEB].sort());
    assert.deepEqual(
      s.c2c.map((e) => `${e.srcTag}/${e.dstIp}`),
      ['1/10.255.1.9', '2/10.255.1.9', '2/10.255.1.10'],
    );
    assert.equal(rs.containers[0]!.handle, 'h-b', 'input not modified');
  });
});

describe('diffRuleSets / applyPatch', () => {
  it('carries only what changed', () => {
    const a = baseSet();
    const b = structuredClone(a);
    b.version = 4;
    b.containers[0]!.netIn = [{ hostPort: 61000, containerPort: 8080 }]; // h-b changed
    b.containers.push(container('h-c', '10.255.1.4', H_DNS)); // new
    b.c2c = b.c2c.slice(1); // one removed
    b.c2c.push({ srcTag: 3, dstIp: '10.255.1.4', protocol: 'tcp', ports: { start: 1, end: 65535 } });
    const p = diffRuleSets(a, b);
    assert.equal(p.from, 3);
    assert.equal(p.to, 4);
    assert.deepEqual(
      p.containers.upsert.map((c) => c.handle),
      ['h-b', 'h-c'],
    );
    assert.deepEqual(p.containers.remove, []);
    assert.deepEqual(p.asgSets, { upsert: {}, remove: [] });
    assert.equal(p.c2c.add.length, 1);
    assert.equal(p.c2c.remove.length, 1);
    assert.equal(p.config, undefined);
    assert.deepEqual(applyPatch(a, p), sortRuleSet(b));
  });

  it('removes an asg set once no container uses it, and sends config only when it changed', () => {
    const a = baseSet();
    const b = structuredClone(a);
    b.version = 9;
    b.containers = b.containers.filter((c) => c.handle !== 'h-a');
    delete b.asgSets[H_WEB];
    b.config = { ...b.config, logging: { ...b.config.logging, asg: true } };
    const p = diffRuleSets(a, b);
    assert.deepEqual(p.containers.remove, ['h-a']);
    assert.deepEqual(p.asgSets.remove, [H_WEB]);
    assert.deepEqual(p.config, b.config);
    const applied = applyPatch(a, p);
    assert.deepEqual(applied, sortRuleSet(b));
    assert.equal(applied.version, 9);
  });

  it('an unchanged rule set gives an empty patch', () => {
    const a = baseSet();
    const b = { ...structuredClone(a), version: 4 };
    b.containers.reverse();
    const p = diffRuleSets(a, b);
    assert.equal(isEmptyPatch(p), true);
    assert.equal(ruleSetsEqual(a, b), true);
    assert.equal(isEmptyPatch(diffRuleSets(a, { ...b, c2c: [] })), false);
    assert.equal(ruleSetsEqual(a, { ...b, c2c: [] }), false);
  });

  it('throws typed errors for a wrong base version or cell', () => {
    const a = baseSet();
    const b = { ...structuredClone(a), version: 4 };
    const p = diffRuleSets(a, b);
    const err = (() => {
      try {
        applyPatch({ ...a, version: 2 }, p);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof RuleSetPatchError);
    assert.ok(err instanceof CfnetError);
    assert.equal(err.code, 'CFNET_PATCH_VERSION_MISMATCH');
    assert.deepEqual(err.context, { cellId: 'cell-1', from: 3, to: 4, version: 2 });
    assert.match(err.message, /patch 3→4 does not apply to version 2 of cell cell-1/);
    assert.throws(
      () => applyPatch({ ...a, cellId: 'cell-2' }, p),
      (e: unknown) => e instanceof RuleSetPatchError && e.code === 'CFNET_PATCH_CELL_MISMATCH',
    );
  });

  it('refuses to remove an asg set a container still references', () => {
    const a = baseSet();
    const p = diffRuleSets(a, { ...structuredClone(a), version: 4 });
    p.asgSets.remove = [H_DNS]; // h-b still uses it
    assert.throws(
      () => applyPatch(a, p),
      (e: unknown) =>
        e instanceof RuleSetPatchError &&
        e.code === 'CFNET_PATCH_DANGLING_ASG_SET' &&
        e.context.handle === 'h-b' &&
        /references asg set/.test(e.message),
    );
    const p2 = diffRuleSets(a, { ...structuredClone(a), version: 4 });
    p2.containers.upsert = [container('h-new', '10.255.1.77', 'no-such-set')];
    assert.throws(
      () => applyPatch(a, p2),
      (e: unknown) => e instanceof RuleSetPatchError && e.context.handle === 'h-new',
    );
    // egress '' means "no asg set": allowed
    const p3 = diffRuleSets(a, { ...structuredClone(a), version: 4 });
    p3.containers.upsert = [container('h-none', '10.255.1.78', '')];
    assert.equal(applyPatch(a, p3).containers.length, 3);
  });
});

// ---- generated rule sets ----------------------------------------------------------------------

// Plain objects only (fast-check may otherwise build null-prototype records, which JSON cannot carry).
function rec<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true }) as unknown as fc.Arbitrary<T>;
}

const ruleArb: fc.Arbitrary<EgressRule> = fc.oneof(
  rec<EgressRule>({
    protocol: fc.constantFrom('tcp' as const, 'udp' as const),
    destinations: fc.constantFrom<IpRange[]>(
      [allAddresses(4)],
      [{ family: 4 as const, start: '10.0.0.0', end: '10.0.0.255' }],
    ),
    ports: fc.integer({ min: 1, max: 5 }).map((p) => [{ start: p, end: p }]),
    log: fc.boolean(),
  }),
  rec<EgressRule>({
    protocol: fc.constant('icmp' as const),
    destinations: fc.constant<IpRange[]>([allAddresses(4)]),
    ports: fc.constant<PortRange[]>([]),
    icmp: rec({ type: fc.constantFrom(-1, 0, 8), code: fc.constantFrom(-1, 0) }),
    log: fc.constant(false),
  }),
);
const ruleListArb = fc.array(ruleArb, { maxLength: 3 }).map(normalizeRules);

const c2cArb: fc.Arbitrary<C2CAllow> = rec({
  srcTag: fc.integer({ min: 1, max: 4 }),
  dstIp: fc.integer({ min: 1, max: 6 }).map((n) => `10.255.1.${n}`),
  protocol: fc.constantFrom('tcp' as const, 'udp' as const),
  ports: fc.constantFrom({ start: 8080, end: 8080 }, { start: 1, end: 65535 }),
});

const configArb: fc.Arbitrary<CellConfig> = fc
  .record({ asgLog: fc.boolean(), dns: fc.constantFrom<string[]>(['169.254.0.2'], ['10.0.0.2', '10.0.0.3']) })
  .map(({ asgLog, dns }) => ({
    ...DEFAULT_CELL_CONFIG,
    dnsServers: dns,
    logging: { ...DEFAULT_CELL_CONFIG.logging, asg: asgLog },
  }));

function containerArb(handles: string[], egressKeys: string[]): fc.Arbitrary<CellContainer[]> {
  if (handles.length === 0) return fc.constant([]);
  return fc.uniqueArray(fc.constantFrom(...handles), { maxLength: handles.length }).chain((hs) =>
    fc.tuple(
      ...hs.map((handle) =>
        rec({
          handle: fc.constant(handle),
          ip: fc.integer({ min: 1, max: 6 }).map((n) => `10.255.1.${n}`),
          appGuid: fc.constantFrom('app-1', 'app-2', ''),
          spaceGuid: fc.constantFrom('space-1', 'space-2'),
          orgGuid: fc.constant('org-1'),
          workload: fc.constantFrom('app' as const, 'task' as const, 'staging' as const),
          tag: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
          egress: fc.constantFrom('', ...egressKeys),
          netIn: fc.uniqueArray(
            rec({
              hostPort: fc.integer({ min: 61000, max: 61004 }),
              containerPort: fc.constantFrom(8080, 2222),
            }),
            { maxLength: 2, selector: (n) => n.hostPort },
          ),
        }),
      ),
    ),
  );
}

const HANDLES = ['h0', 'h1', 'h2', 'h3', 'h4', 'h5'];

const ruleSetArb: fc.Arbitrary<CellRuleSet> = fc
  .tuple(fc.array(ruleListArb, { maxLength: 4 }), fc.nat({ max: 1000 }), configArb)
  .chain(([lists, version, config]) => {
    const asgSets: Record<string, EgressRule[]> = {};
    for (const l of lists) asgSets[ruleSetHash(l)] = l;
    return fc
      .tuple(containerArb(HANDLES, Object.keys(asgSets)), fc.array(c2cArb, { maxLength: 8 }))
      .map(
        ([containers, c2c]): CellRuleSet => ({ cellId: 'cell-7', version, containers, asgSets, c2c, config }),
      );
  });

/** b derived from a: keeps some of a's content (so diffs are partial), changes and adds the rest. */
function successorArb(a: CellRuleSet): fc.Arbitrary<CellRuleSet> {
  return fc
    .record({
      bump: fc.integer({ min: 1, max: 50 }),
      keepSets: fc.array(fc.boolean(), {
        minLength: Object.keys(a.asgSets).length,
        maxLength: Object.keys(a.asgSets).length,
      }),
      newSets: fc.array(ruleListArb, { maxLength: 2 }),
      keepContainers: fc.array(fc.boolean(), {
        minLength: a.containers.length,
        maxLength: a.containers.length,
      }),
      keepC2C: fc.array(fc.boolean(), { minLength: a.c2c.length, maxLength: a.c2c.length }),
      newC2C: fc.array(c2cArb, { maxLength: 4 }),
      config: fc.option(configArb, { nil: undefined }),
    })
    .chain((m) => {
      const asgSets: Record<string, EgressRule[]> = {};
      Object.keys(a.asgSets).forEach((k, i) => {
        if (m.keepSets[i]) asgSets[k] = a.asgSets[k]!;
      });
      for (const l of m.newSets) asgSets[ruleSetHash(l)] = l;
      const keys = Object.keys(asgSets);
      const kept = a.containers
        .filter((_, i) => m.keepContainers[i])
        .map((c) => (c.egress === '' || c.egress in asgSets ? c : { ...c, egress: keys[0] ?? '' }));
      const free = HANDLES.filter((h) => !kept.some((c) => c.handle === h));
      return fc
        .tuple(
          containerArb(free, keys),
          fc.array(fc.boolean(), { minLength: kept.length, maxLength: kept.length }),
        )
        .map(
          ([added, retag]): CellRuleSet => ({
            cellId: a.cellId,
            version: a.version + m.bump,
            containers: [
              ...kept.map((c, i) => (retag[i] ? { ...c, tag: c.tag === null ? 1 : null } : c)),
              ...added,
            ],
            asgSets,
            c2c: [...a.c2c.filter((_, i) => m.keepC2C[i]), ...m.newC2C],
            config: m.config ?? a.config,
          }),
        );
    });
}

describe('ruleset properties', () => {
  const pairArb = ruleSetArb.chain((a) => fc.tuple(fc.constant(a), successorArb(a)));

  it('applyPatch(a, diffRuleSets(a, b)) deep-equals b (sorted), also after a JSON round trip', () => {
    fc.assert(
      fc.property(pairArb, ([a, b]) => {
        const patch = diffRuleSets(a, b);
        const want = sortRuleSet(b);
        assert.deepEqual(applyPatch(a, patch), want);
        assert.deepEqual(applyPatch(a, JSON.parse(JSON.stringify(patch))), want);
        // the patch is minimal for containers: nothing unchanged is re-sent
        const before = new Map(
          a.containers.map((c) => [
            c.handle,
            JSON.stringify(sortRuleSet({ ...a, containers: [c] }).containers[0]),
          ]),
        );
        for (const c of patch.containers.upsert) {
          assert.notEqual(before.get(c.handle), JSON.stringify(c));
        }
        // and an asg set is removed only when b has no container that uses it
        for (const k of patch.asgSets.remove) assert.ok(!b.containers.some((c) => c.egress === k));
      }),
      { numRuns: 200 },
    );
  });

  it('diff of a rule set with itself is empty; applying it only moves the version', () => {
    fc.assert(
      fc.property(ruleSetArb, (a) => {
        const next = { ...a, version: a.version + 1, containers: [...a.containers].reverse() };
        const patch = diffRuleSets(a, next);
        assert.equal(isEmptyPatch(patch), true);
        assert.deepEqual(applyPatch(a, patch), { ...sortRuleSet(a), version: a.version + 1 });
      }),
      { numRuns: 200 },
    );
  });

  it('patches compose: a→b→c equals a→c', () => {
    const tripleArb = pairArb.chain(([a, b]) => fc.tuple(fc.constant(a), fc.constant(b), successorArb(b)));
    fc.assert(
      fc.property(tripleArb, ([a, b, c]) => {
        const viaB = applyPatch(applyPatch(a, diffRuleSets(a, b)), diffRuleSets(b, c));
        assert.deepEqual(viaB, applyPatch(a, diffRuleSets(a, c)));
      }),
      { numRuns: 200 },
    );
  });
});
