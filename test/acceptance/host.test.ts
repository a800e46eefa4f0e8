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
import { productionCadence } from './cf-bounds.js';

const root = new URL('../..', import.meta.url).pathname;

describe('CF acceptance: search_domains', () => {
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
});
