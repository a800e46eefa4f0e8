/**
 * cf-networking-release's acceptance scenarios about the cell host: `search_domains` (Garden's
 * resolv.conf keeps garden-cni's search domains with cfnet) and `custom_iptables_compatibility`
 * (an operator's iptables ACCEPT on the cell wins over cfnet's container → host rejection, as over
 * Silk's). Mapping and times: docs/acceptance.md.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Cluster } from '../helpers/cluster.js';
import { CUSTOM_IPTABLES_BOUND_MS, productionCadence, tcp, within } from './cf-bounds.js';

const root = new URL('../..', import.meta.url).pathname;

describe('CF acceptance: custom_iptables_compatibility and search_domains', () => {
  let cluster: Cluster;
  const work = mkdtempSync(join(tmpdir(), 'cfnet-acceptance-host-'));

  before(async () => {
    cluster = await Cluster.start({ cells: 1, controller: productionCadence() });
  });
  after(async () => {
    await cluster?.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it('search_domains: "/etc/resolv.conf contains apps.internal" — garden-cni keeps the apps.internal search domain under use-cfnet.yml, and cfnet\'s CNI result adds none of its own', async () => {
    // CF's suite needs garden-cni configured with `apps.internal` as a search domain (an ops file of
    // CF's CI); garden-external-networker writes it into the container's resolv.conf.
    const searchOps = join(work, 'add-apps-internal-search-domain.yml');
    writeFileSync(
      searchOps,
      [
        '- type: replace',
        '  path: /instance_groups/name=diego-cell/jobs/name=garden-cni/properties/search_domains?',
        '  value: [apps.internal]',
        '',
      ].join('\n'),
    );
    const rendered = spawnSync(
      'ruby',
      [
        join(root, 'scripts', 'render-bosh-templates.rb'),
        '--out',
        join(work, 'render'),
        '--deployment',
        join(root, 'bosh', 'test', 'cf-deployment-fixture.yml'),
        '--ops',
        searchOps,
        '--ops',
        join(root, 'bosh', 'operations', 'use-cfnet.yml'),
      ],
      { encoding: 'utf8' },
    );
    assert.equal(rendered.status, 0, rendered.stderr);
    const report = JSON.parse(rendered.stdout) as { manifest: string; errors: unknown[] };
    assert.deepEqual(report.errors, []);
    const manifest = JSON.parse(readFileSync(report.manifest, 'utf8')) as {
      instance_groups: { name: string; jobs: { name: string; properties?: Record<string, unknown> }[] }[];
    };
    const cell = manifest.instance_groups.find((g) => g.name === 'diego-cell')!;
    const gardenCni = cell.jobs.find((j) => j.name === 'garden-cni')!;
    assert.deepEqual(gardenCni.properties?.search_domains, ['apps.internal']);
    assert.equal(
      gardenCni.properties?.cni_config_dir,
      '/var/vcap/jobs/cni/config/cni',
      'garden-cni runs cfnet',
    );

    // the ADD result garden-external-networker merges with those search domains: DNS servers only
    const app = await cluster.app('search-domains');
    const c = await cluster.container(cluster.cells[0]!, app, 0);
    const dns = c.cniResult?.dns as { nameservers?: string[]; search?: string[] } | undefined;
    assert.deepEqual(dns?.nameservers, cluster.cells[0]!.cniConfig().dns_servers);
    assert.equal(dns?.search, undefined, 'no search domains from cfnet: garden-cni owns them');
  });

  it('custom_iptables_compatibility: "still applies the iptable rule to the new app" — an operator ACCEPT inserted first in INPUT with iptables-legacy (as CF\'s iptables-writer job) lets a new container reach a host process on 8898', async (t) => {
    const cell = cluster.cells[0]!;
    // CF's test-server job on the cell: a process listening on the cell's own address
    await cluster.serve(cell.ns, [8898, 8899], [cell.underlayIp]);
    // CF's iptables-writer post-start, before any app is pushed: overlay network from cf_network
    const overlay = String(cell.cniConfig().overlay_network);
    const rule = [
      'INPUT',
      '-s',
      overlay,
      '-p',
      'tcp',
      '-m',
      'tcp',
      '--destination',
      cell.underlayIp,
      '--dport',
      '8898',
      '-j',
      'ACCEPT',
    ];
    const check = await cell.exec(['iptables-legacy', '-w', '-C', ...rule]);
    if (check.code !== 0) {
      const inserted = await cell.exec(['iptables-legacy', '-w', '-I', rule[0]!, '1', ...rule.slice(1)]);
      assert.equal(inserted.code, 0, inserted.stderr);
    }
    const pushed = Date.now();
    const app = await cluster.app('custom-iptables');
    const c = await cluster.container(cell, app, 0);
    // CF: `cf ssh app -c "curl $CF_INSTANCE_IP:8898"` succeeds (180 s overall, 10 s per curl)
    await within(
      t,
      'the new app reaches the host process on 8898',
      CUSTOM_IPTABLES_BOUND_MS,
      c.ns,
      [tcp(cell.underlayIp, 8898), tcp(cell.underlayIp, 8899)],
      ['open', 'closed'],
      { since: pushed },
    );
  });
});
