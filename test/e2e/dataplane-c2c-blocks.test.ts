/**
 * c2c port ranges as aligned blocks (src/dataplane/c2c-blocks.ts), with real packets on one cell:
 * every port of a range gets in, the ports just outside it are refused, for single ports, blocks of
 * every size, the last port (65535) and a range left to the interval set. And an upgrade in place:
 * a table of the former layout (ranges one element per port in c2c_tcp, no block sets, no c2c_ok)
 * is drift for the new one and is replaced in one transaction.
 *
 *   src (tag 1, 10.255.1.2) ─┐
 *   other (tag 2, 10.255.1.3) ┼─ cell
 *   dst (tag 3, 10.255.1.4) ─┘
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { NftDataplane } from '../../src/dataplane/index.js';
import { renderFull } from '../../src/dataplane/render.js';
import type { C2CAllow, CellContainer, CellRuleSet } from '../../src/model/types.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { container } from '../helpers/fixtures.js';
import {
  attachContainer,
  exec,
  type Probe,
  probe,
  type Server,
  startServers,
  sysctlNs,
  withNetns,
} from '../helpers/netns.js';

const RUN = Math.random().toString(16).slice(2, 8);

const ctr = (name: string, ip: string, tag: number): CellContainer =>
  container(`${RUN}-${name}`, ip, {
    appGuid: `app-${name}`,
    spaceGuid: 'space',
    orgGuid: 'org',
    tag,
    egress: 'none',
  });

const SRC = ctr('src', '10.255.1.2', 1);
const OTHER = ctr('other', '10.255.1.3', 2);
const DST = ctr('dst', '10.255.1.4', 3);

const allow = (protocol: 'tcp' | 'udp', start: number, end: number): C2CAllow => ({
  srcTag: 1,
  dstIp: DST.ip,
  protocol,
  ports: { start, end },
});

// 8090-8095: 8090/2 + 8092/4; 10001-10030: blocks of 1, 2, 4, 8, 8, 4, 2, 1; 9024-9055: one
// block of 32; 65533-65535: 65533/1 + 65534/2; 7001-7003 (udp): 7001/1 + 7002/2; 20000-21100:
// more blocks than the budget, so one c2c_range element
const POLICIES: C2CAllow[] = [
  allow('tcp', 8090, 8095),
  allow('tcp', 10001, 10030),
  allow('tcp', 9024, 9055),
  allow('tcp', 65533, 65535),
  allow('udp', 7001, 7003),
  allow('tcp', 20000, 21100),
];

const span = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
const TCP_PORTS = [
  ...span(8089, 8096),
  ...span(10000, 10031),
  9023,
  9024,
  9040,
  9055,
  9056,
  ...span(65532, 65535),
  19999,
  20000,
  21100,
  21101,
];
const UDP_PORTS = span(7000, 7004);

function rules(c2c: C2CAllow[]): CellRuleSet {
  return {
    cellId: 'cell',
    version: 1,
    containers: [SRC, OTHER, DST],
    asgSets: { none: [] },
    c2c,
    config: { ...DEFAULT_CELL_CONFIG, dnsServers: [] },
  };
}

const inPolicy = (proto: 'tcp' | 'udp', port: number) =>
  POLICIES.some((p) => p.protocol === proto && port >= p.ports.start && port <= p.ports.end);

/** Probes every listened port from `ns`; returns the ports whose verdict is not the expected one. */
async function wrongVerdicts(ns: string, allowed: (proto: 'tcp' | 'udp', port: number) => boolean) {
  const probes: Probe[] = [
    ...TCP_PORTS.map((port) => ({ proto: 'tcp' as const, host: DST.ip, port })),
    ...UDP_PORTS.map((port) => ({ proto: 'udp' as const, host: DST.ip, port })),
  ];
  const got = await probe(ns, probes);
  return probes.flatMap((p, i) =>
    got[i] === (allowed(p.proto, p.port) ? 'open' : 'refused') ? [] : [`${p.proto}/${p.port}: ${got[i]}`],
  );
}

/**
 * The former layout (before the blocks): ranges of up to 32 ports one element per port in
 * c2c_tcp / c2c_udp, no block sets, no c2c_ok, two rules per set in ctr_in. Made from the current
 * full script by removing what is new.
 */
function formerLayout(rs: CellRuleSet): string {
  const lines = renderFull(rs).split('\n');
  const out: string[] = [];
  const singles: Record<'tcp' | 'udp', string[]> = { tcp: [], udp: [] };
  for (const p of rs.c2c) {
    if (p.ports.end - p.ports.start >= 32) continue;
    for (const port of span(p.ports.start, p.ports.end)) {
      singles[p.protocol].push(`0x${p.srcTag.toString(16).padStart(8, '0')} . ${p.dstIp} . ${port}`);
    }
  }
  let skip = false;
  for (const l of lines) {
    if (/^ {2}set c2c_(tcp|udp)_\d+ /.test(l)) continue;
    if (l === '  chain c2c_ok {') skip = true;
    if (skip) {
      if (l === '  }') skip = false;
      continue;
    }
    if (/^add element inet cfnet c2c_(tcp|udp)(_\d+)? /.test(l)) continue;
    if (/ @c2c_(tcp|udp)/.test(l)) continue;
    if (/ @c2c_range goto c2c_ok/.test(l)) {
      for (const proto of ['tcp', 'udp']) {
        out.push(`    meta mark . ip daddr . ${proto} dport @c2c_${proto} ip daddr vmap @log_c2c_ok`);
        out.push(`    meta mark . ip daddr . ${proto} dport @c2c_${proto} accept`);
      }
      out.push('    meta mark . ip daddr . meta l4proto . th dport @c2c_range ip daddr vmap @log_c2c_ok');
      out.push('    meta mark . ip daddr . meta l4proto . th dport @c2c_range accept');
      continue;
    }
    out.push(l);
  }
  for (const proto of ['tcp', 'udp'] as const) {
    if (singles[proto].length > 0) {
      out.push(`add element inet cfnet c2c_${proto} { ${singles[proto].join(', ')} }`);
    }
  }
  return `${out.join('\n')}\n`;
}

test('c2c ranges as aligned blocks: every port of a range allowed, the ports just outside refused, other sources refused; a former-layout table is drift and replaced', async () => {
  const stateDir = await mkdtemp(join(tmpdir(), 'cfnet-c2cb-'));
  const servers: Server[] = [];
  try {
    await withNetns(['cell', 'src', 'other', 'dst'], async (ns) => {
      await sysctlNs(ns.cell!, 'net.ipv4.ip_forward', '1');
      await sysctlNs(ns.cell!, 'net.ipv4.icmp_ratelimit', '0');
      await attachContainer(ns.cell!, 'h-src', ns.src!, SRC.ip);
      await attachContainer(ns.cell!, 'h-other', ns.other!, OTHER.ip);
      await attachContainer(ns.cell!, 'h-dst', ns.dst!, DST.ip);
      servers.push(await startServers(ns.dst!, { tcp: TCP_PORTS, udp: UDP_PORTS, hosts: [DST.ip] }));

      // an agent upgraded in place: the kernel holds the former layout of the same policies
      await exec(ns.cell!, ['nft', '-f', '-'], { input: formerLayout(rules(POLICIES)) });
      assert.deepEqual(await wrongVerdicts(ns.src!, inPolicy), [], 'the former layout enforces the same');
      const dp = new NftDataplane({ netns: ns.cell!, stateDir, session: true });
      try {
        const before = await dp.detectDrift(rules(POLICIES));
        assert.ok(before.drift);
        assert.ok(before.missingSets.includes('c2c_tcp_4'), JSON.stringify(before.missingSets));
        assert.ok(before.missingChains.includes('c2c_ok'));
        assert.ok(before.changedChains.includes('ctr_in'));
        const repaired = await dp.repair(rules(POLICIES));
        assert.equal(repaired.repaired, true);
        assert.equal((await dp.detectDrift(rules(POLICIES))).drift, false);

        assert.deepEqual(await wrongVerdicts(ns.src!, inPolicy), []);
        assert.deepEqual(await wrongVerdicts(ns.other!, () => false), [], 'another source tag gets nothing');

        // incremental: the policies removed, nothing gets in; put back, all of it again
        const off = await dp.apply(rules([]));
        assert.equal(off.mode, 'incremental');
        assert.deepEqual(await wrongVerdicts(ns.src!, () => false), []);
        const on = await dp.apply(rules(POLICIES));
        assert.equal(on.mode, 'incremental');
        // 2 + 8 + 1 + 2 + 2 blocks and one interval element
        assert.equal(on.summary?.elementsAdded, 16);
        assert.deepEqual(await wrongVerdicts(ns.src!, inPolicy), []);
        assert.equal((await dp.detectDrift()).drift, false);

        // the CNI path, from the kernel's table: removing the destination takes every block and
        // range element of its address; adding it back with its c2c entries (the agent's ADD)
        // writes the same blocks
        await dp.removeContainer(DST.handle);
        const gone = await dp.readBack();
        for (const [name, elems] of gone.sets) {
          if (name.startsWith('c2c_')) assert.equal(elems.size, 0, name);
        }
        await dp.addContainer(DST, [], rules([]).config, { c2c: POLICIES });
        assert.equal((await dp.detectDrift(rules(POLICIES))).drift, false);
        assert.deepEqual(await wrongVerdicts(ns.src!, inPolicy), []);
      } finally {
        await dp.close();
      }
    });
  } finally {
    for (const s of servers) s.close();
    await rm(stateDir, { recursive: true, force: true });
  }
});
