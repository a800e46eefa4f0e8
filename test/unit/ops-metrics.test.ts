// Observability that plugs into CF: docs/metrics.md is what scripts/gen-metrics-docs.mjs makes from
// the code (fails when stale) and the scan sees every metric a live registry has; the controller
// and agent BOSH jobs render a prom_scraper_config.yml that points loggregator's prom-scraper at
// the port serving /metrics; the alert rules under ops/ pass `promtool check rules` and their
// `promtool test rules` cases; rules and the Grafana dashboard name only metrics that exist.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { collectMetrics, renderMetricsDoc } from '../../scripts/gen-metrics-docs.mjs';
import { agentMetrics } from '../../src/agent/metrics.js';
import { createRegistry } from '../../src/lib/metrics.js';

const root = new URL('../..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'cfnet-ops-metrics-'));
after(() => rmSync(work, { recursive: true, force: true }));

const scanned = collectMetrics(join(root, 'src'));
const names = new Set(scanned.map((m) => m.name));

/** Metric names an expression uses (histogram series named by their family). */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\bcfnet_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, ''));
}

function yamlAsJson<T>(file: string): T {
  const res = spawnSync(
    'ruby',
    ['-ryaml', '-rjson', '-e', 'puts JSON.generate(YAML.safe_load(File.read(ARGV[0])))', file],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as T;
}

describe('docs/metrics.md', () => {
  it('is what scripts/gen-metrics-docs.mjs generates from the code', () => {
    const current = readFileSync(join(root, 'docs', 'metrics.md'), 'utf8');
    assert.equal(
      current,
      renderMetricsDoc(scanned),
      'docs/metrics.md is stale: node scripts/gen-metrics-docs.mjs',
    );
  });

  it('lists name, type, labels, unit and meaning of every metric', () => {
    const doc = readFileSync(join(root, 'docs', 'metrics.md'), 'utf8');
    assert.ok(scanned.length >= 40, `only ${scanned.length} metrics found`);
    for (const m of scanned) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${m.name}\` |`));
      assert.ok(row, `no row for ${m.name}`);
      const cells = row.split(' | ');
      assert.equal(cells[1], m.type);
      for (const l of m.labels) assert.ok(cells[2]!.includes(`\`${l}\``), `${m.name}: label ${l}`);
      assert.ok(cells[3]!.length > 0, `${m.name}: no unit`);
    }
  });

  it("the scan sees each metric of the agent's live registry with its type, help and labels", async () => {
    const registry = createRegistry({ processMetrics: false });
    agentMetrics(registry);
    const live = await registry.getMetricsAsJSON();
    assert.ok(live.length > 15);
    for (const m of live) {
      const s = scanned.find((x) => x.name === m.name);
      assert.ok(s, `${m.name} is registered but not in docs/metrics.md`);
      assert.equal(s.type, m.type, m.name);
      assert.equal(s.help, m.help, m.name);
      const liveLabels = (registry.getSingleMetric(m.name) as unknown as { labelNames: string[] }).labelNames;
      assert.deepEqual(s.labels, liveLabels, m.name);
    }
  });

  it('node scripts/gen-metrics-docs.mjs --check agrees (it exits 1 on a stale page)', () => {
    const res = spawnSync(process.execPath, [join(root, 'scripts', 'gen-metrics-docs.mjs'), '--check'], {
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, res.stderr);
  });
});

describe('prom_scraper_config.yml (loggregator prom-scraper)', () => {
  function render(args: string[] = []) {
    const out = join(work, `render-${Math.random().toString(36).slice(2)}`);
    const res = spawnSync(
      'ruby',
      [
        join(root, 'scripts', 'render-bosh-templates.rb'),
        '--out',
        out,
        '--job',
        'cfnet-agent',
        '--job',
        'cfnet-controller',
        ...args,
      ],
      { encoding: 'utf8' },
    );
    const report = JSON.parse(res.stdout) as {
      files: { job: string; dest: string; parsed?: Record<string, unknown> }[];
      errors: unknown[];
    };
    assert.deepEqual(report.errors, []);
    const get = (job: string) =>
      report.files.find((f) => f.job === job && f.dest === 'config/prom_scraper_config.yml')?.parsed;
    return { agent: get('cfnet-agent'), controller: get('cfnet-controller') };
  }

  it('each job points prom-scraper at the plain-HTTP port that serves /metrics, with its source id', () => {
    const { agent, controller } = render();
    assert.deepEqual(controller, {
      port: 4191,
      source_id: 'cfnet-controller',
      instance_id: '6f3c1c1e-0b1c-4a8e-9a55-3d1f0c2b7a10',
      scheme: 'http',
      path: '/metrics',
      labels: { bosh_job: 'cfnet-controller' },
    });
    assert.deepEqual(agent, {
      port: 4192,
      source_id: 'cfnet-agent',
      instance_id: '6f3c1c1e-0b1c-4a8e-9a55-3d1f0c2b7a10',
      scheme: 'http',
      path: '/metrics',
      labels: { bosh_job: 'cfnet-agent' },
    });
  });

  it('follows the operator and metrics port properties', () => {
    const { agent, controller } = render([
      '--set',
      'cfnet-agent:metrics_port=9102',
      '--set',
      'cfnet-controller:operator_listen_port=9101',
    ]);
    assert.equal(agent?.port, 9102);
    assert.equal(controller?.port, 9101);
  });
});

describe('ops/: alert rules and dashboard', () => {
  const rules = join(root, 'ops', 'prometheus', 'cfnet-alerts.yml');

  it('promtool check rules passes', () => {
    const res = spawnSync('promtool', ['check', 'rules', rules], { encoding: 'utf8' });
    assert.ok(!res.error, 'promtool is missing: apt-get install prometheus (.ci/run does)');
    assert.equal(res.status, 0, res.stdout + res.stderr);
  });

  it('promtool test rules: each alert fires on its failure and not on a healthy foundation', () => {
    const res = spawnSync(
      'promtool',
      ['test', 'rules', join(root, 'ops', 'prometheus', 'cfnet-alerts.test.yml')],
      {
        encoding: 'utf8',
      },
    );
    assert.ok(!res.error, 'promtool is missing: apt-get install prometheus (.ci/run does)');
    assert.equal(res.status, 0, res.stdout + res.stderr);
  });

  it('alerts cover stuck and lagging cells, queue age, informers, leadership and rejected items', () => {
    const doc = yamlAsJson<{ groups: { rules: { alert: string; expr: string }[] }[] }>(rules);
    const all = doc.groups.flatMap((g) => g.rules);
    for (const alert of [
      'CfnetCellStuck',
      'CfnetCellLagging',
      'CfnetQueueOldestJobOld',
      'CfnetInformerNotSynced',
      'CfnetLeaderFlapping',
      'CfnetNoLeader',
      'CfnetRejectedItems',
      'CfnetAgentRefusedItems',
    ])
      assert.ok(
        all.some((r) => r.alert === alert),
        `no ${alert}`,
      );
    for (const r of all)
      for (const m of metricsIn(r.expr))
        assert.ok(names.has(m), `${r.alert} uses ${m}, which no code registers`);
  });

  it('the Grafana dashboard is valid JSON whose queries name only registered metrics', () => {
    const dash = JSON.parse(readFileSync(join(root, 'ops', 'grafana', 'cfnet-dashboard.json'), 'utf8')) as {
      uid: string;
      panels: { id: number; type: string; targets?: { expr: string }[] }[];
      templating: { list: { name: string; type: string }[] };
    };
    assert.ok(dash.uid);
    assert.ok(dash.templating.list.some((v) => v.type === 'datasource' && v.name === 'datasource'));
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    const exprs = dash.panels.flatMap((p) => p.targets ?? []).map((t) => t.expr);
    assert.ok(exprs.length > 15);
    const used = new Set(exprs.flatMap(metricsIn));
    for (const m of used) assert.ok(names.has(m), `the dashboard queries ${m}, which no code registers`);
    for (const m of [
      'cfnet_cell_lag_seconds',
      'cfnet_controller_queue_oldest_job_age_seconds',
      'cfnet_controller_rejected_total',
    ])
      assert.ok(used.has(m), `the dashboard shows no ${m}`);
  });
});
