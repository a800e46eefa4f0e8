import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { type LocalContainer, localC2C, mergeLocal } from '../../src/agent/merge.js';
import { recoverFromKernel } from '../../src/agent/recover.js';
import { desiredState } from '../../src/dataplane/desired.js';
import { ruleSetHash } from '../../src/model/canonical.js';
import { allAddresses } from '../../src/model/ip.js';
import {
  type CellContainer,
  type CellRuleSet,
  DEFAULT_CELL_CONFIG,
  type EgressRule,
} from '../../src/model/types.js';

const web: EgressRule = {
  protocol: 'tcp',
  destinations: [allAddresses(4)],
  ports: [{ start: 443, end: 443 }],
  log: false,
};
const dns: EgressRule = {
  protocol: 'udp',
  destinations: [allAddresses(4)],
  ports: [{ start: 53, end: 53 }],
  log: false,
};
const H_WEB = ruleSetHash([web]);
const H_DNS = ruleSetHash([dns]);

function ctr(handle: string, ip: string, egress: string, extra: Partial<CellContainer> = {}): CellContainer {
  return {
    handle,
    ip,
    appGuid: `app-${handle}`,
    spaceGuid: 'space',
    orgGuid: 'org',
    workload: 'app',
    tag: null,
    egress,
    netIn: [],
    ...extra,
  };
}

function base(containers: CellContainer[], version = 5): CellRuleSet {
  return {
    cellId: 'cell-1',
    version,
    containers,
    asgSets: { [H_WEB]: [web] },
    c2c: [{ srcTag: 3, dstIp: '10.255.1.2', protocol: 'tcp', ports: { start: 8080, end: 8080 } }],
    config: DEFAULT_CELL_CONFIG,
  };
}

function local(c: CellContainer, rules: EgressRule[]): LocalContainer {
  return { container: c, egressRules: rules, addedAt: 1 };
}

describe('mergeLocal', () => {
  it('adds CNI-time containers the controller does not know, with their own ASG set', () => {
    const b = base([ctr('a', '10.255.1.2', H_WEB, { tag: 3 })]);
    const l = new Map([
      [
        'n',
        local(ctr('n', '10.255.1.3', H_DNS, { netIn: [{ hostPort: 61001, containerPort: 8080 }] }), [dns]),
      ],
    ]);
    const r = mergeLocal(
      b,
      l,
      new Map([
        ['a', '10.255.1.2'],
        ['n', '10.255.1.3'],
      ]),
    );
    assert.deepEqual(r.merged, ['n']);
    assert.deepEqual(r.obsolete, []);
    assert.equal(r.ruleSet.version, 5);
    assert.deepEqual(
      r.ruleSet.containers.map((c) => c.handle),
      ['a', 'n'],
    );
    assert.deepEqual(r.ruleSet.asgSets[H_DNS], [dns]);
    assert.deepEqual(r.ruleSet.containers[1]!.netIn, [{ hostPort: 61001, containerPort: 8080 }]);
    assert.deepEqual(r.ruleSet.c2c, b.c2c);
    desiredState(r.ruleSet); // valid for the dataplane
  });

  it('forgets local records once the controller knows the container, or it is no longer attached', () => {
    const b = base([ctr('a', '10.255.1.2', H_WEB)]);
    const l = new Map([
      ['a', local(ctr('a', '10.255.1.2', H_DNS), [dns])],
      ['gone', local(ctr('gone', '10.255.1.9', H_DNS), [dns])],
      ['moved', local(ctr('moved', '10.255.1.8', H_DNS), [dns])],
    ]);
    const r = mergeLocal(
      b,
      l,
      new Map([
        ['a', '10.255.1.2'],
        ['moved', '10.255.1.7'],
      ]),
    );
    assert.deepEqual(r.obsolete.sort(), ['a', 'gone', 'moved']);
    assert.deepEqual(r.merged, []);
    assert.equal(r.ruleSet.containers[0]!.egress, H_WEB, 'the controller wins for a known handle');
    // without a datastore view, records are kept
    assert.deepEqual(mergeLocal(b, l, null).merged.sort(), ['gone', 'moved']);
  });

  it('drops a stale controller entry whose address or host port now belongs to another container', () => {
    const b = base([
      ctr('old', '10.255.1.3', H_WEB, { netIn: [{ hostPort: 61001, containerPort: 8080 }] }),
      ctr('other', '10.255.1.4', H_WEB, {
        netIn: [
          { hostPort: 61002, containerPort: 8080 },
          { hostPort: 61003, containerPort: 2222 },
        ],
      }),
      ctr('ghost', '10.255.1.5', H_WEB),
    ]);
    const l = new Map([
      [
        'new',
        local(ctr('new', '10.255.1.3', H_DNS, { netIn: [{ hostPort: 61002, containerPort: 9000 }] }), [dns]),
      ],
    ]);
    const r = mergeLocal(
      b,
      l,
      new Map([
        ['new', '10.255.1.3'],
        ['other', '10.255.1.4'],
        ['x', '10.255.1.5'],
      ]),
    );
    assert.deepEqual(r.dropped.sort(), ['ghost', 'old']);
    const other = r.ruleSet.containers.find((c) => c.handle === 'other')!;
    assert.deepEqual(other.netIn, [{ hostPort: 61003, containerPort: 2222 }]);
    desiredState(r.ruleSet);
  });

  it('renames a local ASG set whose key clashes with different content', () => {
    const b = base([]);
    const l = new Map([['n', local(ctr('n', '10.255.1.3', H_WEB), [dns])]]);
    const r = mergeLocal(b, l, null);
    assert.equal(r.ruleSet.containers[0]!.egress, `cni_${H_WEB}`);
    assert.deepEqual(r.ruleSet.asgSets[H_WEB], [web]);
    assert.deepEqual(r.ruleSet.asgSets[`cni_${H_WEB}`], [dns]);
  });

  it('always yields a rule set the dataplane accepts (property)', () => {
    const ipArb = fc.integer({ min: 2, max: 12 }).map((n) => `10.255.1.${n}`);
    const portArb = fc.integer({ min: 61000, max: 61006 });
    const ctrArb = (prefix: string) =>
      fc
        .record({
          id: fc.integer({ min: 0, max: 8 }),
          ip: ipArb,
          ports: fc.uniqueArray(portArb, { maxLength: 2 }),
        })
        .map((x) =>
          ctr(`${prefix}${x.id}`, x.ip, H_WEB, {
            netIn: x.ports.map((p) => ({ hostPort: p, containerPort: 8080 })),
          }),
        );
    fc.assert(
      fc.property(
        fc.uniqueArray(ctrArb('c'), { selector: (c) => c.handle, maxLength: 6 }),
        fc.uniqueArray(ctrArb('l'), { selector: (c) => c.handle, maxLength: 6 }),
        fc.boolean(),
        (controller, locals, withStore) => {
          // the controller's own rule set is valid: unique addresses and host ports
          const seenIp = new Set<string>();
          const seenPort = new Set<number>();
          const valid = controller.filter((c) => {
            if (seenIp.has(c.ip) || c.netIn.some((m) => seenPort.has(m.hostPort))) return false;
            seenIp.add(c.ip);
            for (const m of c.netIn) seenPort.add(m.hostPort);
            return true;
          });
          const l = new Map(locals.map((c) => [c.handle, local({ ...c, egress: H_DNS }, [dns])]));
          const attached = withStore ? new Map(locals.map((c) => [c.handle, c.ip])) : null;
          const r = mergeLocal(base(valid), l, attached);
          desiredState(r.ruleSet);
          for (const h of r.merged) assert.ok(r.ruleSet.containers.some((c) => c.handle === h));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('localC2C: c2c identity of a new container from the rule set in hand', () => {
  const withTags = (containers: CellContainer[]): CellRuleSet => ({
    ...base(containers),
    tags: { 'app-src': 9, 'app-a': 3 },
  });

  it('takes the source tag from the tag table, for an app and a task alike', () => {
    const b = withTags([]);
    assert.equal(localC2C(b, ctr('n', '10.255.1.3', H_WEB, { appGuid: 'app-src' })).container.tag, 9);
    const t = ctr('t', '10.255.1.4', H_WEB, { appGuid: 'app-src', workload: 'task' });
    assert.equal(localC2C(b, t).container.tag, 9);
  });

  it('gives no tag to an app missing from the table, or when there is no rule set yet', () => {
    assert.equal(
      localC2C(withTags([]), ctr('n', '10.255.1.3', H_WEB, { appGuid: 'app-z' })).container.tag,
      null,
    );
    assert.equal(localC2C(null, ctr('n', '10.255.1.3', H_WEB, { appGuid: 'app-src' })).container.tag, null);
  });

  it('copies the allow entries of another container of the same app, aimed at the new address', () => {
    const b = withTags([ctr('a', '10.255.1.2', H_WEB, { appGuid: 'app-a', tag: 3 })]);
    const got = localC2C(b, ctr('n', '10.255.1.3', H_WEB, { appGuid: 'app-a' }));
    assert.deepEqual(got.c2c, [
      { srcTag: 3, dstIp: '10.255.1.3', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
    ]);
    // no instance of the app on the cell: nothing to copy (the controller's rule set brings them)
    assert.deepEqual(localC2C(b, ctr('m', '10.255.1.5', H_WEB, { appGuid: 'app-q' })).c2c, []);
  });

  it('mergeLocal keeps the same identity for a CNI-time container until the controller knows it', () => {
    const b = withTags([ctr('a', '10.255.1.2', H_WEB, { appGuid: 'app-a', tag: 3 })]);
    const n = ctr('n', '10.255.1.3', H_WEB, { appGuid: 'app-a' });
    const r = mergeLocal(b, new Map([['n', local(n, [web])]]), null);
    assert.equal(r.ruleSet.containers.find((c) => c.handle === 'n')?.tag, 3);
    assert.ok(r.ruleSet.c2c.some((e) => e.dstIp === '10.255.1.3' && e.srcTag === 3));
    assert.deepEqual(r.ruleSet.tags, b.tags);
    // the merged rule set is one the dataplane accepts
    desiredState(r.ruleSet);
  });
});

describe('recoverFromKernel', () => {
  it('rebuilds a CNI-time container from the table when its ASG set is known', () => {
    const rs: CellRuleSet = {
      ...base([
        ctr('n', '10.255.1.3', H_DNS, {
          workload: 'staging',
          netIn: [{ hostPort: 61001, containerPort: 8080 }],
        }),
      ]),
      asgSets: { [H_DNS]: [dns] },
    };
    const state = desiredState(rs);
    const item = {
      handle: 'n',
      ip: '10.255.1.3',
      metadata: { policy_group_id: 'app-n', space_id: 'space', org_id: 'org', container_workload: 'staging' },
    };
    const rec = recoverFromKernel({ exists: true, sets: state.sets }, item, new Map([[H_DNS, [dns]]]));
    assert.ok(rec);
    assert.deepEqual(rec.container, { ...rs.containers[0]!, tag: null });
    assert.deepEqual(rec.egressRules, [dns]);
    assert.equal(
      recoverFromKernel({ exists: true, sets: state.sets }, item, new Map()),
      null,
      'unknown rules',
    );
    assert.equal(
      recoverFromKernel(
        { exists: true, sets: state.sets },
        { ...item, ip: '10.255.1.4' },
        new Map([[H_DNS, [dns]]]),
      ),
      null,
      'not in the table',
    );
  });
});
