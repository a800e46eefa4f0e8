// Writes docs/metrics.md from the metrics the code registers: every counter(), gauge() and
// histogram() call of src/lib/metrics.ts's helpers under src/, read with the TypeScript parser
// (the metric's name resolved through METRICS, AGENT_METRICS or a string constant, its help text,
// its label names). A metric registered another way is not seen, so keep to the helpers.
// test/unit/ops-metrics.test.ts fails when docs/metrics.md is stale and checks the scan against a
// live registry.
//
//   node scripts/gen-metrics-docs.mjs           rewrite docs/metrics.md
//   node scripts/gen-metrics-docs.mjs --check   exit 1 when docs/metrics.md is stale
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const HELPERS = new Set(['counter', 'gauge', 'histogram']);

function sourceFiles(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'gen' ? [] : sourceFiles(path);
    return name.endsWith('.ts') && !name.endsWith('.d.ts') ? [path] : [];
  });
}

function literal(node) {
  if (!node) return undefined;
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isBinaryExpression(node) && node.operatorToken.kind === ts.SyntaxKind.PlusToken) {
    const l = literal(node.left);
    const r = literal(node.right);
    return l !== undefined && r !== undefined ? l + r : undefined;
  }
  if (ts.isParenthesizedExpression(node)) return literal(node.expression);
  return undefined;
}

function unwrap(node) {
  let n = node;
  while (n && (ts.isAsExpression(n) || ts.isSatisfiesExpression?.(n) || ts.isParenthesizedExpression(n)))
    n = n.expression;
  return n;
}

/** Every metric registered through the helpers under `srcDir`. */
export function collectMetrics(srcDir) {
  const files = sourceFiles(srcDir).map((path) => ({
    path,
    sf: ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true),
  }));
  // string constants and objects of string constants (METRICS, AGENT_METRICS), by name
  const constants = new Map();
  const objects = new Map();
  for (const { sf } of files) {
    sf.forEachChild(function visit(node) {
      if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
        const init = unwrap(node.initializer);
        const text = literal(init);
        if (text !== undefined) constants.set(node.name.text, text);
        else if (init && ts.isObjectLiteralExpression(init)) {
          const fields = new Map();
          for (const prop of init.properties) {
            if (ts.isPropertyAssignment(prop) && ts.isIdentifier(prop.name)) {
              const v = literal(prop.initializer);
              if (v !== undefined) fields.set(prop.name.text, v);
            }
          }
          if (fields.size > 0) objects.set(node.name.text, fields);
        }
      }
      node.forEachChild(visit);
    });
  }
  const resolve = (node) => {
    const text = literal(node);
    if (text !== undefined) return text;
    if (ts.isIdentifier(node)) return constants.get(node.text);
    if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression))
      return objects.get(node.expression.text)?.get(node.name.text);
    return undefined;
  };
  const metrics = new Map();
  const problems = [];
  for (const { path, sf } of files) {
    if (path.endsWith(join('lib', 'metrics.ts'))) continue;
    sf.forEachChild(function visit(node) {
      if (
        ts.isCallExpression(node) &&
        ts.isIdentifier(node.expression) &&
        HELPERS.has(node.expression.text)
      ) {
        const [, nameArg, helpArg, labelsArg] = node.arguments;
        const where = `${relative(join(srcDir, '..'), path)}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
        const name = nameArg ? resolve(nameArg) : undefined;
        const help = literal(helpArg);
        let labels = [];
        if (labelsArg && ts.isArrayLiteralExpression(labelsArg))
          labels = labelsArg.elements.map((e) => literal(e) ?? '?');
        if (!name || help === undefined)
          problems.push(`${where}: ${node.expression.text}() with a name or help the scan cannot read`);
        else {
          const m = { name, type: node.expression.text, help, labels, where };
          const seen = metrics.get(name);
          if (seen && (seen.type !== m.type || seen.help !== m.help))
            problems.push(`${where}: ${name} registered differently at ${seen.where}`);
          if (!seen) metrics.set(name, m);
        }
      }
      node.forEachChild(visit);
    });
  }
  if (problems.length > 0) throw new Error(`gen-metrics-docs:\n  ${problems.join('\n  ')}`);
  return [...metrics.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** The unit a metric's name says (Prometheus naming: base unit suffix, _total for counts). */
export function unitOf(m) {
  if (m.name.endsWith('_not_after_seconds')) return 'Unix time (s)';
  if (m.name.endsWith('_seconds')) return 'seconds';
  if (m.name.endsWith('_bytes')) return 'bytes';
  if (m.name.endsWith('_version')) return 'rule-set version';
  if (m.type === 'counter') return 'count';
  if (/_(synced|is_leader|reachable|blocked)$/.test(m.name)) return '0 or 1';
  return 'count';
}

function componentOf(m) {
  return m.name.startsWith('cfnet_agent_') ? 'cfnet-agent' : 'cfnet-controller';
}

function cell(text) {
  return String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');
}

export function renderMetricsDoc(metrics) {
  const table = (component, port) => {
    const rows = metrics
      .filter((m) => componentOf(m) === component)
      .map(
        (m) =>
          `| \`${m.name}\` | ${m.type} | ${m.labels.length ? m.labels.map((l) => `\`${l}\``).join(', ') : '—'} | ${unitOf(m)} | ${cell(m.help)} |`,
      );
    return [
      `## ${component} (${port})`,
      '',
      '| name | type | labels | unit | meaning |',
      '|---|---|---|---|---|',
      ...rows,
    ].join('\n');
  };
  return `# Metrics reference

<!-- Generated by scripts/gen-metrics-docs.mjs from the metrics the code registers; do not edit.
     test/unit/ops-metrics.test.ts fails when this page is stale. -->

Every cfnet process serves Prometheus metrics in plain HTTP on a local port: the controller on its
operator port (\`/metrics\`, 127.0.0.1:4191 by default, beside \`/healthz\`, \`/readyz\` and the
dashboard), the agent on 127.0.0.1:4192 (\`metrics_port\`, \`metrics_address\`). On BOSH both jobs
render \`config/prom_scraper_config.yml\`, so loggregator's prom-scraper (loggregator-agent-release,
on every VM of cf-deployment) collects them with source id \`cfnet-controller\` or \`cfnet-agent\`
and the instance id of the VM: they reach the firehose, log cache and metric syslog drains like
any CF component's. A Prometheus of your own can scrape the same endpoints (set the address to
0.0.0.0 or reach them through an SSH tunnel). \`ops/\` has alert rules and a Grafana dashboard
built on these names (docs/operations.md, "Alerts and dashboard").

Every series carries \`component\` (\`controller\` or \`agent\`); the agent's also carry \`cell\`,
the cell id. Besides the table, each process exports Node.js's process metrics with the \`cfnet_\` prefix
(\`cfnet_process_cpu_seconds_total\`, \`cfnet_process_resident_memory_bytes\`,
\`cfnet_nodejs_eventloop_lag_seconds\`, \`cfnet_nodejs_heap_size_used_bytes\`, …, from
prom-client's default collectors).

Types: a **counter** only grows (use \`rate()\`); a **gauge** is a value at scrape time; a
**histogram** has \`_bucket\`, \`_sum\` and \`_count\` series (use \`histogram_quantile()\`).

${table('cfnet-controller', 'operator port, 4191')}

A gauge read at scrape time by the controller (queue, convergence, world, leadership) answers for
the whole foundation from Redis on every replica; alert on one replica's value (\`max\` or \`min\`
over replicas), not on their sum.

${table('cfnet-agent', 'metrics port, 4192')}
`;
}

async function main() {
  const check = process.argv.includes('--check');
  const root = new URL('..', import.meta.url).pathname;
  const doc = renderMetricsDoc(collectMetrics(join(root, 'src')));
  const file = join(root, 'docs', 'metrics.md');
  let current = '';
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    // first run
  }
  if (check) {
    if (current !== doc) {
      console.error('docs/metrics.md is stale: node scripts/gen-metrics-docs.mjs');
      process.exit(1);
    }
    return;
  }
  if (current !== doc) writeFileSync(file, doc);
  console.log(`docs/metrics.md: ${doc.split('\n').filter((l) => l.startsWith('| `cfnet_')).length} metrics`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
