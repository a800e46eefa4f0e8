/**
 * Two cells joined by a VXLAN-GBP overlay on a veth underlay; c2c policy enforced on the
 * destination cell from the source app's tag, carried as the VXLAN Group Policy id.
 *
 *   a1 (app X, tag 1, 10.255.1.2) ─┐                                   ┌─ b1 (app Z, tag 3, 10.255.2.2)
 *   a2 (app Y, tag 2, 10.255.1.3) ─┴─ cellA ══ vxlan gbp / 198.51.100.0/24 ══ cellB ─┴─ b2 (app W, tag 4, 10.255.2.3)
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NftDataplane } from '../../src/dataplane/index.js';
import type { C2CAllow, CellContainer, CellRuleSet } from '../../src/model/types.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import {
  attachContainer,
  exec,
  ip,
  LongConnection,
  probe,
  type Server,
  startServers,
  sysctlNs,
  veth,
  withNetns,
} from '../helpers/netns.js';

const RUN = Math.random().toString(16).slice(2, 8);

function ctr(name: string, ip: string, tag: number): CellContainer {
  return {
    handle: `${RUN}-${name}`,
    ip,
    appGuid: `app-${name}`,
    spaceGuid: 'space',
    orgGuid: 'org',
    workload: 'app',
    tag,
    egress: 'none',
    netIn: [],
  };
}

function cellRules(cellId: string, containers: CellContainer[], c2c: C2CAllow[]): CellRuleSet {
  return {
    cellId,
    version: 1,
    containers,
    asgSets: { none: [] },
    c2c,
    config: { ...DEFAULT_CELL_CONFIG, dnsServers: [] },
  };
}

/** A cell's VXLAN device (GBP on) with its /24 lease, plus route/neigh/fdb to the other cell. */
async function vtep(cell: string, lease: number, peerLease: number, peerUnder: string) {
  const mac = (n: number) => `ee:ee:0a:ff:${n.toString(16).padStart(2, '0')}:00`;
  await ip(cell, 'link', 'add', 'vtep', 'type', 'vxlan', 'id', '1', 'dstport', '4789', 'gbp', 'nolearning');
  await ip(cell, 'link', 'set', 'vtep', 'address', mac(lease), 'mtu', '1450');
  await ip(cell, 'link', 'set', 'vtep', 'up');
  await ip(cell, 'addr', 'add', `10.255.${lease}.0/32`, 'dev', 'vtep');
  await ip(
    cell,
    'route',
    'add',
    `10.255.${peerLease}.0/24`,
    'via',
    `10.255.${peerLease}.0`,
    'dev',
    'vtep',
    'onlink',
  );
  await ip(
    cell,
    'neigh',
    'add',
    `10.255.${peerLease}.0`,
    'lladdr',
    mac(peerLease),
    'dev',
    'vtep',
    'nud',
    'permanent',
  );
  await exec(cell, [
    'bridge',
    'fdb',
    'add',
    mac(peerLease),
    'dev',
    'vtep',
    'dst',
    peerUnder,
    'self',
    'permanent',
  ]);
}

test('c2c across two cells over VXLAN GBP: only the policy source app, protocol and port', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'cfnet-c2c-'));
  const servers: Server[] = [];
  const closers: (() => Promise<void>)[] = [];
  try {
    await withNetns(['cellA', 'cellB', 'a1', 'a2', 'b1', 'b2'], async (ns) => {
      for (const c of [ns.cellA!, ns.cellB!]) {
        await sysctlNs(c, 'net.ipv4.ip_forward', '1');
        await sysctlNs(c, 'net.ipv4.icmp_ratelimit', '0');
      }
      await veth(ns.cellA!, 'under', ns.cellB!, 'under', {
        addrA: '198.51.100.1/24',
        addrB: '198.51.100.2/24',
      });
      await vtep(ns.cellA!, 1, 2, '198.51.100.2');
      await vtep(ns.cellB!, 2, 1, '198.51.100.1');
      await attachContainer(ns.cellA!, 'h-a1', ns.a1!, '10.255.1.2');
      await attachContainer(ns.cellA!, 'h-a2', ns.a2!, '10.255.1.3');
      await attachContainer(ns.cellB!, 'h-b1', ns.b1!, '10.255.2.2');
      await attachContainer(ns.cellB!, 'h-b2', ns.b2!, '10.255.2.3');
      servers.push(
        await startServers(ns.b1!, { tcp: [8080, 8081], udp: [8080, 9000], hosts: ['10.255.2.2'] }),
      );
      servers.push(await startServers(ns.a1!, { tcp: [8080], hosts: ['10.255.1.2'] }));

      const a1 = ctr('a1', '10.255.1.2', 1);
      const a2 = ctr('a2', '10.255.1.3', 2);
      const b1 = ctr('b1', '10.255.2.2', 3);
      const b2 = ctr('b2', '10.255.2.3', 4);
      const dpA = new NftDataplane({ netns: ns.cellA!, stateDir });
      // cell B as the agent runs it: small changes through a long-lived nft session
      const dpB = new NftDataplane({ netns: ns.cellB!, stateDir, session: true });
      closers.push(() => dpB.close());
      await dpA.apply(cellRules('A', [a1, a2], []));
      const policies: C2CAllow[] = [
        { srcTag: 1, dstIp: b1.ip, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
        { srcTag: 4, dstIp: b1.ip, protocol: 'udp', ports: { start: 9000, end: 9000 } },
      ];
      await dpB.apply(cellRules('B', [b1, b2], policies));

      // cross-cell: X (tag 1) -> Z tcp 8080 only
      assert.deepEqual(
        await probe(ns.a1!, [
          { proto: 'tcp', host: b1.ip, port: 8080 },
          { proto: 'tcp', host: b1.ip, port: 8081 },
          { proto: 'udp', host: b1.ip, port: 8080 },
        ]),
        ['open', 'refused', 'refused'],
      );
      // another app on the same source cell: denied
      assert.equal((await probe(ns.a2!, [{ proto: 'tcp', host: b1.ip, port: 8080 }]))[0], 'refused');
      // local c2c on cell B: W (tag 4) -> Z udp 9000 only
      assert.deepEqual(
        await probe(ns.b2!, [
          { proto: 'udp', host: b1.ip, port: 9000 },
          { proto: 'tcp', host: b1.ip, port: 8080 },
        ]),
        ['open', 'refused'],
      );
      // the reverse direction has no policy (replies of allowed connections are not "reverse")
      assert.equal((await probe(ns.b1!, [{ proto: 'tcp', host: a1.ip, port: 8080 }]))[0], 'refused');
      // the peer address seen by Z is the source container itself (no NAT inside the overlay)
      const conn = await LongConnection.open(ns.a1!, b1.ip, 8080);
      try {
        assert.equal(await conn.send('hi'), `data pong:8080:${a1.ip}:hi`);
        // a policy for Y changes only the destination cell, incrementally; the open connection stays
        const res = await dpB.apply(
          cellRules(
            'B',
            [b1, b2],
            [...policies, { srcTag: 2, dstIp: b1.ip, protocol: 'tcp', ports: { start: 8080, end: 8081 } }],
          ),
        );
        assert.equal(res.mode, 'incremental');
        // a 2-port range aligned to 2: one block element (8080/2 in c2c_tcp_2), nothing else touched
        assert.deepEqual(res.summary?.elementsAdded, 1);
        assert.deepEqual(
          await probe(ns.a2!, [
            { proto: 'tcp', host: b1.ip, port: 8080 },
            { proto: 'tcp', host: b1.ip, port: 8081 },
          ]),
          ['open', 'open'],
        );
        assert.equal(await conn.send('still'), `data pong:8080:${a1.ip}:still`);
        // and removing X's policy denies X's new connections
        const res2 = await dpB.apply(
          cellRules(
            'B',
            [b1, b2],
            [policies[1]!, { srcTag: 2, dstIp: b1.ip, protocol: 'tcp', ports: { start: 8080, end: 8081 } }],
          ),
        );
        assert.equal(res2.mode, 'incremental');
        assert.equal((await probe(ns.a1!, [{ proto: 'tcp', host: b1.ip, port: 8080 }]))[0], 'refused');
      } finally {
        conn.close();
      }
      // the tag really travels in the packet: on cell B, count marked packets from a2 to b1
      await exec(ns.cellB!, [
        'nft',
        'add table inet probe_cnt; add chain inet probe_cnt c { type filter hook prerouting priority -300; }; add rule inet probe_cnt c ip saddr 10.255.1.3 meta mark 2 counter',
      ]);
      assert.equal((await probe(ns.a2!, [{ proto: 'tcp', host: b1.ip, port: 8080 }]))[0], 'open');
      const listed = (await exec(ns.cellB!, ['nft', 'list', 'table', 'inet', 'probe_cnt'])).stdout;
      const packets = Number(/counter packets (\d+)/.exec(listed)?.[1] ?? 0);
      assert.ok(packets > 0, listed);
    });
  } finally {
    for (const c of closers) await c();
    for (const s of servers) s.close();
    await rm(stateDir, { recursive: true, force: true });
  }
});
