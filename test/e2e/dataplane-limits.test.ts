/**
 * Silk parity switches on one cell, real packets: the outbound connection limit (silk-cni's
 * `outbound_connections`) and `disable_container_network_policy`. Topology (namespaces made here,
 * removed afterwards):
 *
 *   a (app 10.255.1.2) ─┐
 *                       ├─ cell (nft) ── ext 192.0.2.2 (+ 203.0.113.10, .11: echo servers)
 *   b (app 10.255.1.3) ─┘
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NftDataplane } from '../../src/dataplane/index.js';
import { type KernelLogEntry, parseKernelLogLine } from '../../src/dataplane/kernel-log.js';
import { parseCapiRules } from '../../src/model/asg-rule.js';
import type { CellRuleSet, OutboundConnectionsConfig } from '../../src/model/types.js';
import {
  attachContainer,
  createNetns,
  deleteNetns,
  ip,
  kernelLog,
  localAddrs,
  type Probe,
  probe,
  type Server,
  startServers,
  sysctlNs,
  tcp,
  uniqueName,
  veth,
  withSysctl,
} from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

const RUN = Math.random().toString(16).slice(2, 8);
const A = '10.255.1.2';
const B = '10.255.1.3';
const DEST = '203.0.113.10';
const OTHER = '203.0.113.11';
const handle = (name: string) => `${RUN}-${name}-0000-4000-8000-000000000000`;

const LIMIT_OFF: OutboundConnectionsConfig = {
  limit: false,
  burst: 1000,
  ratePerSec: 100,
  logging: false,
  dryRun: false,
};

function ruleSet(orl: Partial<OutboundConnectionsConfig> = {}, open = false): CellRuleSet {
  const ctr = (name: string, addr: string, tag: number) => ({
    handle: handle(name),
    ip: addr,
    appGuid: `app-${name}`,
    spaceGuid: 'space',
    orgGuid: 'org',
    workload: 'app' as const,
    tag,
    egress: 'open',
    netIn: [],
  });
  return {
    cellId: 'cell-limits',
    version: 1,
    containers: [ctr('a', A, 1), ctr('b', B, 2)],
    asgSets: { open: parseCapiRules([{ protocol: 'tcp', destination: '203.0.113.0/24', ports: '80,443' }]) },
    c2c: [],
    config: {
      overlayNetwork: '10.255.0.0/16',
      dnsServers: [],
      hostTcpServices: [],
      hostUdpServices: [],
      denyNetworks: { always: [], running: [], staging: [] },
      logging: { asg: false, c2c: false, deniedPerSec: 100, acceptedUdpPerSec: 100 },
      outboundConnections: { ...LIMIT_OFF, ...orl },
      disableContainerNetworkPolicy: open,
    },
  };
}

/** `n` concurrent new TCP connections from `ns` to host:port; how many the echo answered. */
async function burstOf(ns: string, n: number, host: string, port: number): Promise<Map<string, number>> {
  const probes: Probe[] = Array.from({ length: n }, () => ({ proto: 'tcp', host, port }));
  const counts = new Map<string, number>();
  for (const r of await probe(ns, probes, 3000)) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

/** cfnet's DENY_ORL_ kernel log entries of one container (structured, not text). */
async function cutsLogged(h: string): Promise<KernelLogEntry[]> {
  const lines = await kernelLog(`DENY_ORL_${h} `);
  return lines.map(parseKernelLogLine).filter((e): e is KernelLogEntry => e?.kind === 'DENY_ORL_');
}

describe('outbound connection limit and disable_container_network_policy on one cell (real packets)', () => {
  const ns: Record<string, string> = {};
  const servers: Server[] = [];
  let stateDir = '';
  let dp: NftDataplane;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'cfnet-dp-limits-'));
    for (const n of ['cell', 'ext', 'a', 'b']) {
      ns[n] = uniqueName(`hl${n}`);
      await createNetns(ns[n]!);
    }
    const cell = ns.cell!;
    await sysctlNs(cell, 'net.ipv4.ip_forward', '1');
    await veth(cell, 'u-ext', ns.ext!, 'eth0', { addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
    await localAddrs(ns.ext!, [`${DEST}/32`, `${OTHER}/32`]);
    await ip(cell, 'route', 'add', '203.0.113.0/24', 'via', '192.0.2.2');
    await attachContainer(cell, 'h-a', ns.a!, A);
    await attachContainer(cell, 'h-b', ns.b!, B);
    servers.push(
      await startServers(ns.ext!, { tcp: [80, 443] }),
      await startServers(ns.b!, { tcp: [8080] }),
      await startServers(ns.a!, { tcp: [8080] }),
    );
    dp = new NftDataplane({ netns: cell, stateDir, session: true });
  });

  after(async () => {
    await dp.close();
    for (const s of servers) s.close();
    for (const n of Object.values(ns)) await deleteNetns(n);
    await rm(stateDir, { recursive: true, force: true });
  });

  test('a burst above the limit is cut at the burst, per destination and port, and every cut is logged as DENY_ORL_<handle>', async () => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      await dp.applyFull(ruleSet({ limit: true, burst: 10, ratePerSec: 1, logging: true }));
      const first = await burstOf(ns.a!, 25, DEST, 80);
      // the bucket holds 10; at 1/s at most a couple refill while the burst is under way
      const open = first.get('open') ?? 0;
      assert.ok(open >= 10 && open <= 12, `open ${open}: ${JSON.stringify([...first])}`);
      assert.equal(first.get('refused') ?? 0, 25 - open, 'the rest are refused (TCP reset), none hang');
      // another port of the same address, another address and another container have buckets of their own
      assert.equal(await tcp(ns.a!, DEST, 443), 'open');
      assert.equal(await tcp(ns.a!, OTHER, 80), 'open');
      assert.equal(await tcp(ns.b!, DEST, 80), 'open');
      await waitUntil(
        'the cuts are in the kernel log',
        async () => (await cutsLogged(handle('a'))).length > 0,
      );
      const cuts = await cutsLogged(handle('a'));
      assert.ok(
        cuts.every((e) => e.packet.src_ip === A && e.packet.dst_ip === DEST && e.packet.dst_port === 80),
        JSON.stringify(cuts.map((e) => e.packet)),
      );
      assert.ok(cuts.length <= 25 - open, `${cuts.length} log lines for ${25 - open} cuts`);
      // c2c is never limited (Silk limits egress only)
      const c2c = await burstOf(ns.a!, 15, B, 8080);
      assert.equal(c2c.get('refused') ?? 0, 15, 'c2c without a policy stays closed, never counted');
    });
  });

  test('the buckets survive rule-set changes: an incremental apply neither refills nor resets them', async () => {
    const rs = ruleSet({ limit: true, burst: 5, ratePerSec: 1 });
    await dp.applyFull(rs);
    const first = await burstOf(ns.a!, 8, DEST, 443);
    assert.ok((first.get('open') ?? 0) <= 6, JSON.stringify([...first]));
    // a rule-set change: container b leaves, a's ASG grows, the log setting flips (chains rewritten)
    const next = ruleSet({ limit: true, burst: 5, ratePerSec: 1, logging: true });
    next.containers = next.containers.filter((c) => c.ip !== B);
    next.asgSets.open!.push(
      ...parseCapiRules([{ protocol: 'tcp', destination: '198.51.100.1', ports: '22' }]),
    );
    const res = await dp.apply(next);
    assert.equal(res.mode, 'incremental');
    const second = await burstOf(ns.a!, 5, DEST, 443);
    assert.ok(
      (second.get('open') ?? 0) <= 2,
      `a refilled bucket would let 5 through: ${JSON.stringify([...second])}`,
    );
    assert.equal((await dp.detectDrift(next)).drift, false, 'the meter is no drift');
  });

  test('CNI DEL and ADD (per-container transactions) remove and write a container’s limit chains with it', async () => {
    const rs = ruleSet({ limit: true, burst: 4, ratePerSec: 1, logging: true });
    await dp.applyFull(rs);
    const b = rs.containers.find((c) => c.ip === B)!;
    const removed = await dp.removeContainer(b.handle);
    assert.equal(removed.changed, true);
    let kernel = await dp.readBack();
    assert.deepEqual(
      [...kernel.chains.keys()].filter((n) => /^l?orl_10_255_1_3$/.test(n)),
      [],
      'orl_ and lorl_ chains of b are gone',
    );
    assert.equal(kernel.sets.get('ctr_orl')!.size, 1);
    const added = await dp.addContainer(b, rs.asgSets.open!, rs.config, { fresh: true });
    assert.equal(added.changed, true);
    kernel = await dp.readBack();
    assert.ok(kernel.chains.has('orl_10_255_1_3') && kernel.chains.has('lorl_10_255_1_3'));
    const r = await burstOf(ns.b!, 10, DEST, 80);
    assert.ok((r.get('open') ?? 0) >= 4 && (r.get('open') ?? 0) <= 5, JSON.stringify([...r]));
  });

  test('dry run: nothing is cut, and what would have been is logged', async () => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      await dp.applyFull(ruleSet({ limit: true, dryRun: true, burst: 3, ratePerSec: 1, logging: false }));
      const before = (await cutsLogged(handle('b'))).length;
      const r = await burstOf(ns.b!, 12, OTHER, 443);
      assert.equal(r.get('open') ?? 0, 12, JSON.stringify([...r]));
      await waitUntil(
        'the would-be cuts are logged',
        async () => (await cutsLogged(handle('b'))).length >= before + 8,
      );
    });
  });

  test('limit off: a burst of any size goes through', async () => {
    await dp.applyFull(ruleSet());
    const r = await burstOf(ns.a!, 40, OTHER, 80);
    assert.equal(r.get('open') ?? 0, 40, JSON.stringify([...r]));
  });

  test('disable_container_network_policy: on, c2c without a policy is open both ways on any port; off, closed again', async () => {
    await dp.applyFull(ruleSet());
    assert.equal(await tcp(ns.a!, B, 8080), 'refused');
    const on = await dp.apply(ruleSet({}, true));
    assert.equal(on.mode, 'incremental');
    assert.equal(await tcp(ns.a!, B, 8080), 'open');
    assert.equal(await tcp(ns.b!, A, 8080), 'open');
    // egress is still the ASGs' business
    assert.equal(await tcp(ns.a!, DEST, 8080), 'refused');
    await dp.apply(ruleSet({}, false));
    assert.equal(await tcp(ns.a!, B, 8080), 'refused');
    assert.equal(await tcp(ns.b!, A, 8080), 'refused');
  });
});
