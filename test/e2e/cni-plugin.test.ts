/**
 * cfnet-cni driven as a runtime drives it (env + stdin, stdout parsed) in real namespaces: a cell
 * with a fake underlay to a router, containers' namespaces made by the test, real packets. Every
 * behaviour is checked twice, through the warm executor and through the one-off fallback process,
 * and a scripted session is compared byte for byte across the fallback and each shim transport.
 * Every namespace, process and socket is removed in `after`/`finally`, also on failure.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_METADATA_BYTES } from '../../src/cni/config.js';
import { hostIfName } from '../../src/cni/names.js';
import { aboutText, SUPPORTED_VERSIONS } from '../../src/cni/version.js';
import {
  availableTransports,
  BOSH_DNS,
  buildInstall,
  Cell,
  type CniCall,
  type CniOutcome,
  EXTERNAL_ALLOWED,
  EXTERNAL_DENIED,
  fakeAgent,
  hungAgent,
  linkInfo,
  linkNames,
  type Mode,
  nftSet,
  readStore,
  removeInstalls,
  resultIp,
  runWithStdin,
  type Transport,
  UNDERLAY_CELL_IP,
} from '../helpers/cni.js';
import { type Server as EchoServer, icmp, ip, probe, run, startServers, tcp } from '../helpers/netns.js';

/** A hang fails the test instead of blocking the file. */
const T = { timeout: 60_000 };

const ASG_ALLOW_HTTP = {
  protocol: 1,
  networks: [{ start: EXTERNAL_ALLOWED, end: EXTERNAL_ALLOWED }],
  ports: [{ start: 80, end: 80 }],
};

let seq = 0;
function handle(prefix: string): string {
  seq++;
  return `${prefix}-${process.pid.toString(36)}-${seq}`;
}

/** A cell subnet no other cell of this run uses (cells are separate namespaces; this keeps logs clear). */
let subnetSeq = 0;
function freshSubnet(prefix = 24): string {
  subnetSeq++;
  return `10.255.${100 + ((process.pid + subnetSeq * 7) % 150)}.0/${prefix}`;
}

/** Runs `fn` over `items` with at most `limit` in flight, results in order. */
async function mapLimit<A, B>(items: A[], limit: number, fn: (a: A, i: number) => Promise<B>): Promise<B[]> {
  const out: B[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Asserts nothing of an attachment is left in the cell. */
async function assertGone(cell: Cell, h: string, addr: string | null): Promise<void> {
  assert.ok(!(await linkNames(cell.ns)).includes(hostIfName(h)), `host veth of ${h} left behind`);
  assert.equal((await readStore(cell))[h], undefined, `datastore entry of ${h} left behind`);
  const addrs = await nftSet(cell, 'ctr_addrs');
  assert.ok(!addrs.includes(`"${h}"`), `nft element of ${h} left behind:\n${addrs}`);
  if (addr) {
    assert.ok(!addrs.includes(`${addr} `), `nft element for ${addr} left behind`);
    assert.ok(!(await nftSet(cell, 'netin_dnat')).includes(`${addr} `), `NetIn DNAT to ${addr} left behind`);
    const routes = await cell.exec(['ip', 'route', 'show', `${addr}/32`]);
    assert.equal(routes.stdout.trim(), '', `route to ${addr} left behind`);
  }
}

/** The cell has no attachment at all: no host veth of ours, no datastore entry, no container element. */
async function assertCellEmpty(cell: Cell): Promise<void> {
  assert.deepEqual(
    (await linkNames(cell.ns)).filter((n) => n.startsWith('cfn')),
    [],
    'host veths left behind',
  );
  assert.deepEqual(Object.keys(await readStore(cell)), [], 'datastore entries left behind');
  assert.doesNotMatch(await nftSet(cell, 'ctr_addrs'), /comment/, 'container elements left behind');
}

type ResultInterface = { name: string; mac?: string; mtu?: number; sandbox?: string };

function interfacesOf(json: Record<string, unknown> | null): ResultInterface[] {
  return (json?.interfaces ?? []) as ResultInterface[];
}

function cniError(r: CniOutcome): { cniVersion: string; code: number; msg: string } {
  assert.equal(r.code, 1, `exit status 1 expected: ${r.stdout}${r.stderr}`);
  assert.ok(r.json, `CNI error JSON on stdout expected, got ${JSON.stringify(r.stdout)}`);
  assert.equal(r.stdout.split('\n').length, 2, 'one JSON line');
  return r.json as { cniVersion: string; code: number; msg: string };
}

interface BadCase {
  name: string;
  call: Omit<CniCall, 'mode'>;
  code: number;
  msg: RegExp;
}

/** Every kind of invalid env and config, with the code and message the spec asks for. */
function badCases(cell: Cell, ctr: string): BadCase[] {
  const h = 'bad-case';
  const add = (
    config: Record<string, unknown> | string,
    extra: Partial<CniCall> = {},
  ): Omit<CniCall, 'mode'> => ({
    command: 'ADD',
    containerId: h,
    netns: ctr,
    ifname: 'eth0',
    config,
    ...extra,
  });
  const cfg = (extra: Record<string, unknown>) => cell.config(extra);
  return [
    {
      name: 'unknown command',
      call: add(cfg({}), { command: 'FOO' }),
      code: 4,
      msg: /unknown CNI_COMMAND: FOO/,
    },
    {
      name: 'ADD without netns and ifname',
      call: { command: 'ADD', containerId: h, config: cfg({}) },
      code: 4,
      msg: /\[CNI_NETNS CNI_IFNAME\] missing/,
    },
    {
      name: 'ADD without CNI_PATH',
      call: add(cfg({}), { path: null }),
      code: 4,
      msg: /\[CNI_PATH\] missing/,
    },
    {
      name: 'DEL without container id',
      call: { command: 'DEL', ifname: 'eth0', config: cfg({}) },
      code: 4,
      msg: /\[CNI_CONTAINERID\] missing/,
    },
    {
      name: 'bad container id',
      call: add(cfg({}), { containerId: '-bad/id' }),
      code: 4,
      msg: /invalid CNI_CONTAINERID/,
    },
    {
      name: 'interface name too long',
      call: add(cfg({}), { ifname: 'x'.repeat(16) }),
      code: 4,
      msg: /invalid CNI_IFNAME.*too long/,
    },
    {
      name: 'relative netns path',
      call: add(cfg({}), { env: { CNI_NETNS: 'run/netns/x' } }),
      code: 4,
      msg: /invalid CNI_NETNS "run\/netns\/x": must be an absolute path/,
    },
    {
      name: 'netns that does not exist',
      call: add(cfg({}), { netns: '/run/netns/cfnet-no-such-netns' }),
      code: 8,
      msg: /does not exist/,
    },
    {
      name: 'stdin not JSON',
      call: add('{"cniVersion": '),
      code: 6,
      msg: /error decoding network configuration/,
    },
    { name: 'stdin not an object', call: add('[1,2]'), code: 6, msg: /not a JSON object/ },
    {
      name: 'metadata over the size limit',
      call: add(cfg({ metadata: { policy_group_id: 'app', blob: 'x'.repeat(MAX_METADATA_BYTES) } })),
      code: 7,
      msg: /invalid metadata .*larger than 16384 bytes/,
    },
    {
      name: 'an interface name cfnet cannot name an attachment after',
      call: add(cfg({}), { ifname: 'eth@1' }),
      code: 4,
      msg: /invalid CNI_IFNAME "eth@1"/,
    },
    {
      name: 'cniVersion 0.2.0',
      call: add(cfg({ cniVersion: '0.2.0' })),
      code: 1,
      msg: /incompatible CNI versions/,
    },
    {
      name: 'cniVersion 2.0.0',
      call: add(cfg({ cniVersion: '2.0.0' })),
      code: 1,
      msg: /incompatible CNI versions/,
    },
    { name: 'no cniVersion', call: add(cfg({ cniVersion: undefined })), code: 7, msg: /cniVersion/ },
    { name: 'bad network name', call: add(cfg({ name: 'bad name' })), code: 7, msg: /name/ },
    {
      name: 'ipam given',
      call: add(cfg({ ipam: { type: 'host-local' } })),
      code: 2,
      msg: /ipam\.type "host-local"/,
    },
    { name: 'mtu too small', call: add(cfg({ mtu: 10 })), code: 7, msg: /mtu/ },
    {
      name: 'relative subnet_file',
      call: add(cfg({ subnet_file: 'subnet.json' })),
      code: 7,
      msg: /subnet_file/,
    },
    {
      name: 'subnet outside the overlay',
      call: add(cfg({ subnet_file: null, subnet: '192.168.7.0/24' })),
      code: 7,
      msg: /subnet .*not inside overlay_network/,
    },
    { name: 'nft table name', call: add(cfg({ nft_table: 'x;flush ruleset' })), code: 7, msg: /nft_table/ },
    { name: 'bad DNS server', call: add(cfg({ dns_servers: ['not-an-ip'] })), code: 7, msg: /dns_servers/ },
    {
      name: 'host port 0',
      call: add(cfg({ runtimeConfig: { portMappings: [{ host_port: 0, container_port: 8080 }] } })),
      code: 7,
      msg: /runtimeConfig\.portMappings\[0\]\.host_port/,
    },
    {
      name: 'udp port mapping',
      call: add(
        cfg({ runtimeConfig: { portMappings: [{ host_port: 61000, container_port: 53, protocol: 'udp' }] } }),
      ),
      code: 2,
      msg: /protocol "udp"/,
    },
    {
      name: 'reversed ASG range',
      call: add(
        cfg({
          runtimeConfig: {
            netOutRules: [{ protocol: 1, networks: [{ start: '10.0.0.9', end: '10.0.0.1' }] }],
          },
        }),
      ),
      code: 7,
      msg: /runtimeConfig\.netOutRules/,
    },
    {
      name: 'bad workload',
      call: add(cfg({ metadata: { container_workload: 'bogus' } })),
      code: 7,
      msg: /metadata\.container_workload/,
    },
    {
      name: 'static IP request',
      call: add(cfg({ runtimeConfig: { ips: ['10.255.1.5/32'] } })),
      code: 2,
      msg: /runtimeConfig\.ips/,
    },
    { name: 'prevResult not an object', call: add(cfg({ prevResult: 'x' })), code: 6, msg: /prevResult/ },
    {
      name: 'CHECK with a 0.3.1 config',
      call: { ...add(cfg({ cniVersion: '0.3.1' })), command: 'CHECK' },
      code: 1,
      msg: /does not allow CHECK/,
    },
    {
      name: 'GC with a 1.0.0 config',
      call: { command: 'GC', config: cfg({ 'cni.dev/valid-attachments': [] }) },
      code: 1,
      msg: /does not allow GC/,
    },
    {
      name: 'GC without valid attachments',
      call: { command: 'GC', config: cfg({ cniVersion: '1.1.0' }) },
      code: 7,
      msg: /cni\.dev\/valid-attachments/,
    },
  ];
}

after(removeInstalls);

for (const mode of ['executor', 'fallback'] as Mode[]) {
  describe(`cfnet-cni through the ${mode}`, { concurrency: false }, () => {
    let cell: Cell;
    const servers: EchoServer[] = [];

    before(async () => {
      cell = await Cell.create({ subnet: freshSubnet() });
      if (mode === 'executor') await cell.startExecutor();
      servers.push(
        await startServers(cell.router, { tcp: [80], hosts: [EXTERNAL_ALLOWED, EXTERNAL_DENIED] }),
        await startServers(cell.ns, { tcp: [9001, 9002], udp: [53], hosts: [BOSH_DNS] }),
      );
    });

    after(async () => {
      for (const s of servers.splice(0)) s.close();
      await cell?.cleanup();
    });

    const add = (h: string, ctr: string, extra: Record<string, unknown> = {}, ifname = 'eth0') =>
      cell.call({ command: 'ADD', containerId: h, netns: ctr, ifname, config: cell.config(extra), mode });
    const del = (h: string, ctr?: string, extra: Record<string, unknown> = {}) =>
      cell.call({
        command: 'DEL',
        containerId: h,
        ...(ctr ? { netns: ctr } : {}),
        ifname: 'eth0',
        config: cell.config(extra),
        mode,
      });

    it(
      'ADD: address, routes, MTU, DNS in the result, datastore record, agent told; ASGs enforced on the first packet',
      T,
      async () => {
        const agent = await fakeAgent(cell.agentSocket);
        try {
          const ctr = await cell.newContainer();
          servers.push(await startServers(ctr, { tcp: [8080] }));
          const h = handle('app');
          const r = await add(h, ctr, {
            runtimeConfig: {
              portMappings: [{ host_port: 61001, container_port: 8080 }],
              netOutRules: [ASG_ALLOW_HTTP],
            },
            metadata: {
              policy_group_id: 'app-guid-1',
              space_id: 'space-1',
              org_id: 'org-1',
              container_workload: 'app',
            },
          });
          assert.equal(r.code, 0, r.stdout + r.stderr);
          // the very first packets the container sends: allowed and denied destinations
          const ctrIp = resultIp(r.json);
          const [allowed, denied] = await probe(ctr, [
            { proto: 'tcp', host: EXTERNAL_ALLOWED, port: 80 },
            { proto: 'tcp', host: EXTERNAL_DENIED, port: 80 },
          ]);
          assert.equal(allowed, 'open', 'ASG allows tcp 192.0.2.10:80');
          assert.equal(denied, 'refused', 'no ASG for 198.51.100.10: rejected');

          const res = r.json as {
            cniVersion: string;
            interfaces: { name: string; mac: string; sandbox?: string }[];
            ips: { address: string; gateway: string; interface: number }[];
            routes: { dst: string; gw: string }[];
            dns: { nameservers: string[] };
          };
          assert.equal(res.cniVersion, '1.0.0');
          assert.equal(res.interfaces.length, 2);
          assert.deepEqual(res.interfaces[0], { name: hostIfName(h), mac: res.interfaces[0]!.mac });
          assert.equal(res.interfaces[1]!.name, 'eth0');
          assert.equal(res.interfaces[1]!.sandbox, `/run/netns/${ctr}`);
          assert.match(res.ips[0]!.address, /^10\.255\.\d+\.\d+\/32$/);
          assert.equal(res.ips[0]!.gateway, '169.254.0.1');
          assert.equal(res.ips[0]!.interface, 1);
          assert.deepEqual(res.routes, [{ dst: '0.0.0.0/0', gw: '169.254.0.1' }]);
          assert.deepEqual(res.dns, { nameservers: [BOSH_DNS] });
          const [net] = cell.subnet.split('/');
          assert.equal(ctrIp.split('.').slice(0, 3).join('.'), net!.split('.').slice(0, 3).join('.'));

          const eth0 = await linkInfo(ctr, 'eth0');
          assert.ok(eth0);
          assert.equal(eth0.mtu, 1450, 'underlay 1500 - 50');
          assert.equal(eth0.address, res.interfaces[1]!.mac);
          // IPv4 only: no IPv6 link-local on either end (cfnet's rules see only IPv4)
          assert.deepEqual(
            eth0.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
            [`${ctrIp}/32`],
          );
          const hostSide = await linkInfo(cell.ns, hostIfName(h));
          assert.equal(hostSide?.mtu, 1450);
          assert.deepEqual(
            hostSide?.addr_info.map((a) => `${a.local}/${a.prefixlen}`),
            ['169.254.0.1/32'],
          );
          const v6off = await cell.exec(['cat', `/proc/sys/net/ipv6/conf/${hostIfName(h)}/disable_ipv6`]);
          assert.equal(v6off.stdout.trim(), '1', 'IPv6 disabled on the host veth');
          const routes = await ip(ctr, '-j', 'route', 'show');
          assert.deepEqual(
            (JSON.parse(routes.stdout) as { dst: string; gateway?: string; flags: string[] }[]).map((x) => [
              x.dst,
              x.gateway,
              x.flags.includes('onlink'),
            ]),
            [['default', '169.254.0.1', true]],
          );
          const hostRoute = await cell.exec(['ip', 'route', 'show', `${ctrIp}/32`]);
          assert.match(hostRoute.stdout, new RegExp(`dev ${hostIfName(h)}`));

          const store = await readStore(cell);
          assert.deepEqual(
            { handle: store[h]?.handle, ip: store[h]?.ip, metadata: store[h]?.metadata },
            {
              handle: h,
              ip: ctrIp,
              metadata: {
                policy_group_id: 'app-guid-1',
                space_id: 'space-1',
                org_id: 'org-1',
                container_workload: 'app',
              },
            },
          );
          assert.match(
            await nftSet(cell, 'ctr_addrs'),
            new RegExp(`${ctrIp.replaceAll('.', '\\.')} comment "${h}"`),
          );
          assert.match(
            await nftSet(cell, 'netin_dnat'),
            new RegExp(`61001 : ${ctrIp.replaceAll('.', '\\.')} \\. 8080`),
          );

          const ev = agent.events.find((e) => e.handle === h) as
            | { type: string; ip: string; path: string }
            | undefined;
          assert.ok(ev, 'agent got the ADD event');
          assert.equal(ev.type, 'add');
          assert.equal(ev.ip, ctrIp);
          assert.equal(ev.path, '/v1/cni/events');

          // connectivity: cell -> container, container -> cell services (BOSH DNS, host service), NetIn
          assert.equal(await icmp(cell.ns, ctrIp), 'reply', 'cell reaches the container');
          const [svc, other, dns] = await probe(ctr, [
            { proto: 'tcp', host: BOSH_DNS, port: 9001 },
            { proto: 'tcp', host: BOSH_DNS, port: 9002 },
            { proto: 'udp', host: BOSH_DNS, port: 53 },
          ]);
          assert.equal(svc, 'open', 'host_tcp_services entry reachable');
          assert.equal(other, 'refused', 'other cell ports are not');
          assert.equal(dns, 'open', 'DNS server reachable on udp 53');
          assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61001), 'open', 'NetIn from the router');

          assert.equal((await del(h, ctr)).code, 0);
          await assertGone(cell, h, ctrIp);
          assert.ok(
            agent.events.some((e) => e.handle === h && e.type === 'del'),
            'agent got the DEL event',
          );
        } finally {
          await agent.close();
        }
      },
    );

    it(
      'container <-> container: routed through the cell, c2c default-deny until a policy allows it',
      T,
      async () => {
        const a = await cell.newContainer();
        const b = await cell.newContainer();
        servers.push(await startServers(b, { tcp: [8080] }), await startServers(a, { tcp: [8080] }));
        const ha = handle('c2c-a');
        const hb = handle('c2c-b');
        const ra = await add(ha, a);
        const rb = await add(hb, b);
        assert.equal(ra.code, 0, ra.stdout);
        assert.equal(rb.code, 0, rb.stdout);
        const ipA = resultIp(ra.json);
        const ipB = resultIp(rb.json);
        assert.equal(await tcp(a, ipB, 8080), 'refused', 'no c2c policy yet');
        // what the agent writes for "app A may reach app B on tcp 8080": A's tag, then (tag . B . 8080) in c2c_tcp
        const nft = await cell.exec([
          'nft',
          `add element inet cfnet ctr_tag { ${ipA} : 0x00000007 }; add element inet cfnet c2c_tcp { 0x00000007 . ${ipB} . 8080 }`,
        ]);
        assert.equal(nft.code, 0, nft.stderr);
        assert.equal(await tcp(a, ipB, 8080), 'open', 'A reaches B with the policy');
        assert.equal(await tcp(b, ipA, 8080), 'refused', 'B does not reach A (no policy that way)');
        assert.equal(await icmp(a, ipB), 'unreachable', 'ICMP is not in the policy');
        assert.equal((await del(ha, a)).code, 0);
        assert.equal((await del(hb, b)).code, 0);
        await assertGone(cell, ha, ipA);
        await assertGone(cell, hb, ipB);
        assert.doesNotMatch(await nftSet(cell, 'c2c_tcp'), new RegExp(ipB.replaceAll('.', '\\.')));
      },
    );

    it('MTU: auto-detected from the underlay (9000 - 50) and overridden by "mtu"', T, async () => {
      const jumbo = await Cell.create({ underlayMtu: 9000, subnet: freshSubnet() });
      try {
        if (mode === 'executor') await jumbo.startExecutor();
        const c1 = await jumbo.newContainer();
        const c2 = await jumbo.newContainer();
        const c3 = await jumbo.newContainer();
        const call = (h: string, c: string, extra: Record<string, unknown>) =>
          jumbo.call({
            command: 'ADD',
            containerId: h,
            netns: c,
            ifname: 'eth0',
            config: jumbo.config(extra),
            mode,
          });
        const [r1, r2, r3] = await Promise.all([
          call(handle('mtu-auto'), c1, {}),
          call(handle('mtu-fixed'), c2, { mtu: 1400 }),
          call(handle('mtu-110'), c3, { cniVersion: '1.1.0', underlay_interface: 'eth0' }),
        ]);
        assert.equal(r1.code, 0, r1.stdout);
        assert.equal(r2.code, 0, r2.stdout);
        assert.equal(r3.code, 0, r3.stdout);
        const h1 = interfacesOf(r1.json)[0]!.name;
        const h2 = interfacesOf(r2.json)[0]!.name;
        assert.equal((await linkInfo(c1, 'eth0'))?.mtu, 8950);
        assert.equal((await linkInfo(jumbo.ns, h1))?.mtu, 8950);
        assert.equal((await linkInfo(c2, 'eth0'))?.mtu, 1400);
        assert.equal((await linkInfo(jumbo.ns, h2))?.mtu, 1400);
        // a 1.1.0 result carries the MTU on both interfaces
        assert.deepEqual(
          interfacesOf(r3.json).map((i) => i.mtu),
          [8950, 8950],
        );
        // 1.0.0 results have no interface mtu
        assert.deepEqual(
          interfacesOf(r1.json).map((i) => i.mtu),
          [undefined, undefined],
        );
      } finally {
        await jumbo.cleanup();
      }
    });

    it(
      'plugin settings of a fresh cell take effect: deny_networks beat an ASG, ASG logging, default DNS, app_id',
      T,
      async () => {
        // a cell of its own: the table's cell-wide settings are made by the ADD that creates it
        const fresh = await Cell.create({ subnet: freshSubnet() });
        const agent = await fakeAgent(fresh.agentSocket);
        const srv = await startServers(fresh.router, {
          tcp: [80],
          hosts: [EXTERNAL_ALLOWED, EXTERNAL_DENIED],
        });
        try {
          if (mode === 'executor') await fresh.startExecutor();
          const ctr = await fresh.newContainer();
          const h = handle('settings');
          const r = await fresh.call({
            command: 'ADD',
            containerId: h,
            netns: ctr,
            ifname: 'eth0',
            mode,
            config: fresh.config({
              dns_servers: undefined, // the default: BOSH DNS
              deny_networks: { always: [`${EXTERNAL_ALLOWED}/32`] },
              iptables_asg_logging: true,
              runtimeConfig: {
                netOutRules: [
                  {
                    protocol: 1,
                    networks: [{ start: EXTERNAL_ALLOWED, end: EXTERNAL_DENIED }],
                    ports: [{ start: 80, end: 80 }],
                  },
                ],
              },
              metadata: { app_id: 'app-guid-2', space_id: 'space-2', org_id: 'org-2' },
            }),
          });
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.deepEqual((r.json as { dns?: unknown }).dns, { nameservers: ['169.254.0.2'] });
          const [denied, allowed] = await probe(ctr, [
            { proto: 'tcp', host: EXTERNAL_ALLOWED, port: 80 },
            { proto: 'tcp', host: EXTERNAL_DENIED, port: 80 },
          ]);
          assert.equal(denied, 'refused', 'deny_networks.always wins over the ASG');
          assert.equal(allowed, 'open', 'the rest of the ASG range is allowed');
          assert.match(await nftSet(fresh, 'deny_always'), /192\.0\.2\.10/);
          const table = await fresh.exec(['nft', 'list', 'table', 'inet', 'cfnet']);
          assert.match(table.stdout, new RegExp(`log prefix "OK_${h} "`), 'ASG logging for the container');
          const store = await readStore(fresh);
          assert.deepEqual(store[h]?.metadata, {
            app_id: 'app-guid-2',
            space_id: 'space-2',
            org_id: 'org-2',
          });
          const ev = agent.events.find((e) => e.handle === h) as
            | { container?: { appGuid?: string; spaceGuid?: string } }
            | undefined;
          assert.equal(ev?.container?.appGuid, 'app-guid-2', 'app_id is the policy group');
          assert.equal(ev?.container?.spaceGuid, 'space-2');
          const d = await fresh.call({
            command: 'DEL',
            containerId: h,
            netns: ctr,
            ifname: 'eth0',
            config: fresh.config(),
            mode,
          });
          assert.equal(d.code, 0, d.stdout);
          await assertGone(fresh, h, resultIp(r.json));
          assert.doesNotMatch(
            (await fresh.exec(['nft', 'list', 'table', 'inet', 'cfnet'])).stdout,
            new RegExp(`_${h} `),
            'its log chains went with it',
          );
        } finally {
          srv.close();
          await agent.close();
          await fresh.cleanup();
        }
      },
    );

    it(
      'DEL is idempotent: twice, unknown container, gone netns, no netns; nothing left behind',
      T,
      async () => {
        const ctr = await cell.newContainer();
        const h = handle('del');
        const r = await add(h, ctr, {
          runtimeConfig: { portMappings: [{ host_port: 61002, container_port: 8080 }] },
        });
        assert.equal(r.code, 0, r.stdout);
        const addr = resultIp(r.json);
        const d1 = await del(h, ctr);
        assert.equal(d1.code, 0, d1.stdout);
        assert.equal(d1.stdout, '', 'DEL prints nothing');
        await assertGone(cell, h, addr);
        const d2 = await del(h, ctr);
        assert.equal(d2.code, 0, `second DEL: ${d2.stdout}`);
        assert.equal(d2.stdout, '');
        assert.equal((await del(handle('never-added'), ctr)).code, 0, 'DEL of an unknown container');
        // container netns removed before DEL (its veth went with it)
        const ctr2 = await cell.newContainer();
        const h2 = handle('del-gone');
        const r2 = await add(h2, ctr2);
        assert.equal(r2.code, 0, r2.stdout);
        await run(['ip', 'netns', 'del', ctr2]);
        const d3 = await del(h2, ctr2);
        assert.equal(d3.code, 0, d3.stdout);
        await assertGone(cell, h2, resultIp(r2.json));
        assert.equal((await del(h2)).code, 0, 'DEL without CNI_NETNS');
      },
    );

    it('a failing ADD rolls back everything; DEL after it succeeds with nothing left behind', T, async () => {
      const ctr = await cell.newContainer();
      // CNI_IFNAME already taken inside the container: the veth cannot be made
      await ip(ctr, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0peer');
      const h = handle('fail');
      const before = Object.keys(await readStore(cell)).length;
      const r = await add(h, ctr, {
        runtimeConfig: {
          portMappings: [{ host_port: 61003, container_port: 8080 }],
          netOutRules: [ASG_ALLOW_HTTP],
        },
      });
      const e = cniError(r);
      assert.equal(e.code, 999);
      assert.match(e.msg, /already exists/);
      await assertGone(cell, h, null);
      assert.equal(Object.keys(await readStore(cell)).length, before, 'address released');
      assert.ok(!(await nftSet(cell, 'netin_dnat')).includes('61003'), 'NetIn mapping rolled back');
      const d = await del(h, ctr);
      assert.equal(d.code, 0, d.stdout);
      await assertGone(cell, h, null);
      assert.ok((await linkNames(ctr)).includes('eth0'), "the container's own eth0 was not deleted");
    });

    it('a failing rules step (host port already mapped) rolls back the veth and the address', T, async () => {
      const c1 = await cell.newContainer();
      const c2 = await cell.newContainer();
      servers.push(await startServers(c1, { tcp: [8080] }));
      const h1 = handle('port-owner');
      const h2 = handle('port-clash');
      const ports = { runtimeConfig: { portMappings: [{ host_port: 61005, container_port: 8080 }] } };
      const r1 = await add(h1, c1, ports);
      assert.equal(r1.code, 0, r1.stdout);
      const before = Object.keys(await readStore(cell)).length;
      const e = cniError(await add(h2, c2, ports));
      assert.equal(e.code, 999);
      assert.match(
        e.msg,
        new RegExp(
          `applying rules for ${h2} failed: host port 61005 is already mapped to ${resultIp(r1.json).replaceAll('.', '\\.')}`,
        ),
      );
      await assertGone(cell, h2, null);
      assert.deepEqual(await linkNames(c2), ['lo'], 'the veth made in parallel was removed');
      assert.equal(Object.keys(await readStore(cell)).length, before, 'address released');
      assert.equal(
        await tcp(cell.router, UNDERLAY_CELL_IP, 61005),
        'open',
        'the first container keeps its port',
      );
      assert.equal((await del(h2, c2)).code, 0, 'DEL after the failed ADD');
      assert.equal((await del(h1, c1)).code, 0);
      await assertGone(cell, h1, resultIp(r1.json));
    });

    it('CHECK verifies interface, address, routes and rules', T, async () => {
      const ctr = await cell.newContainer();
      const h = handle('check');
      const r = await add(h, ctr);
      assert.equal(r.code, 0, r.stdout);
      const check = (extra: Record<string, unknown> = {}, id = h) =>
        cell.call({
          command: 'CHECK',
          containerId: id,
          netns: ctr,
          ifname: 'eth0',
          config: cell.config({ prevResult: r.json, ...extra }),
          mode,
        });
      const ok = await check();
      assert.equal(ok.code, 0, ok.stdout);
      assert.equal(ok.stdout, '', 'CHECK prints nothing');
      assert.equal(cniError(await check({}, handle('not-there'))).code, 3);
      assert.equal(cniError(await check({ cniVersion: '0.3.1' })).code, 1, 'CHECK needs 0.4.0 or later');
      await ip(ctr, 'route', 'del', 'default');
      const broken = cniError(await check());
      assert.equal(broken.code, 999);
      assert.match(broken.msg, /no default route via 169\.254\.0\.1/);
      await cell.exec(['nft', `delete element inet cfnet ctr_addrs { ${resultIp(r.json)} }`]);
      assert.match(cniError(await check()).msg, /no nft rules/);
      assert.equal((await del(h, ctr)).code, 0);
      await assertGone(cell, h, resultIp(r.json));
    });

    it('GC removes attachments not in cni.dev/valid-attachments, and stray veths and rules', T, async () => {
      const gc = { cniVersion: '1.1.0' };
      const keep = await cell.newContainer();
      const drop = await cell.newContainer();
      const hk = handle('gc-keep');
      const hd = handle('gc-drop');
      const rk = await add(hk, keep, gc);
      const rd = await add(hd, drop, {
        ...gc,
        runtimeConfig: { portMappings: [{ host_port: 61004, container_port: 80 }] },
      });
      assert.equal(rk.code, 0, rk.stdout);
      assert.equal(rd.code, 0, rd.stdout);
      // leftovers of a crashed plugin: a veth named by our scheme, an nft member with no record
      const ghost = hostIfName('ghost-container');
      await cell.exec(['ip', 'link', 'add', ghost, 'type', 'veth', 'peer', 'name', 'ghostpeer']);
      await cell.exec([
        'nft',
        'add element inet cfnet ctr_addrs { 10.255.250.250 comment "ghost-container" }',
      ]);
      const r = await cell.call({
        command: 'GC',
        config: cell.config({
          ...gc,
          'cni.dev/valid-attachments': [{ containerID: hk, ifname: 'eth0' }],
          'cni.dev/attachments': [{ containerID: hk, ifname: 'eth0' }],
        }),
        mode,
      });
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.stdout, '', 'GC prints nothing');
      await assertGone(cell, hd, resultIp(rd.json));
      assert.ok(!(await linkNames(cell.ns)).includes(ghost), 'stray veth removed');
      assert.ok(!(await nftSet(cell, 'ctr_addrs')).includes('ghost-container'), 'stray rules removed');
      assert.ok((await linkNames(cell.ns)).includes(hostIfName(hk)), 'valid attachment kept');
      assert.equal((await readStore(cell))[hk]?.ip, resultIp(rk.json));
      assert.equal(await icmp(cell.ns, resultIp(rk.json)), 'reply', 'kept container still reachable');
      assert.equal((await del(hk, keep)).code, 0);
      await assertGone(cell, hk, resultIp(rk.json));
    });

    it('STATUS: ready with a subnet, code 50 without one; ADD without a lease is code 11', T, async () => {
      const status = () =>
        cell.call({ command: 'STATUS', config: cell.config({ cniVersion: '1.1.0' }), mode });
      const ok = await status();
      assert.equal(ok.code, 0, ok.stdout);
      assert.equal(ok.stdout, '', 'STATUS prints nothing when ready');
      await rename(cell.subnetFile, `${cell.subnetFile}.away`);
      try {
        const r = cniError(await status());
        assert.equal(r.code, 50);
        assert.match(r.msg, /no cell subnet yet/);
        const ctr = await cell.newContainer();
        const h = handle('no-subnet');
        assert.equal(cniError(await add(h, ctr)).code, 11, 'ADD without a lease: try again later');
        await assertGone(cell, h, null);
      } finally {
        await rename(`${cell.subnetFile}.away`, cell.subnetFile);
      }
      assert.equal((await status()).code, 0);
    });

    it(
      "chaining: Debian's bandwidth plugin after cfnet shapes our veth; CHECK and DEL with the final result",
      T,
      async () => {
        const ctr = await cell.newContainer();
        const h = handle('bw');
        const r = await add(h, ctr);
        assert.equal(r.code, 0, r.stdout);
        const bwConf = (prevResult: unknown) => ({
          cniVersion: '1.0.0',
          name: 'cfnet',
          type: 'bandwidth',
          runtimeConfig: {
            bandwidth: {
              ingressRate: 8_000_000,
              ingressBurst: 80_000,
              egressRate: 8_000_000,
              egressBurst: 80_000,
            },
          },
          prevResult,
        });
        const bwCall = (command: string, prevResult: unknown) =>
          cell.call({
            command,
            containerId: h,
            netns: ctr,
            ifname: 'eth0',
            config: bwConf(prevResult),
            mode,
            program: '/usr/lib/cni/bandwidth',
          });
        const bw = await bwCall('ADD', r.json);
        assert.equal(bw.code, 0, bw.stdout + bw.stderr);
        // bandwidth passes our result through and appends the ifb device it made for egress shaping
        const final = bw.json as { interfaces: { name: string; sandbox?: string }[]; ips: unknown[] };
        const ifb = final.interfaces[2]?.name ?? '';
        assert.deepEqual(
          final.interfaces.map((i) => i.name),
          [hostIfName(h), 'eth0', ifb],
        );
        assert.match(ifb, /^bwp[0-9a-f]+$/);
        assert.equal(final.interfaces[2]?.sandbox, undefined, 'the ifb lives in the cell');
        assert.deepEqual(final.ips, (r.json as { ips: unknown[] }).ips, 'our addresses unchanged');
        const hostQdisc = await cell.exec(['tc', 'qdisc', 'show', 'dev', hostIfName(h)]);
        assert.match(hostQdisc.stdout, /tbf/, 'ingress shaping on our host veth');
        assert.match(hostQdisc.stdout, /ingress/, 'egress redirected from our host veth to the ifb');
        assert.match((await cell.exec(['tc', 'qdisc', 'show', 'dev', ifb])).stdout, /tbf/);
        // CHECK runs in order with the final result
        const ourCheck = await cell.call({
          command: 'CHECK',
          containerId: h,
          netns: ctr,
          ifname: 'eth0',
          config: cell.config({ prevResult: final }),
          mode,
        });
        assert.equal(ourCheck.code, 0, ourCheck.stdout);
        const bwCheck = await bwCall('CHECK', final);
        assert.equal(bwCheck.code, 0, bwCheck.stdout + bwCheck.stderr);
        // DEL runs in reverse order, with the final result
        const bwDel = await bwCall('DEL', final);
        assert.equal(bwDel.code, 0, bwDel.stdout);
        assert.ok(!(await linkNames(cell.ns)).includes(ifb), 'bandwidth removed its ifb');
        assert.equal((await del(h, ctr, { prevResult: final })).code, 0);
        await assertGone(cell, h, resultIp(r.json));
      },
    );

    it('chaining: a prevResult given to cfnet is kept and extended (loopback before it)', T, async () => {
      const ctr = await cell.newContainer();
      const h = handle('chain');
      const lo = await cell.call({
        command: 'ADD',
        containerId: h,
        netns: ctr,
        ifname: 'lo',
        config: { cniVersion: '1.0.0', name: 'cfnet', type: 'loopback' },
        mode,
        program: '/usr/lib/cni/loopback',
      });
      assert.equal(lo.code, 0, lo.stdout);
      const r = await add(h, ctr, { prevResult: lo.json });
      assert.equal(r.code, 0, r.stdout);
      const res = r.json as { interfaces: { name: string }[]; ips: { address: string; interface: number }[] };
      assert.deepEqual(
        res.interfaces.map((i) => i.name),
        ['lo', hostIfName(h), 'eth0'],
      );
      const own = res.ips.find((x) => x.address.endsWith('/32') && !x.address.startsWith('127.'));
      assert.equal(own?.interface, 2, 'our IP points at our container interface after the previous ones');
      assert.ok(
        res.ips.some((x) => x.address.startsWith('127.0.0.1')),
        "loopback's IP kept",
      );
      assert.equal((await del(h, ctr)).code, 0);
    });

    it('a 0.3.1 config (what garden-external-networker sends) gets a 0.3.1 result', T, async () => {
      const ctr = await cell.newContainer();
      const h = handle('v031');
      const r = await add(h, ctr, { cniVersion: '0.3.1' });
      assert.equal(r.code, 0, r.stdout);
      assert.equal(r.json?.cniVersion, '0.3.1');
      const ips = (r.json?.ips ?? []) as { version?: string }[];
      assert.equal(ips[0]?.version, '4');
      assert.equal((await del(h, ctr, { cniVersion: '0.3.1' })).code, 0);
    });

    it('ADD and DEL succeed when the agent hangs or its socket is not a socket', T, async () => {
      const hung = await hungAgent(cell.agentSocket);
      try {
        const ctr = await cell.newContainer();
        const h = handle('agent-hung');
        const r = await add(h, ctr, { agent_timeout_ms: 200 });
        assert.equal(r.code, 0, r.stdout);
        assert.equal((await del(h, ctr, { agent_timeout_ms: 200 })).code, 0);
        assert.equal(hung.connections(), 2, 'the agent was tried for ADD and DEL');
      } finally {
        await hung.close();
      }
      await writeFile(cell.agentSocket, ''); // not a socket at all
      try {
        const ctr = await cell.newContainer();
        const h = handle('agent-down');
        const r = await add(h, ctr);
        assert.equal(r.code, 0, r.stdout);
        assert.equal((await del(h, ctr)).code, 0);
      } finally {
        await run(['rm', '-f', cell.agentSocket]);
      }
    });

    // Concurrency is tested once, with both paths racing at the same time on one cell: the
    // executor's in-process queues and one-off fallback processes take the same datastore and
    // nft locks (as when a fallback runs while the executor restarts).
    if (mode === 'executor') {
      /** Alternates executor and fallback calls. */
      const either = (i: number): Mode => (i % 2 === 0 ? 'executor' : 'fallback');

      it(
        '50 concurrent ADDs (executor and fallback racing) get 50 distinct addresses; 50 concurrent DELs leave nothing',
        T,
        async () => {
          const n = 50;
          const ctrs = await Promise.all(Array.from({ length: n }, () => cell.newContainer()));
          const hs = ctrs.map(() => handle('many'));
          const call = (command: string, i: number) =>
            cell.call({
              command,
              containerId: hs[i]!,
              netns: ctrs[i]!,
              ifname: 'eth0',
              config: cell.config(),
              mode: either(i),
            });
          const adds = await Promise.all(hs.map((_, i) => call('ADD', i)));
          for (const r of adds) assert.equal(r.code, 0, r.stdout + r.stderr);
          const ips = adds.map((r) => resultIp(r.json));
          assert.equal(new Set(ips).size, n, `distinct addresses: ${ips.join(' ')}`);
          const store = await readStore(cell);
          assert.deepEqual(
            hs.map((h) => store[h]?.ip),
            ips,
            'datastore records every address',
          );
          const addrs = await nftSet(cell, 'ctr_addrs');
          for (const [i, h] of hs.entries()) {
            assert.match(addrs, new RegExp(`${ips[i]!.replaceAll('.', '\\.')} comment "${h}"`));
          }
          const onEth0 = await mapLimit(
            ctrs,
            8,
            async (c) => (await linkInfo(c, 'eth0'))?.addr_info[0]?.local,
          );
          assert.deepEqual(onEth0, ips, 'each container has its own address');
          assert.equal(await icmp(cell.ns, ips[n - 1]!), 'reply');
          const dels = await Promise.all(hs.map((_, i) => call('DEL', i)));
          for (const d of dels) assert.equal(d.code, 0, d.stdout + d.stderr);
          await assertCellEmpty(cell);
        },
      );

      it(
        'address exhaustion (executor and fallback racing) is a clear error; failed ADDs leave nothing',
        T,
        async () => {
          // the agent's lease shrinks to a /29 (6 addresses) for this test
          const small = freshSubnet(29);
          await cell.writeSubnet(small);
          try {
            const ctrs = await Promise.all(Array.from({ length: 8 }, () => cell.newContainer()));
            const hs = ctrs.map(() => handle('full'));
            const call = (command: string, i: number) =>
              cell.call({
                command,
                containerId: hs[i]!,
                netns: ctrs[i]!,
                ifname: 'eth0',
                config: cell.config(),
                mode: either(i),
              });
            const adds = await Promise.all(hs.map((_, i) => call('ADD', i)));
            const ok = adds.filter((r) => r.code === 0);
            assert.equal(ok.length, 6, adds.map((r) => r.stdout).join(''));
            assert.equal(new Set(ok.map((r) => resultIp(r.json))).size, 6);
            for (const r of adds.filter((x) => x.code !== 0)) {
              const e = cniError(r);
              assert.equal(e.code, 999);
              assert.match(e.msg, new RegExp(`no IP addresses available in ${small.replaceAll('.', '\\.')}`));
            }
            for (const [i, h] of hs.entries()) {
              if (adds[i]!.code === 0) continue;
              await assertGone(cell, h, null);
              assert.deepEqual(await linkNames(ctrs[i]!), ['lo'], 'no interface in a failed container');
            }
            const dels = await Promise.all(hs.map((_, i) => call('DEL', i)));
            for (const d of dels) assert.equal(d.code, 0, d.stdout);
            await assertCellEmpty(cell);
          } finally {
            await cell.writeSubnet();
          }
        },
      );
    }

    it(
      'every invalid env and config case returns its code, names the problem, and changes nothing',
      T,
      async () => {
        const ctr = await cell.newContainer();
        const cases = badCases(cell, ctr);
        const outs = await mapLimit(cases, 6, (c) => cell.call({ ...c.call, mode }));
        for (const [i, c] of cases.entries()) {
          const r = outs[i]!;
          assert.equal(r.code, 1, `${c.name}: exit status\n${r.stdout}${r.stderr}`);
          const e = r.json as { code?: number; msg?: string; cniVersion?: string } | null;
          assert.equal(e?.code, c.code, `${c.name}: ${r.stdout}`);
          assert.match(String(e?.msg), c.msg, `${c.name}: ${r.stdout}`);
          assert.equal(typeof e?.cniVersion, 'string', `${c.name}: cniVersion in the error`);
        }
        await assertCellEmpty(cell);
        assert.deepEqual(await linkNames(ctr), ['lo'], 'nothing in the container');
      },
    );

    it('VERSION', T, async () => {
      const r = await cell.call({ command: 'VERSION', config: cell.config(), mode });
      assert.equal(r.code, 0);
      assert.deepEqual(r.json, {
        cniVersion: '1.0.0',
        supportedVersions: ['0.3.1', '0.4.0', '1.0.0', '1.1.0'],
      });
    });

    it(
      "VERSION answers whatever else the environment holds (libcni's GetVersionInfo: CNI_NETNS=dummy)",
      T,
      async () => {
        const r = await cell.call({
          command: 'VERSION',
          containerId: 'dummy',
          netns: 'dummy/not-absolute',
          ifname: 'dummy',
          path: 'dummy',
          env: { CNI_NETNS: 'dummy', CNI_CONTAINERID: '-not valid-', CNI_IFNAME: 'x'.repeat(20) },
          config: '{"cniVersion":"1.0.0"}',
          mode,
        });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        assert.deepEqual(r.json, { cniVersion: '1.0.0', supportedVersions: [...SUPPORTED_VERSIONS] });
      },
    );
  });
}

describe('the executor (per shim transport) and the fallback give identical results', () => {
  it('one scripted session: byte-identical stdout and exit status', T, async () => {
    const transports = await availableTransports();
    const subnet = freshSubnet();
    const cells: Cell[] = [];
    try {
      const h1 = 'parity-one';
      const h2 = 'parity-two';
      /** What a step needs: the session's cell and its two container namespaces. */
      type Ctx = { cell: Cell; c1: string; c2: string };
      type Step = (x: Ctx, outs: CniOutcome[]) => Omit<CniCall, 'mode'>;
      const steps: [string, Step][] = [
        ['VERSION', (x) => ({ command: 'VERSION', config: x.cell.config() })],
        [
          'ADD',
          (x) => ({
            command: 'ADD',
            containerId: h1,
            netns: x.c1,
            ifname: 'eth0',
            config: x.cell.config({
              runtimeConfig: {
                portMappings: [{ host_port: 61010, container_port: 8080 }],
                netOutRules: [ASG_ALLOW_HTTP],
              },
              metadata: { policy_group_id: 'app-1', space_id: 'space-1', org_id: 'org-1' },
            }),
          }),
        ],
        [
          'ADD again',
          (x) => ({ command: 'ADD', containerId: h1, netns: x.c1, ifname: 'eth0', config: x.cell.config() }),
        ],
        [
          'CHECK',
          (x, outs) => ({
            command: 'CHECK',
            containerId: h1,
            netns: x.c1,
            ifname: 'eth0',
            config: x.cell.config({ prevResult: outs[1]!.json }),
          }),
        ],
        [
          'ADD 0.3.1',
          (x) => ({
            command: 'ADD',
            containerId: h2,
            netns: x.c2,
            ifname: 'eth0',
            config: x.cell.config({ cniVersion: '0.3.1' }),
          }),
        ],
        ['STATUS', (x) => ({ command: 'STATUS', config: x.cell.config({ cniVersion: '1.1.0' }) })],
        [
          'GC',
          (x) => ({
            command: 'GC',
            config: x.cell.config({
              cniVersion: '1.1.0',
              'cni.dev/valid-attachments': [
                { containerID: h1, ifname: 'eth0' },
                { containerID: h2, ifname: 'eth0' },
              ],
            }),
          }),
        ],
        [
          'ADD with ipam',
          (x) => ({
            command: 'ADD',
            containerId: 'parity-bad',
            netns: x.c2,
            ifname: 'eth1',
            config: x.cell.config({ ipam: { type: 'host-local' } }),
          }),
        ],
        ['no command', (x) => ({ command: '', config: x.cell.config() })],
        [
          'not JSON',
          (x) => ({ command: 'ADD', containerId: 'parity-bad', netns: x.c2, ifname: 'eth1', config: '{' }),
        ],
        [
          'DEL',
          (x) => ({ command: 'DEL', containerId: h1, netns: x.c1, ifname: 'eth0', config: x.cell.config() }),
        ],
        [
          'DEL again',
          (x) => ({ command: 'DEL', containerId: h1, netns: x.c1, ifname: 'eth0', config: x.cell.config() }),
        ],
        [
          'CHECK after DEL',
          (x, outs) => ({
            command: 'CHECK',
            containerId: h1,
            netns: x.c1,
            ifname: 'eth0',
            config: x.cell.config({ prevResult: outs[1]!.json }),
          }),
        ],
        [
          'DEL 0.3.1',
          (x) => ({
            command: 'DEL',
            containerId: h2,
            netns: x.c2,
            ifname: 'eth0',
            config: x.cell.config({ cniVersion: '0.3.1' }),
          }),
        ],
        [
          // a control character cannot travel in a header, and +, %, & and = must survive a query
          'ADD with a tab and URL syntax in CNI_CONTAINERID',
          (x) => ({
            command: 'ADD',
            containerId: 'parity\tbad+%20&x=y',
            netns: x.c2,
            ifname: 'eth0',
            config: x.cell.config(),
          }),
        ],
      ];
      // every session on its own cell (same subnet, so the same addresses), all at the same time
      const session = async (mode: Mode, transport?: Transport) => {
        const cell = await Cell.create({ subnet });
        cells.push(cell);
        if (mode === 'executor') await cell.startExecutor();
        const x: Ctx = { cell, c1: await cell.newContainer(), c2: await cell.newContainer() };
        const outs: CniOutcome[] = [];
        const seen: { step: string; code: number | null; stdout: string }[] = [];
        for (const [name, step] of steps) {
          const r = await cell.call({ ...step(x, outs), mode, ...(transport ? { transport } : {}) });
          outs.push(r);
          const stdout = r.stdout
            .replaceAll(cell.dir, '<cell>')
            .replaceAll(x.c1, '<ctr1>')
            .replaceAll(x.c2, '<ctr2>');
          seen.push({ step: name, code: r.code, stdout });
        }
        await assertCellEmpty(cell);
        return seen;
      };
      const [reference, ...others] = await Promise.all([
        session('fallback'),
        ...transports.map((t) => session('executor', t)),
      ]);
      // the session itself is what a runtime expects
      assert.deepEqual(
        reference!.map((s) => s.code),
        [0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 1],
        JSON.stringify(reference, null, 1),
      );
      assert.match(reference![1]!.stdout, /"sandbox":"\/run\/netns\/<ctr1>"/);
      assert.equal(reference![3]!.stdout, '', 'CHECK prints nothing');
      assert.equal(reference![8]!.stdout, '', 'no command: the about text goes to stderr');
      assert.equal(reference![10]!.stdout, '', 'DEL prints nothing');
      assert.match(reference![14]!.stdout, /parity\\tbad\+%20&x=y/, 'the value arrived intact');
      assert.ok(transports.includes('compiled'), 'the compiled entry is among the compared ones');
      for (const [i, t] of transports.entries()) {
        assert.deepEqual(others[i], reference, `executor via ${t} vs fallback`);
      }
    } finally {
      for (const cell of cells) await cell.cleanup();
    }
  });
});

describe('the shim when the executor is gone or breaks (per transport)', () => {
  it(
    'a stale socket (executor crashed) runs the fallback; a dropped request is code 11, never run twice',
    T,
    async () => {
      const cell = await Cell.create({ subnet: freshSubnet() });
      // reads the request, then hangs up without an answer (an executor dying mid-call). One that hangs
      // up before the request arrived would be "never sent": the fallback may run then, rightly.
      const dropper = createNetServer((c) => {
        c.once('data', () => c.destroy());
        c.on('error', () => undefined);
      });
      try {
        // a socket file nobody listens on, as a killed executor leaves it: connect() is refused
        const stale = `${cell.dir}/stale.sock`;
        const bound = await run([
          'python3',
          '-c',
          'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])',
          stale,
        ]);
        assert.equal(bound.code, 0, bound.stderr);
        const dropping = `${cell.dir}/dropping.sock`;
        await new Promise<void>((resolve) => dropper.listen(dropping, () => resolve()));
        for (const transport of await availableTransports()) {
          const ctr = await cell.newContainer();
          const h = handle(`stale-${transport}`);
          const call = (command: string, socket: string) =>
            cell.call({
              command,
              containerId: h,
              netns: ctr,
              ifname: 'eth0',
              config: cell.config({ executor_socket: socket }),
              mode: 'executor',
              transport,
            });
          const r = await call('ADD', stale);
          assert.equal(r.code, 0, `${transport}: the fallback ran: ${r.stdout}${r.stderr}`);
          assert.equal((await readStore(cell))[h]?.ip, resultIp(r.json));
          // the executor took the request and died: the plugin cannot know what was done, so it
          // says "try again" instead of running the fallback on top of it
          const e = cniError(await call('DEL', dropping));
          assert.equal(e.code, 11, `${transport}: ${e.msg}`);
          assert.match(e.msg, /executor at .*dropping\.sock/);
          assert.equal((await readStore(cell))[h]?.ip, resultIp(r.json), 'nothing was done by a fallback');
          assert.equal((await call('DEL', stale)).code, 0);
          await assertGone(cell, h, resultIp(r.json));
        }
      } finally {
        dropper.close();
        await cell.cleanup();
      }
    },
  );
});

describe('the shim runs a plugin the runtime found through CNI_PATH (symlinked binary)', () => {
  it(
    'resolves its install dir through the symlink for the fallback (compiled entry and sh shim)',
    T,
    async () => {
      const cell = await Cell.create({ subnet: freshSubnet() });
      try {
        for (const [i, target] of [cell.install.shim, cell.install.shShim].entries()) {
          const dir = `${cell.dir}/cni-bin-${i}`;
          await run(['mkdir', '-p', dir]);
          await run(['ln', '-s', target, `${dir}/cfnet-cni`]);
          const r = await runWithStdin(
            [`${dir}/cfnet-cni`],
            { PATH: process.env.PATH ?? '', CNI_COMMAND: 'VERSION' },
            JSON.stringify(cell.config({}, 'fallback')),
          );
          assert.equal(r.code, 0, `${target}: ${r.stdout}${r.stderr}`);
          assert.equal(r.json?.cniVersion, '1.0.0');
        }
      } finally {
        await cell.cleanup();
      }
    },
  );
});

describe('the plugin cfnet installs is the compiled entry point wherever a C compiler is', () => {
  it('cc is on PATH (.ci/run installs gcc) and the install’s bin/cfnet-cni is an ELF binary', T, async () => {
    const cc = await run(['sh', '-c', 'command -v cc'], { allowFail: true });
    assert.equal(cc.code, 0, 'no cc on PATH: .ci/run installs gcc and libc6-dev');
    const install = await buildInstall();
    assert.equal(install.entry, 'compiled');
    const head = await readFile(install.shim);
    assert.deepEqual([...head.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], 'ELF magic');
    assert.ok(
      (await readFile(install.shShim, 'utf8')).startsWith('#!/bin/sh\n'),
      'the sh shim stays next to it',
    );
  });
});

describe('the compiled entry point at its limits', () => {
  it('an executor that takes the request and never answers: code 11 after CFNET_CNI_TIMEOUT', T, async () => {
    const install = await buildInstall();
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-cni-limits-'));
    const hung = await hungAgent(join(dir, 'hung.sock'));
    try {
      const config = JSON.stringify({ cniVersion: '1.0.0', name: 'cfnet', type: 'cfnet-cni' });
      const r = await runWithStdin(
        [install.shim],
        {
          PATH: process.env.PATH ?? '',
          CNI_COMMAND: 'VERSION',
          CFNET_CNI_SOCKET: join(dir, 'hung.sock'),
          CFNET_CNI_TIMEOUT: '1',
        },
        config,
      );
      assert.equal(r.code, 1);
      const e = r.json as { code: number; msg: string };
      assert.equal(e.code, 11);
      assert.match(e.msg, /did not answer within 1s/);
      assert.ok(r.ms >= 900 && r.ms < 10_000, `gave up after ${Math.round(r.ms)} ms`);
      assert.equal(hung.connections(), 1, 'one request, no fallback after it');
    } finally {
      await hung.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a stdin larger than a pipe reaches the fallback whole', T, async () => {
    const install = await buildInstall();
    // 300 KiB of config: the fallback reads it from the memory file the entry point made its stdin
    const big = { cniVersion: '1.0.0', name: 'cfnet', type: 'cfnet-cni', padding: 'x'.repeat(300 * 1024) };
    const r = await runWithStdin(
      [install.shim],
      {
        PATH: process.env.PATH ?? '',
        CNI_COMMAND: 'ADD',
        CNI_CONTAINERID: 'big',
        CNI_NETNS: '/run/netns/cfnet-test-none',
        CNI_IFNAME: 'eth0',
        CNI_PATH: '/usr/lib/cni',
        CFNET_CNI_SOCKET: '/nonexistent/cni.sock',
      },
      `${JSON.stringify(big).slice(0, -1)},"ipam":{"type":"host-local"}}`,
    );
    // parsed whole: the config error is the one a complete document gives (ipam), not a JSON one
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal((r.json as { code: number }).code, 2, r.stdout);
    assert.match(String(r.json?.msg), /ipam/);
  });
});

describe('cfnet-cni started by hand (no CNI_COMMAND), as the reference plugins', () => {
  it(
    'prints the about line and the supported versions on stderr, exits 0, and never reads stdin',
    T,
    async () => {
      const install = await buildInstall();
      for (const entry of [install.shim, install.shShim]) {
        // stdin stays open: a plugin that waited on it would hang until the timeout kills it
        const child = spawn(entry, [], {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          stdio: ['pipe', 'pipe', 'pipe'],
        });
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => err.push(b));
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
        clearTimeout(timer);
        child.stdin.destroy();
        assert.equal(code, 0, `${entry}: exit status 0 without waiting for stdin`);
        assert.equal(Buffer.concat(out).toString(), '', `${entry}: nothing on stdout`);
        assert.equal(Buffer.concat(err).toString(), aboutText(), `${entry}: the same text as the library`);
      }
      assert.match(aboutText(), /CNI protocol versions supported: 0\.3\.1, 0\.4\.0, 1\.0\.0, 1\.1\.0/);
    },
  );

  it('the one-off runner (no executor) does the same', T, async () => {
    const install = await buildInstall();
    const r = await runWithStdin(
      [process.execPath, join(install.home, 'dist', 'cni', 'fallback.js')],
      { PATH: process.env.PATH ?? '' },
      '',
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, aboutText());
  });
});
