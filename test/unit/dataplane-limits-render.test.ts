import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decide, decisionOrder } from '../../src/dataplane/decision-order.js';
import { SET_BY_NAME, setDecl } from '../../src/dataplane/elements.js';
import { desiredState, diffStates, renderFull } from '../../src/dataplane/index.js';
import { sampleRuleSet } from '../../src/dataplane/sample.js';
import { ValidationError } from '../../src/lib/errors.js';
import { parseCellConfig } from '../../src/model/config.js';
import {
  type CellRuleSet,
  DEFAULT_OUTBOUND_CONNECTIONS,
  type OutboundConnectionsConfig,
} from '../../src/model/types.js';

function withLimits(orl: Partial<OutboundConnectionsConfig> | undefined, open?: boolean): CellRuleSet {
  const rs = sampleRuleSet({ containers: 3, asgSets: 1, rulesPerSet: 2, c2cPerContainer: 1 });
  if (orl === undefined) delete rs.config.outboundConnections;
  else rs.config.outboundConnections = { ...DEFAULT_OUTBOUND_CONNECTIONS, ...orl };
  if (open === undefined) delete rs.config.disableContainerNetworkPolicy;
  else rs.config.disableContainerNetworkPolicy = open;
  return rs;
}

const chainsNamed = (rs: CellRuleSet, re: RegExp) =>
  [...desiredState(rs).chains.values()].filter((c) => re.test(c.name));
const elements = (rs: CellRuleSet, set: string) => [...(desiredState(rs).sets.get(set)?.keys() ?? [])];

describe('outbound connection limit rendering', () => {
  test('off (and absent, as in rule sets stored before the setting): no meter chain, no element, the meter set still declared', () => {
    for (const rs of [withLimits(undefined), withLimits({ limit: false, logging: true })]) {
      assert.deepEqual(chainsNamed(rs, /^l?orl_/), []);
      assert.deepEqual(elements(rs, 'ctr_orl'), []);
      assert.deepEqual(elements(rs, 'orl_cut'), []);
      const full = renderFull(rs);
      assert.match(
        full,
        /set orl_meter \{ type ipv4_addr \. ipv4_addr \. inet_service; size 65535; flags dynamic,timeout; \}/,
      );
      assert.match(full, /meta l4proto tcp ct state new ip saddr vmap @ctr_orl/);
    }
  });

  test('limit: each container jumps to its meter chain, keyed by source . destination . port, entries expiring as Silk’s hashlimit (ceil(burst/rate) s), refusing with a TCP reset', () => {
    const rs = withLimits({ limit: true, burst: 30, ratePerSec: 2 });
    const chains = chainsNamed(rs, /^orl_/);
    assert.equal(chains.length, rs.containers.length);
    for (const c of rs.containers) {
      const name = `orl_${c.ip.replaceAll('.', '_')}`;
      assert.ok(elements(rs, 'ctr_orl').includes(`${c.ip} : jump ${name}`));
      const chain = desiredState(rs).chains.get(name)!;
      assert.equal(chain.rules.length, 1);
      assert.match(
        chain.rules[0]!,
        /^update @orl_meter \{ ip saddr \. ip daddr \. tcp dport timeout 15s limit rate over 2\/second burst 30 packets \} meta l4proto tcp reject with tcp reset comment "cfnet:[0-9a-f]{16}"$/,
      );
    }
    assert.deepEqual(chainsNamed(rs, /^lorl_/), [], 'no log chain without logging');
  });

  test('logging: the over-limit connection goes to a per-container chain that logs DENY_ORL_<handle> at the denied-log rate, then rejects', () => {
    const rs = withLimits({ limit: true, logging: true, burst: 7, ratePerSec: 3 });
    const c = rs.containers[0]!;
    const suffix = c.ip.replaceAll('.', '_');
    const meter = desiredState(rs).chains.get(`orl_${suffix}`)!;
    assert.match(
      meter.rules[0]!,
      /timeout 3s limit rate over 3\/second burst 7 packets \} ip saddr vmap @orl_cut/,
    );
    assert.ok(elements(rs, 'orl_cut').includes(`${c.ip} : goto lorl_${suffix}`));
    const cut = desiredState(rs).chains.get(`lorl_${suffix}`)!;
    const rate = rs.config.logging.deniedPerSec;
    assert.equal(cut.rules.length, 2);
    assert.equal(
      cut.rules[0],
      `limit rate ${rate}/second burst ${rate} packets log prefix "DENY_ORL_${c.handle} "`,
    );
    assert.match(cut.rules[1]!, /^meta l4proto tcp reject with tcp reset comment/);
  });

  test('dry run (with or without limit and logging): logged, never rejected', () => {
    for (const orl of [{ dryRun: true }, { dryRun: true, limit: true, logging: false }]) {
      const rs = withLimits(orl);
      const suffix = rs.containers[0]!.ip.replaceAll('.', '_');
      const cut = desiredState(rs).chains.get(`lorl_${suffix}`)!;
      assert.equal(cut.rules.length, 1);
      assert.match(cut.rules[0]!, /log prefix "DENY_ORL_/);
      assert.doesNotMatch(cut.rules[0]!, /reject/);
    }
  });

  test('changing the limit rewrites the per-container chains only: the meter set is never deleted, flushed or written', () => {
    const prev = withLimits({ limit: true, burst: 30, ratePerSec: 2 });
    for (const next of [
      withLimits({ limit: true, burst: 60, ratePerSec: 5, logging: true }),
      withLimits(undefined),
      withLimits({ limit: true, dryRun: true }),
    ]) {
      const { script } = diffStates(desiredState(prev), desiredState(next));
      assert.ok(script.length > 0);
      assert.doesNotMatch(
        script,
        /^(?:add|create|delete|flush) (?:element|set) inet cfnet orl_meter/m,
        script,
      );
      assert.doesNotMatch(script, /\btable\b/, script);
    }
  });

  test('a meter entry is never part of a desired state (so drift repair never writes one)', () => {
    assert.equal(desiredState(withLimits({ limit: true })).sets.get('orl_meter')!.size, 0);
    assert.ok(SET_BY_NAME.get('orl_meter')!.kernelOwned);
    assert.doesNotMatch(setDecl(SET_BY_NAME.get('ctr_orl')!), /dynamic/);
  });

  test('invalid limits are refused naming the field', () => {
    const rs = withLimits({ limit: true });
    rs.config.outboundConnections!.ratePerSec = 0;
    assert.throws(
      () => desiredState(rs),
      (e: unknown) => e instanceof ValidationError && e.field === 'config.outboundConnections.ratePerSec',
    );
    const rs2 = withLimits({ limit: true });
    (rs2.config.outboundConnections as unknown as Record<string, unknown>).dryRun = 'yes';
    assert.throws(
      () => desiredState(rs2),
      (e: unknown) => e instanceof ValidationError && e.field === 'config.outboundConnections.dryRun',
    );
  });

  test("Silk's silk-cni properties parse into the config with Silk's defaults", () => {
    assert.deepEqual(parseCellConfig({}).outboundConnections, {
      limit: false,
      burst: 1000,
      ratePerSec: 100,
      logging: false,
      dryRun: false,
    });
    const c = parseCellConfig({
      outbound_connections: { limit: true, burst: 30, rate_per_sec: 2, dry_run: true },
    });
    assert.deepEqual(c.outboundConnections, {
      limit: true,
      burst: 30,
      ratePerSec: 2,
      logging: false,
      dryRun: true,
    });
    assert.throws(
      () => parseCellConfig({ outbound_connections: { rate_per_sec: 0 } }),
      (e: unknown) => e instanceof ValidationError && e.field === 'outbound_connections.rate_per_sec',
    );
    assert.throws(
      () => parseCellConfig({ outbound_connections: { ratePerSec: 2 } }),
      (e: unknown) => e instanceof ValidationError && e.field === 'outbound_connections.ratePerSec',
    );
  });
});

describe('disable_container_network_policy rendering', () => {
  test('on: c2c_open holds the overlay network; off or absent: empty', () => {
    assert.deepEqual(elements(withLimits(undefined, true), 'c2c_open'), ['10.255.0.0-10.255.255.255']);
    assert.deepEqual(elements(withLimits(undefined, false), 'c2c_open'), []);
    assert.deepEqual(elements(withLimits(undefined, undefined), 'c2c_open'), []);
    assert.match(renderFull(withLimits(undefined, true)), /^ {4}ip saddr @c2c_open accept$/m);
    assert.equal(
      parseCellConfig({ disable_container_network_policy: true }).disableContainerNetworkPolicy,
      true,
    );
    assert.equal(parseCellConfig({}).disableContainerNetworkPolicy, false);
  });

  test('switching it is one element change', () => {
    const { summary } = diffStates(
      desiredState(withLimits(undefined, false)),
      desiredState(withLimits(undefined, true)),
    );
    assert.deepEqual(summary, {
      elementsAdded: 1,
      elementsDeleted: 0,
      chainsAdded: 0,
      chainsRewritten: 0,
      chainsDeleted: 0,
    });
  });

  test('explain: a container reaches another on any port without a policy only with the switch on', () => {
    const [a, b] = withLimits(undefined, false).containers;
    const packet = { src: a!, dst: b!.ip, protocol: 'tcp' as const, port: 9999 };
    const off = decide(packet, withLimits(undefined, false), false, decisionOrder());
    assert.deepEqual([off.allowed, off.step], [false, 'default-deny']);
    const on = decide(packet, withLimits(undefined, true), false, decisionOrder());
    assert.deepEqual([on.allowed, on.step, on.chains], [true, 'c2c-open', ['hook_forward', 'ctr_in']]);
  });
});
