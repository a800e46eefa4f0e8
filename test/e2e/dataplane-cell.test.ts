/**
 * One cell, real packets. Topology (all in namespaces created here, removed afterwards):
 *
 *   a (app 10.255.1.2)  ─┐                      ┌─ ext 192.0.2.2 + destinations 203.0.113.x, 198.51.100.x
 *   t (task 10.255.1.3) ─┼─ cell (nft, 169.254.0.2 DNS/host services) ─┤
 *   s (staging .4)      ─┤                      └─ rtr 198.18.0.2 (NetIn via cell 198.18.0.1)
 *   b (app .5, servers) ─┘
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { desiredState } from '../../src/dataplane/desired.js';
import {
  AddressTakenError,
  NftApplyError,
  NftDataplane,
  renderFull,
  renderStateFull,
} from '../../src/dataplane/index.js';
import { applyScript } from '../../src/dataplane/nft.js';
import { parseCapiRules } from '../../src/model/asg-rule.js';
import type { CellRuleSet, EgressRule, IpRange } from '../../src/model/types.js';
import {
  attachContainer,
  createNetns,
  deleteNetns,
  exec,
  icmp,
  ip,
  LongConnection,
  localAddrs,
  type Probe,
  probe,
  type Server,
  startServers,
  sysctlNs,
  tcp,
  udp,
  uniqueName,
  veth,
  waitKernelLog,
  withSysctl,
} from '../helpers/netns.js';

const RUN = Math.random().toString(16).slice(2, 8);
const r4 = (start: string, end = start): IpRange => ({ family: 4, start, end });

/** The ASGs as CAPI stores them, parsed by src/model as the controller does. */
const H1: EgressRule[] = parseCapiRules([
  { protocol: 'tcp', destination: '203.0.113.10', ports: '443' }, // one address, one port
  { protocol: 'tcp', destination: '203.0.113.20-203.0.113.21', ports: '9000-9001' }, // range, port range
  { protocol: 'tcp', destination: '198.51.100.0/24', ports: '80,8080' }, // CIDR, port list
  { protocol: 'tcp', destination: '203.0.113.40,203.0.113.41', ports: '2222' }, // destination list
  { protocol: 'udp', destination: '203.0.113.11', ports: '53' },
  { protocol: 'all', destination: '203.0.113.12' },
  { protocol: 'icmp', destination: '203.0.113.10', type: 8, code: 0 }, // ICMP type and code
  { protocol: 'icmp', destination: '203.0.113.21', type: 8, code: -1 }, // ICMP type, any code
  { protocol: 'tcp', destination: '203.0.113.30', ports: '80' }, // beaten by deny_networks.always
]);
const H2: EgressRule[] = [];
const H3: EgressRule[] = parseCapiRules([{ protocol: 'tcp', destination: '203.0.113.20', ports: '9002' }]);

const A = '10.255.1.2';
const T = '10.255.1.3';
const S = '10.255.1.4';
const B = '10.255.1.5';

function ruleSet(over: Partial<CellRuleSet> = {}): CellRuleSet {
  const ctr = (
    name: string,
    ip: string,
    workload: 'app' | 'task' | 'staging',
    tag: number | null,
    egress: string,
  ) => ({
    handle: `${RUN}-${name}-0000-4000-8000-000000000000`,
    ip,
    appGuid: `app-${name}`,
    spaceGuid: 'space',
    orgGuid: 'org',
    workload,
    tag,
    egress,
    netIn: name === 'b' ? [{ hostPort: 61001, containerPort: 8080 }] : [],
  });
  return {
    cellId: 'cell-1',
    version: 1,
    containers: [
      ctr('a', A, 'app', 1, 'H1'),
      ctr('t', T, 'task', 2, 'H2'),
      ctr('s', S, 'staging', null, 'H1'),
      ctr('b', B, 'app', 3, 'H2'),
    ],
    asgSets: { H1, H2, H3 },
    c2c: [{ srcTag: 1, dstIp: B, protocol: 'tcp', ports: { start: 8080, end: 8080 } }],
    config: {
      overlayNetwork: '10.255.0.0/16',
      dnsServers: ['169.254.0.2'],
      hostTcpServices: [{ ip: '169.254.0.2', port: 9001 }],
      hostUdpServices: [{ ip: '169.254.0.2', port: 8125 }],
      denyNetworks: {
        always: [r4('203.0.113.30')],
        running: [r4('198.51.100.200')],
        staging: [r4('203.0.113.11')],
      },
      logging: { asg: false, c2c: false, deniedPerSec: 5, acceptedUdpPerSec: 100 },
    },
    ...over,
  };
}

const handle = (name: string) => `${RUN}-${name}-0000-4000-8000-000000000000`;

describe('dataplane on one cell (real packets)', () => {
  const ns: Record<string, string> = {};
  const servers: Server[] = [];
  let stateDir = '';
  let dp: NftDataplane;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'cfnet-dp-'));
    for (const n of ['cell', 'ext', 'rtr', 'a', 't', 's', 'b']) {
      ns[n] = uniqueName(`cft${n}`);
      await createNetns(ns[n]!);
    }
    const cell = ns.cell!;
    await sysctlNs(cell, 'net.ipv4.ip_forward', '1');
    // UDP denials are observed through ICMP port-unreachable: no per-peer ICMP rate limit here
    await sysctlNs(cell, 'net.ipv4.icmp_ratelimit', '0');
    await veth(cell, 'u-ext', ns.ext!, 'eth0', { addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
    await veth(cell, 'u-rtr', ns.rtr!, 'eth0', { addrA: '198.18.0.1/24', addrB: '198.18.0.2/24' });
    await localAddrs(ns.ext!, [
      '203.0.113.10/32',
      '203.0.113.11/32',
      '203.0.113.12/32',
      '203.0.113.20/32',
      '203.0.113.21/32',
      '203.0.113.22/32',
      '203.0.113.30/32',
      '203.0.113.40/32',
      '203.0.113.41/32',
      '203.0.113.42/32',
      '198.51.100.5/32',
      '198.51.100.200/32',
      '198.51.101.1/32',
    ]);
    await ip(cell, 'route', 'add', '203.0.113.0/24', 'via', '192.0.2.2');
    await ip(cell, 'route', 'add', '198.51.100.0/23', 'via', '192.0.2.2');
    // the router knows the overlay is behind the cell (to prove direct access is refused)
    await ip(ns.rtr!, 'route', 'add', '10.255.0.0/16', 'via', '198.18.0.1');
    await localAddrs(cell, ['169.254.0.2/32']);
    await attachContainer(cell, 'h-a', ns.a!, A);
    await attachContainer(cell, 'h-t', ns.t!, T);
    await attachContainer(cell, 'h-s', ns.s!, S);
    await attachContainer(cell, 'h-b', ns.b!, B);
    servers.push(
      await startServers(ns.ext!, { tcp: [80, 443, 8080, 9000, 9001, 9002, 2222] }),
      await startServers(ns.ext!, { udp: [53, 5000], hosts: ['203.0.113.11', '203.0.113.12'] }),
      await startServers(cell, { tcp: [53, 9001, 9002], udp: [53, 8125, 8126], hosts: ['169.254.0.2'] }),
      await startServers(ns.b!, { tcp: [8080, 8081], udp: [8080] }),
    );
    // the agent's way: a long-lived dataplane with an nft session for small changes
    dp = new NftDataplane({ netns: cell, stateDir, session: true });
  });

  after(async () => {
    await dp.close();
    for (const s of servers) s.close();
    for (const n of Object.values(ns)) await deleteNetns(n);
    await rm(stateDir, { recursive: true, force: true });
  });

  test('ASG allow/deny by IP, range, CIDR, list, ports, protocol all; deny networks; default deny', async () => {
    const res = await dp.applyFull(ruleSet());
    assert.equal(res.mode, 'full');
    const cases: [string, Probe, string][] = [
      ['a', { proto: 'tcp', host: '203.0.113.10', port: 443 }, 'open'], // single IP + port
      ['a', { proto: 'tcp', host: '203.0.113.10', port: 80 }, 'refused'], // port not allowed
      ['a', { proto: 'tcp', host: '203.0.113.20', port: 9000 }, 'open'], // IP range + port range
      ['a', { proto: 'tcp', host: '203.0.113.21', port: 9001 }, 'open'],
      ['a', { proto: 'tcp', host: '203.0.113.21', port: 9002 }, 'refused'], // outside port range
      ['a', { proto: 'tcp', host: '203.0.113.22', port: 9000 }, 'refused'], // outside address range
      ['a', { proto: 'tcp', host: '198.51.100.5', port: 80 }, 'open'], // CIDR + port list
      ['a', { proto: 'tcp', host: '198.51.100.5', port: 8080 }, 'open'],
      ['a', { proto: 'tcp', host: '198.51.100.5', port: 443 }, 'refused'], // not in the port list
      ['a', { proto: 'tcp', host: '198.51.101.1', port: 80 }, 'refused'], // outside the CIDR
      ['a', { proto: 'tcp', host: '203.0.113.40', port: 2222 }, 'open'], // destination list
      ['a', { proto: 'tcp', host: '203.0.113.41', port: 2222 }, 'open'],
      ['a', { proto: 'tcp', host: '203.0.113.42', port: 2222 }, 'refused'],
      ['a', { proto: 'udp', host: '203.0.113.11', port: 53 }, 'open'], // udp
      ['a', { proto: 'tcp', host: '203.0.113.11', port: 80 }, 'refused'], // protocol mismatch
      ['a', { proto: 'tcp', host: '203.0.113.12', port: 2222 }, 'open'], // protocol all
      ['a', { proto: 'udp', host: '203.0.113.12', port: 5000 }, 'open'],
      ['a', { proto: 'tcp', host: '203.0.113.30', port: 80 }, 'refused'], // deny always beats ASG
      ['a', { proto: 'tcp', host: '198.51.100.200', port: 80 }, 'refused'], // deny running (app)
      ['s', { proto: 'tcp', host: '198.51.100.200', port: 80 }, 'open'], // staging: running deny n/a
      ['s', { proto: 'udp', host: '203.0.113.11', port: 53 }, 'refused'], // deny staging
      ['s', { proto: 'tcp', host: '203.0.113.10', port: 443 }, 'open'],
      ['t', { proto: 'tcp', host: '203.0.113.10', port: 443 }, 'refused'], // empty ASG: default deny
      ['t', { proto: 'udp', host: '203.0.113.12', port: 5000 }, 'refused'],
    ];
    const byNs = new Map<string, number[]>();
    cases.forEach(([who], i) => {
      byNs.set(who, [...(byNs.get(who) ?? []), i]);
    });
    const got: string[] = new Array(cases.length);
    await Promise.all(
      [...byNs].map(async ([who, idx]) => {
        const r = await probe(
          ns[who]!,
          idx.map((i) => cases[i]![1]),
        );
        idx.forEach((i, k) => {
          got[i] = r[k]!;
        });
      }),
    );
    const want = cases.map(([who, p, w]) => `${who} ${p.proto} ${p.host}:${p.port} ${w}`);
    const have = cases.map(([who, p], i) => `${who} ${p.proto} ${p.host}:${p.port} ${got[i]}`);
    assert.deepEqual(have, want);
  });

  test('ICMP type/code rules and masquerade to the underlay', async () => {
    await dp.apply(ruleSet());
    assert.equal(await icmp(ns.a!, '203.0.113.10', { type: 8, code: 0 }), 'reply');
    assert.equal(await icmp(ns.a!, '203.0.113.10', { type: 13, code: 0 }), 'unreachable'); // wrong type
    assert.equal(await icmp(ns.a!, '203.0.113.10', { type: 8, code: 1 }), 'unreachable'); // wrong code
    assert.equal(await icmp(ns.a!, '203.0.113.12', { type: 13, code: 0 }), 'reply'); // protocol all
    // type 8, any code (echo replies carry the request's code, so conntrack matches them)
    assert.equal(await icmp(ns.a!, '203.0.113.21', { type: 8, code: 0 }), 'reply');
    assert.equal(await icmp(ns.a!, '203.0.113.21', { type: 8, code: 1 }), 'reply');
    assert.equal(await icmp(ns.a!, '203.0.113.21', { type: 13, code: 0 }), 'unreachable');
    assert.equal(await icmp(ns.t!, '203.0.113.10', { type: 8, code: 0 }), 'unreachable');
    const c = await LongConnection.open(ns.a!, '203.0.113.10', 443);
    try {
      assert.equal(await c.send('who'), 'data pong:443:192.0.2.1:who'); // source NATed to the cell
    } finally {
      c.close();
    }
  });

  test('DNS and host services allowed, other host ports refused', async () => {
    await dp.apply(ruleSet());
    const r = await probe(ns.a!, [
      { proto: 'udp', host: '169.254.0.2', port: 53 },
      { proto: 'tcp', host: '169.254.0.2', port: 53 },
      { proto: 'tcp', host: '169.254.0.2', port: 9001 },
      { proto: 'udp', host: '169.254.0.2', port: 8125 },
      { proto: 'tcp', host: '169.254.0.2', port: 9002 },
      { proto: 'udp', host: '169.254.0.2', port: 8126 },
    ]);
    assert.deepEqual(r, ['open', 'open', 'open', 'open', 'refused', 'refused']);
  });

  test('c2c on the cell: only the policy source, protocol and port', async () => {
    await dp.apply(ruleSet());
    assert.deepEqual(
      await probe(ns.a!, [
        { proto: 'tcp', host: B, port: 8080 },
        { proto: 'tcp', host: B, port: 8081 },
        { proto: 'udp', host: B, port: 8080 },
      ]),
      ['open', 'refused', 'refused'],
    );
    assert.equal(await tcp(ns.t!, B, 8080), 'refused'); // other app (tag 2)
    assert.equal(await tcp(ns.s!, B, 8080), 'refused'); // no tag at all
  });

  test('NetIn: router reaches host port -> container port; not the container directly', async () => {
    await dp.apply(ruleSet());
    assert.deepEqual(
      await probe(ns.rtr!, [
        { proto: 'tcp', host: '198.18.0.1', port: 61001 },
        { proto: 'tcp', host: B, port: 8080 },
        { proto: 'tcp', host: '198.18.0.1', port: 61002 },
      ]),
      ['open', 'refused', 'refused'],
    );
    // a DNAT made by another table is not NetIn: without cfnet's ingress mark, c2c default deny
    await exec(ns.cell!, [
      'nft',
      'add table ip other_fwd; add chain ip other_fwd pre { type nat hook prerouting priority dstnat - 10; }; ' +
        `add rule ip other_fwd pre tcp dport 62000 dnat to ${B}:8080`,
    ]);
    try {
      assert.deepEqual(
        await probe(ns.rtr!, [
          { proto: 'tcp', host: '198.18.0.1', port: 62000 },
          { proto: 'tcp', host: '198.18.0.1', port: 61001 },
        ]),
        ['refused', 'open'],
      );
    } finally {
      await exec(ns.cell!, ['nft', 'delete table ip other_fwd']);
    }
  });

  test('ASG change while running: long-lived connection survives, new rules apply', async () => {
    await dp.applyFull(ruleSet());
    const conn = await LongConnection.open(ns.a!, '203.0.113.10', 443);
    try {
      assert.equal(await conn.send('before'), 'data pong:443:192.0.2.1:before');
      assert.equal(await tcp(ns.a!, '203.0.113.20', 9002), 'refused');
      const next = ruleSet();
      next.containers[0]!.egress = 'H3';
      const res = await dp.apply(next);
      assert.equal(res.mode, 'incremental');
      assert.ok(res.summary && res.summary.elementsAdded >= 1 && res.summary.elementsDeleted >= 1);
      assert.equal(await conn.send('after'), 'data pong:443:192.0.2.1:after');
      assert.equal(await tcp(ns.a!, '203.0.113.20', 9002), 'open');
      assert.equal(await tcp(ns.a!, '203.0.113.10', 443), 'refused');
      assert.equal((await dp.detectDrift(next)).drift, false);
    } finally {
      conn.close();
    }
  });

  test('log lines with OK_, DENY_ and DENY_C2C_ prefixes', async () => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      const rs = ruleSet();
      rs.config.logging = { asg: true, c2c: true, deniedPerSec: 5, acceptedUdpPerSec: 100 };
      await dp.apply(rs);
      assert.equal(await tcp(ns.a!, '203.0.113.10', 443), 'open');
      assert.equal(await tcp(ns.a!, '203.0.113.10', 80), 'refused');
      assert.equal(await tcp(ns.t!, B, 8080), 'refused');
      const ok = await waitKernelLog(`OK_${handle('a')} `);
      const deny = await waitKernelLog(`DENY_${handle('a')} `);
      const c2c = await waitKernelLog(`DENY_C2C_${handle('b')} `);
      assert.ok(
        ok.some((l) => l.includes('DST=203.0.113.10') && l.includes('DPT=443')),
        ok.join('\n'),
      );
      assert.ok(
        deny.some((l) => l.includes('DST=203.0.113.10') && l.includes('DPT=80')),
        deny.join('\n'),
      );
      assert.ok(
        c2c.some((l) => l.includes(`SRC=${T}`) && l.includes('DPT=8080')),
        c2c.join('\n'),
      );
      // per-rule log flag without global logging: only that container's accepted connection
      const rs2 = ruleSet();
      rs2.asgSets.H3 = parseCapiRules([
        { protocol: 'tcp', destination: '203.0.113.20', ports: '9002', log: true },
      ]);
      rs2.containers[0]!.egress = 'H3';
      await dp.apply(rs2);
      assert.equal(await tcp(ns.a!, '203.0.113.20', 9002), 'open');
      const ok2 = await waitKernelLog(`OK_${handle('a')} `);
      assert.ok(
        ok2.some((l) => l.includes('DPT=9002')),
        ok2.join('\n'),
      );
      assert.equal(await tcp(ns.a!, '203.0.113.20', 9000), 'refused');
      await new Promise((r) => setTimeout(r, 300));
      const deny2 = await waitKernelLog(`DENY_${handle('a')} `, 200);
      assert.ok(!deny2.some((l) => l.includes('DPT=9000')), 'no DENY log without global logging');
    });
  });

  test('full replace leaves no stale elements; failing transaction keeps rules in force', async () => {
    const big = ruleSet();
    big.c2c.push({ srcTag: 9, dstIp: A, protocol: 'udp', ports: { start: 1, end: 100 } });
    big.config.denyNetworks.always.push(r4('203.0.113.99'));
    await dp.applyFull(big);
    const small = ruleSet();
    small.containers = small.containers.filter((c) => c.ip !== S);
    await dp.applyFull(small);
    const drift = await dp.detectDrift(small);
    assert.equal(drift.drift, false, JSON.stringify(drift));
    const kernel = await dp.readBack();
    assert.equal(kernel.sets.get('ctr_addrs')!.size, 3);
    assert.equal(kernel.sets.get('c2c_tcp')!.size + kernel.sets.get('c2c_udp')!.size, 1);
    assert.equal(kernel.sets.get('c2c_range')!.size, 0);
    assert.equal(kernel.sets.get('deny_always')!.size, 1);

    // a transaction that fails half-way changes nothing
    const broken = `${renderFull(ruleSet({ containers: [] }))}add rule inet cfnet ctr_out bogus garbage\n`;
    const lines = broken.split('\n').length - 1;
    await assert.rejects(applyScript(broken, { netns: ns.cell! }), (err: unknown) => {
      assert.ok(err instanceof NftApplyError);
      assert.equal(err.line, lines);
      assert.match(err.lineText ?? '', /bogus garbage/);
      return true;
    });
    assert.equal((await dp.detectDrift(small)).drift, false);
    assert.equal(await tcp(ns.a!, '203.0.113.10', 443), 'open');
    assert.equal(await tcp(ns.a!, '203.0.113.10', 80), 'refused');
  });

  test('incremental failure falls back to a full apply; drift is detected and repaired', async () => {
    const rs = ruleSet();
    await dp.applyFull(rs);
    // another writer removes an element the next update would delete -> that delete fails
    await applyScript(`delete element inet cfnet ctr_tag { ${T} }\n`, { netns: ns.cell! });
    const drift = await dp.detectDrift();
    assert.equal(drift.drift, true);
    assert.deepEqual(drift.missingElements, [{ set: 'ctr_tag', element: `${T} : 0x00000002` }]);
    const next = ruleSet();
    next.containers[1]!.tag = null;
    next.containers[0]!.tag = 7;
    const res = await dp.apply(next);
    assert.equal(res.mode, 'full');
    assert.ok(res.fallbackFrom instanceof NftApplyError);
    assert.equal((await dp.detectDrift(next)).drift, false);
    // repair: flush a shared ASG chain behind the dataplane's back
    await applyScript('flush chain inet cfnet asg_H1\n', { netns: ns.cell! });
    assert.equal(await tcp(ns.s!, '203.0.113.10', 443), 'refused');
    const rep = await dp.repair();
    assert.equal(rep.repaired, true);
    assert.deepEqual(rep.report.changedChains, ['asg_H1']);
    assert.equal(await tcp(ns.s!, '203.0.113.10', 443), 'open');
    assert.equal((await dp.repair()).repaired, false);
  });

  test('CNI path: add/remove one container from a fresh process state (read-back), idempotent', async () => {
    const rs = ruleSet();
    rs.containers = rs.containers.filter((c) => c.ip !== A);
    await dp.applyFull(rs);
    assert.equal(await tcp(ns.a!, '203.0.113.10', 443), 'refused'); // unknown overlay source
    const full = ruleSet();
    const a = full.containers[0]!;
    const cni = new NftDataplane({ netns: ns.cell!, stateDir }); // no in-memory state
    const add1 = await cni.addContainer(a, H1, full.config);
    assert.equal(add1.changed, true);
    assert.equal(await tcp(ns.a!, '203.0.113.10', 443), 'open');
    assert.equal(await tcp(ns.a!, '203.0.113.10', 80), 'refused');
    assert.equal((await cni.addContainer(a, H1, full.config)).changed, false);
    // the kernel now holds what the agent would render for the full rule set, minus a's c2c (none)
    const want = desiredState(full);
    assert.equal((await dp.detectDrift(full)).drift, false, JSON.stringify(await dp.detectDrift(full)));
    assert.ok(want.chains.has('asg_H1'));
    // remove by handle; the shared ASG chain stays (s still uses it); again: no-op
    const rm1 = await new NftDataplane({ netns: ns.cell!, stateDir }).removeContainer(a.handle);
    assert.deepEqual([rm1.changed, rm1.ip], [true, A]);
    assert.equal((await dp.detectDrift(rs)).drift, false);
    const rm2 = await cni.removeContainer(a.handle);
    assert.equal(rm2.changed, false);
    // removing the last user of an ASG chain deletes the chain; re-adding creates it
    const t = full.containers[1]!;
    assert.equal((await cni.removeContainer(T)).changed, true);
    const b = full.containers[3]!;
    await cni.removeContainer(b.ip);
    assert.equal((await cni.readBack()).chains.has('asg_H2'), false);
    assert.equal((await cni.addContainer(t, H2, full.config)).changed, true);
    assert.equal((await cni.readBack()).chains.has('asg_H2'), true);
  });

  test('a container add takes over an address a departed container holds in the table only when the caller says it is gone, asked at read-back', async () => {
    const solo = uniqueName('cftover');
    await createNetns(solo);
    try {
      const cni = new NftDataplane({ netns: solo, stateDir });
      const rs = ruleSet();
      const [a, b] = [rs.containers[0]!, rs.containers[1]!];
      assert.equal((await cni.addContainer(b, H1, rs.config)).changed, true);
      // a rule set still listing a departed container gave a's address to it after the caller
      // last listed the table (the agent applied it meanwhile)
      const put = await exec(solo, [
        'nft',
        `add element inet cfnet ctr_addrs { ${a.ip} comment "departed" }`,
      ]);
      assert.equal(put.code, 0, put.stderr);
      const asked: string[] = [];
      await assert.rejects(
        cni.addContainer(a, H1, rs.config, {
          fresh: true,
          takeOver: (owner) => {
            asked.push(owner);
            return false; // still attached: refused, nothing changed
          },
        }),
        (err: unknown) => err instanceof AddressTakenError && err.owner === 'departed',
      );
      assert.deepEqual(asked, ['departed']);
      assert.match(JSON.stringify([...(await cni.readBack()).sets.get('ctr_addrs')!.values()]), /departed/);
      const r = await cni.addContainer(a, H1, rs.config, { fresh: true, takeOver: (o) => o === 'departed' });
      assert.equal(r.changed, true);
      const owners = [...(await cni.readBack()).sets.get('ctr_addrs')!.values()].map((e) => e.comment);
      assert.deepEqual(owners.sort(), [a.handle, b.handle].sort(), 'the departed entry gave way');
    } finally {
      await deleteNetns(solo);
    }
  });

  test('CNI path on an empty namespace creates the table', async () => {
    const solo = uniqueName('cftsolo');
    await createNetns(solo);
    try {
      const cni = new NftDataplane({ netns: solo, stateDir });
      const rs = ruleSet();
      const a = rs.containers[0]!;
      assert.equal((await cni.addContainer(a, H1, rs.config)).changed, true);
      const only = ruleSet({ containers: [a], c2c: [] });
      assert.equal((await cni.detectDrift(only)).drift, false);
      assert.equal((await cni.removeContainer(a.handle)).changed, true);
      const k = await cni.readBack();
      assert.equal(k.sets.get('ctr_addrs')!.size, 0);
      assert.equal(k.chains.size, 0);
      // the static skeleton stays; a second table in the namespace is never touched
      await exec(solo, ['nft', 'add table inet other']);
      await cni.applyFull(only);
      const tables = (await exec(solo, ['nft', 'list', 'tables'])).stdout;
      assert.match(tables, /table inet other/);
      assert.equal(renderStateFull(desiredState(only)).includes('other'), false);
    } finally {
      await deleteNetns(solo);
    }
  });

  test('udp to the container from the router is not NetIn', async () => {
    await dp.applyFull(ruleSet());
    assert.equal(await udp(ns.rtr!, B, 8080), 'refused');
  });
});
