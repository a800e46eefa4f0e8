/**
 * CNI ADD/DEL latency: cfnet-cni (through the warm executor, per shim transport, and through the
 * one-off Node fallback) side by side with Debian's Go `bridge` + `host-local` plugins, on the same
 * machine, in the same cell namespace, each invoked exactly as a runtime does (env + stdin, stdout
 * parsed) from a fresh process per call. Variants take turns call by call, so background load
 * hits them alike. Everything runs in namespaces created here and removed at the end.
 *
 *   npx tsx bench/cni-latency.ts [--runs 200] [--fallback-runs 40] [--warmup 5]
 *
 * Target (issue 6): ADD p50 through the executor <= 2x Debian's bridge + host-local.
 */
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { availableTransports, Cell, type CniCall, removeInstalls } from '../test/helpers/cni.js';
import { libcni } from '../test/helpers/libcni.js';
import { createNetns, deleteNetns, uniqueName } from '../test/helpers/netns.js';
import { percentile, printTable } from './controller-fixtures.js';

const HELP = `Usage: npx tsx bench/cni-latency.ts [--runs N] [--fallback-runs N] [--libcni-runs N] [--warmup N]

CNI ADD/DEL latency of cfnet-cni (warm executor per shim transport, and the one-off Node
fallback) next to Debian's bridge + host-local, in namespaces made for the run and removed after.

  --runs N           ADD+DEL pairs per executor variant and for Debian (default 200)
  --fallback-runs N  ADD+DEL pairs through the fallback, ~0.25 s each (default 40)
  --libcni-runs N    ADD+DEL pairs per variant under the libcni driver (default 200; 0 = skip)
  --warmup N         unmeasured pairs per variant first (default 5)
  --help             this text
Needs root, ip, nft, /usr/lib/cni/{bridge,host-local} (containernetworking-plugins), and for the
libcni part go + Debian's libcni source (golang-go, golang-github-appc-cni-dev); uses nc.openbsd as
a second transport when installed.`;

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(HELP);
  process.exit(0);
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return def;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 0) {
    console.error(`--${name} needs a whole number, got ${process.argv[i + 1]}\n\n${HELP}`);
    process.exit(2);
  }
  return v;
}
const RUNS = arg('runs', 200);
const FALLBACK_RUNS = arg('fallback-runs', 40);
const LIBCNI_RUNS = arg('libcni-runs', 200);
const WARMUP = arg('warmup', 5);

interface Variant {
  name: string;
  runs: number;
  /** The call, without command/containerId/netns/ifname. */
  call: Omit<CniCall, 'command' | 'containerId' | 'netns' | 'ifname'>;
  /** Container netns reused by this variant (its eth0 goes away with each DEL). */
  ctr: string;
  add: number[];
  del: number[];
}

function summary(xs: number[]): { p50: number; p99: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p50: percentile(s, 0.5), p99: percentile(s, 0.99) };
}

const ms = (x: number) => Math.round(x * 10) / 10;

/**
 * What garden-external-networker adds for an app instance: its NetIn ports (app + SSH), a few ASG
 * rules and the metadata. Each ADD writes all of it as nft rules before it returns.
 */
const CF_CONTAINER = {
  runtimeConfig: {
    portMappings: [
      { host_port: 61001, container_port: 8080 },
      { host_port: 61002, container_port: 2222 },
    ],
    netOutRules: [
      {
        protocol: 1,
        networks: [{ start: '192.0.2.10', end: '192.0.2.20' }],
        ports: [{ start: 443, end: 443 }],
      },
      { protocol: 2, networks: [{ start: '10.0.0.0', end: '10.0.0.255' }], ports: [{ start: 53, end: 53 }] },
      { protocol: 0, networks: [{ start: '0.0.0.0', end: '9.255.255.255' }] },
    ],
  },
  metadata: {
    policy_group_id: 'bench-app-guid',
    space_id: 'bench-space-guid',
    org_id: 'bench-org-guid',
    container_workload: 'app',
  },
};

async function main(): Promise<void> {
  const cell = await Cell.create();
  const containers: string[] = [];
  try {
    await cell.startExecutor();
    const newCtr = async () => {
      const n = uniqueName('cfcnibench');
      containers.push(n);
      await createNetns(n);
      return n;
    };
    const debianConfig = {
      cniVersion: '1.0.0',
      name: 'debian-bench',
      type: 'bridge',
      bridge: 'cnibench0',
      isGateway: true,
      ipMasq: false,
      mtu: 1450,
      ipam: {
        type: 'host-local',
        subnet: '10.99.0.0/24',
        dataDir: join(cell.dir, 'host-local'),
        routes: [{ dst: '0.0.0.0/0' }],
      },
    };
    const variants: Variant[] = [
      {
        name: 'Debian bridge + host-local (Go)',
        runs: RUNS,
        call: { config: debianConfig, mode: 'executor', program: '/usr/lib/cni/bridge' },
        ctr: await newCtr(),
        add: [],
        del: [],
      },
    ];
    for (const t of await availableTransports()) {
      variants.push({
        name: `cfnet-cni, executor via ${t}`,
        runs: RUNS,
        call: { config: cell.config(CF_CONTAINER), mode: 'executor', transport: t },
        ctr: await newCtr(),
        add: [],
        del: [],
      });
    }
    variants.push({
      name: 'cfnet-cni, fallback (node per call)',
      runs: FALLBACK_RUNS,
      call: { config: cell.config(CF_CONTAINER, 'fallback'), mode: 'fallback' },
      ctr: await newCtr(),
      add: [],
      del: [],
    });

    const maxRuns = Math.max(...variants.map((v) => v.runs));
    console.log(
      `cni-latency: ${RUNS} ADD+DEL per variant (fallback ${FALLBACK_RUNS}), ${WARMUP} warm-up; load average before: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    for (let i = -WARMUP; i < maxRuns; i++) {
      for (const v of variants) {
        if (i >= v.runs) continue;
        const containerId = `bench-${process.pid}-${i + WARMUP}`;
        const base = { containerId, netns: v.ctr, ifname: 'eth0', ...v.call };
        const add = await cell.call({ command: 'ADD', ...base });
        assert.equal(add.code, 0, `${v.name} ADD: ${add.stdout}${add.stderr}`);
        const del = await cell.call({ command: 'DEL', ...base });
        assert.equal(del.code, 0, `${v.name} DEL: ${del.stdout}${del.stderr}`);
        if (i >= 0) {
          v.add.push(add.ms);
          v.del.push(del.ms);
        }
      }
    }
    printLatency('CNI ADD/DEL latency (ms, one process per call as a runtime does', variants);
    if (LIBCNI_RUNS > 0) await libcniBench(cell, debianConfig, newCtr);
  } finally {
    for (const c of containers) await deleteNetns(c);
    await cell.cleanup();
    await removeInstalls();
  }
}

/**
 * The libcni-driven variant: cfnet's conflist (through the shim and the warm executor, as on a
 * cell) and Debian's bridge + host-local, both run by the same libcni driver process, which times
 * each AddNetworkList / DelNetworkList itself, variants taking turns call by call.
 */
async function libcniBench(
  cell: Cell,
  debianConfig: Record<string, unknown>,
  newCtr: () => Promise<string>,
): Promise<void> {
  const { cniVersion: _v, name: _n, ...cfnetPlugin } = cell.config();
  const { cniVersion: _dv, name: _dn, ...debianPlugin } = debianConfig;
  const lists = {
    'Debian bridge + host-local (Go), via libcni': {
      cniVersion: '1.0.0',
      name: 'debian-bench-libcni',
      plugins: [
        {
          ...debianPlugin,
          bridge: 'cnibench1',
          ipam: {
            ...(debianPlugin.ipam as object),
            subnet: '10.98.0.0/24',
            dataDir: join(cell.dir, 'host-local-libcni'),
          },
        },
      ],
    },
    'cfnet-cni (shim + executor), via libcni': { cniVersion: '1.0.0', name: 'cfnet', plugins: [cfnetPlugin] },
  };
  const args = ['-runs', String(LIBCNI_RUNS), '-warmup', String(WARMUP)];
  for (const [name, list] of Object.entries(lists)) {
    const file = join(cell.dir, `${name.split(' ')[0]}-libcni.conflist`);
    await writeFile(file, JSON.stringify(list));
    args.push('-variant', `${name}=${file}=/run/netns/${await newCtr()}`);
  }
  const out = await libcni(cell, {
    op: 'bench',
    args,
    runtimeConfig: CF_CONTAINER.runtimeConfig,
    metadata: CF_CONTAINER.metadata,
  });
  assert.equal(out.ok, true, `libcni bench: ${out.error}`);
  const variants = out.variants as { name: string; add: number[]; del: number[] }[];
  printLatency(
    'CNI ADD/DEL latency under libcni (ms inside the driver: AddNetworkList / DelNetworkList',
    variants,
  );
}

/** One table of ADD/DEL percentiles, the first variant (Debian's) as the reference. */
function printLatency(title: string, variants: { name: string; add: number[]; del: number[] }[]): void {
  const debianAdd = summary(variants[0]!.add).p50;
  const load = loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');
  printTable(
    `${title}; load average after: ${load})`,
    variants.map((v) => {
      const a = summary(v.add);
      const d = summary(v.del);
      return {
        variant: v.name,
        calls: v.add.length,
        'ADD p50': ms(a.p50),
        'ADD p99': ms(a.p99),
        'DEL p50': ms(d.p50),
        'DEL p99': ms(d.p99),
        'ADD p50 / Debian': `${(a.p50 / debianAdd).toFixed(2)}x`,
      };
    }),
  );
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
