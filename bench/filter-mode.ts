/**
 * The cost of filterMode iptables (src/dataplane/host-filter.ts) against nftables: TCP connects
 * per second and per-connect latency from a container, sequential, through cfnet's table in each
 * mode. In iptables mode every new container→host or egress packet also crosses the two deferred
 * base chains and iptables' filter chain; a denied one is marked, confirmed by cfnet's iptables
 * rule and rejected after it. Modes take turns round by round (the table is re-applied in full
 * and cfnet's iptables rules added/removed between rounds), so background load hits both alike.
 * Everything runs in namespaces created here and removed at the end.
 *
 *   npx tsx bench/filter-mode.ts [--connects 2000] [--rounds 4] [--iptables iptables]
 *
 * Targets (rows):
 *   host service      container → cell address, port in host_tcp_services (cfnet accepts early)
 *   host, operator    container → cell address, port accepted by an operator's iptables INPUT rule
 *                     (iptables mode only: nftables mode rejects it)
 *   host, rejected    container → cell address, a port nobody allows (RST)
 *   egress, ASG       container → external address allowed by its ASG (forward)
 *   egress, denied    container → external address its ASG denies (RST)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { IptablesBackends } from '../src/agent/iptables.js';
import type { FilterMode } from '../src/dataplane/host-filter.js';
import { NftDataplane } from '../src/dataplane/index.js';
import { runCommand } from '../src/host/index.js';
import { parseCapiRules } from '../src/model/asg-rule.js';
import type { CellRuleSet } from '../src/model/types.js';
import { container, ruleSetOf } from '../test/helpers/fixtures.js';
import {
  attachContainer,
  createNetns,
  deleteNetns,
  exec,
  localAddrs,
  type Server,
  startServers,
  sysctlNs,
  uniqueName,
  veth,
} from '../test/helpers/netns.js';
import { ConnectTally, sequentialConnects } from './connect-client.js';
import { printTable } from './controller-fixtures.js';

const HELP = `Usage: npx tsx bench/filter-mode.ts [--connects N] [--rounds N] [--iptables BINARY]

Sequential TCP connects from a container through cfnet's table in filterMode nftables and
iptables (host service, operator-accepted host port, rejected host port, ASG-allowed and denied
egress), modes alternating round by round, in namespaces made for the run and removed after.

  --connects N        connects per target, mode and round (default 2000)
  --rounds N          rounds per mode (default 4)
  --iptables BINARY   iptables executable(s), comma list (default iptables; e.g. iptables-legacy,
                      iptables-nft for cfnet's rules in both backends; the operator rule goes to the first)
  --help              this text
Needs root, ip, nft and iptables.`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP);
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
const IPTABLES = (() => {
  const i = process.argv.indexOf('--iptables');
  return i < 0 ? 'iptables' : process.argv[i + 1]!;
})();

const A = '10.255.1.2';
const CELL_IP = '192.0.2.1';
const EXT = '203.0.113.10';

const TARGETS = [
  { name: 'host service', host: CELL_IP, port: 9001 },
  { name: 'host, operator', host: CELL_IP, port: 8898 },
  { name: 'host, rejected', host: CELL_IP, port: 8899 },
  { name: 'egress, ASG', host: EXT, port: 443 },
  { name: 'egress, denied', host: EXT, port: 80 },
] as const;

function ruleSet(): CellRuleSet {
  return ruleSetOf([container('bench-a', A, { tag: 1, egress: 'H' })], {
    asgSets: { H: parseCapiRules([{ protocol: 'tcp', destination: EXT, ports: '443' }]) },
    config: {
      overlayNetwork: '10.255.0.0/16',
      dnsServers: ['169.254.0.2'],
      hostTcpServices: [{ ip: CELL_IP, port: 9001 }],
      hostUdpServices: [],
      denyNetworks: { always: [], running: [], staging: [] },
      logging: { asg: false, c2c: false, deniedPerSec: 1, acceptedUdpPerSec: 100 },
    },
  });
}

async function main(): Promise<void> {
  const ns = { cell: uniqueName('cfbfm'), ext: uniqueName('cfbfm'), a: uniqueName('cfbfm') };
  const servers: Server[] = [];
  const stateDir = await mkdtemp(join(tmpdir(), 'cfnet-bench-fm-'));
  const dps: NftDataplane[] = [];
  try {
    for (const n of Object.values(ns)) await createNetns(n);
    await sysctlNs(ns.cell, 'net.ipv4.ip_forward', '1');
    await veth(ns.cell, 'u-ext', ns.ext, 'eth0', { addrA: `${CELL_IP}/24`, addrB: '192.0.2.2/24' });
    await localAddrs(ns.ext, [`${EXT}/32`]);
    await exec(ns.cell, ['ip', 'route', 'add', `${EXT}/32`, 'via', '192.0.2.2']);
    await attachContainer(ns.cell, 'h-a', ns.a, A);
    servers.push(
      await startServers(ns.cell, { tcp: [9001, 8898, 8899], hosts: [CELL_IP] }),
      await startServers(ns.ext, { tcp: [80, 443] }),
    );
    // the operator's rule stays in both modes (nftables mode ignores it)
    await exec(ns.cell, [
      IPTABLES.split(',')[0]!,
      '-w',
      '-I',
      'INPUT',
      '1',
      '-s',
      '10.255.0.0/16',
      '-d',
      CELL_IP,
      '-p',
      'tcp',
      '--dport',
      '8898',
      '-j',
      'ACCEPT',
    ]);
    // cfnet's rules in the given executable's backend only (--iptables names one; a comma list of
    // one per backend measures the two-backend rules)
    const rules = new IptablesBackends({
      binaries: IPTABLES.split(','),
      table: 'cfnet',
      run: (argv, input) => runCommand(['ip', 'netns', 'exec', ns.cell, ...argv], input),
    });
    await rules.probe(true);
    const modes: FilterMode[] = ['nftables', 'iptables'];
    const dp = new Map(
      modes.map((m) => {
        const d = new NftDataplane({ netns: ns.cell, stateDir, filterMode: m });
        dps.push(d);
        return [m, d] as const;
      }),
    );
    const tally = new ConnectTally();
    const load0 = loadavg()[0]!;
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) {
        if (mode === 'iptables') await rules.ensure();
        await dp.get(mode)!.applyFull(ruleSet());
        if (mode === 'nftables') await rules.remove();
        for (const t of TARGETS) {
          tally.add(`${mode}|${t.name}`, await sequentialConnects(ns.a, t.host, t.port, CONNECTS));
        }
      }
    }
    const rows = TARGETS.flatMap((t) =>
      modes.map((mode) => ({ target: t.name, mode, ...tally.row(`${mode}|${t.name}`) })),
    );
    printTable(
      `filter modes: ${CONNECTS} sequential connects x ${ROUNDS} rounds per target and mode (${IPTABLES}; load ${load0.toFixed(1)} → ${loadavg()[0]!.toFixed(1)})`,
      rows,
    );
  } finally {
    for (const d of dps) await d.close();
    for (const s of servers) s.close();
    for (const n of Object.values(ns)) await deleteNetns(n);
    await rm(stateDir, { recursive: true, force: true });
  }
}

await main();
