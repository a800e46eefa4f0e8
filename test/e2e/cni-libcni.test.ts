/**
 * cfnet-cni under a real libcni client (test/libcni/driver.go over Debian's libcni 1.1.2, calling
 * it as garden-external-networker does), in real namespaces with real packets:
 * - GetVersionInfo / ValidateNetworkList on the BOSH-rendered conflist (libcni runs VERSION with
 *   CNI_NETNS=dummy), for each cniVersion; what libcni does not support (CHECK before 0.4.0, a
 *   1.1.0 result, Debian's plugins at 1.1.0) is refused by libcni, and that is asserted;
 * - per cniVersion 0.3.1, 0.4.0, 1.0.0: ADD with Garden's runtimeConfig and metadata injected,
 *   NetIn from outside, ASGs on the first packets, c2c by policy, CHECK, DEL;
 * - one container on two cfnet networks (two ifnames), as `podman run --network a,b`;
 * - a chain with Debian's tuning, bandwidth and portmap plugins.
 * GC and STATUS are not in libcni 1.1.2; test/e2e/cni-plugin.test.ts drives them as libcni 1.2 does.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hostIfName } from '../../src/cni/names.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/version.js';
import {
  BOSH_DNS,
  Cell,
  EXTERNAL_ALLOWED,
  EXTERNAL_DENIED,
  linkNames,
  nftSet,
  REPO,
  readStore,
  removeInstalls,
  UNDERLAY_CELL_IP,
} from '../helpers/cni.js';
import { libcni, libcniDriver } from '../helpers/libcni.js';
import { icmp, ip, probe, type Server, startServers, tcp } from '../helpers/netns.js';

const T = { timeout: 120_000 };

/** What garden-external-networker injects for an app instance (runtimeConfig = its legacyNetConf). */
function gardenInput(hostPort: number, appGuid: string) {
  return {
    runtimeConfig: {
      portMappings: [{ host_port: hostPort, container_port: 8080 }],
      netOutRules: [
        {
          protocol: 1,
          networks: [{ start: EXTERNAL_ALLOWED, end: EXTERNAL_ALLOWED }],
          ports: [{ start: 80, end: 80 }],
        },
      ],
    },
    metadata: {
      policy_group_id: appGuid,
      space_id: 'space-guid',
      org_id: 'org-guid',
      container_workload: 'app',
    },
  };
}

type Conflist = Record<string, unknown> & {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: Record<string, unknown>[];
};

const work = mkdtempSync(join(tmpdir(), 'cfnet-libcni-test-'));

/** The cni job's conflist as BOSH renders it, with the cell's paths set as job properties. */
function boshConflist(cell: Cell, sets: string[] = []): Conflist {
  const props: Record<string, unknown> = {
    datastore: cell.datastore,
    subnet_file: cell.subnetFile,
    executor_socket: cell.socket,
    agent_socket: cell.agentSocket,
    state_dir: cell.stateDir,
    log_file: join(cell.dir, 'cfnet-cni.log'),
    dns_servers: [BOSH_DNS],
    host_tcp_services: [`${BOSH_DNS}:9001`],
  };
  const args = ['--out', join(work, `render-${Math.random().toString(36).slice(2)}`), '--job', 'cni'];
  for (const [k, v] of Object.entries(props)) args.push('--set', `cni:${k}=${JSON.stringify(v)}`);
  for (const s of sets) args.push('--set', s);
  const r = spawnSync('ruby', [join(REPO, 'scripts', 'render-bosh-templates.rb'), ...args], {
    encoding: 'utf8',
  });
  const report = JSON.parse(r.stdout) as { files: { dest: string; parsed?: unknown }[]; errors: unknown[] };
  assert.deepEqual(report.errors, [], r.stderr);
  const f = report.files.find((x) => x.dest === 'config/cni/cfnet.conflist');
  assert.ok(f?.parsed, 'the cni job renders its conflist');
  return f.parsed as Conflist;
}

function withVersion(c: Conflist, v: string, extra: Partial<Conflist> = {}): Conflist {
  return { ...c, cniVersion: v, ...extra };
}

function resultAddress(result: Record<string, unknown> | undefined): string {
  const ips = (result?.ips ?? []) as { address: string; version?: string }[];
  assert.ok(ips[0], `an address in ${JSON.stringify(result)}`);
  return ips[0].address.split('/')[0]!;
}

after(async () => {
  rmSync(work, { recursive: true, force: true });
  await removeInstalls();
});

describe('cfnet-cni under libcni (as garden-external-networker, podman and containerd call it)', {
  concurrency: false,
}, () => {
  let cell: Cell;
  const servers: Server[] = [];
  let bosh: Conflist;

  before(async () => {
    await libcniDriver(); // built first: a missing toolchain fails here, naming the packages
    cell = await Cell.create({ subnet: `10.255.${90 + (process.pid % 40)}.0/24` });
    await cell.startExecutor();
    servers.push(
      await startServers(cell.router, { tcp: [80], hosts: [EXTERNAL_ALLOWED, EXTERNAL_DENIED] }),
      await startServers(cell.ns, { tcp: [9001], hosts: [BOSH_DNS] }),
    );
    bosh = boshConflist(cell);
  });

  after(async () => {
    for (const s of servers.splice(0)) s.close();
    await cell?.cleanup();
  });

  it(
    'GetVersionInfo reads cfnet-cni’s versions (libcni sends CNI_NETNS=dummy) and ValidateNetworkList accepts the BOSH conflist',
    T,
    async () => {
      const v = await libcni(cell, { op: 'version', plugin: 'cfnet-cni' });
      assert.equal(v.ok, true, v.error);
      assert.deepEqual(v.supportedVersions, [...SUPPORTED_VERSIONS]);
      for (const version of SUPPORTED_VERSIONS) {
        const r = await libcni(cell, { op: 'validate', conflist: withVersion(bosh, version) });
        assert.equal(r.ok, true, `${version}: ${r.error}`);
      }
      // what the plugins do not support, libcni refuses at validation
      const old = await libcni(cell, { op: 'validate', conflist: withVersion(bosh, '0.2.0') });
      assert.equal(old.ok, false);
      assert.match(String(old.error), /plugin cfnet-cni does not support config version "0\.2\.0"/);
      const withBandwidth = boshConflist(cell, ['cni:rate=1000', 'cni:burst=2000']);
      assert.deepEqual(
        withBandwidth.plugins.map((p) => p.type),
        ['cfnet-cni', 'bandwidth'],
      );
      assert.equal((await libcni(cell, { op: 'validate', conflist: withBandwidth })).ok, true);
      const bw11 = await libcni(cell, { op: 'validate', conflist: withVersion(withBandwidth, '1.1.0') });
      assert.equal(bw11.ok, false, "Debian's bandwidth plugin (1.1.1) does not speak 1.1.0");
      assert.match(String(bw11.error), /plugin bandwidth does not support config version "1\.1\.0"/);
    },
  );

  for (const version of ['0.3.1', '0.4.0', '1.0.0']) {
    it(
      `cniVersion ${version}: ADD with Garden's runtimeConfig and metadata; NetIn, ASGs and c2c by packets; CHECK; DEL`,
      T,
      async () => {
        const conf = withVersion(bosh, version, { disableCheck: false });
        const a = await cell.newContainer();
        const b = await cell.newContainer();
        servers.push(await startServers(a, { tcp: [8080] }), await startServers(b, { tcp: [8080] }));
        const port = 61400 + (Number(version.replaceAll('.', '')) % 100);
        const ida = `libcni-a-${version.replaceAll('.', '')}-${process.pid}`;
        const idb = `libcni-b-${version.replaceAll('.', '')}-${process.pid}`;
        const ra = await libcni(cell, {
          op: 'add',
          conflist: conf,
          id: ida,
          netns: a,
          ifname: 'eth0',
          ...gardenInput(port, 'app-a'),
        });
        assert.equal(ra.ok, true, ra.error);
        const rb = await libcni(cell, {
          op: 'add',
          conflist: conf,
          id: idb,
          netns: b,
          ifname: 'eth0',
          ...gardenInput(port + 1, 'app-b'),
        });
        assert.equal(rb.ok, true, rb.error);
        assert.equal(ra.result?.cniVersion, version, 'libcni got a result of the list version');
        const ipA = resultAddress(ra.result);
        const ipB = resultAddress(rb.result);
        if (version === '0.3.1' || version === '0.4.0') {
          assert.equal(((ra.result?.ips ?? []) as { version?: string }[])[0]?.version, '4');
        }
        assert.deepEqual((ra.result?.dns as { nameservers?: string[] })?.nameservers, [BOSH_DNS]);

        // ASGs on the first packets, the host service, NetIn from outside the cell
        const [allowed, denied, svc] = await probe(a, [
          { proto: 'tcp', host: EXTERNAL_ALLOWED, port: 80 },
          { proto: 'tcp', host: EXTERNAL_DENIED, port: 80 },
          { proto: 'tcp', host: BOSH_DNS, port: 9001 },
        ]);
        assert.equal(allowed, 'open', 'ASG allows tcp 192.0.2.10:80');
        assert.equal(denied, 'refused', 'no ASG for 198.51.100.10');
        assert.equal(svc, 'open', 'host_tcp_services reachable');
        assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, port), 'open', 'NetIn to A');
        assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, port + 1), 'open', 'NetIn to B');
        // c2c: default deny, then what the agent writes for "A may reach B on tcp 8080"
        assert.equal(await tcp(a, ipB, 8080), 'refused', 'no c2c policy yet');
        const nft = await cell.exec([
          'nft',
          `add element inet cfnet ctr_tag { ${ipA} : 0x00000021 }; add element inet cfnet c2c_tcp { 0x00000021 . ${ipB} . 8080 }`,
        ]);
        assert.equal(nft.code, 0, nft.stderr);
        assert.equal(await tcp(a, ipB, 8080), 'open', 'A reaches B with the policy');
        assert.equal(await tcp(b, ipA, 8080), 'refused', 'not the other way');
        // the metadata reached the datastore
        assert.equal((await readStore(cell))[ida]?.metadata?.policy_group_id, 'app-a');

        const check = await libcni(cell, { op: 'check', conflist: conf, id: ida, netns: a, ifname: 'eth0' });
        if (version === '0.3.1') {
          assert.equal(check.ok, false, 'libcni refuses CHECK before 0.4.0');
          assert.match(String(check.error), /does not support the CHECK command/);
        } else {
          assert.equal(check.ok, true, check.error);
          await ip(a, 'route', 'del', 'default');
          const broken = await libcni(cell, {
            op: 'check',
            conflist: conf,
            id: ida,
            netns: a,
            ifname: 'eth0',
          });
          assert.equal(broken.ok, false);
          assert.match(String(broken.error), /no default route via 169\.254\.0\.1/);
        }
        for (const [id, ns] of [
          [ida, a],
          [idb, b],
        ] as const) {
          const d = await libcni(cell, { op: 'del', conflist: conf, id, netns: ns, ifname: 'eth0' });
          assert.equal(d.ok, true, d.error);
          const again = await libcni(cell, { op: 'del', conflist: conf, id, netns: ns, ifname: 'eth0' });
          assert.equal(again.ok, true, `DEL twice: ${again.error}`);
        }
        assert.deepEqual(Object.keys(await readStore(cell)), []);
        assert.doesNotMatch(await nftSet(cell, 'ctr_addrs'), /comment/);
        assert.doesNotMatch(await nftSet(cell, 'c2c_tcp'), new RegExp(ipB.replaceAll('.', '\\.')));
        assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, port), 'refused', 'NetIn gone');
      },
    );
  }

  it(
    'cniVersion 1.1.0: libcni 1.1.2 cannot read a 1.1.0 result and says so; DEL still cleans up',
    T,
    async () => {
      const conf = withVersion(bosh, '1.1.0');
      const ctr = await cell.newContainer();
      const id = `libcni-110-${process.pid}`;
      const r = await libcni(cell, {
        op: 'add',
        conflist: conf,
        id,
        netns: ctr,
        ifname: 'eth0',
        ...gardenInput(61490, 'app-c'),
      });
      assert.equal(r.ok, false, 'libcni 1.1.2 knows results up to 1.0.0');
      assert.match(String(r.error), /unsupported CNI result version "1\.1\.0"/);
      const d = await libcni(cell, { op: 'del', conflist: conf, id, netns: ctr, ifname: 'eth0' });
      assert.equal(d.ok, true, d.error);
      assert.deepEqual(Object.keys(await readStore(cell)), []);
      assert.ok(!(await linkNames(cell.ns)).includes(hostIfName(id)));
    },
  );

  it(
    'one container on two cfnet networks (two ifnames, as podman run --network a,b): both attached, each checked and deleted alone',
    T,
    async () => {
      const netA = withVersion(bosh, '1.0.0', { name: 'cfnet', disableCheck: false });
      const netB = withVersion(bosh, '1.0.0', { name: 'cfnet-b', disableCheck: false });
      const ctr = await cell.newContainer();
      servers.push(await startServers(ctr, { tcp: [8080] }));
      const id = `podman-like-${process.pid}`;
      const r0 = await libcni(cell, {
        op: 'add',
        conflist: netA,
        id,
        netns: ctr,
        ifname: 'eth0',
        ...gardenInput(61501, 'app-d'),
      });
      assert.equal(r0.ok, true, r0.error);
      const r1 = await libcni(cell, {
        op: 'add',
        conflist: netB,
        id,
        netns: ctr,
        ifname: 'eth1',
        ...gardenInput(61502, 'app-d'),
      });
      assert.equal(r1.ok, true, r1.error);
      const ip0 = resultAddress(r0.result);
      const ip1 = resultAddress(r1.result);
      assert.notEqual(ip0, ip1);
      assert.deepEqual((await linkNames(ctr)).sort(), ['eth0', 'eth1', 'lo']);
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61501), 'open', 'NetIn through eth0');
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61502), 'open', 'NetIn through eth1');
      assert.equal(await icmp(cell.ns, ip1), 'reply', 'the cell reaches the second address');
      for (const [conf, ifname] of [
        [netA, 'eth0'],
        [netB, 'eth1'],
      ] as const) {
        const c = await libcni(cell, { op: 'check', conflist: conf, id, netns: ctr, ifname });
        assert.equal(c.ok, true, `CHECK ${ifname}: ${c.error}`);
      }
      const d1 = await libcni(cell, { op: 'del', conflist: netB, id, netns: ctr, ifname: 'eth1' });
      assert.equal(d1.ok, true, d1.error);
      assert.deepEqual((await linkNames(ctr)).sort(), ['eth0', 'lo']);
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61501), 'open', 'eth0 keeps working');
      assert.equal(
        (await libcni(cell, { op: 'check', conflist: netA, id, netns: ctr, ifname: 'eth0' })).ok,
        true,
      );
      const d0 = await libcni(cell, { op: 'del', conflist: netA, id, netns: ctr, ifname: 'eth0' });
      assert.equal(d0.ok, true, d0.error);
      assert.deepEqual(Object.keys(await readStore(cell)), []);
    },
  );

  it(
    "a chain with Debian's tuning, bandwidth and portmap after cfnet-cni: ADD, CHECK, DEL through libcni",
    T,
    async () => {
      const conf: Conflist = {
        cniVersion: '1.0.0',
        name: 'cfnet-chain',
        plugins: [
          bosh.plugins[0]!,
          { type: 'tuning', sysctl: { 'net.ipv4.conf.eth0.accept_redirects': '0' } },
          {
            type: 'bandwidth',
            ingressRate: 8_000_000,
            ingressBurst: 1_000_000,
            egressRate: 8_000_000,
            egressBurst: 1_000_000,
          },
          { type: 'portmap', capabilities: { portMappings: true }, snat: false },
        ],
      };
      const ctr = await cell.newContainer();
      servers.push(await startServers(ctr, { tcp: [8080] }));
      const id = `chain-${process.pid}`;
      // CONVENTIONS' portMappings (hostPort/containerPort), which cfnet-cni and portmap both read
      const input = {
        runtimeConfig: { portMappings: [{ hostPort: 61601, containerPort: 8080, protocol: 'tcp' }] },
        metadata: { policy_group_id: 'app-chain' },
      };
      const r = await libcni(cell, { op: 'add', conflist: conf, id, netns: ctr, ifname: 'eth0', ...input });
      assert.equal(r.ok, true, r.error);
      const redirects = await cell.exec([
        'nsenter',
        `--net=/run/netns/${ctr}`,
        'cat',
        '/proc/sys/net/ipv4/conf/eth0/accept_redirects',
      ]);
      assert.equal(redirects.stdout.trim(), '0', 'tuning ran in the container');
      const qdisc = await cell.exec(['tc', 'qdisc', 'show', 'dev', hostIfName(id)]);
      assert.match(qdisc.stdout, /tbf/, 'bandwidth shaped the host veth cfnet-cni reported');
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61601), 'open', 'NetIn through the chain');
      const c = await libcni(cell, { op: 'check', conflist: conf, id, netns: ctr, ifname: 'eth0' });
      assert.equal(c.ok, true, c.error);
      const v11 = await libcni(cell, { op: 'validate', conflist: withVersion(conf, '1.1.0') });
      assert.equal(v11.ok, false, "libcni refuses the chain at 1.1.0: Debian's plugins stop at 1.0.0");
      const d = await libcni(cell, { op: 'del', conflist: conf, id, netns: ctr, ifname: 'eth0' });
      assert.equal(d.ok, true, d.error);
      assert.deepEqual(Object.keys(await readStore(cell)), []);
      assert.ok(!(await linkNames(cell.ns)).includes(hostIfName(id)));
    },
  );
});
