/**
 * The kernel and `cfnet explain` decide the same: one table of new connections from a cell's
 * containers (test/helpers/decision-table.ts) is sent through the real nft table in a namespace and
 * through explain's per-container decision, and every verdict must agree. Topology (namespaces
 * created here, removed afterwards):
 *
 *   a (app 10.255.1.2)     ─┐                                          ┌─ peer 192.0.2.2: remote
 *   s (staging 10.255.1.4) ─┴─ cell (nft; underlay 192.0.2.1, VTEP ────┤  destinations 203.0.113.x,
 *                              10.255.1.0, DNS/services 169.254.0.2)   │  198.51.100.200, another
 *                                                                      └─ cell's container 10.255.2.7
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { NftDataplane } from '../../src/dataplane/index.js';
import { containerDecision } from '../../src/ops/explain.js';
import {
  APP_IP,
  CELL_ADDRESSES,
  CELL_LOCAL,
  DECISION_CASES,
  decisionRuleSet,
  OTHER_CELL_CONTAINER,
  PEER_IP,
  REMOTE,
  STAGING_IP,
} from '../helpers/decision-table.js';
import {
  attachContainer,
  createNetns,
  deleteNetns,
  ip,
  localAddrs,
  probe,
  type Server,
  startServers,
  sysctlNs,
  uniqueName,
  veth,
} from '../helpers/netns.js';

const RUN = Math.random().toString(16).slice(2, 8);
const handle = (name: string) => `${RUN}-${name}-0000-4000-8000-000000000000`;

describe('packet decision: the kernel and explain agree (real packets)', () => {
  const ns: Record<string, string> = {};
  const servers: Server[] = [];
  let stateDir = '';
  let dp: NftDataplane | null = null;

  before(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'cfnet-decision-'));
    for (const n of ['cell', 'peer', 'a', 's']) {
      ns[n] = uniqueName(`cfd${n}`);
      await createNetns(ns[n]!);
    }
    const cell = ns.cell!;
    const peer = ns.peer!;
    await sysctlNs(cell, 'net.ipv4.ip_forward', '1');
    // UDP denials are observed through ICMP port-unreachable: no per-peer ICMP rate limit here
    await sysctlNs(cell, 'net.ipv4.icmp_ratelimit', '0');
    await veth(cell, 'u-peer', peer, 'eth0', {
      addrA: `${CELL_ADDRESSES.underlayIp}/24`,
      addrB: `${PEER_IP}/24`,
    });
    await localAddrs(
      cell,
      CELL_LOCAL.map((a) => `${a}/32`),
    );
    await localAddrs(
      peer,
      [...REMOTE, OTHER_CELL_CONTAINER].map((a) => `${a}/32`),
    );
    await ip(cell, 'route', 'add', '203.0.113.0/24', 'via', PEER_IP);
    await ip(cell, 'route', 'add', '198.51.100.0/24', 'via', PEER_IP);
    // the other cell's subnet is behind the peer, and overlay traffic is not masqueraded
    await ip(cell, 'route', 'add', '10.255.2.0/24', 'via', PEER_IP);
    await ip(peer, 'route', 'add', CELL_ADDRESSES.subnet, 'via', CELL_ADDRESSES.underlayIp);
    await attachContainer(cell, 'h-a', ns.a!, APP_IP);
    await attachContainer(cell, 'h-s', ns.s!, STAGING_IP);
    const ports = new Map<string, { tcp: Set<number>; udp: Set<number> }>();
    for (const k of DECISION_CASES) {
      const local = [...CELL_LOCAL, CELL_ADDRESSES.underlayIp, '169.254.0.1'].includes(k.probe.host);
      const where = local ? 'cell' : 'peer';
      const p = ports.get(where) ?? { tcp: new Set(), udp: new Set() };
      p[k.probe.proto].add(k.probe.port);
      ports.set(where, p);
    }
    for (const [where, p] of ports) {
      servers.push(
        await startServers(ns[where]!, {
          tcp: [...p.tcp],
          udp: [...p.udp],
          hosts:
            where === 'cell'
              ? [...CELL_LOCAL, CELL_ADDRESSES.underlayIp, '169.254.0.1']
              : [...REMOTE, OTHER_CELL_CONTAINER, PEER_IP],
        }),
      );
    }
    dp = new NftDataplane({ netns: cell, stateDir });
  });

  after(async () => {
    await dp?.close();
    for (const s of servers) s.close();
    for (const n of Object.values(ns)) await deleteNetns(n);
    await rm(stateDir, { recursive: true, force: true });
  });

  test('every packet of the table: the kernel verdict is the one explain reports, by the expected step', async () => {
    const rs = decisionRuleSet(handle);
    await dp!.applyFull(rs);
    const who = ['a', 's'] as const;
    const got = new Map<number, string>();
    await Promise.all(
      who.map(async (w) => {
        const idx = DECISION_CASES.map((k, i) => [k, i] as const).filter(([k]) => k.from === w);
        const r = await probe(
          ns[w]!,
          idx.map(([k]) => k.probe),
        );
        idx.forEach(([, i], j) => {
          got.set(i, r[j]!);
        });
      }),
    );
    const kernel = DECISION_CASES.map((k, i) => `${k.what}: ${got.get(i)}`);
    const explained = DECISION_CASES.map((k) => {
      const q = { from: 'app', to: k.probe.host, port: k.probe.port, protocol: k.probe.proto };
      const d = containerDecision(rs, handle(k.from), q, CELL_ADDRESSES);
      assert.equal(d.by, k.by, k.what);
      return `${k.what}: ${d.allowed ? 'open' : 'refused'}`;
    });
    assert.deepEqual(kernel, explained);
  });
});
