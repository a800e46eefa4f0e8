/**
 * Dataplane apply benchmark: cfnet's nft dataplane vs the same policy applied Silk's way
 * (per-container iptables chains through `iptables-restore --noflush`; ASG updates with one
 * `iptables` process per rule change, as vxlan-policy-agent does). Everything runs inside network
 * namespaces created here (one for nft, one per iptables flavour), removed at the end.
 *
 *   npx tsx bench/dataplane-apply.ts [--runs 100] [--silk-runs 6] [--silk-full-runs 1]
 *                                    [--containers 250] [--asg-sets 15] [--rules 20] [--no-legacy]
 *
 * Defaults keep a run near 2-3 minutes on a 2-core machine (most of it is Silk's way: one
 * iptables-legacy shared-ASG update takes ~30 s); raise --silk-runs / --silk-full-runs for tighter
 * Silk percentiles. `--help` prints this.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { NftDataplane } from '../src/dataplane/index.js';
import { BENCH_CELL, sampleC2CChurn, sampleRule, sampleRuleSet } from '../src/dataplane/sample.js';
import type { CellContainer, CellRuleSet, EgressRule } from '../src/model/types.js';

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
if (process.argv.includes('--help')) {
  console.log(
    'usage: npx tsx bench/dataplane-apply.ts [--runs 100] [--silk-runs 6] [--silk-full-runs 1]\n' +
      '         [--containers 250] [--asg-sets 15] [--rules 20] [--no-legacy]\n' +
      "cfnet's nft dataplane (full and incremental applies) vs Silk's iptables way, in scratch netns.",
  );
  process.exit(0);
}
const RUNS = arg('runs', 100);
const SILK_RUNS = arg('silk-runs', 6);
const SILK_FULL_RUNS = arg('silk-full-runs', 1);
const CONTAINERS = arg('containers', BENCH_CELL.containers);
const ASG_SETS = arg('asg-sets', BENCH_CELL.asgSets);
const RULES = arg('rules', BENCH_CELL.rulesPerSet);
const LEGACY = !process.argv.includes('--no-legacy');

function sh(argv: string[], input?: string): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { input: input ?? '', maxBuffer: 1 << 28 });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${String(r.stderr).slice(0, 500)}`);
}

/** Async spawn (the way an agent would run it), resolves on success. */
function run(argv: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('close', (code) =>
      code === 0
        ? resolve(Buffer.concat(out).toString())
        : reject(new Error(`${argv.slice(0, 6).join(' ')}: ${Buffer.concat(err).toString().slice(0, 400)}`)),
    );
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

interface Stats {
  n: number;
  p50: number;
  p99: number;
  max: number;
}
function stats(xs: number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
  return { n: s.length, p50: at(0.5), p99: at(0.99), max: s[s.length - 1]! };
}
async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

// ------------------------------------------------------------------ Silk's way

/** Silk's ChainNamer: `<prefix>--<handle>` truncated to 28 characters. */
const chainName = (prefix: string, c: CellContainer) => `${prefix}--${c.handle}`.slice(0, 28);
const asgChain = (c: CellContainer) => `asg-${c.handle.replaceAll('-', '').slice(0, 20)}`;

function rangeArg(start: string, end: string): string {
  return start === end ? `-d ${start}/32` : `-m iprange --dst-range ${start}-${end}`;
}

/** Silk's expansion: one iptables rule per destination range x port range. */
function silkAsgRules(chain: string, rules: EgressRule[]): string[] {
  const out = new Set<string>();
  for (const r of rules) {
    for (const d of r.destinations) {
      if (d.family !== 4) continue;
      const dst = rangeArg(d.start, d.end);
      if (r.protocol === 'tcp' || r.protocol === 'udp') {
        for (const p of r.ports) {
          const port = p.start === p.end ? `${p.start}` : `${p.start}:${p.end}`;
          out.add(`-A ${chain} -p ${r.protocol} ${dst} --dport ${port} -j ACCEPT`);
        }
      } else if (r.protocol === 'icmp') {
        const t =
          r.icmp && r.icmp.type >= 0
            ? ` --icmp-type ${r.icmp.type}${r.icmp.code >= 0 ? `/${r.icmp.code}` : ''}`
            : '';
        out.add(`-A ${chain} -p icmp ${dst}${t} -j ACCEPT`);
      } else if (r.protocol === 'all') {
        out.add(`-A ${chain} ${dst} -j ACCEPT`);
      }
    }
  }
  return [...out];
}

function netoutTail(c: CellContainer, rs: CellRuleSet): string[] {
  const chain = chainName('netout', c);
  const dn = rs.config.denyNetworks;
  const deny = [...dn.always, ...(c.workload === 'staging' ? dn.staging : dn.running)];
  return [
    `-A ${chain} -m state --state RELATED,ESTABLISHED -j ACCEPT`,
    `-A ${chain} -p tcp -m state --state INVALID -j DROP`,
    ...deny.map(
      (d) => `-A ${chain} ${rangeArg(d.start, d.end)} -j REJECT --reject-with icmp-port-unreachable`,
    ),
    `-A ${chain} -j REJECT --reject-with icmp-port-unreachable`,
  ];
}

/** iptables-restore input (filter, nat, mangle) for the whole cell, Silk's chain layout. */
function silkRestore(rs: CellRuleSet, ts: number): string {
  const filter: string[] = ['*filter'];
  const fr: string[] = [];
  const nat: string[] = ['*nat'];
  const nr: string[] = [];
  const mangle: string[] = ['*mangle'];
  const mr: string[] = [];
  const vpa = `vpa--${ts}`;
  filter.push(`:${vpa} - [0:0]`);
  fr.push(`-I FORWARD 1 -j ${vpa}`);
  for (const c of rs.containers) {
    const [input, netout, overlay, netin] = ['input', 'netout', 'overlay', 'netin'].map((p) =>
      chainName(p, c),
    );
    for (const ch of [input, netout, overlay, asgChain(c)]) filter.push(`:${ch} - [0:0]`);
    fr.push(`-A INPUT -s ${c.ip}/32 -j ${input}`);
    fr.push(`-A ${input} -m state --state RELATED,ESTABLISHED -j ACCEPT`);
    for (const d of rs.config.dnsServers) {
      fr.push(`-A ${input} -p tcp -d ${d}/32 --dport 53 -j ACCEPT`);
      fr.push(`-A ${input} -p udp -d ${d}/32 --dport 53 -j ACCEPT`);
    }
    for (const s of rs.config.hostTcpServices)
      fr.push(`-A ${input} -p tcp -d ${s.ip}/32 --dport ${s.port} -j ACCEPT`);
    for (const s of rs.config.hostUdpServices)
      fr.push(`-A ${input} -p udp -d ${s.ip}/32 --dport ${s.port} -j ACCEPT`);
    fr.push(`-A ${input} -j REJECT --reject-with icmp-port-unreachable`);
    fr.push(`-A FORWARD -s ${c.ip}/32 -o under0 -j ${netout}`);
    fr.push(`-A ${netout} -j ${asgChain(c)}`);
    fr.push(...netoutTail(c, rs));
    fr.push(...silkAsgRules(asgChain(c), rs.asgSets[c.egress]!));
    fr.push(`-A FORWARD -j ${overlay}`);
    fr.push(`-A ${overlay} -s ${c.ip}/32 -o silk-vtep -m mark ! --mark 0x0 -j ACCEPT`);
    fr.push(`-A ${overlay} -d ${c.ip}/32 -m state --state RELATED,ESTABLISHED -j ACCEPT`);
    fr.push(`-A ${overlay} -d ${c.ip}/32 -m mark --mark 0xffff0000 -j ACCEPT`);
    fr.push(`-A ${overlay} -d ${c.ip}/32 -j REJECT --reject-with icmp-port-unreachable`);
    if (c.tag !== null)
      fr.push(`-A ${vpa} -s ${c.ip}/32 -j MARK --set-xmark 0x${c.tag.toString(16)}/0xffffffff`);
    nat.push(`:${netin} - [0:0]`);
    mangle.push(`:${netin} - [0:0]`);
    nr.push(`-A PREROUTING -j ${netin}`);
    mr.push(`-A PREROUTING -j ${netin}`);
    for (const m of c.netIn) {
      nr.push(
        `-A ${netin} -d 192.0.2.1/32 -p tcp --dport ${m.hostPort} -j DNAT --to-destination ${c.ip}:${m.containerPort}`,
      );
      mr.push(
        `-A ${netin} -i under0 -d 192.0.2.1/32 -p tcp --dport ${m.hostPort} -j MARK --set-xmark 0xffff0000/0xffffffff`,
      );
    }
    nr.push(`-A POSTROUTING -s ${c.ip}/32 ! -o silk-vtep ! -d ${rs.config.overlayNetwork} -j MASQUERADE`);
  }
  fr.push(...silkC2C(rs, vpa));
  return [...filter, ...fr, 'COMMIT', ...nat, ...nr, 'COMMIT', ...mangle, ...mr, 'COMMIT', ''].join('\n');
}

function silkC2C(rs: CellRuleSet, vpa: string): string[] {
  return rs.c2c.map(
    (a) =>
      `-A ${vpa} -d ${a.dstIp}/32 -p ${a.protocol} --dport ${a.ports.start}:${a.ports.end} -m mark --mark 0x${a.srcTag.toString(16)} -j ACCEPT`,
  );
}

interface Silk {
  ns: string;
  ipt: string;
  restore: string;
}

function ipt(s: Silk, args: string): Promise<string> {
  return run(['nsenter', `--net=/run/netns/${s.ns}`, s.ipt, '-w', ...args.split(' ')]);
}

/** vxlan-policy-agent's dynamic ASG update for one container (SR §2 step 5), process by process. */
async function silkAsgUpdate(
  s: Silk,
  c: CellContainer,
  rs: CellRuleSet,
  rules: EgressRule[],
): Promise<number> {
  let procs = 0;
  const netout = chainName('netout', c);
  const cur = asgChain(c);
  const cand = `c${cur}`;
  const call = async (a: string) => {
    procs++;
    return ipt(s, a);
  };
  await call(`-N ${cand}`);
  await call(`-I ${netout} 1 -j ${cand}`);
  procs++;
  await run(
    ['nsenter', `--net=/run/netns/${s.ns}`, s.restore, '--noflush', '-w'],
    ['*filter', ...silkAsgRules(cand, rules), 'COMMIT', ''].join('\n'),
  );
  await call(`-D ${netout} -j ${cur}`);
  await call(`-F ${cur}`);
  await call(`-X ${cur}`);
  await call(`-E ${cand} ${cur}`);
  // DeleteAfterRuleNumKeepReject(netout, 2): list, one -D per remaining rule, append REJECT
  const listed = (await call(`-S ${netout}`)).split('\n').filter((l) => l.startsWith('-A '));
  for (let i = 2; i <= listed.length; i++) await call(`-D ${netout} 2`);
  // (keep the chain's meaning for the next run: re-append the tail rules one by one)
  for (const r of netoutTail(c, rs)) await call(r);
  return procs;
}

/** vxlan-policy-agent's c2c cycle: new vpa--<ts> chain with the whole cell's c2c rules, swap. */
async function silkC2CCycle(s: Silk, rs: CellRuleSet, oldTs: number, ts: number): Promise<number> {
  const vpa = `vpa--${ts}`;
  const marks = rs.containers
    .filter((c) => c.tag !== null)
    .map((c) => `-A ${vpa} -s ${c.ip}/32 -j MARK --set-xmark 0x${c.tag!.toString(16)}/0xffffffff`);
  await ipt(s, `-N ${vpa}`);
  await ipt(s, `-I FORWARD 1 -j ${vpa}`);
  await run(
    ['nsenter', `--net=/run/netns/${s.ns}`, s.restore, '--noflush', '-w'],
    ['*filter', ...marks, ...silkC2C(rs, vpa), 'COMMIT', ''].join('\n'),
  );
  await ipt(s, '-S FORWARD');
  await ipt(s, `-D FORWARD -j vpa--${oldTs}`);
  await ipt(s, `-F vpa--${oldTs}`);
  await ipt(s, `-X vpa--${oldTs}`);
  return 7;
}

/** cni-wrapper-plugin ADD for one container: its chains (one restore), then a forced c2c cycle. */
async function silkAddContainer(s: Silk, rs: CellRuleSet, c: CellContainer, oldTs: number, ts: number) {
  const one = silkRestore({ ...rs, containers: [c], c2c: [] }, 0)
    .split('\n')
    .filter((l) => !l.includes('vpa--0'));
  await run(['nsenter', `--net=/run/netns/${s.ns}`, s.restore, '--noflush', '-w'], one.join('\n'));
  await silkC2CCycle(s, rs, oldTs, ts);
}

/** Undo silkAddContainer's per-container chains (untimed). */
async function silkRemoveContainer(s: Silk, c: CellContainer): Promise<void> {
  const [input, netout, overlay, netin] = ['input', 'netout', 'overlay', 'netin'].map((p) => chainName(p, c));
  const lines = [
    '*filter',
    `-D INPUT -s ${c.ip}/32 -j ${input}`,
    `-D FORWARD -s ${c.ip}/32 -o under0 -j ${netout}`,
    `-D FORWARD -j ${overlay}`,
    ...[input, netout, overlay, asgChain(c)].map((x) => `-F ${x}`),
    ...[input, netout, overlay, asgChain(c)].map((x) => `-X ${x}`),
    'COMMIT',
    '*nat',
    `-D PREROUTING -j ${netin}`,
    `-F ${netin}`,
    `-X ${netin}`,
    'COMMIT',
    '*mangle',
    `-D PREROUTING -j ${netin}`,
    `-F ${netin}`,
    `-X ${netin}`,
    'COMMIT',
    '',
  ];
  await run(['nsenter', `--net=/run/netns/${s.ns}`, s.restore, '--noflush', '-w'], lines.join('\n'));
  for (const t of ['nat']) {
    await run([
      'nsenter',
      `--net=/run/netns/${s.ns}`,
      s.ipt,
      '-w',
      '-t',
      t,
      '-D',
      'POSTROUTING',
      '-s',
      `${c.ip}/32`,
      '!',
      '-o',
      'silk-vtep',
      '!',
      '-d',
      '10.255.0.0/16',
      '-j',
      'MASQUERADE',
    ]);
  }
}

/** Silk's way of bringing a cell to `rs`: one restore per container (its chains, as the CNI ADD
 * writes them, ASG rules included), then the VPA's c2c cycle. Starts from empty tables. */
async function silkPerContainer(s: Silk, rs: CellRuleSet): Promise<void> {
  for (const c of rs.containers) {
    const one = silkRestore({ ...rs, containers: [c], c2c: [] }, 0)
      .split('\n')
      .filter((l) => !l.includes('vpa--0'));
    await run(['nsenter', `--net=/run/netns/${s.ns}`, s.restore, '--noflush', '-w'], one.join('\n'));
  }
  // the c2c cycle swaps the previous vpa chain for the new one
  await ipt(s, '-N vpa--0');
  await ipt(s, '-I FORWARD 1 -j vpa--0');
  await silkC2CCycle(s, rs, 0, 1);
}

function silkFlush(s: Silk): void {
  for (const op of ['-F', '-X'])
    for (const t of ['filter', 'nat', 'mangle'])
      sh(['nsenter', `--net=/run/netns/${s.ns}`, s.ipt, '-w', '-t', t, op]);
}

type Transport = 'nft -f' | 'session';

// ------------------------------------------------------------------ main

async function main(): Promise<void> {
  const loadBefore = loadavg().map((x) => x.toFixed(2));
  const stateDir = mkdtempSync(join(tmpdir(), 'cfnet-bench-'));
  const tag = `${process.pid.toString(36)}`;
  const nsNft = `cfb-nft-${tag}`;
  const flavours: { name: string; ipt: string; restore: string }[] = [
    { name: 'iptables-nft', ipt: 'iptables', restore: 'iptables-restore' },
  ];
  if (LEGACY && spawnSync('iptables-legacy', ['--version']).status === 0) {
    flavours.push({ name: 'iptables-legacy', ipt: 'iptables-legacy', restore: 'iptables-legacy-restore' });
  }
  const silks: (Silk & { name: string })[] = flavours.map((f, i) => ({ ...f, ns: `cfb-ipt${i}-${tag}` }));
  const created: string[] = [];
  const dps: NftDataplane[] = [];
  try {
    for (const ns of [nsNft, ...silks.map((s) => s.ns)]) {
      sh(['ip', 'netns', 'add', ns]);
      created.push(ns);
    }
    const rs = sampleRuleSet({
      ...BENCH_CELL,
      containers: CONTAINERS,
      asgSets: ASG_SETS,
      rulesPerSet: RULES,
    });
    const dataplane = (session: boolean) => {
      const dp = new NftDataplane({ netns: nsNft, netnsEnter: true, stateDir, session });
      dps.push(dp);
      return dp;
    };
    const transports: [Transport, NftDataplane][] = [
      ['nft -f', dataplane(false)],
      ['session', dataplane(true)],
    ];
    const dp = transports[0]![1];

    // --- full apply (always `nft -f`: one file, one transaction)
    const full: number[] = [];
    for (let i = 0; i < Math.max(5, Math.floor(RUNS / 5)); i++) full.push(await time(() => dp.applyFull(rs)));
    const k = await dp.readBack();
    const elements = [...k.sets.values()].reduce((n, m) => n + m.size, 0);
    const nftRules = [...k.chains.values(), ...k.staticChains.values()].reduce(
      (n, c) => n + c.rules.length,
      0,
    );

    // --- incremental changes (alternating A->B, B->A so each run is a real change)
    const variants = incrementalVariants(rs);
    const inc = new Map<string, number[]>();
    const sizes = new Map<string, number>();
    for (const [name, a, b] of variants) {
      for (const [transport, d] of transports) {
        await d.applyFull(a);
        const xs: number[] = [];
        for (let i = 0; i < RUNS; i++) {
          const target = i % 2 === 0 ? b : a;
          let r: Awaited<ReturnType<typeof d.apply>> | undefined;
          xs.push(
            await time(async () => {
              r = await d.apply(target);
            }),
          );
          if (r?.mode !== 'incremental') throw new Error(`${name}: expected incremental, got ${r?.mode}`);
          const s = r.summary!;
          sizes.set(
            name,
            s.elementsAdded + s.elementsDeleted + s.chainsAdded + s.chainsDeleted + s.chainsRewritten,
          );
        }
        inc.set(`${name}/${transport}`, xs);
      }
    }

    // --- Silk's way
    const silkFull = new Map<string, number[]>();
    const silkPer = new Map<string, number[]>();
    const silkAsg = new Map<string, number[]>();
    const silkShared = new Map<string, number[]>();
    const silkC2C = new Map<string, number[]>();
    const silkAdd = new Map<string, number[]>();
    let procsPerUpdate = 0;
    const script = silkRestore(rs, 1);
    const iptRules = script.split('\n').filter((l) => l.startsWith('-A') || l.startsWith('-I')).length;
    const changed = variants.find((v) => v[0].startsWith('ASG change'))!;
    const ctr = rs.containers[5]!;
    const newRules = changed[2].asgSets[changed[2].containers[5]!.egress]!;
    const sharing = rs.containers.filter((c) => c.egress === rs.containers[0]!.egress);
    for (const s of silks) {
      const ps: number[] = [];
      for (let i = 0; i < SILK_FULL_RUNS; i++) {
        silkFlush(s);
        ps.push(await time(() => silkPerContainer(s, rs)));
      }
      silkPer.set(s.name, ps);
      const xs: number[] = [];
      for (let i = 0; i < Math.max(3, Math.floor(SILK_RUNS / 2)); i++) {
        silkFlush(s);
        xs.push(
          await time(() =>
            run(['nsenter', `--net=/run/netns/${s.ns}`, s.restore, '--noflush', '-w'], script),
          ),
        );
      }
      silkFull.set(s.name, xs);
      const ys: number[] = [];
      for (let i = 0; i < SILK_RUNS; i++) {
        const rules = i % 2 === 0 ? newRules : rs.asgSets[ctr.egress]!;
        ys.push(
          await time(async () => {
            procsPerUpdate = await silkAsgUpdate(s, ctr, rs, rules);
          }),
        );
      }
      silkAsg.set(s.name, ys);
      const zs: number[] = [];
      for (let i = 0; i < Math.max(1, Math.floor(SILK_RUNS / 5)); i++) {
        const rules = i % 2 === 0 ? newRules : rs.asgSets[rs.containers[0]!.egress]!;
        zs.push(
          await time(async () => {
            for (const c of sharing) await silkAsgUpdate(s, c, rs, rules);
          }),
        );
      }
      silkShared.set(s.name, zs);
      // c2c churn: each policy change rewrites the cell's whole c2c chain (new chain + swap)
      const churn = variants.find((v) => v[0].startsWith('c2c churn'))!;
      let ts = 1;
      const cs: number[] = [];
      for (let i = 0; i < SILK_RUNS; i++) {
        const target = i % 2 === 0 ? churn[2] : churn[1];
        cs.push(await time(() => silkC2CCycle(s, target, ts, ts + 1)));
        ts++;
      }
      silkC2C.set(s.name, cs);
      // add one container (the last one, removed first, untimed)
      const last = rs.containers[rs.containers.length - 1]!;
      const as: number[] = [];
      for (let i = 0; i < SILK_RUNS; i++) {
        await silkRemoveContainer(s, last);
        as.push(await time(() => silkAddContainer(s, rs, last, ts, ts + 1)));
        ts++;
      }
      silkAdd.set(s.name, as);
    }

    // --- report
    // a scenario measured zero times (e.g. `--silk-full-runs 0`) has no figures: shown as —
    const fmt = (x: number | undefined) =>
      x === undefined ? '—' : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`;
    const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? '?';
    const nftV = spawnSync('nft', ['--version']).stdout.toString().trim();
    const iptV = spawnSync('iptables', ['--version']).stdout.toString().trim();
    console.log(`# dataplane apply benchmark (${new Date().toISOString()})`);
    console.log(
      `machine: ${cpu}, ${spawnSync('nproc').stdout.toString().trim()} cores, kernel ${spawnSync('uname', ['-r']).stdout.toString().trim()}, ${nftV}, ${iptV}, node ${process.version}`,
    );
    console.log(
      `load average (1/5/15 min) before: ${loadBefore.join(' ')}, after: ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    console.log(
      `cell: ${rs.containers.length} containers, ${ASG_SETS} ASG sets x (${RULES} rules + CF's public_networks and dns), ` +
        `${rs.c2c.length} c2c entries, ${rs.containers.reduce((n, c) => n + c.netIn.length, 0)} NetIn mappings -> ` +
        `nft: ${elements} elements, ${nftRules} rules, ${k.chains.size + k.staticChains.size} chains; ` +
        `Silk's way: ${iptRules} iptables rules`,
    );
    console.log('');
    // Silk's numbers: the faster iptables flavour for each scenario (the one most favourable to Silk)
    const fastest = (m: Map<string, number[]>): [string, Stats] => {
      const all = silks.map((s) => [s.name, stats(m.get(s.name)!)] as [string, Stats]);
      return all.sort((x, y) => x[1].p50 - y[1].p50)[0]!;
    };
    const silkOf: Record<string, Map<string, number[]>> = {
      'add one container': silkAdd,
      'ASG change for one container': silkAsg,
      'shared ASG change': silkShared,
      'c2c churn': silkC2C,
    };
    type Row = [string, string, string, Stats, Stats];
    const rows: Row[] = [
      ['full apply', 'nft -f', ...fastest(silkPer), stats(full)],
      ['full apply vs one restore of the cell', 'nft -f', ...fastest(silkFull), stats(full)],
    ];
    for (const [name] of variants) {
      for (const [transport] of transports) {
        rows.push([
          `${name} (${sizes.get(name)} updates)`,
          transport,
          ...fastest(silkOf[name]!),
          stats(inc.get(`${name}/${transport}`)!),
        ]);
      }
    }
    console.log(
      "| scenario | cfnet via | cfnet p50 | cfnet p99 | runs | Silk's way p50 | p99 | runs | flavour | p50 ratio |",
    );
    console.log('|---|---|---|---|---|---|---|---|---|---|');
    for (const [name, via, flavour, b, a] of rows) {
      console.log(
        `| ${name} | ${via} | ${fmt(a.p50)} | ${fmt(a.p99)} | ${a.n} | ${fmt(b.p50)} | ${fmt(b.p99)} | ${b.n} | ${flavour} | ${b.n === 0 ? '—' : `${(b.p50 / a.p50).toFixed(1)}×`} |`,
      );
    }
    console.log('');
    console.log(
      "| Silk's way, p50 by iptables flavour | full (restore per container) | full (one restore) | add one container | one-container ASG update | shared-ASG update | c2c change |",
    );
    console.log('|---|---|---|---|---|---|---|');
    for (const s of silks) {
      const p = (m: Map<string, number[]>) => fmt(stats(m.get(s.name)!).p50);
      console.log(
        `| ${s.name} | ${p(silkPer)} | ${p(silkFull)} | ${p(silkAdd)} | ${p(silkAsg)} | ${p(silkShared)} | ${p(silkC2C)} |`,
      );
    }
    console.log('');
    console.log(
      "Silk's full apply: one iptables-restore per container (its input/netout/overlay/asg/netin chains, " +
        'as the CNI ADD writes them) + the c2c cycle; "one restore" puts the whole cell in a single ' +
        `iptables-restore (more favourable to Silk than Silk itself). ASG update: ${procsPerUpdate} iptables ` +
        `processes per container; shared ASG: the set used by ${sharing.length} containers, Silk rewrites each ` +
        "container's chain; c2c change: Silk rewrites the whole vpa chain (7 processes); add one container: " +
        'its chains (1 restore) + forced c2c cycle. cfnet "session": incremental transactions through one ' +
        'long-lived `nft -i` (scripts over 512 bytes as `include` of a scratch file), full applies through `nft -f`.',
    );
    // the Done-when targets of issue 5, from the rows above
    const fullRow = rows[0]!;
    const incRows = rows.filter((r) => r[1] === 'session' && !r[0].startsWith('c2c churn'));
    const worstInc = Math.max(...incRows.map((r) => r[4].p99));
    const minRatio = Math.min(...[fullRow, ...incRows].map((r) => r[3].p50 / r[4].p50));
    const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
    console.log('');
    console.log('| target (issue 5) | measured | verdict |');
    console.log('|---|---|---|');
    console.log(
      `| full apply of the cell ≤ 1 s | p99 ${fmt(fullRow[4].p99)} | ${verdict(fullRow[4].p99 <= 1000)} |`,
    );
    console.log(
      `| incremental change ≤ 50 ms p99 (session; add container, one-container and shared ASG change) | worst p99 ${fmt(worstInc)} | ${verdict(worstInc <= 50)} |`,
    );
    console.log(
      `| ≥ 10× faster than Silk's way (p50 ratio, same rows) | lowest ${minRatio.toFixed(1)}× | ${verdict(minRatio >= 10)} |`,
    );
  } finally {
    for (const d of dps) await d.close();
    for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

/** [name, from, to] pairs of rule sets for incremental changes. */
function incrementalVariants(rs: CellRuleSet): [string, CellRuleSet, CellRuleSet][] {
  const out: [string, CellRuleSet, CellRuleSet][] = [];
  // add one container (with a NetIn mapping and c2c entries)
  const less = structuredClone(rs);
  const gone = less.containers.pop()!;
  less.c2c = less.c2c.filter((a) => a.dstIp !== gone.ip);
  out.push(['add one container', less, rs]);
  // change one container's ASG to a new rule set (new chain, old one still shared)
  const changed = structuredClone(rs);
  const r = (seed: number) => {
    let n = seed;
    return () => {
      n = (n * 1103515245 + 12345) % 2 ** 31;
      return n / 2 ** 31;
    };
  };
  changed.asgSets.fresh = Array.from({ length: 20 }, (_, i) => sampleRule(r(7 + i), i));
  changed.containers[5]!.egress = 'fresh';
  out.push(['ASG change for one container', rs, changed]);
  // change an ASG shared by many containers: every user moves to the new set (one new chain)
  const shared = structuredClone(rs);
  shared.asgSets.fresh = changed.asgSets.fresh;
  const h = rs.containers[0]!.egress;
  for (const c of shared.containers) if (c.egress === h) c.egress = 'fresh';
  out.push(['shared ASG change', rs, shared]);
  // c2c policy churn: ~1,000 element updates (500 removed, 500 added)
  const churn = sampleC2CChurn(rs);
  out.push(['c2c churn', rs, churn]);
  return out;
}

await main();
