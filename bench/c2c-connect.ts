/**
 * What `ctr_in`'s c2c lookups cost a new connection: sequential TCP connects from one container to
 * another on the same cell through cfnet's table (nftables mode), to a port a single-port policy
 * allows (the first lookup matches), to the top port of a 32-port range (with the c2c blocks, the
 * last hash set matches: 6 lookups), to a port in a wide range (c2c_range, after every hash set)
 * and to a port no policy allows (every lookup misses, then the reject). Run it on two trees to
 * compare layouts; only a connection's first packet reaches `ctr_in` (established traffic is
 * accepted in `hook_forward`). Namespaces made for the run and removed after. Root.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftDataplane } from '../src/dataplane/index.js';
import type { C2CAllow, CellRuleSet } from '../src/model/types.js';
import { container, ruleSetOf } from '../test/helpers/fixtures.js';
import {
  attachContainer,
  createNetns,
  deleteNetns,
  type Server,
  startServers,
  sysctlNs,
  uniqueName,
} from '../test/helpers/netns.js';
import { ConnectTally, sequentialConnects } from './connect-client.js';
import { printTable } from './controller-fixtures.js';

const HELP = `Usage: npx tsx bench/c2c-connect.ts [--connects N] [--rounds N]

Sequential TCP connects from one container to another on the same cell through cfnet's table:
to a port allowed by a single-port policy, the top port of a 32-port range, a port of a wide
range (c2c_range) and a port no policy allows. Targets alternate round by round.

  --connects N   connects per target and round (default 2000)
  --rounds N     rounds (default 4)
  --help         this text
Needs root, ip and nft.
`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  process.stdout.write(HELP);
  process.exit(0);
}
function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) {
    console.error(`--${name} needs a positive whole number, got ${process.argv[i + 1]}\n\n${HELP}`);
    process.exit(2);
  }
  return v;
}
const CONNECTS = arg('connects', 2000);
const ROUNDS = arg('rounds', 4);

const SRC = '10.255.1.2';
const DST = '10.255.1.3';
const allow = (start: number, end: number): C2CAllow => ({
  srcTag: 1,
  dstIp: DST,
  protocol: 'tcp',
  ports: { start, end },
});

const TARGETS = [
  { name: 'single-port policy (8080)', port: 8080 },
  { name: 'top of a 32-port range (9055 in 9024-9055)', port: 9055 },
  { name: 'wide range (20500 in 20000-21100)', port: 20500 },
  { name: 'no policy (7999)', port: 7999 },
] as const;

function ruleSet(): CellRuleSet {
  return ruleSetOf([container('bench-src', SRC, { tag: 1 }), container('bench-dst', DST, { tag: 2 })], {
    c2c: [allow(8080, 8080), allow(9024, 9055), allow(20000, 21100)],
  });
}

async function main(): Promise<void> {
  const ns = { cell: uniqueName('cfbcc'), src: uniqueName('cfbcc'), dst: uniqueName('cfbcc') };
  const servers: Server[] = [];
  const stateDir = await mkdtemp(join(tmpdir(), 'cfnet-bench-cc-'));
  const dp = new NftDataplane({ netns: ns.cell, stateDir });
  try {
    for (const n of Object.values(ns)) await createNetns(n);
    await sysctlNs(ns.cell, 'net.ipv4.ip_forward', '1');
    await attachContainer(ns.cell, 'h-src', ns.src, SRC);
    await attachContainer(ns.cell, 'h-dst', ns.dst, DST);
    servers.push(await startServers(ns.dst, { tcp: TARGETS.map((t) => t.port) }));
    await dp.applyFull(ruleSet());
    const tally = new ConnectTally();
    const load0 = loadavg()[0]!;
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of round % 2 === 0 ? TARGETS : [...TARGETS].reverse()) {
        tally.add(t.name, await sequentialConnects(ns.src, DST, t.port, CONNECTS));
      }
    }
    const rows = TARGETS.map((t) => ({ target: t.name, ...tally.row(t.name) }));
    printTable(
      `c2c connects: ${CONNECTS} sequential connects x ${ROUNDS} rounds per target (load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)})`,
      rows,
    );
  } finally {
    await dp.close();
    for (const s of servers) s.close();
    for (const n of Object.values(ns)) await deleteNetns(n);
    await rm(stateDir, { recursive: true, force: true });
  }
}

await main();
