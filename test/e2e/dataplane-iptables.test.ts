/**
 * Operators' iptables rules against cfnet's denials, with real packets (CF's
 * custom_iptables_compatibility acceptance test, the iptables-writer job's rule). Topology, all in
 * namespaces made here and removed afterwards:
 *
 *   a (app 10.255.1.2) ── cell (nft + iptables; 192.0.2.1, listeners on 8898/8899) ── ext 192.0.2.2
 *                                                                    (servers on 203.0.113.10)
 *
 * Run once per iptables executable on this machine with cfnet's rules in its backend only
 * (`iptables`, and `iptables-legacy` when present), and once with both backends (iptables-legacy
 * and iptables-nft, when both are present): an operator's rule written with either one wins.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { IptablesBackends, type IptablesRules } from '../../src/agent/iptables.js';
import { backendRuleArgs, iptablesComment } from '../../src/dataplane/host-filter.js';
import { NftDataplane } from '../../src/dataplane/index.js';
import { runCommand } from '../../src/host/index.js';
import { parseCapiRules } from '../../src/model/asg-rule.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { container, ruleSetOf } from '../helpers/fixtures.js';
import {
  attachContainer,
  createNetns,
  deleteNetns,
  exec,
  localAddrs,
  probe,
  type Server,
  startServers,
  sysctlNs,
  uniqueName,
  veth,
  waitKernelLog,
  withSysctl,
} from '../helpers/netns.js';

const A = '10.255.1.2';
const CELL_IP = '192.0.2.1';
const EXT = '203.0.113.10';
const OVERLAY = '10.255.0.0/16';
/** Namespace prefix (a person running tests next to others may choose theirs). */
const PREFIX = process.env.CFNET_TEST_NETNS_PREFIX || 'cftipt';

const RUN = Math.random().toString(16).slice(2, 8);

function ruleSet(handle = `ipt-${RUN}-a`, asgLogging = false): CellRuleSet {
  return ruleSetOf([container(handle, A, { tag: 1, egress: 'H' })], {
    asgSets: { H: parseCapiRules([{ protocol: 'tcp', destination: EXT, ports: '443' }]) },
    config: {
      overlayNetwork: OVERLAY,
      dnsServers: ['169.254.0.2'],
      hostTcpServices: [],
      hostUdpServices: [],
      denyNetworks: { always: [], running: [], staging: [] },
      logging: { asg: asgLogging, c2c: false, deniedPerSec: 100, acceptedUdpPerSec: 100 },
    },
  });
}

/** CF's iptables-writer rule: overlay → this cell's address, tcp 8898. */
const OPERATOR_INPUT = ['-s', OVERLAY, '-d', CELL_IP, '-p', 'tcp', '--dport', '8898', '-j', 'ACCEPT'];
/** An operator's FORWARD accept to an address the container's ASGs do not allow on port 80. */
const OPERATOR_FORWARD = ['-s', OVERLAY, '-d', EXT, '-p', 'tcp', '--dport', '80', '-j', 'ACCEPT'];

const installed = (b: string) => ['/usr/sbin', '/sbin', '/usr/bin'].some((d) => existsSync(join(d, b)));
const backends = ['iptables', 'iptables-legacy'].filter(installed);

/** The test topology (namespaces, servers, cfnet's table in iptables mode) and its probes. */
function topology() {
  const t = {
    ns: {} as Record<string, string>,
    servers: [] as Server[],
    stateDir: '',
    dp: undefined as unknown as NftDataplane,
    /** Runs `binary -w …` in the cell namespace. */
    ipt: (binary: string, ...args: string[]) => exec(t.ns.cell!, [binary, '-w', ...args]),
    /** cfnet's rules in the backends of `binaries` (probed; each must run). */
    async backends(binaries: string[]): Promise<IptablesBackends> {
      const set = new IptablesBackends({
        binaries,
        table: 'cfnet',
        run: (argv, input) => runCommand(['ip', 'netns', 'exec', t.ns.cell!, ...argv], input),
      });
      const { skipped } = await set.probe(true);
      assert.deepEqual(skipped, []);
      return set;
    },
    /** host 8898, host 8899, ext 80, ext 8080 (ASG-denied), ext 443 (ASG-allowed). */
    probes: () =>
      probe(t.ns.a!, [
        { proto: 'tcp', host: CELL_IP, port: 8898 },
        { proto: 'tcp', host: CELL_IP, port: 8899 },
        { proto: 'tcp', host: EXT, port: 80 },
        { proto: 'tcp', host: EXT, port: 8080 },
        { proto: 'tcp', host: EXT, port: 443 },
      ]),
    async setUp(): Promise<void> {
      t.stateDir = await mkdtemp(join(tmpdir(), 'cfnet-ipt-'));
      for (const n of ['cell', 'ext', 'a']) {
        t.ns[n] = uniqueName(`${PREFIX}${n}`);
        await createNetns(t.ns[n]!);
      }
      const ns = t.ns;
      await sysctlNs(ns.cell!, 'net.ipv4.ip_forward', '1');
      await veth(ns.cell!, 'u-ext', ns.ext!, 'eth0', { addrA: `${CELL_IP}/24`, addrB: '192.0.2.2/24' });
      await localAddrs(ns.ext!, [`${EXT}/32`]);
      await exec(ns.cell!, ['ip', 'route', 'add', `${EXT}/32`, 'via', '192.0.2.2']);
      await attachContainer(ns.cell!, 'h-a', ns.a!, A);
      t.servers.push(
        await startServers(ns.cell!, { tcp: [8898, 8899] }),
        await startServers(ns.ext!, { tcp: [80, 443, 8080] }),
      );
      t.dp = new NftDataplane({ netns: ns.cell!, stateDir: t.stateDir, filterMode: 'iptables' });
    },
    async tearDown(): Promise<void> {
      await t.dp?.close();
      for (const s of t.servers) s.close();
      for (const n of Object.values(t.ns)) await deleteNetns(n);
      await rm(t.stateDir, { recursive: true, force: true });
    },
  };
  return t;
}

for (const binary of backends) {
  describe(`operators' ${binary} rules win over cfnet's denials in filterMode iptables (real packets)`, () => {
    const t = topology();
    const ns = t.ns;
    let dp: NftDataplane;
    let rules: IptablesRules;
    const ipt = (...args: string[]) => t.ipt(binary, ...args);
    const probes = t.probes;

    before(async () => {
      await t.setUp();
      dp = t.dp;
      rules = (await t.backends([binary])).used[0]!;
    });

    after(() => t.tearDown());

    test('without an operator rule cfnet rejects container→host and ASG-denied egress; ASG-allowed egress passes', async () => {
      assert.deepEqual(await rules.ensure(), ['added INPUT', 'added FORWARD']);
      await dp.applyFull(ruleSet());
      // the deferred chains (other priorities, marks) read back exactly as rendered
      assert.equal((await dp.detectDrift(ruleSet())).drift, false);
      assert.deepEqual(await probes(), ['refused', 'refused', 'refused', 'refused', 'open']);
    });

    test("an operator's INPUT accept inserted first lets the container reach host port 8898 only", async () => {
      await ipt('-I', 'INPUT', '1', ...OPERATOR_INPUT);
      assert.deepEqual(await probes(), ['open', 'refused', 'refused', 'refused', 'open']);
    });

    test("an operator's FORWARD accept inserted first lets ASG-denied egress through to that port only", async () => {
      await ipt('-I', 'FORWARD', '1', ...OPERATOR_FORWARD);
      assert.deepEqual(await probes(), ['open', 'refused', 'open', 'refused', 'open']);
    });

    test('DENY_ lines are written for packets rejected in the end, never for ones an operator accepted', async () => {
      const h = `ipt-${RUN}-${binary.length}`; // a handle of this backend's run only
      await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
        await dp.apply(ruleSet(h, true));
        assert.deepEqual((await probes()).slice(2, 4), ['open', 'refused']);
        const deny = await waitKernelLog(`DENY_${h} `);
        assert.ok(
          deny.some((l) => l.includes(`DST=${EXT}`) && l.includes('DPT=8080')),
          deny.join('\n'),
        );
        assert.ok(!deny.some((l) => l.includes('DPT=80 ')), deny.join('\n'));
      });
      await dp.apply(ruleSet());
    });

    test("ensure is idempotent, leaves operators' rules alone and keeps cfnet's rule after them", async () => {
      assert.deepEqual(await rules.ensure(), []);
      const input = (await ipt('-S', 'INPUT')).stdout.trim().split('\n');
      const ours = input.filter((l) => l.includes(iptablesComment('cfnet')));
      assert.equal(ours.length, 1);
      assert.match(input[1]!, /--dport 8898 -j ACCEPT/);
      assert.equal(input.at(-1), ours[0]);
    });

    test("a flushed INPUT chain loses cfnet's rule until ensure re-appends it (the drift check's repair)", async () => {
      await ipt('-F', 'INPUT');
      // nothing confirms the pending denial: this is the window the agent's drift check closes
      assert.deepEqual((await probes()).slice(0, 2), ['open', 'open']);
      await ipt('-I', 'INPUT', '1', ...OPERATOR_INPUT);
      assert.deepEqual(await rules.ensure(), ['added INPUT']);
      assert.deepEqual(await probes(), ['open', 'refused', 'open', 'refused', 'open']);
      // a duplicate of cfnet's own rule is removed, nothing else
      await ipt('-A', 'FORWARD', ...(await rules.list('FORWARD'))[0]!);
      assert.deepEqual(await rules.ensure(), ['removed FORWARD', 'removed FORWARD', 'added FORWARD']);
      assert.equal((await rules.list('FORWARD')).length, 1);
      assert.match((await ipt('-S', 'FORWARD')).stdout, /--dport 80 -j ACCEPT/);
    });

    test("filterMode nftables rejects by itself: operators' iptables accepts do not override it", async () => {
      const strict = new NftDataplane({ netns: ns.cell!, stateDir: t.stateDir, filterMode: 'nftables' });
      try {
        await strict.applyFull(ruleSet());
        assert.deepEqual(await probes(), ['refused', 'refused', 'refused', 'refused', 'open']);
        // back to iptables mode: the deferred chains come back, the operator's accepts win again
        assert.equal((await dp.repair(ruleSet())).repaired, true);
        assert.deepEqual(await probes(), ['open', 'refused', 'open', 'refused', 'open']);
        assert.equal(await rules.remove(), 2);
        assert.deepEqual(await ipt('-S', 'INPUT').then((r) => r.stdout.includes('cfnet')), false);
      } finally {
        await strict.close();
      }
    });
  });
}

const BOTH = ['iptables-legacy', 'iptables-nft'];

if (BOTH.every(installed))
  describe("with both iptables backends configured, an operator's accept written with either one wins (real packets)", () => {
    const t = topology();
    let set: IptablesBackends;
    const rejected = ['refused', 'refused', 'refused', 'refused', 'open'];

    before(async () => {
      await t.setUp();
      set = await t.backends(BOTH);
      assert.deepEqual(
        set.used.map((r) => r.backend),
        ['legacy', 'nft'],
      );
    });

    after(() => t.tearDown());

    test('without an operator rule everything cfnet denies stays rejected; each backend holds its two rules per chain', async () => {
      const done = await set.ensure();
      assert.equal(done.length, 8, done.join(', '));
      await t.dp.applyFull(ruleSet());
      // the nft side is the same as with one backend: no drift against the rendered table
      assert.equal((await t.dp.detectDrift(ruleSet())).drift, false);
      for (const r of set.used)
        for (const chain of ['INPUT', 'FORWARD'] as const)
          assert.deepEqual(await r.list(chain), backendRuleArgs('cfnet', r.backend, ['legacy', 'nft']));
      assert.deepEqual(await t.probes(), rejected);
    });

    for (const binary of BOTH) {
      test(`an INPUT accept via ${binary} opens host port 8898 only; removed, 8898 is rejected again`, async () => {
        await t.ipt(binary, '-I', 'INPUT', '1', ...OPERATOR_INPUT);
        assert.deepEqual(await t.probes(), ['open', 'refused', 'refused', 'refused', 'open']);
        await t.ipt(binary, '-D', 'INPUT', ...OPERATOR_INPUT);
        assert.deepEqual(await t.probes(), rejected);
      });

      test(`a FORWARD accept via ${binary} opens the ASG-denied destination port only`, async () => {
        await t.ipt(binary, '-I', 'FORWARD', '1', ...OPERATOR_FORWARD);
        assert.deepEqual(await t.probes(), ['refused', 'refused', 'open', 'refused', 'open']);
        await t.ipt(binary, '-D', 'FORWARD', ...OPERATOR_FORWARD);
        assert.deepEqual(await t.probes(), rejected);
      });
    }

    test('DENY_ lines are written only for packets rejected in the end (an accept in one backend is not logged)', async () => {
      const h = `ipt-${RUN}-both`;
      await t.ipt('iptables-legacy', '-I', 'FORWARD', '1', ...OPERATOR_FORWARD);
      try {
        await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
          await t.dp.apply(ruleSet(h, true));
          assert.deepEqual((await t.probes()).slice(2, 4), ['open', 'refused']);
          const deny = await waitKernelLog(`DENY_${h} `);
          assert.ok(
            deny.some((l) => l.includes(`DST=${EXT}`) && l.includes('DPT=8080')),
            deny.join('\n'),
          );
          assert.ok(!deny.some((l) => l.includes('DPT=80 ')), deny.join('\n'));
        });
      } finally {
        await t.ipt('iptables-legacy', '-D', 'FORWARD', ...OPERATOR_FORWARD);
        await t.dp.apply(ruleSet());
      }
    });

    for (const binary of BOTH) {
      test(`flushing cfnet's rules in ${binary} opens what only they confirmed, until ensure puts them back`, async () => {
        await t.ipt(binary, '-F', 'INPUT');
        // the other backend alone only half-confirms: the window the agent's drift repair closes
        assert.deepEqual((await t.probes()).slice(0, 2), ['open', 'open']);
        assert.deepEqual(await set.ensure(), [`${binary}: added INPUT`, `${binary}: added INPUT`]);
        assert.deepEqual(await t.probes(), rejected);
        assert.deepEqual(await set.ensure(), []);
      });
    }

    test("cfnet's rules stay behind an operator's in both backends; remove takes out all eight", async () => {
      for (const binary of BOTH) await t.ipt(binary, '-I', 'INPUT', '1', ...OPERATOR_INPUT);
      assert.deepEqual(await set.ensure(), []);
      for (const binary of BOTH) {
        const input = (await t.ipt(binary, '-S', 'INPUT')).stdout.trim().split('\n');
        assert.match(input[1]!, /--dport 8898 -j ACCEPT/, binary);
        assert.equal(input.filter((l) => l.includes(iptablesComment('cfnet'))).length, 2, binary);
      }
      assert.equal(await set.remove(), 8);
      for (const binary of BOTH) assert.doesNotMatch((await t.ipt(binary, '-S')).stdout, /cfnet/);
    });
  });
