import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { shortHash } from '../../src/model/canonical.js';
import { applyPatch, c2cKey, diffRuleSets, ruleSetsEqual, sortRuleSet } from '../../src/model/ruleset.js';
import { type CellRuleSet, DEFAULT_CELL_CONFIG, type EgressRule } from '../../src/model/types.js';
import { composeEntries, diffSortedRuleSets, makeLogEntry } from '../../src/state/compose.js';
import { EncodedRuleSet, ruleSetHash, serializeRuleSet } from '../../src/state/ruleset-store.js';

const rulesA: EgressRule[] = [
  {
    protocol: 'tcp',
    destinations: [{ family: 4, start: '10.0.0.0', end: '10.0.0.255' }],
    ports: [{ start: 443, end: 443 }],
    log: false,
  },
];
const rulesB: EgressRule[] = [
  { protocol: 'all', destinations: [{ family: 4, start: '1.1.1.1', end: '1.1.1.1' }], ports: [], log: false },
];

const arbRuleSet = (version: number) =>
  fc
    .record({
      handles: fc.uniqueArray(fc.constantFrom('h1', 'h2', 'h3', 'h4'), { maxLength: 4 }),
      egress: fc.array(fc.constantFrom('a', 'b'), { minLength: 4, maxLength: 4 }),
      hostPort: fc.array(fc.integer({ min: 61000, max: 61002 }), { minLength: 4, maxLength: 4 }),
      c2c: fc.uniqueArray(fc.tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 2, max: 4 })), {
        maxLength: 5,
        selector: (t) => `${t[0]}-${t[1]}`,
      }),
      dns: fc.constantFrom('169.254.0.2', '10.0.0.2'),
      // the source tag table: apps joining, leaving and changing tag between versions
      tags: fc.dictionary(
        fc.constantFrom('app-1', 'app-2', 'app-3', 'app-4'),
        fc.integer({ min: 1, max: 3 }),
      ),
    })
    .map(({ handles, egress, hostPort, c2c, dns, tags }): CellRuleSet => {
      const containers = handles.map((h, i) => ({
        handle: h,
        ip: `10.255.1.${Number(h.slice(1)) + 1}`,
        appGuid: 'app',
        spaceGuid: 'space',
        orgGuid: 'org',
        workload: 'app' as const,
        tag: null,
        egress: egress[i]!,
        netIn: [{ hostPort: hostPort[i]!, containerPort: 8080 }],
      }));
      const asgSets: Record<string, EgressRule[]> = {};
      for (const c of containers) asgSets[c.egress] = c.egress === 'a' ? rulesA : rulesB;
      return sortRuleSet({
        cellId: 'cell-1',
        version,
        containers,
        asgSets,
        c2c: c2c.map(([tag, host]) => ({
          srcTag: tag,
          dstIp: `10.255.1.${host}`,
          protocol: 'tcp' as const,
          ports: { start: 8080, end: 8080 },
        })),
        config: { ...DEFAULT_CELL_CONFIG, dnsServers: [dns] },
        tags,
      });
    });

describe('rule-set log composition', () => {
  it('composing any suffix of the log equals the direct diff and removes only what existed', () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 2, max: 6 })
          .chain((n) => fc.tuple(...Array.from({ length: n }, (_, i) => arbRuleSet(i + 1)))),
        fc.nat(),
        (sets, startRaw) => {
          const entries = sets.slice(1).map((rs, i) => makeLogEntry(sets[i]!, rs));
          const start = startRaw % entries.length;
          const composed = composeEntries(entries.slice(start));
          assert.ok(composed);
          const base = sets[start]!;
          const last = sets.at(-1)!;
          assert.equal(composed.from, base.version);
          assert.equal(composed.to, last.version);
          const result = applyPatch(base, composed);
          assert.ok(ruleSetsEqual(result, last));
          assert.equal(result.version, last.version);
          const baseHandles = new Set(base.containers.map((c) => c.handle));
          for (const h of composed.containers.remove)
            assert.ok(baseHandles.has(h), `removes absent container ${h}`);
          for (const k of composed.asgSets.remove) assert.ok(k in base.asgSets, `removes absent set ${k}`);
          const baseC2C = new Set(base.c2c.map(c2cKey));
          for (const e of composed.c2c.remove) assert.ok(baseC2C.has(c2cKey(e)), 'removes absent c2c');
          for (const e of composed.c2c.add) assert.ok(!baseC2C.has(c2cKey(e)), 'adds present c2c');
          // tags travel only when they changed between the two ends, and only the apps that did
          for (const [app, tag] of Object.entries(composed.tags?.upsert ?? {})) {
            assert.equal(last.tags?.[app], tag);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the store’s fast diff equals the model’s diffRuleSets on sorted, content-addressed rule sets', () => {
    fc.assert(
      fc.property(arbRuleSet(1), arbRuleSet(2), (a, b) => {
        const viaJson = (x: CellRuleSet) => ({ ...(JSON.parse(JSON.stringify(x)) as CellRuleSet) });
        assert.deepEqual(diffSortedRuleSets(viaJson(a), b), diffRuleSets(a, b));
      }),
      { numRuns: 300 },
    );
  });

  it('refuses entries that do not chain', () => {
    const a = { cellId: 'c', version: 1, containers: [], asgSets: {}, c2c: [], config: DEFAULT_CELL_CONFIG };
    const b = { ...a, version: 2, config: { ...DEFAULT_CELL_CONFIG, dnsServers: ['1.1.1.1'] } };
    const c = { ...a, version: 3 };
    assert.equal(composeEntries([makeLogEntry(a, b), makeLogEntry(a, c)]), null);
    assert.equal(composeEntries([]), null);
    const one = composeEntries([makeLogEntry(a, b)]);
    assert.deepEqual(one?.config, b.config);
  });

  it('a container added then removed inside the window does not appear at all', () => {
    const base = {
      cellId: 'c',
      version: 1,
      containers: [],
      asgSets: {},
      c2c: [],
      config: DEFAULT_CELL_CONFIG,
    };
    const withC: CellRuleSet = {
      ...base,
      version: 2,
      containers: [
        {
          handle: 'h',
          ip: '10.255.1.2',
          appGuid: '',
          spaceGuid: '',
          orgGuid: '',
          workload: 'app',
          tag: null,
          egress: 'a',
          netIn: [],
        },
      ],
      asgSets: { a: rulesA },
      c2c: [{ srcTag: 1, dstIp: '10.255.1.2', protocol: 'tcp', ports: { start: 1, end: 1 } }],
    };
    const gone = { ...base, version: 3 };
    const p = composeEntries([makeLogEntry(base, withC), makeLogEntry(withC, gone)])!;
    assert.deepEqual(p.containers, { upsert: [], remove: [] });
    assert.deepEqual(p.asgSets, { upsert: {}, remove: [] });
    assert.deepEqual(p.c2c, { add: [], remove: [] });
  });
});

describe('rule-set store encoding', () => {
  it('stores text that parses back to the rule set; the hash ignores the version and sees every part', () => {
    fc.assert(
      fc.property(arbRuleSet(7), arbRuleSet(9), (a, b) => {
        const e = new EncodedRuleSet(a);
        const { body, hash } = serializeRuleSet(a);
        assert.equal(hash, e.hash);
        // the tag table and the ASG sets are stored once for all cells, beside the snapshot (named by
        // e.tagsRef and e.sets); the body's sets are null, so that no reader takes them for "none"
        const { tags: _tags, ...noTags } = a;
        const parsed = JSON.parse(body) as CellRuleSet;
        assert.equal(parsed.asgSets, null);
        assert.deepEqual(e.sets, Object.keys(a.asgSets).sort());
        const sets = Object.fromEntries(e.sets.map((k) => [k, JSON.parse(e.setText(k))]));
        assert.ok(ruleSetsEqual({ ...parsed, asgSets: sets }, { ...noTags, version: 0 }));
        // size: the whole rule set's text, sets included (what a patch is weighed against)
        assert.equal(e.size, JSON.stringify({ ...parsed, asgSets: sets }).length);
        assert.equal(e.tagsRef, a.tags ? shortHash(JSON.stringify(a.tags)) : '');
        assert.equal((JSON.parse(body) as CellRuleSet).version, 0);
        // the same text as a plain canonical serialisation of the hashed parts
        assert.equal(
          hash,
          shortHash(
            JSON.stringify([
              a.cellId,
              a.containers,
              Object.keys(a.asgSets).sort(),
              a.c2c,
              a.config,
              ...(a.tags ? [shortHash(JSON.stringify(a.tags))] : []),
            ]),
          ),
        );
        assert.equal(ruleSetHash({ ...a, version: 123 }), hash, 'version excluded');
        assert.equal(ruleSetHash(b) === hash, ruleSetsEqual({ ...a, version: 0 }, { ...b, version: 0 }));
      }),
    );
  });
});
