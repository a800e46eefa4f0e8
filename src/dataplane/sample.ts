/**
 * Deterministic synthetic cell rule sets (for docs, tests and benchmarks): N containers sharing a
 * few realistic ASG rule sets, c2c allow entries and NetIn mappings. Addresses are TEST-NET /
 * documentation ranges and the default overlay.
 */
import { intToIpv4 } from '../model/ip.js';
import { type CellRuleSet, DEFAULT_CELL_CONFIG, type EgressRule } from '../model/types.js';

export interface SampleOptions {
  containers: number;
  /** Distinct ASG rule sets. */
  asgSets: number;
  rulesPerSet: number;
  /** c2c allow entries per container. */
  c2cPerContainer: number;
  /** Overlay /24 of this cell (third octet). */
  cellIndex?: number;
  seed?: number;
  /**
   * Start every ASG set with CF's default security groups (`public_networks`: all to the public
   * IPv4 ranges; `dns`: tcp+udp 53 anywhere), as a real foundation binds them to every space.
   */
  cfDefaults?: boolean;
}

const v4 = (start: string, end: string) => ({ family: 4 as const, start, end });

/** cf-deployment's default `public_networks` and `dns` security groups. */
export const CF_DEFAULT_RULES: readonly EgressRule[] = [
  {
    protocol: 'all',
    destinations: [
      v4('0.0.0.0', '9.255.255.255'),
      v4('11.0.0.0', '169.253.255.255'),
      v4('169.255.0.0', '172.15.255.255'),
      v4('172.32.0.0', '192.167.255.255'),
      v4('192.169.0.0', '255.255.255.255'),
    ],
    ports: [],
    log: false,
  },
  {
    protocol: 'tcp',
    destinations: [v4('0.0.0.0', '255.255.255.255')],
    ports: [{ start: 53, end: 53 }],
    log: false,
  },
  {
    protocol: 'udp',
    destinations: [v4('0.0.0.0', '255.255.255.255')],
    ports: [{ start: 53, end: 53 }],
    log: false,
  },
];

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x100000000;
  };
}

export function sampleRule(r: () => number, i: number): EgressRule {
  const n = Math.floor(r() * 200);
  const kind = i % 5;
  const dest = (a: number, b: number) => ({ family: 4 as const, start: intToIpv4(a), end: intToIpv4(b) });
  const base = (((10 << 24) >>> 0) + (n << 16)) >>> 0;
  const destinations = [
    dest(base, base + 255),
    dest(base + 1024 + n, base + 1024 + n),
    dest(base + 4096, base + 4096 + 15 + n),
  ];
  switch (kind) {
    case 0:
      return {
        protocol: 'tcp',
        destinations,
        ports: [
          { start: 443, end: 443 },
          { start: 5432, end: 5432 },
          { start: 8000 + n, end: 8100 + n },
        ],
        log: false,
      };
    case 1:
      return { protocol: 'udp', destinations, ports: [{ start: 53, end: 53 }], log: false };
    case 2:
      return { protocol: 'icmp', destinations, ports: [], icmp: { type: 8, code: -1 }, log: false };
    case 3:
      return { protocol: 'all', destinations: [dest(base + 8192, base + 8192 + 63)], ports: [], log: false };
    default:
      return {
        protocol: 'tcp',
        destinations,
        ports: [
          { start: 80, end: 80 },
          { start: 3306, end: 3306 },
          { start: 6379, end: 6379 },
        ],
        log: n % 7 === 0,
      };
  }
}

/**
 * The benchmarks' cell (bench/dataplane-apply.ts defaults, bench/c2c-churn-cpu.ts,
 * bench/c2c-churn-scripts.ts): 250 containers, 15 ASG sets of 20 rules plus CF's defaults, three
 * c2c entries per container.
 */
export const BENCH_CELL: SampleOptions = {
  containers: 250,
  asgSets: 15,
  rulesPerSet: 20,
  c2cPerContainer: 3,
  cfDefaults: true,
};

export function sampleRuleSet(o: SampleOptions): CellRuleSet {
  const r = rng(o.seed ?? 42);
  const cell = o.cellIndex ?? 1;
  const asgSets: Record<string, EgressRule[]> = {};
  const hashes: string[] = [];
  for (let s = 0; s < o.asgSets; s++) {
    const h = `h${s.toString(16).padStart(8, '0')}`;
    hashes.push(h);
    const own = Array.from({ length: o.rulesPerSet }, (_, i) => sampleRule(r, i + s));
    asgSets[h] = o.cfDefaults ? [...structuredClone(CF_DEFAULT_RULES), ...own] : own;
  }
  const containers = Array.from({ length: o.containers }, (_, i) => {
    const ip = intToIpv4(
      (((10 << 24) | (255 << 16) | (cell << 8)) >>> 0) + 2 + (i % 250) + Math.floor(i / 250) * 256,
    );
    return {
      handle: `${(0x10000000 + i).toString(16)}-aaaa-bbbb-cccc-${(cell * 1_000_000 + i).toString(16).padStart(12, '0')}`,
      ip,
      appGuid: `app-${i % 100}`,
      spaceGuid: `space-${i % 10}`,
      orgGuid: 'org-0',
      workload: (i % 20 === 0 ? 'staging' : i % 10 === 0 ? 'task' : 'app') as 'app' | 'task' | 'staging',
      tag: (i % 100) + 1,
      egress: hashes[i % hashes.length]!,
      netIn: i % 20 === 0 ? [] : [{ hostPort: 61000 + i, containerPort: 8080 }],
    };
  });
  const c2c = containers.flatMap((c, i) =>
    Array.from({ length: o.c2cPerContainer }, (_, k) => ({
      srcTag: ((i * 7 + k * 13) % 100) + 1,
      dstIp: c.ip,
      protocol: (k % 3 === 2 ? 'udp' : 'tcp') as 'tcp' | 'udp',
      ports: { start: 8080 + k * 10, end: 8080 + k * 10 + (k % 2) * 5 },
    })),
  );
  return {
    cellId: `cell-${cell}`,
    version: 1,
    containers,
    asgSets,
    c2c,
    config: {
      ...DEFAULT_CELL_CONFIG,
      logging: { ...DEFAULT_CELL_CONFIG.logging },
      dnsServers: ['169.254.0.2'],
      hostTcpServices: [{ ip: '169.254.0.2', port: 9001 }],
      hostUdpServices: [{ ip: '169.254.0.2', port: 8125 }],
      denyNetworks: {
        always: [{ family: 4, start: '169.254.169.254', end: '169.254.169.254' }],
        running: [{ family: 4, start: '192.0.2.128', end: '192.0.2.255' }],
        staging: [{ family: 4, start: '198.51.100.0', end: '198.51.100.255' }],
      },
    },
  };
}

/**
 * The benchmarks' c2c policy churn of a sample cell: its first 500 c2c entries removed and 500
 * single-port entries to its containers added (bench/dataplane-apply.ts, bench/c2c-churn-cpu.ts).
 */
export function sampleC2CChurn(rs: CellRuleSet): CellRuleSet {
  const churn = structuredClone(rs);
  churn.c2c = churn.c2c.slice(500);
  for (let i = 0; i < 500; i++) {
    const c = churn.containers[i % churn.containers.length]!;
    churn.c2c.push({
      srcTag: 200 + (i % 50),
      dstIp: c.ip,
      protocol: 'tcp',
      ports: { start: 9000 + i, end: 9000 + i },
    });
  }
  return churn;
}
