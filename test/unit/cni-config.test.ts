import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  CNI_CONFIG_KEYS,
  CNI_SETTINGS,
  decodeStdin,
  PLUGIN_KEYS,
  parseAddInput,
  parseNetConfig,
  parsePortMappings,
  parseValidAttachments,
} from '../../src/cni/config.js';
import { checkEnv, pickCniEnv } from '../../src/cni/env.js';
import { CniError } from '../../src/cni/errors.js';
import { allocate, capacity, makeSubnet, readSubnet } from '../../src/cni/ipam.js';
import { containerMac, HOST_IF, hostIfName, hostMac } from '../../src/cni/names.js';
import { invokeCni } from '../../src/cni/plugin/index.js';
import { formatResult, parsePrevResult, versionInfo } from '../../src/cni/version.js';

function cniCode(fn: () => unknown): { code: number; msg: string } {
  try {
    fn();
  } catch (err) {
    if (err instanceof CniError) return { code: err.cniCode, msg: err.message };
    const e = err as { field?: string; message: string };
    if (e.field !== undefined) return { code: 7, msg: e.message };
    throw err;
  }
  assert.fail('expected an error');
}

const BASE = { cniVersion: '1.0.0', name: 'cfnet', type: 'cfnet-cni', subnet: '10.255.3.0/24' };

describe('CNI env (Go skel rules)', () => {
  it('requires CNI_PATH for ADD/CHECK/DEL/GC/STATUS and names every missing variable', () => {
    assert.deepEqual(
      cniCode(() => checkEnv({ CNI_COMMAND: 'ADD' })),
      {
        code: 4,
        msg: 'required env variables [CNI_CONTAINERID CNI_NETNS CNI_IFNAME CNI_PATH] missing',
      },
    );
    assert.match(
      cniCode(() => checkEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a', CNI_IFNAME: 'eth0' })).msg,
      /\[CNI_PATH\]/,
    );
    for (const cmd of ['GC', 'STATUS'])
      assert.match(cniCode(() => checkEnv({ CNI_COMMAND: cmd })).msg, /\[CNI_PATH\]/);
    assert.equal(checkEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
    const del = checkEnv({ CNI_COMMAND: 'DEL', CNI_CONTAINERID: 'a', CNI_IFNAME: 'eth0', CNI_PATH: '/x' });
    assert.equal(del.netns, undefined, 'DEL does not need CNI_NETNS');
  });

  it('rejects unknown commands, bad container ids and interface names (code 4)', () => {
    assert.deepEqual(
      cniCode(() => checkEnv({})),
      { code: 4, msg: 'required env variables [CNI_COMMAND] missing' },
    );
    assert.deepEqual(
      cniCode(() => checkEnv({ CNI_COMMAND: 'FOO' })),
      { code: 4, msg: 'unknown CNI_COMMAND: FOO' },
    );
    const base = { CNI_COMMAND: 'ADD', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/x' };
    assert.match(cniCode(() => checkEnv({ ...base, CNI_CONTAINERID: '-abc' })).msg, /CNI_CONTAINERID/);
    assert.match(cniCode(() => checkEnv({ ...base, CNI_CONTAINERID: 'a/b' })).msg, /CNI_CONTAINERID/);
    assert.match(
      cniCode(() => checkEnv({ ...base, CNI_CONTAINERID: 'ok', CNI_IFNAME: 'x'.repeat(16) })).msg,
      /too long/,
    );
    assert.match(
      cniCode(() => checkEnv({ ...base, CNI_CONTAINERID: 'ok', CNI_IFNAME: 'a:b' })).msg,
      /CNI_IFNAME/,
    );
    assert.match(
      cniCode(() => checkEnv({ ...base, CNI_CONTAINERID: 'ok', CNI_NETNS: 'rel' })).msg,
      /absolute/,
    );
  });

  it('treats empty variables as unset', () => {
    assert.deepEqual(pickCniEnv({ CNI_COMMAND: 'ADD', CNI_ARGS: '', OTHER: 'x' }), { CNI_COMMAND: 'ADD' });
  });
});

describe('CNI network config', () => {
  it('a config without plugin keys gets exactly the defaults of the key table', () => {
    const { subnet: _, ...noSubnet } = BASE;
    const cfg = parseNetConfig(noSubnet) as unknown as Record<string, unknown>;
    for (const spec of CNI_SETTINGS) {
      if (spec.required) continue;
      assert.deepEqual(cfg[spec.key], spec.def ?? null, spec.key);
    }
    assert.equal(parseNetConfig(BASE).subnetFile, null, 'a fixed subnet: no lease file');
    assert.equal(parseNetConfig({ ...BASE, mtu: 0 }).mtu, null, 'mtu 0 = automatic');
    assert.equal(parseNetConfig({ ...BASE, agent_socket: false }).agentSocket, null);
    assert.equal(parseNetConfig({ ...BASE, agent_socket: '' }).agentSocket, null);
  });

  it('reads every plugin key it exports (a bad value is refused, naming the key)', () => {
    for (const key of PLUGIN_KEYS.filter((k) => k !== 'type')) {
      const { subnet: _, ...noSubnet } = BASE;
      const base = key === 'subnet_file' ? noSubnet : BASE;
      assert.throws(
        () => parseNetConfig({ ...base, [key]: { bad: true } }),
        (e: unknown) => e instanceof Error && e.message.includes(`invalid ${key} `),
        key,
      );
      assert.ok(CNI_CONFIG_KEYS.includes(key));
    }
  });

  it('accepts 0.3.1, 0.4.0, 1.0.0 and 1.1.0 and rejects others with code 1', () => {
    for (const v of ['0.3.1', '0.4.0', '1.0.0', '1.1.0']) {
      assert.equal(parseNetConfig({ ...BASE, cniVersion: v }).cniVersion, v);
    }
    for (const v of ['0.3.0', '0.2.0', '1.2.0', '2.0.0']) {
      assert.equal(cniCode(() => parseNetConfig({ ...BASE, cniVersion: v })).code, 1);
    }
    assert.equal(cniCode(() => parseNetConfig({ ...BASE, cniVersion: undefined })).code, 7);
  });

  it('applies defaults (BOSH DNS, overlay, table, datastore)', () => {
    const c = parseNetConfig(BASE);
    assert.deepEqual(c.cell.dnsServers, ['169.254.0.2']);
    assert.equal(c.cell.overlayNetwork, '10.255.0.0/16');
    assert.equal(c.nftTable, 'cfnet');
    assert.equal(c.datastore, '/var/vcap/data/container-metadata/store.json');
    assert.equal(c.mtu, null);
    assert.equal(parseNetConfig({ ...BASE, mtu: 0 }).mtu, null);
    assert.equal(parseNetConfig({ ...BASE, mtu: 1400 }).mtu, 1400);
    assert.equal(parseNetConfig({ ...BASE, agent_socket: '' }).agentSocket, null);
  });

  it('parses the Silk-style rule-set settings', () => {
    const c = parseNetConfig({
      ...BASE,
      dns_servers: ['169.254.0.2', '10.0.0.3'],
      host_tcp_services: ['169.254.0.2:9001'],
      deny_networks: { always: ['10.0.0.0/8'], running: ['192.168.0.0/16'] },
      iptables_asg_logging: true,
    });
    assert.deepEqual(c.cell.dnsServers, ['169.254.0.2', '10.0.0.3']);
    assert.deepEqual(c.cell.hostTcpServices, [{ ip: '169.254.0.2', port: 9001 }]);
    assert.deepEqual(c.cell.denyNetworks.always, [{ family: 4, start: '10.0.0.0', end: '10.255.255.255' }]);
    assert.equal(c.cell.logging.asg, true);
  });

  const bad: [string, Record<string, unknown>, number, RegExp][] = [
    ['name missing', { name: undefined }, 7, /name/],
    ['name invalid', { name: 'a b' }, 7, /name/],
    ['type missing', { type: '' }, 7, /type/],
    ['mtu not a number', { mtu: 'big' }, 7, /mtu/],
    ['mtu too small', { mtu: 20 }, 7, /mtu/],
    ['relative subnet_file', { subnet: undefined, subnet_file: 'subnet.json' }, 7, /subnet_file/],
    ['subnet and subnet_file', { subnet_file: '/x.json' }, 7, /subnet_file/],
    ['subnet outside overlay', { subnet: '10.1.0.0/24' }, 7, /overlay_network/],
    ['subnet too small', { subnet: '10.255.3.0/31' }, 7, /subnet/],
    ['ipam delegation', { ipam: { type: 'host-local' } }, 2, /ipam\.type "host-local"/],
    ['bad dns server', { dns_servers: ['dns'] }, 7, /dns_servers\[0\]/],
    ['bad deny network', { deny_networks: { always: ['bogus'] } }, 7, /deny_networks\.always\[0\]/],
    ['unknown deny key', { deny_networks: { sometimes: [] } }, 7, /deny_networks\.sometimes/],
    ['bad nft table', { nft_table: 'filter' }, 7, /nft_table/],
    ['bad log level', { log_level: 'loud' }, 7, /log_level/],
    ['bad underlay_interface', { underlay_interface: 'a/b' }, 7, /underlay_interface/],
    ['agent timeout', { agent_timeout_ms: 0 }, 7, /agent_timeout_ms/],
    ['prevResult not an object', { prevResult: 'x' }, 6, /prevResult/],
  ];
  for (const [what, patch, code, msg] of bad) {
    it(`rejects ${what} with code ${code} naming the field`, () => {
      const r = cniCode(() => parseNetConfig({ ...BASE, ...patch }));
      assert.equal(r.code, code, r.msg);
      assert.match(r.msg, msg);
    });
  }

  it('decodes stdin: not JSON or not an object is code 6', () => {
    assert.equal(cniCode(() => decodeStdin('{')).code, 6);
    assert.equal(cniCode(() => decodeStdin('[1]')).code, 6);
    assert.deepEqual(decodeStdin('{"a":1}'), { a: 1 });
  });
});

describe('ADD input: runtimeConfig and metadata', () => {
  const cfg = (extra: Record<string, unknown>) => parseNetConfig({ ...BASE, ...extra });

  it("reads CF's snake_case and CONVENTIONS' camelCase port mappings", () => {
    assert.deepEqual(
      parsePortMappings([
        { host_port: 61001, container_port: 8080 },
        { hostPort: 61000, containerPort: 2222, protocol: 'tcp' },
        { host_port: 61001, container_port: 8080 },
      ]),
      [
        { hostPort: 61000, containerPort: 2222 },
        { hostPort: 61001, containerPort: 8080 },
      ],
    );
  });

  it('reads Garden NetOutRules, metadata and workload', () => {
    const a = parseAddInput(
      cfg({
        runtimeConfig: {
          portMappings: [{ host_port: 61000, container_port: 8080 }],
          netOutRules: [
            {
              protocol: 1,
              networks: [{ start: '8.8.8.8', end: '9.9.9.9' }],
              ports: [{ start: 53, end: 54 }],
            },
          ],
        },
        metadata: {
          policy_group_id: 'app-1',
          space_id: 's',
          org_id: 'o',
          container_workload: 'staging',
          ports: '8080',
        },
      }),
    );
    assert.equal(a.appGuid, 'app-1');
    assert.equal(a.workload, 'staging');
    assert.equal(a.netOutRules.length, 1);
    assert.deepEqual(a.netOutRules[0]!.ports, [{ start: 53, end: 54 }]);
    assert.equal(parseAddInput(cfg({ runtimeConfig: { metadata: { app_id: 'x' } } })).appGuid, 'x');
    assert.equal(parseAddInput(cfg({})).workload, 'app');
  });

  const bad: [string, Record<string, unknown>, number, RegExp][] = [
    [
      'udp NetIn',
      { runtimeConfig: { portMappings: [{ host_port: 1, container_port: 2, protocol: 'udp' }] } },
      2,
      /protocol/,
    ],
    [
      'host port 0',
      { runtimeConfig: { portMappings: [{ host_port: 0, container_port: 8080 }] } },
      7,
      /portMappings\[0\]\.host_port/,
    ],
    [
      'host port mapped twice',
      {
        runtimeConfig: {
          portMappings: [
            { host_port: 5, container_port: 1 },
            { host_port: 5, container_port: 2 },
          ],
        },
      },
      7,
      /portMappings\[1\]/,
    ],
    ['static ips', { runtimeConfig: { ips: ['10.255.3.9/24'] } }, 2, /runtimeConfig\.ips/],
    ['args.cni.ips', { args: { cni: { ips: ['10.255.3.9'] } } }, 2, /args\.cni\.ips/],
    [
      'bad ASG protocol',
      { runtimeConfig: { netOutRules: [{ protocol: 9 }] } },
      7,
      /runtimeConfig\.netOutRules\[0\]\.protocol/,
    ],
    [
      'reversed ASG range',
      { runtimeConfig: { netOutRules: [{ protocol: 0, networks: [{ start: '9.9.9.9', end: '8.8.8.8' }] }] } },
      7,
      /netOutRules\[0\]\.networks\[0\]/,
    ],
    ['bad workload', { metadata: { container_workload: 'daemon' } }, 7, /metadata\.container_workload/],
    ['metadata not an object', { metadata: [1] }, 7, /metadata/],
  ];
  for (const [what, patch, code, msg] of bad) {
    it(`rejects ${what} with code ${code}`, () => {
      const r = cniCode(() => parseAddInput(cfg(patch)));
      assert.equal(r.code, code, r.msg);
      assert.match(r.msg, msg);
    });
  }

  it('GC attachments: union of both keys; null is an empty list; absent is null', () => {
    assert.deepEqual(
      parseValidAttachments({
        'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }],
        'cni.dev/attachments': [{ containerID: 'b', ifname: 'eth0' }],
      }),
      [
        { containerID: 'a', ifname: 'eth0' },
        { containerID: 'b', ifname: 'eth0' },
      ],
    );
    assert.deepEqual(parseValidAttachments({ 'cni.dev/valid-attachments': null }), []);
    assert.equal(parseValidAttachments({}), null);
    assert.equal(cniCode(() => parseValidAttachments({ 'cni.dev/valid-attachments': [{ id: 1 }] })).code, 7);
  });
});

describe('IPAM', () => {
  it('allocates round-robin, skipping network, broadcast, gateway and used addresses', () => {
    const s = makeSubnet('10.255.3.0/29', '10.255.3.1', 'subnet');
    assert.equal(capacity(s), 5);
    assert.equal(allocate(s, new Set(), null), '10.255.3.2');
    assert.equal(allocate(s, new Set(['10.255.3.3']), '10.255.3.2'), '10.255.3.4');
    assert.equal(allocate(s, new Set(), '10.255.3.6'), '10.255.3.2', 'wraps, skipping the gateway');
    const used = new Set(['10.255.3.2', '10.255.3.3', '10.255.3.4', '10.255.3.5', '10.255.3.6']);
    const r = cniCode(() => allocate(s, used, null));
    assert.equal(r.code, 999);
    assert.match(r.msg, /no IP addresses available in 10\.255\.3\.0\/29/);
  });

  it('every address of a /24 is handed out once', () => {
    const s = makeSubnet('10.255.9.0/24', null, 'subnet');
    const used = new Set<string>();
    let last: string | null = null;
    for (let i = 0; i < 254; i++) {
      last = allocate(s, used, last);
      assert.ok(!used.has(last));
      used.add(last);
    }
    assert.equal(used.size, 254);
    assert.equal(cniCode(() => allocate(s, used, last)).code, 999);
  });

  it('reads the subnet file: missing is code 11, malformed is code 7', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-cni-unit-'));
    try {
      const file = join(dir, 'subnet.json');
      const cfg = parseNetConfig({ ...BASE, subnet: undefined, subnet_file: file });
      await assert.rejects(
        readSubnet(cfg),
        (e: CniError) => e.cniCode === 11 && /does not exist/.test(e.message),
      );
      await writeFile(file, 'nope');
      await assert.rejects(
        readSubnet(cfg),
        (e: CniError) => e.cniCode === 7 && /subnet_file/.test(e.message),
      );
      await writeFile(file, JSON.stringify({ subnet: '10.1.0.0/24' }));
      await assert.rejects(
        readSubnet(cfg),
        (e: CniError) => e.cniCode === 7 && /overlay_network/.test(e.message),
      );
      await writeFile(file, JSON.stringify({ subnet: '10.255.4.0/24', gateway: '10.255.4.1' }));
      const s = await readSubnet(cfg);
      assert.equal(s.subnet, '10.255.4.0/24');
      assert.equal(s.gateway, '10.255.4.1');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('names and results', () => {
  it('host veth names are 15 characters, stable and distinct', () => {
    const a = hostIfName('d5bbc5ed-886a-44e6-945d-67df1013fa16');
    assert.equal(a.length, 15);
    assert.match(a, HOST_IF);
    assert.equal(a, hostIfName('d5bbc5ed-886a-44e6-945d-67df1013fa16'));
    assert.notEqual(a, hostIfName('d5bbc5ed-886a-44e6-945d-67df1013fa17'));
    assert.equal(containerMac('10.255.3.7'), 'ee:ee:0a:ff:03:07');
    assert.equal(hostMac('10.255.3.7'), 'aa:aa:0a:ff:03:07');
  });

  it('prints results per version (IP version before 1.0.0, interface mtu from 1.1.0)', () => {
    const r = {
      cniVersion: '1.0.0',
      interfaces: [
        { name: 'cfn1', mac: 'aa', mtu: 1450 },
        { name: 'eth0', mac: 'ee', mtu: 1450, sandbox: '/n' },
      ],
      ips: [{ address: '10.255.3.7/32', gateway: '169.254.0.1', interface: 1 }],
    };
    const old = formatResult(r, '0.3.1') as { ips: { version: string }[]; interfaces: object[] };
    assert.equal(old.ips[0]!.version, '4');
    assert.equal((old.interfaces[0] as { mtu?: number }).mtu, undefined);
    const v1 = formatResult(r, '1.0.0') as { ips: { version?: string }[] };
    assert.equal(v1.ips[0]!.version, undefined);
    const v11 = formatResult(r, '1.1.0') as { interfaces: { mtu?: number }[] };
    assert.equal(v11.interfaces[1]!.mtu, 1450);
    assert.deepEqual(parsePrevResult(old).ips, r.ips, 'prevResult of 0.3.1 reads back');
    assert.deepEqual(versionInfo().supportedVersions, ['0.3.1', '0.4.0', '1.0.0', '1.1.0']);
  });
});

describe('invokeCni before any I/O', () => {
  const deps = {
    dataplane: () => {
      throw new Error('the dataplane must not be reached');
    },
  };
  const env = {
    CNI_COMMAND: 'ADD',
    CNI_CONTAINERID: 'c1',
    CNI_NETNS: '/run/netns/none',
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/x',
  };

  it('VERSION prints the supported versions', async () => {
    const r = await invokeCni({ env: { CNI_COMMAND: 'VERSION' }, stdin: '' }, deps);
    assert.equal(r.exitCode, 0);
    assert.deepEqual(JSON.parse(r.stdout), versionInfo());
  });

  it('errors are CNI error JSON on stdout with exit status 1 and the config version', async () => {
    const r = await invokeCni(
      { env, stdin: JSON.stringify({ ...BASE, cniVersion: '0.4.0', mtu: -1 }) },
      deps,
    );
    assert.equal(r.exitCode, 1);
    const e = JSON.parse(r.stdout);
    assert.equal(e.code, 7);
    assert.equal(e.cniVersion, '0.4.0');
    assert.match(e.msg, /mtu/);
    const d = await invokeCni({ env, stdin: 'garbage' }, deps);
    assert.equal(JSON.parse(d.stdout).code, 6);
    const v = await invokeCni({ env: { ...env, CNI_COMMAND: 'GC' }, stdin: JSON.stringify(BASE) }, deps);
    assert.equal(JSON.parse(v.stdout).code, 1, 'GC needs 1.1.0');
    const n = await invokeCni({ env, stdin: JSON.stringify(BASE) }, deps);
    assert.equal(JSON.parse(n.stdout).code, 8, 'missing netns');
  });
});
