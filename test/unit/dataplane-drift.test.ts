/**
 * Drift is any difference: the canonical comparison of the kernel's table (as `nft -j list table`
 * reports it) with what the agent rendered detects every kind of difference — a rule replaced in
 * place (same count, same last marker), inserted, deleted or reordered; a base chain's policy or
 * priority; a set's declaration; a missing, extra or unparsable element; a missing or extra chain
 * or set; table flags; foreign objects; a missing table — and nothing when the two are equal.
 * Plus the probe's echo parser and the `nft monitor` parser (foreign vs own transactions).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProbeEcho, probeScript } from '../../src/dataplane/canon.js';
import { addElement, emptyState, type TableState } from '../../src/dataplane/desired.js';
import { SET_DEFS } from '../../src/dataplane/elements.js';
import { type ChainSpec, staticChains, withMarker } from '../../src/dataplane/layout.js';
import { MonitorParser } from '../../src/dataplane/monitor.js';
import {
  canonicalRule,
  compareStates,
  type DriftReport,
  type ExpectedCanon,
  expectedHeader,
  parseKernelState,
  setDeclOf,
} from '../../src/dataplane/readback.js';

type Obj = Record<string, unknown>;
const T = 'cfnet';

/** The desired state: one container, its ASG chain. */
function desired(): TableState {
  const s = emptyState();
  addElement(s, 'ctr_addrs', { key: [{ k: 'ip', v: '10.255.0.2' }], comment: 'h1' });
  addElement(s, 'ctr_running', { key: [{ k: 'ip', v: '10.255.0.2' }] });
  addElement(s, 'ctr_asg', {
    key: [{ k: 'ip', v: '10.255.0.2' }],
    value: [{ k: 'verdict', v: 'jump', target: 'asg_h' }],
  });
  const asg = withMarker('asg_h', [
    'ip daddr 10.0.0.0/8 tcp dport 443 accept',
    'ip daddr 8.8.8.8 accept',
    'return',
  ]);
  s.chains.set(asg.name, asg);
  return s;
}

/** How the kernel reports a rule: here its text as one opaque expression, and its comment. */
function ruleJson(chain: string, text: string, comment?: string): Obj {
  const m = / comment "([^"]+)"$/.exec(text);
  const body = m ? text.slice(0, m.index) : text;
  return {
    family: 'inet',
    table: T,
    chain,
    expr: [{ raw: body }],
    ...(m || comment ? { comment: m?.[1] ?? comment } : {}),
  };
}

function chainJson(c: ChainSpec): Obj {
  const o: Obj = { family: 'inet', table: T, name: c.name };
  const h = expectedHeader(c.hook).split('/');
  if (c.hook) Object.assign(o, { type: h[0], hook: h[1], prio: Number(h[2]), policy: h[3] });
  return o;
}

function setJson(name: string): Obj {
  const d = SET_DEFS.find((x) => x.name === name)!;
  const o: Obj = { family: 'inet', name, table: T, type: d.type };
  if (d.valueKinds) o.map = 'verdict';
  if (d.interval) o.flags = ['interval'];
  return o;
}

/** `nft -j list table` of a kernel holding exactly `state`. */
function kernelJson(state: TableState): { nftables: Obj[] } {
  const items: Obj[] = [{ metainfo: { version: '1.0.6' } }, { table: { family: 'inet', name: T } }];
  for (const d of SET_DEFS) {
    const set = setJson(d.name);
    const elems = [...(state.sets.get(d.name)?.values() ?? [])].map((e) => {
      const key = e.key[0]!;
      const v = key.k === 'ip' ? key.v : null;
      const val = e.comment !== undefined ? { elem: { val: v, comment: e.comment } } : v;
      if (!e.value) return val;
      const verdict = e.value[0]!;
      return [val, verdict.k === 'verdict' ? { [verdict.v]: { target: verdict.target } } : null];
    });
    if (elems.length > 0) set.elem = elems;
    items.push(d.valueKinds ? { map: set } : { set });
  }
  const chains = [...state.chains.values(), ...staticChains()];
  for (const c of chains) items.push({ chain: chainJson(c) });
  for (const c of chains) for (const r of c.rules) items.push({ rule: ruleJson(c.name, r) });
  return { nftables: items };
}

/** What the probe would have learned: the canonical rules of every chain, the set declarations. */
function learned(state: TableState): ExpectedCanon {
  const rules = new Map<string, string[]>();
  for (const c of [...state.chains.values(), ...staticChains()]) {
    rules.set(
      c.marker,
      c.rules.map((r) => canonicalRule(ruleJson(c.name, r))),
    );
  }
  const decls = new Map(SET_DEFS.map((d) => [d.name, setDeclOf(setJson(d.name))]));
  return { rulesOf: (m) => rules.get(m), setDecls: decls };
}

function compare(mutate: (doc: { nftables: Obj[] }) => void): DriftReport {
  const state = desired();
  const doc = kernelJson(state);
  mutate(doc);
  return compareStates(state, parseKernelState(doc, T), learned(state));
}

const rulesOf = (doc: { nftables: Obj[] }, chain: string) =>
  doc.nftables.filter((o) => (o.rule as Obj | undefined)?.chain === chain);

describe('canonical table comparison: every kind of difference is drift', () => {
  it('an identical table is no drift', () => {
    const r = compare(() => {});
    assert.equal(r.drift, false, JSON.stringify(r));
  });

  it('a rule replaced in place (same count, last marker kept) in ctr_in', () => {
    const r = compare((doc) => {
      const rule = rulesOf(doc, 'ctr_in')[4]!.rule as Obj;
      rule.expr = [{ accept: null }];
    });
    assert.equal(r.drift, true);
    assert.deepEqual(r.changedRules, [{ chain: 'ctr_in', index: 4, kind: 'changed' }]);
    assert.deepEqual(r.changedChains, ['ctr_in']);
  });

  it('the first rule of an ASG chain replaced with accept', () => {
    const r = compare((doc) => {
      (rulesOf(doc, 'asg_h')[0]!.rule as Obj).expr = [{ accept: null }];
    });
    assert.deepEqual(r.changedRules, [{ chain: 'asg_h', index: 0, kind: 'changed' }]);
  });

  it('a comment changed (the marker copied elsewhere, or dropped)', () => {
    const r = compare((doc) => {
      delete (rulesOf(doc, 'asg_h')[2]!.rule as Obj).comment;
    });
    assert.deepEqual(r.changedRules, [{ chain: 'asg_h', index: 2, kind: 'changed' }]);
  });

  it('a rule inserted, a rule deleted, two rules swapped', () => {
    const inserted = compare((doc) => {
      const at = doc.nftables.indexOf(rulesOf(doc, 'ctr_out')[0]!);
      doc.nftables.splice(at, 0, {
        rule: { family: 'inet', table: T, chain: 'ctr_out', expr: [{ accept: null }] },
      });
    });
    assert.ok(inserted.changedRules.some((d) => d.chain === 'ctr_out' && d.kind === 'extra'));
    assert.ok(
      inserted.changedRules.some((d) => d.chain === 'ctr_out' && d.index === 0 && d.kind === 'changed'),
    );
    const deleted = compare((doc) => {
      doc.nftables.splice(doc.nftables.indexOf(rulesOf(doc, 'hook_forward')[1]!), 1);
    });
    assert.ok(deleted.changedRules.some((d) => d.chain === 'hook_forward' && d.kind === 'missing'));
    const swapped = compare((doc) => {
      const [a, b] = rulesOf(doc, 'ctr_host');
      const [i, j] = [doc.nftables.indexOf(a!), doc.nftables.indexOf(b!)];
      [doc.nftables[i], doc.nftables[j]] = [b!, a!];
    });
    assert.deepEqual(
      swapped.changedRules.map((d) => d.index),
      [0, 1],
    );
  });

  it("a base chain's policy or priority", () => {
    const policy = compare((doc) => {
      const c = doc.nftables.find((o) => (o.chain as Obj | undefined)?.name === 'hook_forward')!.chain as Obj;
      c.policy = 'drop';
    });
    assert.deepEqual(policy.changedHeaders, ['hook_forward']);
    const prio = compare((doc) => {
      const c = doc.nftables.find((o) => (o.chain as Obj | undefined)?.name === 'hook_input')!.chain as Obj;
      c.prio = 10;
    });
    assert.deepEqual(prio.changedHeaders, ['hook_input']);
    const unhooked = compare((doc) => {
      const c = doc.nftables.find((o) => (o.chain as Obj | undefined)?.name === 'hook_masq')!.chain as Obj;
      for (const k of ['type', 'hook', 'prio', 'policy']) delete c[k];
    });
    assert.deepEqual(unhooked.changedHeaders, ['hook_masq']);
  });

  it("a set's declaration (flags, type)", () => {
    const r = compare((doc) => {
      const s = doc.nftables.find((o) => (o.set as Obj | undefined)?.name === 'ctr_running')!.set as Obj;
      s.flags = ['timeout'];
    });
    assert.deepEqual(r.changedSetDecls, ['ctr_running']);
  });

  it('an element missing, an element extra, an element that cannot be parsed', () => {
    const missing = compare((doc) => {
      delete (doc.nftables.find((o) => (o.set as Obj | undefined)?.name === 'ctr_running')!.set as Obj).elem;
    });
    assert.deepEqual(missing.missingElements, [{ set: 'ctr_running', element: '10.255.0.2' }]);
    const extra = compare((doc) => {
      (doc.nftables.find((o) => (o.set as Obj | undefined)?.name === 'ctr_staging')!.set as Obj).elem = [
        '10.255.0.9',
      ];
    });
    assert.deepEqual(extra.extraElements, [{ set: 'ctr_staging', element: '10.255.0.9' }]);
    const junk = compare((doc) => {
      (doc.nftables.find((o) => (o.set as Obj | undefined)?.name === 'ctr_staging')!.set as Obj).elem = [
        { weird: 1 },
      ];
    });
    assert.equal(junk.unparsed.length, 1);
    assert.equal(junk.drift, true);
  });

  it('a chain missing, a chain extra, a set missing, a set extra', () => {
    const r = compare((doc) => {
      doc.nftables = doc.nftables.filter(
        (o) =>
          (o.chain as Obj | undefined)?.name !== 'asg_h' && (o.rule as Obj | undefined)?.chain !== 'asg_h',
      );
      doc.nftables.push({ chain: { family: 'inet', table: T, name: 'intruder' } });
      doc.nftables = doc.nftables.filter((o) => (o.set as Obj | undefined)?.name !== 'dns_servers');
      doc.nftables.push({ set: { family: 'inet', table: T, name: 'backdoor', type: 'ipv4_addr' } });
    });
    assert.deepEqual(r.missingChains, ['asg_h']);
    assert.deepEqual(r.extraChains, ['intruder']);
    assert.deepEqual(r.missingSets, ['dns_servers']);
    assert.deepEqual(r.unknownSets, ['backdoor']);
  });

  it('table flags (dormant switches the whole table off) and foreign objects', () => {
    const dormant = compare((doc) => {
      (doc.nftables[1]!.table as Obj).flags = ['dormant'];
    });
    assert.equal(dormant.tableFlags, true);
    assert.equal(dormant.drift, true);
    const counter = compare((doc) => {
      doc.nftables.push({ counter: { family: 'inet', table: T, name: 'c1', packets: 0, bytes: 0 } });
    });
    assert.deepEqual(counter.foreignObjects, ['counter c1']);
  });

  it('a missing table', () => {
    const r = compareStates(desired(), parseKernelState({ nftables: [] }, T), learned(desired()));
    assert.equal(r.tableMissing, true);
    assert.equal(r.drift, true);
  });

  it('without a learned form a chain is still compared by rule count and marker', () => {
    const state = desired();
    const doc = kernelJson(state);
    (rulesOf(doc, 'ctr_in')[4]!.rule as Obj).expr = [{ accept: null }];
    const blind = compareStates(state, parseKernelState(doc, T));
    assert.equal(blind.drift, false, 'a replacement in place is invisible without the canonical form');
    doc.nftables.splice(doc.nftables.indexOf(rulesOf(doc, 'ctr_in')[0]!), 1);
    assert.deepEqual(compareStates(state, parseKernelState(doc, T)).changedChains, ['ctr_in']);
  });
});

describe('the probe and the monitor', () => {
  it("the probe script declares every set and the chains without hooks; the echo's rules are learned", () => {
    const chains = staticChains();
    const script = probeScript('cfp_x', chains);
    assert.doesNotMatch(script, /hook /);
    for (const d of SET_DEFS) assert.match(script, new RegExp(`(set|map) ${d.name} \\{`));
    const echo = JSON.stringify({
      nftables: [
        { add: { table: { family: 'inet', name: 'cfp_x' } } },
        { add: { set: { family: 'inet', table: 'cfp_x', name: 'ctr_addrs', type: 'ipv4_addr', handle: 3 } } },
        { add: { chain: { family: 'inet', table: 'cfp_x', name: 'empty', handle: 1 } } },
        {
          add: {
            rule: { family: 'inet', table: 'cfp_x', chain: 'ctr_in', handle: 9, expr: [{ accept: null }] },
          },
        },
        {
          add: {
            rule: { family: 'inet', table: 'other', chain: 'ctr_in', handle: 9, expr: [{ drop: null }] },
          },
        },
      ],
    });
    const r = parseProbeEcho(echo, 'cfp_x');
    assert.deepEqual(r.rules.get('ctr_in'), [canonicalRule({ expr: [{ accept: null }], handle: 1 })]);
    assert.deepEqual(r.rules.get('empty'), []);
    assert.equal(r.setDecls.get('ctr_addrs'), '{"type":"ipv4_addr"}');
  });

  it('monitor: a transaction on the table by another process is foreign; ours and other tables are not', () => {
    const foreign: { pid: number | null; lines: string[] }[] = [];
    const p = new MonitorParser(
      'cfnet',
      (pid) => pid === 100,
      (c) => foreign.push(c),
    );
    for (const line of [
      'add element inet cfnet ctr_addrs { 10.255.0.2 comment "h1" }',
      '# new generation 5 by process 100 (nft)',
      'delete rule inet cfnet ctr_in handle 58',
      'add rule inet cfnet ctr_in handle 57 accept',
      '# new generation 6 by process 4242 (nft)',
      'add table inet cfnet2',
      'add chain inet other x',
      '# new generation 7 by process 4243 (nft)',
      'delete table inet cfnet',
    ]) {
      p.line(line);
    }
    p.flush();
    assert.deepEqual(
      foreign.map((f) => [f.pid, f.lines.length]),
      [
        [4242, 2],
        [null, 1],
      ],
    );
  });
});
