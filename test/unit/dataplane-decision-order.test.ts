import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GATEWAY } from '../../src/cni/names.js';
import {
  CONTAINER_GATEWAY,
  chainRules,
  type DecisionChain,
  type DecisionOrder,
  decide,
  decisionOrder,
  localDestination,
  ruleMatches,
} from '../../src/dataplane/decision-order.js';
import type { FilterMode } from '../../src/dataplane/host-filter.js';
import { staticChains } from '../../src/dataplane/layout.js';
import { parseCapiRules } from '../../src/model/asg-rule.js';
import { containerDecision, type ExplainQuery } from '../../src/ops/explain.js';
import {
  APP_IP,
  CELL_ADDRESSES,
  DECISION_CASES,
  decisionRuleSet,
  STAGING_IP,
} from '../helpers/decision-table.js';

const DECISION_CHAINS: DecisionChain[] = ['hook_forward', 'hook_input', 'ctr_out', 'ctr_in', 'ctr_host'];
const MODES: FilterMode[] = ['nftables', 'iptables'];

/** A chain's rules without the content marker the last one carries. */
function body(mode: FilterMode, name: string, order?: DecisionOrder): string[] {
  const chain = staticChains(mode, order).find((c) => c.name === name)!;
  return chain.rules.map((r) => r.replace(/ comment "cfnet:[0-9a-f]{16}"$/, ''));
}

describe('packet-decision order: one list the layout renders and explain walks', () => {
  it('the layout renders hook_forward, hook_input, ctr_out, ctr_in and ctr_host from the steps, in both filter modes', () => {
    for (const mode of MODES) {
      for (const name of DECISION_CHAINS) {
        assert.deepEqual(body(mode, name), chainRules(decisionOrder(mode), name), `${mode} ${name}`);
      }
    }
    // the deferred mode differs only in ctr_host's default deny
    const host = (m: FilterMode) => decisionOrder(m).ctr_host.at(-1)!;
    assert.equal(host('nftables').id, 'default-deny');
    assert.ok(host('nftables').nft.some((r) => r.startsWith('reject')));
    assert.match(host('iptables').nft.join('\n'), /meta mark set .* accept/);
  });

  it('a changed step list changes the rendered chain and its marker, and nothing else', () => {
    const order = decisionOrder('nftables');
    const withoutDns: DecisionOrder = { ...order, ctr_host: order.ctr_host.filter((s) => s.id !== 'dns') };
    const before = new Map(staticChains('nftables').map((c) => [c.name, c]));
    const after = new Map(staticChains('nftables', withoutDns).map((c) => [c.name, c]));
    assert.ok(before.get('ctr_host')!.rules.some((r) => r.includes('@dns_servers')));
    assert.ok(!after.get('ctr_host')!.rules.some((r) => r.includes('@dns_servers')));
    assert.notEqual(after.get('ctr_host')!.marker, before.get('ctr_host')!.marker);
    for (const [name, chain] of before) {
      if (name !== 'ctr_host') assert.deepEqual(after.get(name), chain, name);
    }
    const extra: DecisionOrder = {
      ...order,
      ctr_out: [
        { id: 'overlay', nft: ['ip daddr 192.0.2.9 accept'], evaluate: () => null },
        ...order.ctr_out,
      ],
    };
    assert.equal(body('nftables', 'ctr_out', extra)[0], 'ip daddr 192.0.2.9 accept');
  });

  it("explain's decision for each packet of the table: the step the kernel's chains decide by", () => {
    const rs = decisionRuleSet();
    for (const k of DECISION_CASES) {
      const q: ExplainQuery = { from: 'app', to: k.probe.host, port: k.probe.port, protocol: k.probe.proto };
      const d = containerDecision(rs, `decision-${k.from}`, q, CELL_ADDRESSES);
      assert.deepEqual({ allowed: d.allowed, by: d.by }, { allowed: k.allowed, by: k.by }, k.what);
      if (k.local) {
        assert.match(d.local ?? '', k.local, k.what);
        assert.deepEqual(d.chains, ['hook_input', 'ctr_host'], k.what);
      } else {
        assert.equal(d.local, null, k.what);
        assert.deepEqual(d.chains, ['hook_forward', 'ctr_out'], k.what);
      }
      assert.equal(d.matched.length > 0, d.by === 'asg', k.what);
    }
  });

  it("without the cell's lease its underlay and VTEP addresses are unknown: decided as egress", () => {
    const rs = decisionRuleSet();
    assert.equal(localDestination('192.0.2.1', rs, null), null);
    const q: ExplainQuery = { from: 'app', to: '192.0.2.1', port: 7000, protocol: 'tcp' };
    assert.equal(containerDecision(rs, 'decision-a', q, null).by, 'asg');
    assert.match(localDestination('169.254.0.2', rs, null)!, /link-local DNS server/);
    // a link-local address no DNS server or host service names (a cloud metadata service) is remote
    assert.equal(localDestination('169.254.169.254', rs, null), null);
  });

  it('no-rules when the rule set lacks the container or its egress rule list', () => {
    const rs = decisionRuleSet();
    const q: ExplainQuery = { from: 'app', to: '203.0.113.10', port: 443, protocol: 'tcp' };
    assert.equal(containerDecision(rs, 'no-such-handle', q, null).by, 'no-rules');
    const broken = { ...rs, asgSets: {} };
    assert.deepEqual(containerDecision(broken, 'decision-a', q, null), {
      allowed: false,
      by: 'no-rules',
      chains: [],
      local: null,
      matched: [],
    });
  });

  it('a container on the same cell is decided by ctr_in (c2c entries), not by the ASGs', () => {
    const rs = decisionRuleSet();
    rs.c2c = [{ srcTag: 1, dstIp: STAGING_IP, protocol: 'tcp', ports: { start: 8080, end: 8080 } }];
    const src = rs.containers.find((c) => c.ip === APP_IP)!;
    const allowed = decide({ src, dst: STAGING_IP, protocol: 'tcp', port: 8080 }, rs, false);
    assert.deepEqual(
      [allowed.allowed, allowed.step, allowed.chains],
      [true, 'c2c', ['hook_forward', 'ctr_in']],
    );
    const other = decide({ src, dst: STAGING_IP, protocol: 'tcp', port: 8081 }, rs, false);
    assert.deepEqual([other.allowed, other.step], [false, 'default-deny']);
  });

  it('ASG rule matching as the rendered ASG chain: ports required, icmp by family, all for everything', () => {
    const [tcp, noPorts, icmp, icmp6, all] = parseCapiRules([
      { protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' },
      { protocol: 'all', destination: '10.0.0.1' },
      { protocol: 'icmp', destination: '10.0.0.0/8', type: 8, code: 0 },
      { protocol: 'icmpv6', destination: '::/0', type: -1, code: -1 },
      { protocol: 'all', destination: '0.0.0.0/0' },
    ]);
    assert.equal(ruleMatches(tcp!, 'tcp', '10.1.2.3', 443), true);
    assert.equal(ruleMatches(tcp!, 'tcp', '10.1.2.3', 80), false);
    assert.equal(ruleMatches(tcp!, 'udp', '10.1.2.3', 443), false);
    assert.equal(ruleMatches(noPorts!, 'udp', '10.0.0.1', 5), true);
    assert.equal(ruleMatches(icmp!, 'icmp', '10.1.2.3'), true);
    assert.equal(ruleMatches(icmp6!, 'icmp', '10.1.2.3'), false);
    assert.equal(ruleMatches(icmp6!, 'icmp', '2001:db8::1'), true);
    assert.equal(ruleMatches(all!, 'icmp', '192.0.2.1'), true);
  });

  it("the containers' gateway is the CNI plugin's", () => {
    assert.equal(CONTAINER_GATEWAY, GATEWAY);
  });
});
