// The BOSH release under bosh/: every job template renders (scripts/render-bosh-templates.rb emulates
// the director's ERB context) with the spec defaults plus bosh/test/sample-properties.yml, outputs
// parse, properties reach the rendered files, bad properties fail naming themselves, the rendered
// conflist is accepted by the plugin's own config parser, the rendered redis.conf runs a real
// redis-server, the drain script never touches rules, the ops file swaps Silk for cfnet in a
// cf-deployment-shaped manifest, and the packaging scripts build packages from stand-in blobs.
import assert from 'node:assert/strict';
import { type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AGENT_SETTINGS, resolveAgentConfig } from '../../src/agent/config.js';
import { PLUGIN_KEYS, parseNetConfig } from '../../src/cni/config.js';
import { SUPPORTED_VERSIONS } from '../../src/cni/version.js';
import { cellBootstrapToken } from '../../src/controller/identity/bootstrap-token.js';
import {
  CONTROLLER_SETTINGS,
  type ControllerSettings,
  parseControllerSettings,
} from '../../src/controller/settings.js';
import { DEFAULT_IPTABLES_BINARIES } from '../../src/dataplane/host-filter.js';
import { freePort } from '../../src/lab/process.js';
import { createCa, issueCert } from '../../src/lib/tls.js';
import { CELL_CONFIG_KEYS } from '../../src/model/config.js';

const root = new URL('../..', import.meta.url).pathname;
const script = join(root, 'scripts', 'render-bosh-templates.rb');
const release = join(root, 'bosh');
const JOBS = ['cfnet-agent', 'cfnet-controller', 'cfnet-redis', 'cni'];
const SAMPLE_KEY = '-----BEGIN RSA PRIVATE KEY-----\nc2FtcGxlIGtleQ==\n-----END RSA PRIVATE KEY-----\n';

const work = mkdtempSync(join(tmpdir(), 'cfnet-packaging-bosh-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface RenderedFile {
  job: string;
  instance_group?: string;
  template: string;
  dest: string;
  path: string;
  kind: string;
  parsed?: unknown;
}
interface RenderReport {
  out: string;
  manifest?: string;
  files: RenderedFile[];
  errors: { job?: string; instance_group?: string; template?: string; error: string }[];
}

/** Renderer arguments turning on cfnet-redis's TLS with this certificate, key and CA. */
function redisTls(cert: string, key: string, ca: string): string[] {
  return [
    '--set',
    'cfnet-redis:tls.enabled=true',
    '--set',
    `cfnet-redis:tls.certificate=${JSON.stringify(cert)}`,
    '--set',
    `cfnet-redis:tls.private_key=${JSON.stringify(key)}`,
    '--set',
    `cfnet-redis:tls.ca=${JSON.stringify(ca)}`,
  ];
}

let runs = 0;
function render(args: string[] = []): { status: number | null; report: RenderReport; stderr: string } {
  const out = join(work, `render-${++runs}`);
  const res = spawnSync('ruby', [script, '--out', out, ...args], { encoding: 'utf8' });
  if (res.error) throw res.error;
  let report: RenderReport;
  try {
    report = JSON.parse(res.stdout) as RenderReport;
  } catch {
    throw new Error(`renderer printed no JSON report (exit ${res.status}): ${res.stderr}`);
  }
  return { status: res.status, report, stderr: res.stderr };
}

function renderOk(args: string[] = []): RenderReport {
  const { status, report } = render(args);
  assert.deepEqual(report.errors, [], 'templates failed to render');
  assert.equal(status, 0);
  return report;
}

function file(report: RenderReport, job: string, dest: string, group?: string): RenderedFile {
  const f = report.files.find(
    (x) => x.job === job && x.dest === dest && (group === undefined || x.instance_group === group),
  );
  assert.ok(f, `no rendered ${job}/${dest}${group ? ` in ${group}` : ''}`);
  return f;
}

function parsed<T = Record<string, unknown>>(
  report: RenderReport,
  job: string,
  dest: string,
  group?: string,
): T {
  const f = file(report, job, dest, group);
  assert.ok(f.parsed !== undefined, `${job}/${dest} was not parsed`);
  return f.parsed as T;
}

/** Template → destination map of a job spec, read through ruby's YAML. */
function specTemplates(job: string): Record<string, string> {
  const res = spawnSync(
    'ruby',
    [
      '-ryaml',
      '-rjson',
      '-e',
      'puts JSON.generate(YAML.safe_load(File.read(ARGV[0]))["templates"])',
      join(release, 'jobs', job, 'spec'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as Record<string, string>;
}

/** The rendered controller.json through the controller's own settings parser (unknown keys fail). */
function controllerSettings(report: RenderReport, group?: string): ControllerSettings {
  return parseControllerSettings({
    file: parsed(report, 'cfnet-controller', 'config/controller.json', group),
  });
}

interface Conflist {
  cniVersion: string;
  name: string;
  plugins: Record<string, unknown>[];
}

describe('BOSH release templates (sample properties)', () => {
  const base = renderOk();

  it('renders every template of every job, and every JSON/YAML output parses', () => {
    const jobs = readdirSync(join(release, 'jobs')).sort();
    assert.deepEqual(jobs, JOBS);
    for (const job of jobs) {
      const dests = Object.values(specTemplates(job));
      for (const dest of dests) file(base, job, dest);
      if (existsSync(join(release, 'jobs', job, 'monit'))) file(base, job, 'monit');
    }
    for (const f of base.files) {
      if (/\.(json|conflist|ya?ml)$/.test(f.dest)) assert.ok(['json', 'yaml'].includes(f.kind), f.dest);
      if (f.dest.startsWith('bin/'))
        assert.equal(f.kind, 'shell', `${f.job}/${f.dest} is not a shell script`);
    }
  });

  it('the conflist is CNI 1.0.0 JSON that the cfnet-cni config parser accepts', () => {
    const conf = parsed<Conflist>(base, 'cni', 'config/cni/cfnet.conflist');
    assert.equal(conf.cniVersion, '1.0.0');
    assert.ok((SUPPORTED_VERSIONS as readonly string[]).includes(conf.cniVersion));
    assert.equal(conf.name, 'cfnet');
    assert.equal(conf.plugins.length, 1, 'no bandwidth plugin without rate limits');
    const plugin = conf.plugins[0]!;
    assert.equal(plugin.type, 'cfnet-cni');
    // libcni injects cniVersion and name into each plugin object before calling it.
    const cfg = parseNetConfig({ ...plugin, cniVersion: conf.cniVersion, name: conf.name });
    assert.equal(cfg.cell.overlayNetwork, '10.255.0.0/16');
    assert.deepEqual(cfg.cell.dnsServers, ['169.254.0.2']);
    assert.equal(cfg.mtu, null, 'mtu 0 = automatic');
    assert.equal(cfg.executorSocket, '/var/vcap/data/cfnet/cni.sock');
    assert.equal(cfg.subnetFile, '/var/vcap/data/cfnet/subnet.json');
    assert.equal(cfg.nftTable, 'cfnet');
    // Every key the template writes is one the parser reads (nothing silently ignored).
    const known = new Set([
      'type',
      'overlay_network',
      'dns_servers',
      'host_tcp_services',
      'host_udp_services',
      'deny_networks',
      'iptables_logging',
      'iptables_c2c_logging',
      'iptables_denied_logs_per_sec',
      'iptables_accepted_udp_logs_per_sec',
      'outbound_connections',
      'disable_container_network_policy',
      'mtu',
      'subnet_file',
      'datastore',
      'executor_socket',
      'agent_socket',
      'agent_timeout_ms',
      'state_dir',
      'nft_table',
      'log_level',
      'log_file',
      'underlay_interface',
    ]);
    for (const k of Object.keys(plugin))
      assert.ok(known.has(k), `conflist key ${k} is not a cfnet-cni config key`);
    // the plugin's own keys (src/cni/config.ts) and the cell keys it shares (src/model/config.ts)
    const read = new Set<string>([...PLUGIN_KEYS, ...CELL_CONFIG_KEYS]);
    for (const k of known) assert.ok(read.has(k), `the cni config parser does not read ${k}`);
  });

  it('the agent, controller and redis jobs run under bpm as intended', () => {
    const agent = parsed<{ processes: Record<string, unknown>[] }>(base, 'cfnet-agent', 'config/bpm.yml');
    const p = agent.processes[0]!;
    assert.equal(p.executable, '/var/vcap/packages/node24/bin/node');
    assert.deepEqual((p.args as string[]).slice(1, 4), [
      'agent',
      '--config',
      '/var/vcap/jobs/cfnet-agent/config/agent.json',
    ]);
    assert.deepEqual(p.unsafe, { privileged: true });
    for (const cap of ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'])
      assert.ok((p.capabilities as string[]).includes(cap));
    const vols = (p.additional_volumes as { path: string; writable: boolean; shared?: boolean }[]).map(
      (v) => v.path,
    );
    assert.ok(vols.includes('/var/vcap/data/cfnet'));
    assert.ok(
      vols.includes('/var/vcap/data/container-metadata'),
      'the datastore directory is shared with the CNI',
    );
    const netns = (p.additional_volumes as { path: string; shared?: boolean }[]).find(
      (v) => v.path === '/var/vcap/data/garden-cni',
    );
    assert.equal(netns?.shared, true, 'container netns bind mounts must propagate into the agent');

    const ctl = parsed<{ processes: Record<string, unknown>[] }>(base, 'cfnet-controller', 'config/bpm.yml');
    const c = ctl.processes[0]!;
    assert.ok((c.args as string[]).includes('controller'));
    assert.equal(c.unsafe, undefined, 'the controller needs no privileges');
    const monit = readFileSync(file(base, 'cfnet-agent', 'monit').path, 'utf8');
    assert.match(monit, /bpm start cfnet-agent/);
  });

  it('the controller config is accepted by the controller settings parser and carries every endpoint', () => {
    const ctl = controllerSettings(base);
    assert.equal(ctl.overlayNetwork, '10.255.0.0/16');
    assert.equal(ctl.subnetPrefixLength, 24);
    assert.equal(ctl.leaseTtlHours, 168);
    assert.equal(ctl.bbsUrl, 'https://bbs.service.cf.internal:8889');
    assert.equal(ctl.bbsClientCert, '/var/vcap/jobs/cfnet-controller/config/certs/bbs_client.crt');
    assert.equal(ctl.capiUrl, 'https://cloud-controller-ng.service.cf.internal:9024');
    assert.equal(ctl.ccInternalUrl, 'https://cloud-controller-ng.service.cf.internal:9023');
    assert.equal(ctl.policyServerUrl, 'https://policy-server.service.cf.internal:4003');
    assert.equal(ctl.uaaClientId, 'network-policy');
    assert.equal(ctl.policyPollIntervalMs, 1000);
    assert.equal(ctl.asgCheckIntervalMs, 5000);
    assert.equal(ctl.asgFullListIntervalMs, undefined, "the controller's default");
    assert.equal(ctl.dynamicAsgs, true, "dynamic ASGs, as CF's default");
    assert.deepEqual(ctl.apiListen, { host: '0.0.0.0', port: 4190 });
    assert.deepEqual(ctl.operatorListen, { host: '127.0.0.1', port: 4191 });
    const redis = new URL(ctl.redisUrl);
    assert.equal(redis.host, 'q-s0.cfnet-redis.default.cf.bosh:6379', 'from the cfnet_redis link');
    assert.equal(redis.password, '', 'no secret in the URL');
    assert.equal(ctl.redisUsername, 'cfnet', "the cfnet-redis job's ACL user, from the link");
    assert.equal(ctl.redisPassword, 'sample-redis-password-0123');
    assert.deepEqual(ctl.dnsServers, ['169.254.0.2'], 'from the cni job through the cfnet_cni_config link');
    assert.equal(ctl.asgLogging, false);
    assert.equal(ctl.deniedLogsPerSec, 1);
    assert.equal(ctl.acceptedUdpLogsPerSec, 100);
  });

  it('the agent config defaults to the rep cell id, the VXLAN port 4789 and VNI 1', () => {
    const agent = parsed(base, 'cfnet-agent', 'config/agent.json');
    assert.equal(agent.cellId, '6f3c1c1e-0b1c-4a8e-9a55-3d1f0c2b7a10');
    assert.equal(agent.controllerUrl, 'https://cfnet-controller.service.cf.internal:4190');
    assert.equal(agent.vtepPort, 4789);
    assert.equal(agent.vni, 1);
    assert.equal(agent.underlayIp, '10.0.16.5');
    assert.equal(agent.leasePollIntervalSeconds, 30);
    // The agent's own settings parser accepts the file as is (it rejects unknown keys).
    const cfg = resolveAgentConfig({ file: agent });
    assert.equal(cfg.cellId, agent.cellId);
    assert.equal(cfg.nftBinary, '/var/vcap/packages/nftables/sbin/nft');
    assert.equal(cfg.caCert, '/var/vcap/jobs/cfnet-agent/config/certs/ca.crt');
    // The paths the agent and the plugin share agree.
    const conf = parsed<Conflist>(base, 'cni', 'config/cni/cfnet.conflist').plugins[0]!;
    assert.equal(agent.executorSocket, conf.executor_socket);
    assert.equal(agent.agentSocket, conf.agent_socket);
    assert.equal(agent.datastore, conf.datastore);
    assert.equal(agent.subnetFile, conf.subnet_file);
    assert.equal(agent.cniStateDir, conf.state_dir);
    assert.equal(agent.nftTable, conf.nft_table);
  });
});

describe('every setting of the programs comes from a BOSH property', () => {
  // With every optional property given, the rendered files carry every setting the programs know:
  // a setting added to src/controller/settings.ts or src/agent/config.ts fails here until a job
  // property (or a deliberate rule in the template) provides it.
  const r = renderOk([
    '--set',
    'cfnet-controller:asg_full_sync_interval_seconds=120',
    '--set',
    'cfnet-controller:redis.url=rediss://redis.example.com:6380/0',
    '--set',
    `cfnet-controller:redis.ca_cert=${JSON.stringify(SAMPLE_KEY.replace('RSA PRIVATE KEY', 'CERTIFICATE'))}`,
    '--set',
    `cfnet-controller:ca_private_key=${JSON.stringify(SAMPLE_KEY)}`,
    '--set',
    'cfnet-controller:cell_bootstrap_secret=sample-bootstrap-secret-0123',
    '--set',
    'cfnet-controller:redis.username=cfnet',
    '--set',
    'cfnet-controller:redis.password=sample-redis-password-0123',
  ]);

  it('controller.json sets every CONTROLLER_SETTINGS key', () => {
    const json = parsed(r, 'cfnet-controller', 'config/controller.json');
    const missing = CONTROLLER_SETTINGS.map((s) => s.key).filter((k) => !(k in json));
    assert.deepEqual(missing, [], `controller settings without a BOSH property: ${missing.join(', ')}`);
  });

  it('agent.json sets every AGENT_SETTINGS key', () => {
    const json = parsed(r, 'cfnet-agent', 'config/agent.json');
    const missing = AGENT_SETTINGS.map((s) => s.key as string).filter((k) => !(k in json));
    assert.deepEqual(missing, [], `agent settings without a BOSH property: ${missing.join(', ')}`);
  });
});

describe('BOSH properties reach the rendered files', () => {
  it('cni: mtu, dns, deny networks, host services, logging, rate/burst', () => {
    const r = renderOk([
      '--set',
      'cni:mtu=1450',
      '--set',
      'cni:dns_servers=["10.0.0.2","10.0.0.3"]',
      '--set',
      'cni:deny_networks.always=["10.10.0.0/16"]',
      '--set',
      'cni:deny_networks.staging=["192.168.0.0/16"]',
      '--set',
      'cni:host_tcp_services=["169.254.0.2:9001"]',
      '--set',
      'cni:iptables_logging=true',
      '--set',
      'cni:iptables_denied_logs_per_sec=7',
      '--set',
      'cni:rate=1000',
      '--set',
      'cni:burst=2000',
      '--set',
      'cni:underlay_interface=eth1',
    ]);
    const conf = parsed<Conflist>(r, 'cni', 'config/cni/cfnet.conflist');
    assert.deepEqual(
      conf.plugins.map((p) => p.type),
      ['cfnet-cni', 'bandwidth'],
    );
    assert.deepEqual(conf.plugins[1], {
      type: 'bandwidth',
      ingressRate: 1024000,
      ingressBurst: 2048000,
      egressRate: 1024000,
      egressBurst: 2048000,
    });
    const cfg = parseNetConfig({ ...conf.plugins[0]!, cniVersion: '1.0.0', name: 'cfnet' });
    assert.equal(cfg.mtu, 1400, 'the property is the pre-encapsulation MTU (minus 50 for VXLAN)');
    assert.equal(cfg.underlayInterface, 'eth1');
    assert.deepEqual(cfg.cell.dnsServers, ['10.0.0.2', '10.0.0.3']);
    assert.deepEqual(cfg.cell.denyNetworks.always, [{ family: 4, start: '10.10.0.0', end: '10.10.255.255' }]);
    assert.deepEqual(cfg.cell.hostTcpServices, [{ ip: '169.254.0.2', port: 9001 }]);
    assert.equal(cfg.cell.logging.asg, true);
    assert.equal(cfg.cell.logging.c2c, true, "Silk's iptables_logging on silk-cni logs c2c too");
    assert.equal(cfg.cell.logging.deniedPerSec, 7);

    // The controller computes rule sets with the same settings (cfnet_cni_config link).
    const ctl = controllerSettings(r);
    assert.deepEqual(ctl.denyNetworksAlways, ['10.10.0.0/16']);
    assert.deepEqual(ctl.denyNetworksStaging, ['192.168.0.0/16']);
    assert.deepEqual(ctl.dnsServers, ['10.0.0.2', '10.0.0.3']);
    assert.deepEqual(ctl.hostTcpServices, ['169.254.0.2:9001']);
    assert.equal(ctl.asgLogging, true);
    assert.equal(ctl.c2cLogging, true, 'a migrated iptables_logging: true gives ASG and c2c log lines');
    assert.equal(ctl.deniedLogsPerSec, 7);
  });

  it("cni: silk-cni's outbound_connections and vxlan-policy-agent's disable_container_network_policy reach the plugin and the controller", () => {
    const r = renderOk([
      '--set',
      'cni:outbound_connections.limit=true',
      '--set',
      'cni:outbound_connections.burst=30',
      '--set',
      'cni:outbound_connections.rate_per_sec=2',
      '--set',
      'cni:outbound_connections.dry_run=true',
      '--set',
      'cni:disable_container_network_policy=true',
    ]);
    const conf = parsed<Conflist>(r, 'cni', 'config/cni/cfnet.conflist');
    const cfg = parseNetConfig({ ...conf.plugins[0]!, cniVersion: '1.0.0', name: 'cfnet' });
    const want = { limit: true, burst: 30, ratePerSec: 2, logging: false, dryRun: true };
    assert.deepEqual(cfg.cell.outboundConnections, want);
    assert.equal(cfg.cell.disableContainerNetworkPolicy, true);
    const ctl = controllerSettings(r);
    assert.deepEqual(
      [ctl.outboundConnLimit, ctl.outboundConnBurst, ctl.outboundConnRatePerSec, ctl.outboundConnLogging],
      [true, 30, 2, false],
    );
    assert.deepEqual([ctl.outboundConnDryRun, ctl.disableContainerNetworkPolicy], [true, true]);
    // defaults: Silk's (off, 1000, 100), c2c enforced
    const d = controllerSettings(renderOk([]));
    assert.deepEqual(
      [d.outboundConnLimit, d.outboundConnBurst, d.outboundConnRatePerSec, d.disableContainerNetworkPolicy],
      [false, 1000, 100, false],
    );
  });

  it('cni: iptables_c2c_logging alone logs c2c only', () => {
    const r = renderOk(['--set', 'cni:iptables_c2c_logging=true']);
    const ctl = controllerSettings(r);
    assert.deepEqual([ctl.asgLogging, ctl.c2cLogging], [false, true]);
    const conf = parsed<Conflist>(r, 'cni', 'config/cni/cfnet.conflist');
    const cfg = parseNetConfig({ ...conf.plugins[0]!, cniVersion: '1.0.0', name: 'cfnet' });
    assert.deepEqual([cfg.cell.logging.asg, cfg.cell.logging.c2c], [false, true]);
  });

  it("agent: the audit log (Silk's iptables-logger) off by default; on: Silk's files, mounted by bpm", () => {
    const dflt = resolveAgentConfig({ file: parsed(renderOk(), 'cfnet-agent', 'config/agent.json') });
    assert.equal(dflt.auditLog, false, 'as cf-deployment, where iptables-logger is an opt-in ops file');
    assert.equal(dflt.auditKernelLog, '/var/log/kern.log', "Silk's kernel_log_file default");
    assert.equal(dflt.auditLogFile, '/var/vcap/sys/log/iptables-logger/iptables.log');
    assert.equal(dflt.auditTimestampFormat, 'rfc3339');

    const on = renderOk(['--set', 'cfnet-agent:iptables_logger.enabled=true']);
    assert.equal(resolveAgentConfig({ file: parsed(on, 'cfnet-agent', 'config/agent.json') }).auditLog, true);
    const onBpm = parsed<{ processes: { unsafe: Record<string, unknown> }[] }>(
      on,
      'cfnet-agent',
      'config/bpm.yml',
    );
    assert.deepEqual(onBpm.processes[0]!.unsafe, {
      privileged: true,
      // kern.log's directory read-only (logrotate renames inside it), the audit file's writable
      unrestricted_volumes: [
        { path: '/var/log', writable: false },
        { path: '/var/vcap/sys/log/iptables-logger', writable: true },
      ],
    });
    const preStart = readFileSync(file(on, 'cfnet-agent', 'bin/pre-start').path, 'utf8');
    assert.match(preStart, /^mkdir -p \/var\/vcap\/sys\/log\/iptables-logger$/m);

    const r = renderOk([
      '--set',
      'cfnet-agent:iptables_logger.enabled=true',
      '--set',
      'cfnet-agent:iptables_logger.kernel_log_file=/dev/kmsg',
      '--set',
      'cfnet-agent:iptables_logger.output_file=/var/vcap/sys/log/cfnet-agent/iptables.log',
      '--set',
      'cfnet-agent:iptables_logger.timestamp_format=deprecated',
    ]);
    const cfg = resolveAgentConfig({ file: parsed(r, 'cfnet-agent', 'config/agent.json') });
    assert.deepEqual(
      [cfg.auditKernelLog, cfg.auditLogFile, cfg.auditTimestampFormat],
      ['/dev/kmsg', '/var/vcap/sys/log/cfnet-agent/iptables.log', 'deprecated'],
    );
    const bpm = parsed<{ processes: { unsafe: Record<string, unknown> }[] }>(
      r,
      'cfnet-agent',
      'config/bpm.yml',
    );
    assert.deepEqual(bpm.processes[0]!.unsafe.unrestricted_volumes, [
      { path: '/var/vcap/sys/log/cfnet-agent', writable: true },
    ]);

    const bad = render(['--set', 'cfnet-agent:iptables_logger.timestamp_format=unix']);
    assert.notEqual(bad.status, 0);
    assert.match(JSON.stringify(bad.report.errors), /iptables_logger\.timestamp_format/);
  });

  it('controller: network flows to the cni job, redis.url overrides the link, intervals and ports', () => {
    const r = renderOk([
      '--set',
      'cfnet-controller:network=10.32.0.0/11',
      '--set',
      'cfnet-controller:subnet_prefix_length=22',
      '--set',
      'cfnet-controller:redis.url=rediss://redis.example.com:6380/0',
      '--set',
      'cfnet-controller:policy_poll_interval_seconds=3',
      '--set',
      'cfnet-controller:listen_port=4999',
      '--set',
      'cfnet-controller:cc.internal_api_url=""',
    ]);
    const ctl = controllerSettings(r);
    assert.equal(ctl.overlayNetwork, '10.32.0.0/11');
    assert.equal(ctl.subnetPrefixLength, 22);
    assert.equal(ctl.redisUrl, 'rediss://redis.example.com:6380/0', 'no password given: none added');
    assert.equal(ctl.policyPollIntervalMs, 3000);
    assert.equal(ctl.ccInternalUrl, undefined, 'no cheap ASG check: full lists on an interval');
    const conf = parsed<Conflist>(r, 'cni', 'config/cni/cfnet.conflist');
    assert.equal(conf.plugins[0]!.overlay_network, '10.32.0.0/11');
    const agent = parsed(r, 'cfnet-agent', 'config/agent.json');
    assert.equal(
      agent.controllerUrl,
      'https://cfnet-controller.service.cf.internal:4999',
      'port from the link',
    );
  });

  it('agent: cell id, VXLAN settings, controller address', () => {
    const r = renderOk([
      '--set',
      'cfnet-agent:cell_id=cell-7',
      '--set',
      'cfnet-agent:vtep_port=8472',
      '--set',
      'cfnet-agent:vni=42',
      '--set',
      'cfnet-agent:controller.hostname=ctl.example.com',
      '--set',
      'cfnet-agent:controller.port=5000',
      '--set',
      'cfnet-agent:underlay_ip=192.168.50.4',
      '--set',
      'cfnet-agent:neighbour_gc_thresholds=[]',
    ]);
    const agent = parsed(r, 'cfnet-agent', 'config/agent.json');
    resolveAgentConfig({ file: agent });
    assert.equal(agent.cellId, 'cell-7');
    assert.equal(agent.vtepPort, 8472);
    assert.equal(agent.vni, 42);
    assert.equal(agent.controllerUrl, 'https://ctl.example.com:5000');
    assert.equal(agent.underlayIp, '192.168.50.4');
    const preStart = readFileSync(file(r, 'cfnet-agent', 'bin/pre-start').path, 'utf8');
    assert.doesNotMatch(preStart, /gc_thresh/);
    const dflt = readFileSync(file(renderOk(), 'cfnet-agent', 'bin/pre-start').path, 'utf8');
    assert.match(dflt, /gc_thresh3=8192/);
  });

  it('controller: leadership, ASG mode, workers, queue retention, BBS intervals, operator port, log level', () => {
    const r = renderOk([
      '--set',
      'cfnet-controller:campaign=false',
      '--set',
      'cfnet-controller:dynamic_asgs_enabled=false',
      '--set',
      'cfnet-controller:leader_lease_seconds=15',
      '--set',
      'cfnet-controller:initial_sync_timeout_seconds=45',
      '--set',
      'cfnet-controller:workers_concurrency=8',
      '--set',
      'cfnet-controller:job_attempts=7',
      '--set',
      'cfnet-controller:job_backoff_ms=250',
      '--set',
      'cfnet-controller:keep_completed_jobs=10',
      '--set',
      'cfnet-controller:keep_failed_jobs=20',
      '--set',
      'cfnet-controller:ruleset_log_length=80',
      '--set',
      'cfnet-controller:bbs.relist_interval_seconds=0',
      '--set',
      'cfnet-controller:bbs.stream_idle_timeout_seconds=90',
      '--set',
      'cfnet-controller:asg_poll_interval_seconds=2',
      '--set',
      'cfnet-controller:asg_full_sync_interval_seconds=600',
      '--set',
      'cfnet-controller:policy_full_sync_interval_seconds=900',
      '--set',
      'cfnet-controller:subnet_lease_expiration_hours=24',
      '--set',
      'cfnet-controller:long_poll_max_wait_seconds=30',
      '--set',
      'cfnet-controller:listen_address=10.0.1.5',
      '--set',
      'cfnet-controller:operator_listen_address=0.0.0.0',
      '--set',
      'cfnet-controller:operator_listen_port=9191',
      '--set',
      'cfnet-controller:log_level=debug',
    ]);
    const ctl = controllerSettings(r);
    assert.equal(ctl.campaign, false);
    assert.equal(ctl.leaseMs, 15_000);
    assert.equal(ctl.initialSyncTimeoutMs, 45_000);
    assert.equal(ctl.workerConcurrency, 8);
    assert.equal(ctl.jobAttempts, 7);
    assert.equal(ctl.jobBackoffMs, 250);
    assert.equal(ctl.keepCompletedJobs, 10);
    assert.equal(ctl.keepFailedJobs, 20);
    assert.equal(ctl.rulesetLogLength, 80);
    assert.equal(ctl.bbsRelistIntervalMs, 0, '0 = re-list only after reconnects');
    assert.equal(ctl.bbsStreamIdleTimeoutMs, 90_000);
    assert.equal(ctl.asgCheckIntervalMs, 2_000);
    assert.equal(ctl.asgFullListIntervalMs, 600_000);
    assert.equal(ctl.dynamicAsgs, false, 'static ASGs (disable-dynamic-asgs.yml)');
    assert.equal(ctl.policyFullListIntervalMs, 900_000);
    assert.equal(ctl.leaseTtlHours, 24);
    assert.equal(ctl.apiMaxWaitSeconds, 30);
    assert.deepEqual(ctl.apiListen, { host: '10.0.1.5', port: 4190 });
    assert.deepEqual(ctl.operatorListen, { host: '0.0.0.0', port: 9191 });
    assert.equal(ctl.logLevel, 'debug');
    assert.equal(ctl.instanceId, 'diego-cell/6f3c1c1e-0b1c-4a8e-9a55-3d1f0c2b7a10', 'BOSH instance name/id');
  });

  it('controller: a rediss:// Redis with its own CA and a password', () => {
    const ca = createCa({ cn: 'test redis CA' });
    const r = renderOk([
      '--set',
      'cfnet-controller:redis.url=rediss://redis.example.com:6380/2',
      '--set',
      'cfnet-controller:redis.password=p@ss/word',
      '--set',
      `cfnet-controller:redis.ca_cert=${JSON.stringify(ca.cert)}`,
      '--set',
      'cfnet-controller:redis.namespace={cf2}',
    ]);
    const ctl = controllerSettings(r);
    const u = new URL(ctl.redisUrl);
    assert.equal(u.protocol, 'rediss:');
    assert.equal(u.host, 'redis.example.com:6380');
    assert.equal(u.pathname, '/2');
    assert.equal(u.password, '', 'the password is a setting of its own, not part of the URL');
    assert.equal(ctl.redisPassword, 'p@ss/word');
    assert.equal(ctl.redisNamespace, '{cf2}');
    const caPath = '/var/vcap/jobs/cfnet-controller/config/certs/redis_ca.crt';
    assert.equal(ctl.redisCaCert, caPath, 'the controller trusts the Redis CA (redisCaCert)');
    assert.equal(
      readFileSync(file(r, 'cfnet-controller', caPath.slice(32)).path, 'utf8').trim(),
      ca.cert.trim(),
    );
    // Without a CA, Node's own trust only.
    assert.equal(controllerSettings(renderOk()).redisCaCert, undefined);
  });

  it('controller: a cfnet-redis link with TLS gives rediss://, the ACL user and the CA; the namespace must fit its key prefix', () => {
    const ca = createCa({ cn: 'cfnet-redis CA' });
    const r = renderOk([
      ...redisTls(ca.cert, ca.key, ca.cert),
      '--set',
      'cfnet-redis:acl.username=cfnet-ctl',
    ]);
    const ctl = controllerSettings(r);
    assert.equal(new URL(ctl.redisUrl).protocol, 'rediss:');
    assert.equal(ctl.redisUsername, 'cfnet-ctl');
    assert.equal(
      readFileSync(file(r, 'cfnet-controller', 'config/certs/redis_ca.crt').path, 'utf8').trim(),
      ca.cert.trim(),
    );
    const conf = readFileSync(file(r, 'cfnet-redis', 'config/redis.conf').path, 'utf8');
    assert.match(conf, /^port 0$/m, 'no plain-text port');
    assert.match(conf, /^tls-port 6379$/m);
    const outside = render(['--set', 'cfnet-controller:redis.namespace={other}']);
    assert.notEqual(outside.status, 0);
    assert.match(JSON.stringify(outside.report.errors), /outside the cfnet-redis ACL user's key prefix/);
  });

  it('agent: controller TLS name, reconnect bounds, VTEP MTU, status interval, nft binary, metrics', () => {
    const r = renderOk([
      '--set',
      'cfnet-agent:controller.server_name=cfnet-controller.example.org',
      '--set',
      'cfnet-agent:controller.reconnect_min_ms=100',
      '--set',
      'cfnet-agent:controller.reconnect_max_ms=5000',
      '--set',
      'cfnet-agent:vtep_mtu=8950',
      '--set',
      'cfnet-agent:vtep_name=vx0',
      '--set',
      'cfnet-agent:underlay_interface=eth1',
      '--set',
      'cfnet-agent:status_interval_seconds=10',
      '--set',
      'cfnet-agent:lease_poll_interval_seconds=60',
      '--set',
      'cfnet-agent:long_poll_timeout_seconds=20',
      '--set',
      'cfnet-agent:drift_check_interval_seconds=0',
      '--set',
      'cfnet-agent:nft_binary=/var/vcap/packages/nft-custom/bin/nft',
      '--set',
      'cfnet-agent:metrics_address=0.0.0.0',
      '--set',
      'cfnet-agent:metrics_port=9192',
      '--set',
      'cfnet-agent:log_level=warn',
    ]);
    const cfg = resolveAgentConfig({ file: parsed(r, 'cfnet-agent', 'config/agent.json') });
    assert.equal(cfg.controllerServerName, 'cfnet-controller.example.org');
    assert.equal(cfg.reconnectMinMs, 100);
    assert.equal(cfg.reconnectMaxMs, 5000);
    assert.equal(cfg.vtepMtu, 8950);
    assert.equal(cfg.vtepName, 'vx0');
    assert.equal(cfg.underlayInterface, 'eth1');
    assert.equal(cfg.statusIntervalSeconds, 10);
    assert.equal(cfg.leasePollIntervalSeconds, 60);
    assert.equal(cfg.longPollTimeoutSeconds, 20);
    assert.equal(cfg.driftCheckIntervalSeconds, 0);
    assert.equal(cfg.nftBinary, '/var/vcap/packages/nft-custom/bin/nft');
    assert.equal(cfg.metricsAddress, '0.0.0.0');
    assert.equal(cfg.metricsPort, 9192);
    assert.equal(cfg.logLevel, 'warn');
    // The warm CNI executor inside the agent runs `nft` from the PATH: the same binary first.
    const bpm = parsed<{ processes: { env: Record<string, string> }[] }>(r, 'cfnet-agent', 'config/bpm.yml');
    assert.equal(bpm.processes[0]!.env.PATH!.split(':')[0], '/var/vcap/packages/nft-custom/bin');
    const dflt = resolveAgentConfig({ file: parsed(renderOk(), 'cfnet-agent', 'config/agent.json') });
    assert.equal(dflt.controllerServerName, '', "'' = the controller URL's host");
    assert.equal(dflt.vtepMtu, 0, 'automatic');
  });

  it("agent: router mode and cells' overlay ingress rules off by default, on with router / enable_overlay_ingress_rules", () => {
    const dflt = parsed(renderOk(), 'cfnet-agent', 'config/agent.json');
    assert.equal(dflt.router, false);
    assert.equal(dflt.enableOverlayIngressRules, false);
    const cell = parsed(
      renderOk(['--set', 'cfnet-agent:enable_overlay_ingress_rules=true']),
      'cfnet-agent',
      'config/agent.json',
    );
    assert.equal(resolveAgentConfig({ file: cell }).enableOverlayIngressRules, true);
    const router = parsed(renderOk(['--set', 'cfnet-agent:router=true']), 'cfnet-agent', 'config/agent.json');
    const cfg = resolveAgentConfig({ file: router });
    assert.equal(cfg.router, true);
    assert.equal(
      cfg.clientCert,
      '/var/vcap/jobs/cfnet-agent/config/certs/client.crt',
      'its given certificate',
    );
  });

  it("agent: filter_mode iptables by default (operators' iptables ACCEPTs win), nftables on request, both iptables backends by default", () => {
    const dflt = resolveAgentConfig({ file: parsed(renderOk(), 'cfnet-agent', 'config/agent.json') });
    assert.equal(dflt.filterMode, 'iptables');
    // absolute paths of the agent's own default executables (CF's iptables-writer job writes with
    // iptables-legacy, other tools with whatever `iptables` is)
    assert.deepEqual(
      dflt.iptablesBinaries,
      DEFAULT_IPTABLES_BINARIES.map((b) => `/usr/sbin/${b}`),
    );
    const r = renderOk([
      '--set',
      'cfnet-agent:filter_mode=nftables',
      '--set',
      'cfnet-agent:iptables_binaries=["/usr/sbin/iptables-legacy"]',
    ]);
    const cfg = resolveAgentConfig({ file: parsed(r, 'cfnet-agent', 'config/agent.json') });
    assert.equal(cfg.filterMode, 'nftables');
    assert.deepEqual(cfg.iptablesBinaries, ['/usr/sbin/iptables-legacy']);
  });

  it("controller: provides Silk's cf_network link (network, subnet_prefix_length) that a job written for silk-controller consumes", () => {
    // a release holding cfnet's jobs plus a consumer shaped like CF's iptables-writer job
    const rel = join(work, 'release-cf-network');
    for (const d of ['jobs', 'config']) cpSync(join(release, d), join(rel, d), { recursive: true });
    mkdirSync(join(rel, 'jobs', 'net-reader', 'templates'), { recursive: true });
    writeFileSync(
      join(rel, 'jobs', 'net-reader', 'spec'),
      [
        '---',
        'name: net-reader',
        'templates:',
        '  net.json.erb: config/net.json',
        'consumes:',
        '- name: cf_network',
        '  type: cf_network',
        'properties: {}',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(rel, 'jobs', 'net-reader', 'templates', 'net.json.erb'),
      "<%= require 'json'; JSON.generate('network' => link('cf_network').p('network'), 'prefix' => link('cf_network').p('subnet_prefix_length')) %>\n",
    );
    const sample = join(release, 'test', 'sample-properties.yml');
    const r = renderOk([
      '--release',
      rel,
      '--sample',
      sample,
      '--set',
      'cfnet-controller:network=10.32.0.0/11',
      '--set',
      'cfnet-controller:subnet_prefix_length=22',
    ]);
    assert.deepEqual(JSON.parse(readFileSync(file(r, 'net-reader', 'config/net.json').path, 'utf8')), {
      network: '10.32.0.0/11',
      prefix: 22,
    });
  });

  it('cni: the shim environment names the transport, nft, node and the executor timeout', () => {
    const env = (args: string[]) => {
      const r = renderOk(['--job', 'cni', ...args]);
      const f = file(r, 'cni', 'config/shim.env').path;
      const out = spawnSync(
        'sh',
        [
          '-c',
          '. "$1"; printf "%s\\n" "$PATH" "$CFNET_NODE" "$CFNET_CNI_TRANSPORT" "$CFNET_CNI_TIMEOUT"',
          'sh',
          f,
        ],
        { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } },
      );
      assert.equal(out.status, 0, out.stderr);
      const [path, node, transport, timeout] = out.stdout.split('\n');
      return { path: path!.split(':'), node, transport, timeout };
    };
    const dflt = env([]);
    assert.deepEqual(dflt.path.slice(0, 2), [
      '/var/vcap/packages/nftables/sbin',
      '/var/vcap/packages/node24/bin',
    ]);
    assert.ok(dflt.path.includes('/bin'), 'the system directories stay on the PATH');
    assert.equal(dflt.node, '/var/vcap/packages/node24/bin/node');
    assert.equal(dflt.transport, 'auto');
    assert.equal(dflt.timeout, '300');
    const set = env([
      '--set',
      'cni:nft_binary=/usr/sbin/nft',
      '--set',
      'cni:node_binary=/opt/node/bin/node',
      '--set',
      'cni:shim_transport=curl',
      '--set',
      'cni:executor_timeout_seconds=30',
    ]);
    assert.deepEqual(set.path.slice(0, 2), ['/usr/sbin', '/opt/node/bin']);
    assert.equal(set.node, '/opt/node/bin/node');
    assert.equal(set.transport, 'curl');
    assert.equal(set.timeout, '30');
  });

  it('disable renders an empty conflist and no monit process', () => {
    const r = renderOk(['--set', 'cni:disable=true', '--set', 'cfnet-agent:disable=true']);
    assert.equal(file(r, 'cni', 'config/cni/cfnet.conflist').kind, 'empty');
    assert.equal(readFileSync(file(r, 'cfnet-agent', 'monit').path, 'utf8').trim(), '');
  });
});

describe('bad BOSH properties fail rendering and name the property', () => {
  const cases: [string, string[], RegExp][] = [
    ['rate without burst', ['--set', 'cni:rate=100'], /rate and burst must be set together/],
    [
      'a deny network that is no CIDR',
      ['--set', 'cni:deny_networks.always=["10.0.0.1"]'],
      /deny_networks\.always\[0\]/,
    ],
    [
      'an IPv6 deny network',
      ['--set', 'cni:deny_networks.running=["fd00::/8"]'],
      /deny_networks\.running\[0\].*IPv4/,
    ],
    ['a bad DNS server', ['--set', 'cni:dns_servers=["not-an-ip"]'], /dns_servers\[0\]/],
    [
      'a loopback host service',
      ['--set', 'cni:host_tcp_services=["127.0.0.1:80"]'],
      /host_tcp_services\[0\].*loopback/,
    ],
    ['an MTU too small', ['--set', 'cni:mtu=100'], /invalid mtu/],
    [
      'a masquerade range cfnet cannot honour',
      ['--set', 'cni:no_masquerade_cidr_range="10.0.0.0/8"'],
      /no_masquerade_cidr_range/,
    ],
    ['an nft table name the plugin rejects', ['--set', 'cni:nft_table=fwd'], /nft_table/],
    ['a Redis namespace with a space', ['--set', 'cfnet-controller:redis.namespace=a b'], /redis\.namespace/],
    [
      'a cheap ASG check without a client certificate',
      ['--set', 'cfnet-controller:cc.internal_client_key=""'],
      /cc\.internal_client_key/,
    ],
    [
      'an agent with half a static certificate',
      ['--set', 'cfnet-agent:client_cert=""'],
      /both client_cert and client_key, or neither/,
    ],
    [
      'an agent without a certificate and without a bootstrap token',
      ['--set', 'cfnet-agent:client_cert=""', '--set', 'cfnet-agent:client_key=""'],
      /needs a bootstrap token/,
    ],
    [
      'a bootstrap secret without the CA key to sign with',
      ['--set', 'cfnet-controller:cell_bootstrap_secret=sample-bootstrap-secret-0123'],
      /cell_bootstrap_secret.*ca_private_key/,
    ],
    ['a TLS Redis without a certificate', ['--set', 'cfnet-redis:tls.enabled=true'], /tls\.certificate/],
    ['the default user as the ACL user', ['--set', 'cfnet-redis:acl.username=default'], /acl\.username/],
    [
      'a prefix length not below the network',
      ['--set', 'cfnet-controller:subnet_prefix_length=16'],
      /subnet_prefix_length/,
    ],
    ['a bad BBS location', ['--set', 'cfnet-controller:bbs.api_location=bbs'], /bbs\.api_location/],
    ['a VNI out of range', ['--set', 'cfnet-agent:vni=0'], /vni/],
    ['a short redis password', ['--set', 'cfnet-redis:password=x'], /password/],
    ['an unknown shim transport', ['--set', 'cni:shim_transport=socat'], /shim_transport/],
    ['an nft binary not named nft', ['--set', 'cni:nft_binary=/usr/sbin/nft-1.1'], /nft_binary.*named nft/],
    ["a node path a shell word can't hold", ['--set', 'cni:node_binary=/opt/my node/node'], /node_binary/],
    ['an executor timeout of 0', ['--set', 'cni:executor_timeout_seconds=0'], /executor_timeout_seconds/],
    ['a VTEP MTU below IPv4 minimum', ['--set', 'cfnet-agent:vtep_mtu=500'], /vtep_mtu/],
    [
      'a reconnect bound below the first delay',
      ['--set', 'cfnet-agent:controller.reconnect_max_ms=100'],
      /controller\.reconnect_max_ms/,
    ],
    [
      'an agent nft binary not named nft',
      ['--set', 'cfnet-agent:nft_binary=/usr/sbin/nftables'],
      /nft_binary/,
    ],
    ['a status interval of 0', ['--set', 'cfnet-agent:status_interval_seconds=0'], /status_interval_seconds/],
    [
      'a Redis CA with a plain redis:// URL',
      [
        '--set',
        'cfnet-controller:redis.ca_cert="-----BEGIN CERTIFICATE-----\\nx\\n-----END CERTIFICATE-----"',
      ],
      /redis\.ca_cert.*rediss:\/\//,
    ],
    ['campaign as a string', ['--set', 'cfnet-controller:campaign="yes"'], /campaign/],
    ['zero job attempts', ['--set', 'cfnet-controller:job_attempts=0'], /job_attempts/],
    [
      'a negative BBS re-list interval',
      ['--set', 'cfnet-controller:bbs.relist_interval_seconds=-1'],
      /bbs\.relist_interval_seconds/,
    ],
    ['an unknown filter mode', ['--set', 'cfnet-agent:filter_mode=ebtables'], /filter_mode/],
    [
      'a router without a static client certificate (no BBS cell to enrol with a bootstrap token)',
      [
        '--set',
        'cfnet-agent:router=true',
        '--set',
        'cfnet-agent:client_cert=""',
        '--set',
        'cfnet-agent:client_key=""',
      ],
      /router: true needs client_cert and client_key/,
    ],
    [
      'a relative iptables binary',
      ['--set', 'cfnet-agent:iptables_binaries=["iptables"]'],
      /iptables_binaries/,
    ],
    ['no iptables binary', ['--set', 'cfnet-agent:iptables_binaries=[]'], /iptables_binaries/],
    [
      'a property the job does not declare',
      ['--set', 'cfnet-agent:vtep_prot=4789'],
      /property vtep_prot is not in the job spec/,
    ],
    [
      'a datastore bpm cannot mount',
      ['--set', 'cfnet-agent:datastore=/tmp/x/store.json'],
      /bpm can only mount/,
    ],
  ];
  for (const [name, args, pattern] of cases) {
    it(name, () => {
      const { status, report } = render(args);
      assert.equal(status, 1);
      assert.ok(report.errors.length > 0);
      assert.match(report.errors.map((e) => e.error).join('\n'), pattern);
    });
  }

  it('a missing required property (no CA for the controller certificate) fails', () => {
    const sample = join(work, 'sample-without-ca.yml');
    // The first `ca_cert:` of the sample is the agent's.
    const text = readFileSync(join(release, 'test', 'sample-properties.yml'), 'utf8').replace(
      /^ {6}ca_cert: \|\n(?: {8}.*\n)+/m,
      '',
    );
    writeFileSync(sample, text);
    const { status, report } = render(['--sample', sample, '--job', 'cfnet-agent']);
    assert.equal(status, 1);
    assert.match(report.errors.map((e) => e.error).join('\n'), /Can't find property 'ca_cert'/);
  });
});

function redisCli(port: number, args: string[], password?: string): SpawnSyncReturns<string> {
  const env = { ...process.env, ...(password ? { REDISCLI_AUTH: password } : {}) };
  return spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', env });
}

describe('rendered jobs run', () => {
  /** Starts redis-server as bpm would, from rendered files laid out under a temporary job dir. */
  async function startRendered(
    r: RenderReport,
    port: number,
    cli: (args: string[]) => SpawnSyncReturns<string>,
  ) {
    const jobDir = join(r.out, 'cfnet-redis');
    const conf = file(r, 'cfnet-redis', 'config/redis.conf').path;
    const local = join(work, `redis-${port}.conf`);
    writeFileSync(local, readFileSync(conf, 'utf8').replaceAll('/var/vcap/jobs/cfnet-redis', jobDir));
    const dir = join(work, `redis-data-${port}`);
    mkdirSync(dir, { recursive: true });
    const server = spawn('redis-server', [local, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    let exited = false;
    const exit = new Promise((res) => server.once('exit', res)).then(() => {
      exited = true;
    });
    server.stdout.on('data', (b: Buffer) => {
      log += b.toString();
    });
    let pong = '';
    for (let i = 0; i < 50 && pong !== 'PONG' && !exited; i++) {
      await new Promise((res) => setTimeout(res, 100));
      pong = cli(['ping']).stdout.trim();
    }
    assert.equal(pong, 'PONG', `redis-server did not answer: ${log}`);
    return {
      dir,
      async stop() {
        if (!exited) server.kill('SIGTERM');
        await exit;
      },
    };
  }

  it('cfnet-redis: an ACL user limited to the key prefix (default user off), AOF every second, noeviction', async () => {
    const port = await freePort();
    const password = 'test-redis-password-0123456789';
    const r = renderOk([
      '--job',
      'cfnet-redis',
      '--set',
      `cfnet-redis:port=${port}`,
      '--set',
      'cfnet-redis:bind=127.0.0.1',
      '--set',
      `cfnet-redis:password=${password}`,
      '--set',
      'cfnet-redis:maxmemory_mb=64',
    ]);
    const bpm = parsed<{ processes: { args: string[]; persistent_disk?: boolean }[] }>(
      r,
      'cfnet-redis',
      'config/bpm.yml',
    );
    assert.deepEqual(bpm.processes[0]!.args, [
      '/var/vcap/jobs/cfnet-redis/config/redis.conf',
      '--dir',
      '/var/vcap/store/cfnet-redis',
    ]);
    assert.equal(bpm.processes[0]!.persistent_disk, true, 'the AOF lives on the persistent disk');
    const acl = readFileSync(file(r, 'cfnet-redis', 'config/users.acl').path, 'utf8');
    assert.ok(!acl.includes(password), 'only the SHA-256 of the password is rendered');
    const conf = readFileSync(file(r, 'cfnet-redis', 'config/redis.conf').path, 'utf8');
    assert.match(conf, /^appendonly yes$/m);
    assert.match(conf, /^appendfsync everysec$/m);
    const asUser = (args: string[]) => redisCli(port, ['--user', 'cfnet', ...args], password);
    const redis = await startRendered(r, port, asUser);
    try {
      const noauth = redisCli(port, ['ping']);
      assert.match(noauth.stdout + noauth.stderr, /NOAUTH|default user/i);
      assert.equal(asUser(['set', '{cfnet}:probe', '1']).stdout.trim(), 'OK');
      assert.match(asUser(['set', 'other:probe', '1']).stdout, /NOPERM/);
      assert.match(asUser(['flushall']).stdout, /NOPERM/);
      assert.match(asUser(['config', 'set', 'appendonly', 'no']).stdout, /NOPERM/);
      const info = asUser(['info', 'all']).stdout;
      assert.match(info, /^aof_enabled:1\r?$/m);
      assert.match(info, /^maxmemory:67108864\r?$/m);
      assert.match(info, /^maxmemory_policy:noeviction\r?$/m);
      assert.ok(existsSync(join(redis.dir, 'appendonlydir')), 'the append-only file is written');
    } finally {
      await redis.stop();
    }
    const memoryOnly = renderOk(['--job', 'cfnet-redis', '--set', 'cfnet-redis:persistence=false']);
    assert.match(
      readFileSync(file(memoryOnly, 'cfnet-redis', 'config/redis.conf').path, 'utf8'),
      /^appendonly no$/m,
    );
  });

  it('cfnet-redis with tls.enabled serves TLS only, verified against tls.ca', async () => {
    const port = await freePort();
    const password = 'test-redis-password-0123456789';
    const ca = createCa({ cn: 'cfnet-redis test CA' });
    const server = issueCert(ca, { cn: 'redis', sans: ['127.0.0.1'] });
    const r = renderOk([
      '--job',
      'cfnet-redis',
      '--set',
      `cfnet-redis:port=${port}`,
      '--set',
      'cfnet-redis:bind=127.0.0.1',
      '--set',
      `cfnet-redis:password=${password}`,
      ...redisTls(server.cert, server.key, ca.cert),
    ]);
    const caFile = file(r, 'cfnet-redis', 'config/certs/tls_ca.crt').path;
    const tls = (args: string[]) =>
      redisCli(port, ['--tls', '--cacert', caFile, '--user', 'cfnet', ...args], password);
    const redis = await startRendered(r, port, tls);
    try {
      const plain = redisCli(port, ['--user', 'cfnet', 'ping'], password);
      assert.notEqual(plain.stdout.trim(), 'PONG', 'no plain-text answer');
    } finally {
      await redis.stop();
    }
  });

  it('the BOSH templates render no CA private key on Diego cells: each cell gets only its own bootstrap token', () => {
    const secret = 'bootstrap-secret-for-the-test-0123';
    const agentCaKey =
      '-----BEGIN RSA PRIVATE KEY-----\nYWdlbnQgQ0EgcHJpdmF0ZSBrZXk=\n-----END RSA PRIVATE KEY-----\n';
    const cellIds = ['0b7e-cell-one', '1c8f-cell-two'];
    const tokens = cellIds.map((id) => {
      const r = renderOk([
        '--set',
        'cfnet-agent:client_cert=""',
        '--set',
        'cfnet-agent:client_key=""',
        '--set',
        `cfnet-agent:cell_id=${id}`,
        '--set',
        `cfnet-controller:ca_private_key=${JSON.stringify(agentCaKey)}`,
        '--set',
        `cfnet-controller:cell_bootstrap_secret=${secret}`,
      ]);
      // the controller holds the CA key and the secret
      const ctl = controllerSettings(r);
      assert.equal(ctl.apiCaKey, '/var/vcap/jobs/cfnet-controller/config/certs/agent_api_ca.key');
      assert.equal(
        readFileSync(file(r, 'cfnet-controller', 'config/certs/agent_api_ca.key').path, 'utf8').trim(),
        agentCaKey.trim(),
      );
      // nothing of the cell's jobs carries a private key, the CA key or the secret
      for (const f of r.files.filter((x) => x.job === 'cfnet-agent' || x.job === 'cni')) {
        const text = readFileSync(f.path, 'utf8');
        assert.doesNotMatch(text, /PRIVATE KEY/, `${f.job}/${f.dest} holds a private key`);
        assert.ok(!text.includes(secret), `${f.job}/${f.dest} holds the bootstrap secret`);
      }
      assert.ok(!r.files.some((f) => f.job === 'cfnet-agent' && /issuer|issue-cell-cert/.test(f.dest)));
      const agent = parsed(r, 'cfnet-agent', 'config/agent.json');
      assert.equal(agent.bootstrapTokenFile, '/var/vcap/jobs/cfnet-agent/config/certs/bootstrap.token');
      assert.equal(agent.clientKey, '/var/vcap/data/cfnet-agent/certs/client.key', 'the agent makes its key');
      resolveAgentConfig({ file: agent });
      const token = readFileSync(file(r, 'cfnet-agent', 'config/certs/bootstrap.token').path, 'utf8').trim();
      assert.equal(token, cellBootstrapToken(secret, id), 'the token the controller expects from this cell');
      return token;
    });
    assert.notEqual(tokens[0], tokens[1], "one cell's token is not another's");
    // the job offers no way to render a CA key on a cell any more
    const spec = readFileSync(join(release, 'jobs', 'cfnet-agent', 'spec'), 'utf8');
    assert.doesNotMatch(spec, /client_ca|issuer/);
  });

  it('cfnet-agent drain: prints 0, waits for the datastore to empty, never touches rules', async () => {
    const store = join(work, 'drain-store.json');
    writeFileSync(
      store,
      JSON.stringify({ 'handle-1': { handle: 'handle-1', ip: '10.255.3.2', metadata: {} } }),
    );
    // Only bin/drain: bpm.yml (rightly) refuses a datastore outside /var/vcap.
    const r = renderOk([
      '--job',
      'cfnet-agent',
      '--only',
      'bin/drain',
      '--set',
      `cfnet-agent:datastore=${store}`,
      '--set',
      'cfnet-agent:drain_timeout_seconds=20',
      '--set',
      `cfnet-agent:node_binary=${process.execPath}`,
    ]);
    const drain = file(r, 'cfnet-agent', 'bin/drain').path;
    const text = readFileSync(drain, 'utf8');
    assert.doesNotMatch(text.replace(/^\s*#.*$/gm, ''), /\bnft\b|iptables|flush|ip link|ip route/);
    chmodSync(drain, 0o755);
    const t0 = Date.now();
    const child = spawn(drain, [], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      stdout += b.toString();
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr += b.toString();
    });
    // The container goes away (the rep evacuated it) after ~1.5 s.
    setTimeout(() => writeFileSync(store, '{}'), 1500);
    const code = await new Promise<number | null>((res) => child.once('close', res));
    const elapsed = Date.now() - t0;
    assert.equal(code, 0);
    assert.equal(stdout, '0\n', 'stdout carries only the drain result');
    assert.ok(elapsed >= 1400, `drain returned after ${elapsed} ms, before the datastore emptied`);
    assert.ok(elapsed < 10_000, `drain took ${elapsed} ms`);
    assert.match(stderr, /1 container\(s\) still attached/);

    // Bounded: with the container staying, drain gives up after drain_timeout_seconds.
    writeFileSync(store, JSON.stringify({ h: { handle: 'h' } }));
    const r2 = renderOk([
      '--job',
      'cfnet-agent',
      '--only',
      'bin/drain',
      '--set',
      `cfnet-agent:datastore=${store}`,
      '--set',
      'cfnet-agent:drain_timeout_seconds=1',
      '--set',
      `cfnet-agent:node_binary=${process.execPath}`,
    ]);
    const res = spawnSync('bash', [file(r2, 'cfnet-agent', 'bin/drain').path], { encoding: 'utf8' });
    assert.equal(res.stdout, '0\n');
    assert.match(res.stderr, /with 1 container\(s\) left; rules left in place/);
  });
});

describe('cni pre-start: the shim has a transport to the executor, nft and node', () => {
  // A stand-in curl and netcat in the nft_binary directory, which shim.env puts first on the PATH.
  const dir = join(work, 'cni-pre-start');
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  writeFileSync(join(bin, 'nft'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  writeFileSync(
    join(bin, 'curl'),
    '#!/bin/sh\necho "curl $FAKE_CURL_VERSION (x86_64-pc-linux-gnu) libcurl/$FAKE_CURL_VERSION"\n',
    { mode: 0o755 },
  );
  writeFileSync(join(bin, 'fake-nc.openbsd'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  const logDir = join(dir, 'log', 'cni');

  function preStart(props: string[], env: Record<string, string>) {
    const r = renderOk([
      '--job',
      'cni',
      '--set',
      `cni:nft_binary=${join(bin, 'nft')}`,
      '--set',
      `cni:node_binary=${process.execPath}`,
      '--set',
      `cni:log_file=${join(logDir, 'cfnet-cni.log')}`,
      ...props,
    ]);
    return spawnSync('bash', [file(r, 'cni', 'bin/pre-start').path], {
      encoding: 'utf8',
      env: {
        PATH: '/usr/bin:/bin',
        CFNET_CNI_ENV: file(r, 'cni', 'config/shim.env').path,
        // No netcat unless a case gives one (the test machine may have a real nc.openbsd).
        CFNET_NC: 'cfnet-test-no-such-netcat',
        ...env,
      },
    });
  }

  it('auto: curl 7.81 (jammy) without netcat fails the deploy and says why', () => {
    const res = preStart([], { FAKE_CURL_VERSION: '7.81.0' });
    assert.equal(res.status, 1);
    assert.match(res.stderr, /neither netcat-openbsd \(nc\.openbsd\) nor curl 7\.87 or newer/);
  });

  it('auto: curl 7.88 is enough, and the log directory is made', () => {
    const res = preStart([], { FAKE_CURL_VERSION: '7.88.1' });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, new RegExp(`with ${join(bin, 'curl')}`));
    assert.ok(statSync(logDir).isDirectory());
  });

  it('auto: netcat wins over an old curl', () => {
    const res = preStart([], { FAKE_CURL_VERSION: '7.81.0', CFNET_NC: join(bin, 'fake-nc.openbsd') });
    assert.equal(res.status, 0, res.stderr);
    assert.match(res.stdout, /with .*fake-nc\.openbsd/);
  });

  it('shim_transport curl needs 7.87 or newer; nc needs netcat', () => {
    const curl = ['--set', 'cni:shim_transport=curl'];
    assert.equal(preStart(curl, { FAKE_CURL_VERSION: '8.5.0' }).status, 0);
    const old = preStart(curl, { FAKE_CURL_VERSION: '7.86.0' });
    assert.equal(old.status, 1);
    assert.match(old.stderr, /shim_transport is curl but curl 7\.87 or newer is not installed/);
    const nc = preStart(['--set', 'cni:shim_transport=nc'], { FAKE_CURL_VERSION: '8.5.0' });
    assert.equal(nc.status, 1);
    assert.match(nc.stderr, /shim_transport is nc but .* \(netcat-openbsd\) is not installed/);
  });

  it('nft_binary and node_binary must exist', () => {
    const noNft = preStart(['--set', `cni:nft_binary=${join(dir, 'nowhere', 'nft')}`], {
      FAKE_CURL_VERSION: '8.5.0',
    });
    assert.equal(noNft.status, 1);
    assert.match(noNft.stderr, /nft_binary .*nowhere\/nft is not an executable file/);
    const noNode = preStart(['--set', `cni:node_binary=${join(dir, 'nowhere', 'node')}`], {
      FAKE_CURL_VERSION: '8.5.0',
    });
    assert.equal(noNode.status, 1);
    assert.match(noNode.stderr, /node_binary .*nowhere\/node is not an executable file/);
  });

  it('the compiled entry point needs neither netcat nor a new curl; the sh shim does', () => {
    const elf = join(dir, 'cfnet-cni-compiled');
    writeFileSync(elf, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]), { mode: 0o755 });
    const compiled = preStart([], { FAKE_CURL_VERSION: '7.81.0', CFNET_CNI_PLUGIN: elf });
    assert.equal(compiled.status, 0, compiled.stderr);
    assert.match(compiled.stdout, /is the compiled entry point: it reaches the executor itself/);
    const sh = join(dir, 'cfnet-cni-sh');
    writeFileSync(sh, '#!/bin/sh\n', { mode: 0o755 });
    const shim = preStart([], { FAKE_CURL_VERSION: '7.81.0', CFNET_CNI_PLUGIN: sh });
    assert.equal(shim.status, 1);
    assert.match(shim.stderr, /neither netcat-openbsd/);
  });

  it('a disabled cni job checks nothing', () => {
    const res = preStart(['--set', 'cni:disable=true'], { FAKE_CURL_VERSION: '7.81.0' });
    assert.equal(res.status, 0, res.stderr);
  });
});

describe('operations/use-cfnet.yml on a cf-deployment-shaped manifest', () => {
  const fixture = join(release, 'test', 'cf-deployment-fixture.yml');
  const ops = join(release, 'operations', 'use-cfnet.yml');
  const r = renderOk(['--deployment', fixture, '--ops', ops]);
  interface Job {
    name: string;
    release: string;
    properties?: Record<string, unknown>;
  }
  interface Group {
    name: string;
    jobs: Job[];
  }
  const manifest = JSON.parse(readFileSync(r.manifest!, 'utf8')) as {
    instance_groups: Group[];
    releases: { name: string }[];
    variables: { name: string; options?: Record<string, unknown> }[];
    addons: {
      name: string;
      jobs: { properties: { aliases: { domain: string; targets: { instance_group: string }[] }[] } }[];
    }[];
  };
  const group = (name: string) => manifest.instance_groups.find((g) => g.name === name);
  const jobNames = (name: string) => group(name)?.jobs.map((j) => j.name) ?? [];

  it('swaps Silk for cfnet on diego-cell and points garden-cni at the cni package and job', () => {
    const cell = jobNames('diego-cell');
    for (const silk of ['silk-cni', 'silk-daemon', 'vxlan-policy-agent', 'netmon', 'silk-datastore-syncer']) {
      assert.ok(!cell.includes(silk), `${silk} is still on diego-cell`);
    }
    assert.ok(cell.includes('cni') && cell.includes('cfnet-agent'));
    const gardenCni = group('diego-cell')!.jobs.find((j) => j.name === 'garden-cni')!;
    assert.deepEqual(gardenCni.properties, {
      cni_plugin_dir: '/var/vcap/packages/cni/bin',
      cni_config_dir: '/var/vcap/jobs/cni/config/cni',
    });
    assert.ok(!jobNames('diego-api').includes('silk-controller'));
    assert.ok(manifest.releases.some((rel) => rel.name === 'cfnet'));
  });

  it('adds cfnet-redis and cfnet-controller before diego-cell and a DNS alias for the controller', () => {
    const order = manifest.instance_groups.map((g) => g.name);
    assert.ok(
      order.indexOf('cfnet-redis') >= 0 && order.indexOf('cfnet-redis') < order.indexOf('diego-cell'),
    );
    assert.ok(order.indexOf('cfnet-controller') < order.indexOf('diego-cell'));
    const aliases = manifest.addons.find((a) => a.name === 'bosh-dns-aliases')!.jobs[0]!.properties.aliases;
    const domains = aliases.map((a) => a.domain);
    assert.ok(!domains.includes('silk-controller.service.cf.internal'));
    const ctl = aliases.find((a) => a.domain === 'cfnet-controller.service.cf.internal');
    assert.equal(ctl?.targets[0]?.instance_group, 'cfnet-controller');
  });

  it('every cfnet job renders from the manifest: variables defined, properties declared, links resolved', () => {
    // renderOk already asserted: no undefined ((variables)), no property missing from a job spec.
    const conf = parsed<Conflist>(r, 'cni', 'config/cni/cfnet.conflist', 'diego-cell');
    assert.deepEqual(conf.plugins[0]!.dns_servers, ['169.254.0.53']);
    parseNetConfig({ ...conf.plugins[0]!, cniVersion: conf.cniVersion, name: conf.name });
    const ctl = controllerSettings(r, 'cfnet-controller');
    assert.match(ctl.redisUrl, /^redis:\/\/q-s0\.cfnet-redis\.default\.cf\.bosh:6379\//);
    assert.equal(ctl.redisUsername, 'cfnet');
    assert.ok(ctl.redisPassword);
    assert.deepEqual(ctl.dnsServers, ['169.254.0.53']);
    const agent = parsed(r, 'cfnet-agent', 'config/agent.json', 'diego-cell');
    resolveAgentConfig({ file: agent });
    // The agent dials the name the controller's certificate carries; its own certificate is issued
    // by the CA the controller trusts for agents.
    const cert = (name: string) => manifest.variables.find((v) => v.name === name)?.options ?? {};
    assert.equal(new URL(String(agent.controllerUrl)).hostname, cert('cfnet_controller').common_name);
    assert.ok(
      (cert('cfnet_controller').alternative_names as string[]).includes(
        'cfnet-controller.service.cf.internal',
      ),
    );
    const jobProps = (group: string, job: string) =>
      manifest.instance_groups.find((g) => g.name === group)!.jobs.find((j) => j.name === job)!.properties!;
    const agentProps = jobProps('diego-cell', 'cfnet-agent') as {
      ca_cert: string;
    } & Record<string, unknown>;
    const ctlProps = jobProps('cfnet-controller', 'cfnet-controller') as {
      ca_cert: string;
      ca_private_key: string;
      cell_bootstrap_secret: string;
      server_cert: string;
    };
    assert.equal(ctlProps.ca_cert, '((cfnet_agent_ca.certificate))');
    assert.equal(ctlProps.ca_private_key, '((cfnet_agent_ca.private_key))', 'only the controller holds it');
    assert.equal(ctlProps.cell_bootstrap_secret, '((cfnet_cell_bootstrap_secret))');
    assert.ok(
      !JSON.stringify(agentProps).includes('cfnet_agent_ca'),
      'the cells get nothing of the agent CA',
    );
    assert.equal(agentProps.ca_cert, '((cfnet_controller.ca))');
    assert.equal(ctlProps.server_cert, '((cfnet_controller.certificate))');
    assert.equal(cert('cfnet_agent_ca').is_ca, true);
    assert.equal(agent.clientCert, '/var/vcap/data/cfnet-agent/certs/client.crt', 'the agent makes it');
    assert.equal(agent.bootstrapTokenFile, '/var/vcap/jobs/cfnet-agent/config/certs/bootstrap.token');
    // with the manifest's variables: no private key in any cfnet file on the cells
    for (const f of r.files.filter(
      (x) => x.instance_group === 'diego-cell' && ['cfnet-agent', 'cni'].includes(x.job),
    )) {
      assert.doesNotMatch(readFileSync(f.path, 'utf8'), /PRIVATE KEY/, `${f.job}/${f.dest}`);
    }
  });

  it("garden keeps garden-external-networker, whose garden-cni now runs the cni job's conflist", () => {
    const garden = group('diego-cell')!.jobs.find((j) => j.name === 'garden')!;
    assert.deepEqual(garden.properties, {
      garden: {
        network_plugin: '/var/vcap/packages/runc-cni/bin/garden-external-networker',
        network_plugin_extra_args: ['--configFile=/var/vcap/jobs/garden-cni/config/adapter.json'],
      },
    });
    // garden-cni's cni_config_dir is the cni job's config/cni, where exactly one conflist is rendered
    // and the plugin type it names is in cni_plugin_dir (the cni package's bin/).
    const cniTemplates = Object.values(specTemplates('cni')).filter((d) => d.startsWith('config/cni/'));
    assert.deepEqual(cniTemplates, ['config/cni/cfnet.conflist']);
    const conf = parsed<Conflist>(r, 'cni', 'config/cni/cfnet.conflist', 'diego-cell');
    assert.equal(conf.plugins[0]!.type, 'cfnet-cni');
    const cell = group('diego-cell')!.jobs;
    assert.ok(!cell.some((j) => j.release === 'silk'), 'no silk job is left on diego-cell');
    assert.ok(
      !group('diego-api')!.jobs.some((j) => j.release === 'silk'),
      'no silk job is left on diego-api',
    );
  });

  it('rename-network-and-deployment.yml renames what use-cfnet.yml added', () => {
    const renamed = renderOk([
      '--deployment',
      fixture,
      '--ops',
      ops,
      '--ops',
      join(release, 'operations', 'rename-network-and-deployment.yml'),
    ]);
    const m = JSON.parse(readFileSync(renamed.manifest!, 'utf8')) as {
      instance_groups: { name: string; networks: { name: string }[] }[];
      addons: typeof manifest.addons;
    };
    for (const g of ['cfnet-redis', 'cfnet-controller']) {
      assert.deepEqual(
        m.instance_groups.find((x) => x.name === g)!.networks.map((n) => n.name),
        ['((network_name))'],
      );
    }
    const alias = m.addons[0]!.jobs[0]!.properties.aliases.find(
      (a) => a.domain === 'cfnet-controller.service.cf.internal',
    )! as unknown as { targets: Record<string, string>[] };
    assert.equal(alias.targets[0]!.deployment, '((deployment_name))');
    assert.equal(alias.targets[0]!.network, '((network_name))');
    assert.equal(alias.targets[0]!.instance_group, 'cfnet-controller');
  });

  it('use-external-redis.yml replaces the cfnet-redis group by a URL', () => {
    const ext = renderOk([
      '--deployment',
      fixture,
      '--ops',
      ops,
      '--ops',
      join(release, 'operations', 'use-external-redis.yml'),
      '--var',
      'cfnet_redis_url=rediss://redis.example.com:6380/0',
      '--var',
      'cfnet_redis_password=external-password',
      '--var',
      'cfnet_redis_username=cfnet-ext',
    ]);
    const m = JSON.parse(readFileSync(ext.manifest!, 'utf8')) as { instance_groups: Group[] };
    assert.ok(!m.instance_groups.some((g) => g.name === 'cfnet-redis'));
    const ctl = controllerSettings(ext, 'cfnet-controller');
    assert.equal(ctl.redisUrl, 'rediss://redis.example.com:6380/0');
    assert.equal(ctl.redisUsername, 'cfnet-ext');
    assert.equal(ctl.redisPassword, 'external-password');
  });

  it('disable-dynamic-asgs.yml turns the controller to static ASGs, which use-cfnet.yml alone leaves dynamic', () => {
    assert.equal(controllerSettings(r, 'cfnet-controller').dynamicAsgs, true);
    const off = renderOk([
      '--deployment',
      fixture,
      '--ops',
      ops,
      '--ops',
      join(release, 'operations', 'disable-dynamic-asgs.yml'),
    ]);
    assert.equal(controllerSettings(off, 'cfnet-controller').dynamicAsgs, false);
  });

  it("enable-iptables-logger.yml turns the agent's audit log on (cf-deployment's ops file of that name)", () => {
    const agentOf = (rep: RenderReport) =>
      resolveAgentConfig({ file: parsed(rep, 'cfnet-agent', 'config/agent.json', 'diego-cell') });
    assert.equal(agentOf(r).auditLog, false);
    const on = renderOk([
      '--deployment',
      fixture,
      '--ops',
      ops,
      '--ops',
      join(release, 'operations', 'enable-iptables-logger.yml'),
    ]);
    assert.equal(agentOf(on).auditLog, true);
  });

  it('an undefined variable or an undeclared property is reported', () => {
    const badOps = join(work, 'bad-ops.yml');
    writeFileSync(
      badOps,
      [
        '- type: replace',
        '  path: /instance_groups/name=diego-cell/jobs/name=cfnet-agent/properties/vtep_prot?',
        '  value: 4789',
        '- type: replace',
        '  path: /instance_groups/name=diego-cell/jobs/name=cni/properties/mtu',
        '  value: ((cfnet_mtu))',
        '',
      ].join('\n'),
    );
    const { status, report } = render(['--deployment', fixture, '--ops', ops, '--ops', badOps]);
    assert.equal(status, 1);
    const errors = report.errors.map((e) => e.error).join('\n');
    assert.match(errors, /property vtep_prot is not in the job spec/);
    assert.match(errors, /variable \(\(cfnet_mtu\)\) is not defined/);
  });
});

/** Runs a BOSH packaging script the way the director's compilation does: cwd = the package's files. */
function runPackaging(
  pkg: string,
  files: Record<string, string>,
  env: Record<string, string> = {},
): { target: string; res: SpawnSyncReturns<string> } {
  const compile = mkdtempSync(join(work, `compile-${pkg}-`));
  const target = mkdtempSync(join(work, `install-${pkg}-`));
  for (const [rel, src] of Object.entries(files)) {
    mkdirSync(join(compile, rel, '..'), { recursive: true });
    const cp = spawnSync('cp', ['-a', src, join(compile, rel)]);
    assert.equal(cp.status, 0, `cp ${src}`);
  }
  const res = spawnSync('bash', [join(release, 'packages', pkg, 'packaging')], {
    cwd: compile,
    encoding: 'utf8',
    env: { ...process.env, BOSH_INSTALL_TARGET: target, BOSH_COMPILE_TARGET: compile, ...env },
  });
  return { target, res };
}

/** The paths a package spec's `files` globs select under `base` (ruby's Dir.glob, like the CLI). */
function specFiles(pkg: string, base: string): string[] {
  const res = spawnSync(
    'ruby',
    [
      '-ryaml',
      '-rjson',
      '-e',
      'globs = YAML.safe_load(File.read(ARGV[0]))["files"]; puts JSON.generate(globs.flat_map { |g| Dir.glob(g, File::FNM_DOTMATCH, base: ARGV[1]).reject { |f| File.directory?(File.join(ARGV[1], f)) } }.uniq.sort)',
      join(release, 'packages', pkg, 'spec'),
      base,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as string[];
}

describe('BOSH packaging scripts build from stand-in blobs', () => {
  // A staged program (what bosh/scripts/stage-src.sh produces), small: package.json, bin, dist, node_modules.
  const src = join(work, 'src');
  const staged = join(src, 'cfnet');
  mkdirSync(join(staged, 'bin'), { recursive: true });
  mkdirSync(join(staged, 'dist', 'cli'), { recursive: true });
  mkdirSync(join(staged, 'dist', 'cni'), { recursive: true });
  mkdirSync(join(staged, 'dist', 'state', 'lua'), { recursive: true });
  mkdirSync(join(staged, 'node_modules', 'left-pad'), { recursive: true });
  writeFileSync(join(staged, 'dist', 'state', 'lua', 'lease-renew.lua'), 'return 0\n');
  writeFileSync(join(staged, 'package.json'), '{"name":"cfnet","type":"module"}\n');
  writeFileSync(
    join(staged, 'dist', 'cli', 'main.js'),
    'export async function main() { console.log("cfnet main"); }\n',
  );
  // The stand-in fallback reports the environment the shim ran it with.
  writeFileSync(
    join(staged, 'dist', 'cni', 'fallback.js'),
    'console.log(JSON.stringify({ fallback: true, node: process.argv0, path: process.env.PATH, transport: process.env.CFNET_CNI_TRANSPORT, timeout: process.env.CFNET_CNI_TIMEOUT }));\n',
  );
  writeFileSync(join(staged, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1;\n');
  copyFileSync(join(root, 'bin', 'cfnet.js'), join(staged, 'bin', 'cfnet.js'));
  copyFileSync(join(root, 'bin', 'cfnet-cni'), join(staged, 'bin', 'cfnet-cni'));
  mkdirSync(join(staged, 'native'), { recursive: true });
  copyFileSync(join(root, 'native', 'cfnet-cni.c'), join(staged, 'native', 'cfnet-cni.c'));

  it('node24 unpacks the official tarball layout', () => {
    const dir = join(work, 'node-blob', 'node-v24.99.0-linux-x64');
    mkdirSync(join(dir, 'bin'), { recursive: true });
    mkdirSync(join(dir, 'lib', 'node_modules', 'npm'), { recursive: true });
    // A stand-in binary (xz of the real 100 MB node takes minutes).
    writeFileSync(join(dir, 'bin', 'node'), '#!/bin/sh\necho v24.99.0\n', { mode: 0o755 });
    writeFileSync(join(dir, 'bin', 'npm'), '#!/bin/sh\n');
    const tarball = join(work, 'node-blob', 'node-v24.99.0-linux-x64.tar.xz');
    const tar = spawnSync('tar', ['-cJf', tarball, '-C', join(work, 'node-blob'), 'node-v24.99.0-linux-x64']);
    assert.equal(tar.status, 0);
    const blobs = join(work, 'node-blobs');
    mkdirSync(join(blobs, 'node'), { recursive: true });
    copyFileSync(tarball, join(blobs, 'node', 'node-v24.99.0-linux-x64.tar.xz'));
    assert.deepEqual(specFiles('node24', blobs), ['node/node-v24.99.0-linux-x64.tar.xz']);
    const { target, res } = runPackaging('node24', { 'node/node-v24.99.0-linux-x64.tar.xz': tarball });
    assert.equal(res.status, 0, res.stderr);
    const v = spawnSync(join(target, 'bin', 'node'), ['--version'], { encoding: 'utf8' });
    assert.equal(v.stdout.trim(), 'v24.99.0');
    assert.match(res.stdout, /v24\.99\.0/, 'the packaging script checks the unpacked node runs');
    assert.ok(!existsSync(join(target, 'bin', 'npm')), 'npm is dropped');
  });

  it('cfnet copies the staged program; the spec globs select it', () => {
    const selected = specFiles('cfnet', src);
    assert.ok(selected.includes('cfnet/dist/cli/main.js'));
    assert.ok(selected.includes('cfnet/node_modules/left-pad/index.js'));
    assert.ok(selected.includes('cfnet/bin/cfnet.js'));
    assert.ok(selected.includes('cfnet/dist/state/lua/lease-renew.lua'), 'the Redis scripts travel in dist/');
    const { target, res } = runPackaging('cfnet', { cfnet: staged });
    assert.equal(res.status, 0, res.stderr);
    assert.ok(existsSync(join(target, 'dist', 'state', 'lua', 'lease-renew.lua')));
    const run = spawnSync(process.execPath, [join(target, 'bin', 'cfnet.js')], { encoding: 'utf8' });
    assert.equal(run.stdout.trim(), 'cfnet main');
  });

  it('cni puts cfnet-cni and bandwidth where garden-cni looks, with the fallback next to them', () => {
    const blobDir = join(work, 'cni-blob');
    mkdirSync(blobDir, { recursive: true });
    copyFileSync('/usr/lib/cni/bandwidth', join(blobDir, 'bandwidth'));
    copyFileSync('/usr/lib/cni/loopback', join(blobDir, 'loopback'));
    const tgz = join(work, 'cni-plugins-linux-amd64-v1.99.0.tgz');
    assert.equal(spawnSync('tar', ['-czf', tgz, '-C', blobDir, './bandwidth', './loopback']).status, 0);
    const selected = specFiles('cni', src);
    assert.ok(selected.includes('cfnet/bin/cfnet-cni'));
    assert.ok(
      selected.includes('cfnet/native/cfnet-cni.c'),
      'the compiled entry point is built on the compilation VM',
    );
    assert.ok(selected.includes('cfnet/dist/cni/fallback.js'));
    const { target, res } = runPackaging('cni', {
      cfnet: staged,
      'cni-plugins/cni-plugins-linux-amd64-v1.99.0.tgz': tgz,
    });
    assert.equal(res.status, 0, res.stderr);
    assert.deepEqual(readdirSync(join(target, 'bin')).sort(), ['bandwidth', 'cfnet-cni']);
    for (const exe of ['bandwidth', 'cfnet-cni']) assert.ok(statSync(join(target, 'bin', exe)).mode & 0o100);
    assert.ok(existsSync(join(target, 'dist', 'cni', 'fallback.js')));
    // The shim finds node through <home>/node/bin/node, a link to the node24 package.
    const link = spawnSync('readlink', [join(target, 'node', 'bin', 'node')], { encoding: 'utf8' });
    assert.equal(link.stdout.trim(), '/var/vcap/packages/node24/bin/node');
    const version = spawnSync(join(target, 'bin', 'bandwidth'), [], {
      encoding: 'utf8',
      env: { CNI_COMMAND: 'VERSION' },
      input: '{"cniVersion":"1.0.0"}',
    });
    assert.match(version.stdout, /"1\.0\.0"/, 'the packaged bandwidth plugin speaks CNI 1.0.0');
  });

  for (const entry of ['compiled', 'sh'] as const) {
    it(`cni's ${entry} entry point reads the cni job's shim.env: executor, node and nft for the fallback`, async () => {
      const blobDir = join(work, `cni-blob-${entry}`);
      mkdirSync(blobDir, { recursive: true });
      copyFileSync('/usr/lib/cni/bandwidth', join(blobDir, 'bandwidth'));
      const tgz = join(work, `cni-plugins-linux-amd64-v1.99.1-${entry}.tgz`);
      assert.equal(spawnSync('tar', ['-czf', tgz, '-C', blobDir, './bandwidth']).status, 0);
      // the sh shim is what a compilation VM without a C compiler installs
      const { target, res } = runPackaging(
        'cni',
        { cfnet: staged, 'cni-plugins/cni-plugins-linux-amd64-v1.99.1.tgz': tgz },
        entry === 'sh' ? { CC: 'cfnet-test-no-such-cc' } : {},
      );
      assert.equal(res.status, 0, res.stderr);
      const shim = join(target, 'bin', 'cfnet-cni');
      const head = readFileSync(shim);
      if (entry === 'compiled') {
        assert.match(res.stdout, /bin\/cfnet-cni is the compiled entry point/);
        assert.deepEqual([...head.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46], 'an ELF binary');
      } else {
        assert.match(
          res.stderr,
          /no working C compiler \(cfnet-test-no-such-cc\): bin\/cfnet-cni is the sh shim/,
        );
        const text = head.toString('utf8');
        assert.ok(text.startsWith('#!/bin/sh\n'), 'the #! line stays first');
        assert.ok(
          text.endsWith(
            readFileSync(join(root, 'bin', 'cfnet-cni'), 'utf8')
              .split('\n')
              .slice(1)
              .join('\n'),
          ),
        );
      }

      // node_binary through a link, so the fallback's argv0 shows which node ran it.
      const nodeDir = join(work, `shim-node-${entry}`, 'bin');
      mkdirSync(nodeDir, { recursive: true });
      spawnSync('ln', ['-sf', process.execPath, join(nodeDir, 'node')]);
      const nftDir = join(work, `shim-nft-${entry}`, 'sbin');
      mkdirSync(nftDir, { recursive: true });
      writeFileSync(join(nftDir, 'nft'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
      const envFile = (transport: string) =>
        file(
          renderOk([
            '--job',
            'cni',
            '--set',
            `cni:nft_binary=${join(nftDir, 'nft')}`,
            '--set',
            `cni:node_binary=${join(nodeDir, 'node')}`,
            '--set',
            `cni:shim_transport=${transport}`,
            '--set',
            'cni:executor_timeout_seconds=7',
          ]),
          'cni',
          'config/shim.env',
        ).path;
      const sock = join(work, `shim-executor-${entry}.sock`);
      const config = JSON.stringify({
        cniVersion: '1.0.0',
        name: 'cfnet',
        type: 'cfnet-cni',
        executor_socket: sock,
      });
      const runShim = (env: Record<string, string>) =>
        new Promise<{ code: number | null; stdout: string }>((resolve) => {
          const child = spawn(shim, [], {
            env: { PATH: '/usr/bin:/bin', CNI_COMMAND: 'VERSION', CNI_CONTAINERID: 'c1', ...env },
          });
          let stdout = '';
          child.stdout.on('data', (b: Buffer) => {
            stdout += b.toString();
          });
          // 'close', not 'exit': stdout may still hold data when the process has exited.
          child.once('close', (code) => resolve({ code, stdout }));
          child.stdin.end(config);
        });

      // No executor: the one-off fallback runs with node_binary, and nft_binary's directory first on the PATH.
      const fb = await runShim({ CFNET_CNI_ENV: envFile('auto') });
      assert.equal(fb.code, 0);
      const seen = JSON.parse(fb.stdout) as {
        fallback: boolean;
        node: string;
        path: string;
        transport: string;
        timeout: string;
      };
      assert.equal(seen.fallback, true);
      assert.equal(seen.node, join(nodeDir, 'node'));
      assert.equal(seen.path.split(':')[0], nftDir);
      assert.equal(seen.transport, 'auto');
      assert.equal(seen.timeout, '7');

      const calls: { url: string; body: string }[] = [];
      const server = createHttpServer((req, resp) => {
        let body = '';
        req.on('data', (b: Buffer) => {
          body += b.toString();
        });
        req.on('end', () => {
          calls.push({ url: req.url ?? '', body });
          resp.writeHead(200, { 'content-type': 'application/json' });
          resp.end('{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}');
        });
      });
      rmSync(sock, { force: true });
      await new Promise<void>((resolve) => server.listen(sock, resolve));
      try {
        // An executor on the socket: shim_transport curl reaches it (curl 7.87+ here, see .ci/run);
        // the compiled entry reaches it itself, whatever shim_transport says.
        const viaCurl = await runShim({ CFNET_CNI_ENV: envFile('curl') });
        assert.equal(viaCurl.code, 0);
        assert.deepEqual(JSON.parse(viaCurl.stdout), { cniVersion: '1.0.0', supportedVersions: ['1.0.0'] });
        assert.equal(calls.length, 1);
        assert.match(calls[0]!.url, /^\/v1\/cni\?.*CNI_COMMAND=VERSION/);
        assert.equal(calls[0]!.body, config);
        const viaNc = await runShim({ CFNET_CNI_ENV: envFile('nc'), CFNET_NC: 'cfnet-test-no-such-netcat' });
        if (entry === 'sh') {
          // shim_transport nc without netcat: the shim reports that the executor did not answer (it
          // does not silently fall back after a request may have been sent).
          assert.equal(viaNc.code, 1);
          assert.equal((JSON.parse(viaNc.stdout) as { code: number }).code, 11);
          assert.equal(calls.length, 1);
        } else {
          assert.equal(viaNc.code, 0, viaNc.stdout);
          assert.equal(calls.length, 2);
        }
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    });
  }
});
