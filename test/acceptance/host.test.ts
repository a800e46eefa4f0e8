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
    // a host process no operator rule names: it answers, so only cfnet can refuse a container
    const cell = cluster.cells[0]!;
    await cluster.serve(cell.ns, [8899], [cell.underlayIp]);
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

  /**
   * CF's iptables-writer post-start, run before any app is pushed: an ACCEPT from the overlay (read
   * from the `cf_network` link) to the cell's own address on `port`, inserted first in INPUT unless
   * present. Today's job runs `iptables`; a 2022 version ran `iptables-legacy`.
   */
  async function operatorAccept(binary: string, port: number): Promise<void> {
    const cell = cluster.cells[0]!;
    const overlay = String(cell.cniConfig().overlay_network);
    const rule = [
      '-s',
      overlay,
      '-p',
      'tcp',
      '-m',
      'tcp',
      '--destination',
      cell.underlayIp,
      '--dport',
      String(port),
      '-j',
      'ACCEPT',
    ];
    if ((await cell.exec([binary, '-w', '-C', 'INPUT', ...rule])).code === 0) return;
    const inserted = await cell.exec([binary, '-w', '-I', 'INPUT', '1', ...rule]);
    assert.equal(inserted.code, 0, inserted.stderr);
  }

  for (const [binary, port] of [
    ['iptables', 8898],
    ['iptables-legacy', 8897],
  ] as const) {
    it(`custom_iptables_compatibility: "still applies the iptable rule to the new app" — an operator ACCEPT inserted first in INPUT with ${binary} lets a new container reach a host process (port ${port})`, async (t) => {
      const cell = cluster.cells[0]!;
      // CF's test-server job on the cell: a process on the cell's own address ("Hello world!!")
      await cluster.serve(cell.ns, [port], [cell.underlayIp]);
      await operatorAccept(binary, port);
      const pushed = Date.now();
      const c = await cluster.container(cell, await cluster.app(`custom-iptables-${port}`), 0);
      // CF: `cf ssh app -c "curl $CF_INSTANCE_IP:8898"` succeeds (180 s overall, 10 s per curl);
      // a port no operator rule names stays rejected
      await within(
        t,
        `the new app reaches the host process on ${port}`,
        CUSTOM_IPTABLES_BOUND_MS,
        c.ns,
        [tcp(cell.underlayIp, port), tcp(cell.underlayIp, 8899)],
        ['open', 'closed'],
        { since: pushed },
      );
    });
  }
});
