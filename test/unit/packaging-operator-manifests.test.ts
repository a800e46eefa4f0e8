// The BOSH templates render for the manifests CF operators actually deploy: cf-deployment with
// use-cfnet.yml plus the settings operators set (c2c and ASG logging, deny networks for the cloud
// metadata address, host services, bandwidth limits, jumbo-frame MTU, Redis Sentinel, a dashboard
// token, metrics on 0.0.0.0 for an outside Prometheus, a longer drain), an isolation segment with
// its own cell group, static ASGs, the release named by URL, and renamed network and deployment.
// Every rendered file parses and the programs' own parsers accept the configs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { parseNetConfig } from '../../src/cni/config.js';
import { parseControllerSettings } from '../../src/controller/settings.js';

const root = new URL('../..', import.meta.url).pathname;
const release = join(root, 'bosh');
const work = mkdtempSync(join(tmpdir(), 'cfnet-operator-manifests-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Rendered {
  job: string;
  instance_group: string;
  dest: string;
  path: string;
  kind: string;
  parsed?: Record<string, unknown>;
}

// What operators typically set on top of use-cfnet.yml (JSON is YAML).
const OPERATOR_OPS = [
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/iptables_logging?',
    value: true,
  },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/iptables_c2c_logging?',
    value: true,
  },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/iptables_denied_logs_per_sec?',
    value: 5,
  },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/deny_networks?',
    value: { always: ['169.254.169.254/32'], running: [], staging: ['10.0.0.0/8'] },
  },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/host_tcp_services?',
    value: ['169.254.0.2:9001', '169.254.0.2:8081'],
  },
  { type: 'replace', path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/mtu?', value: 8950 },
  { type: 'replace', path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/rate?', value: 100000 },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cni/properties/burst?',
    value: 200000,
  },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cfnet-agent/properties/drain_timeout_seconds?',
    value: 900,
  },
  {
    type: 'replace',
    path: '/instance_groups/name=diego-cell/jobs/name=cfnet-agent/properties/metrics_address?',
    value: '0.0.0.0',
  },
  {
    type: 'replace',
    path: '/instance_groups/name=cfnet-controller/jobs/name=cfnet-controller/properties/operator_listen_address?',
    value: '0.0.0.0',
  },
  {
    type: 'replace',
    path: '/instance_groups/name=cfnet-controller/jobs/name=cfnet-controller/properties/workers_concurrency?',
    value: 8,
  },
  {
    type: 'replace',
    path: '/instance_groups/name=cfnet-controller/jobs/name=cfnet-controller/properties/log_level?',
    value: 'debug',
  },
  { type: 'replace', path: '/instance_groups/name=cfnet-redis/instances', value: 3 },
  {
    type: 'replace',
    path: '/instance_groups/name=cfnet-redis/jobs/name=cfnet-redis/properties/sentinel?/enabled',
    value: true,
  },
  // an isolation segment: its own cell group with the two cell jobs and no second cni link
  {
    type: 'replace',
    path: '/instance_groups/-',
    value: {
      name: 'isolated-diego-cell',
      azs: ['z1'],
      instances: 2,
      networks: [{ name: 'default' }],
      stemcell: 'default',
      vm_type: 'small-highmem',
      jobs: [
        {
          name: 'cni',
          release: 'cfnet',
          // its own link name: an unnamed one would be a second `cfnet_cni_config` (docs/bosh.md)
          provides: { cfnet_cni_config: { as: 'cfnet_cni_config_isolated' } },
          consumes: { cfnet_controller: { from: 'cfnet_controller' } },
          properties: { dns_servers: ['169.254.0.53'] },
        },
        {
          name: 'cfnet-agent',
          release: 'cfnet',
          consumes: { cfnet_controller: { from: 'cfnet_controller' } },
          properties: { ca_cert: '((cfnet_controller.ca))' },
        },
      ],
    },
  },
];

function renderDeployment(): { files: Rendered[]; errors: unknown[]; manifest: string } {
  const opsFile = join(work, 'operator.yml');
  writeFileSync(opsFile, JSON.stringify(OPERATOR_OPS));
  const ops = ['use-cfnet.yml', 'disable-dynamic-asgs.yml', 'use-cfnet-release-url.yml'].flatMap((f) => [
    '--ops',
    join(release, 'operations', f),
  ]);
  const res = spawnSync(
    'ruby',
    [
      join(root, 'scripts', 'render-bosh-templates.rb'),
      '--out',
      join(work, 'out'),
      '--deployment',
      join(release, 'test', 'cf-deployment-fixture.yml'),
      ...ops,
      '--ops',
      opsFile,
    ],
    { encoding: 'utf8' },
  );
  try {
    return JSON.parse(res.stdout) as { files: Rendered[]; errors: unknown[]; manifest: string };
  } catch {
    throw new Error(`renderer printed no report: ${res.stderr}`);
  }
}

describe('an operator-typical cf-deployment with cfnet', () => {
  const r = renderDeployment();
  const get = (group: string, job: string, dest: string) => {
    const f = r.files.find((x) => x.instance_group === group && x.job === job && x.dest === dest);
    assert.ok(f, `no ${group}/${job}/${dest}`);
    return f;
  };

  it('renders every template of every cfnet job in every group without an error', () => {
    assert.deepEqual(r.errors, []);
    const groups = new Set(r.files.map((f) => f.instance_group));
    for (const g of ['diego-cell', 'isolated-diego-cell', 'cfnet-controller', 'cfnet-redis'])
      assert.ok(groups.has(g), g);
    for (const f of r.files) {
      if (/\.(json|conflist|ya?ml)$/.test(f.dest))
        assert.ok(['json', 'yaml'].includes(f.kind), `${f.instance_group}/${f.job}/${f.dest}`);
      if (f.dest.startsWith('bin/')) assert.equal(f.kind, 'shell', `${f.instance_group}/${f.job}/${f.dest}`);
    }
  });

  it("the conflist carries the operator's logging, deny networks, host services, MTU and bandwidth", () => {
    for (const group of ['diego-cell', 'isolated-diego-cell']) {
      const conf = get(group, 'cni', 'config/cni/cfnet.conflist').parsed as {
        cniVersion: string;
        name: string;
        plugins: Record<string, unknown>[];
      };
      const cfg = parseNetConfig({ ...conf.plugins[0]!, cniVersion: conf.cniVersion, name: conf.name });
      // the controller's rule sets take the policy settings of diego-cell's cni job; the segment's
      // cni job here sets only dns_servers (it parses too, with the defaults)
      if (group === 'diego-cell') {
        assert.deepEqual(cfg.cell.logging, { asg: true, c2c: true, deniedPerSec: 5, acceptedUdpPerSec: 100 });
        assert.deepEqual(cfg.cell.denyNetworks.always.length, 1);
        assert.equal(cfg.cell.hostTcpServices.length, 2);
        assert.equal(cfg.mtu, 8950 - 50, 'the container MTU leaves room for VXLAN');
        assert.equal(conf.plugins[1]?.type, 'bandwidth', 'rate and burst add the bandwidth plugin');
      }
    }
  });

  it("the controller takes the foundation's policy settings from diego-cell's cni job and parses its config", () => {
    const ctl = parseControllerSettings({
      file: get('cfnet-controller', 'cfnet-controller', 'config/controller.json').parsed!,
    });
    assert.equal(ctl.asgLogging, true);
    assert.equal(ctl.dynamicAsgs, false, 'disable-dynamic-asgs.yml');
    assert.deepEqual(ctl.operatorListen, { host: '0.0.0.0', port: 4191 });
    assert.match(ctl.redisUrl, /^redis\+sentinel:\/\//, 'the Redis group runs Sentinel');
  });

  it('both cell groups run an agent the agent parser accepts, a bin/cfnet and a prom-scraper config', () => {
    for (const group of ['diego-cell', 'isolated-diego-cell']) {
      resolveAgentConfig({ file: get(group, 'cfnet-agent', 'config/agent.json').parsed! });
      assert.equal(get(group, 'cfnet-agent', 'bin/cfnet').kind, 'shell');
      assert.equal(get(group, 'cfnet-agent', 'config/prom_scraper_config.yml').parsed!.port, 4192);
      assert.match(readFileSync(get(group, 'cfnet-agent', 'bin/pre-start').path, 'utf8'), /silk-vtep/);
    }
    assert.equal(
      get('cfnet-controller', 'cfnet-controller', 'config/prom_scraper_config.yml').parsed!.port,
      4191,
    );
  });

  it('the release is named by URL and SHA-1', () => {
    const m = JSON.parse(readFileSync(r.manifest, 'utf8')) as {
      releases: { name: string; url?: string; sha1?: string }[];
    };
    const cfnet = m.releases.find((x) => x.name === 'cfnet');
    assert.equal(cfnet?.url, '((cfnet_release_url))');
    assert.equal(cfnet?.sha1, '((cfnet_release_sha1))');
  });
});

describe('an isolation segment whose cni link is not renamed', () => {
  it('is refused as a second cfnet_cni_config provider, as BOSH would', () => {
    const saved = OPERATOR_OPS.at(-1)!.value as { jobs: { provides?: unknown }[] };
    const provides = saved.jobs[0]!.provides;
    delete saved.jobs[0]!.provides;
    try {
      const r = renderDeployment();
      assert.ok(
        (r.errors as { error: string }[]).some((e) => /cfnet_cni_config: 2 providers/.test(e.error)),
        JSON.stringify(r.errors),
      );
    } finally {
      saved.jobs[0]!.provides = provides;
    }
  });
});
