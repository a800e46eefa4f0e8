// Writes the controller and agent settings tables of README.md from the tables the programs
// themselves parse and print with --help (CONTROLLER_SETTINGS in src/controller/settings.ts,
// AGENT_SETTINGS in src/agent/config.ts), between the markers
//   <!-- generated:NAME (scripts/gen-config-docs.mjs) --> … <!-- /generated:NAME -->
// so the reference cannot drift from the code (test/unit/packaging-docs.test.ts checks it).
//
//   npm run build && node scripts/gen-config-docs.mjs           rewrite README.md
//   npm run build && node scripts/gen-config-docs.mjs --check   exit 1 when README.md is stale
import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

function cell(text) {
  return String(text).replaceAll('|', '\\|').replaceAll('\n', ' ');
}

function shownDefault(setting, requiredWithoutDefault) {
  const d = setting.def;
  if (d === undefined) return requiredWithoutDefault ? 'required' : '—';
  if (Array.isArray(d)) return d.length === 0 ? '`""`' : `\`${d.join(',')}\``;
  if (d === '') return '`""`';
  return `\`${d}\``;
}

/**
 * One markdown table: key (config file), environment variable, default, meaning. Flags are the
 * keys in kebab case (`redisUrl` → `--redis-url`).
 * @param {readonly {key: string, def?: unknown, describe: string}[]} settings
 * @param {(key: string) => string} envName
 * @param {{requiredWithoutDefault?: boolean}} [opts]
 */
export function settingsTable(settings, envName, opts = {}) {
  const rows = settings.map(
    (s) =>
      `| \`${s.key}\` | \`${envName(s.key)}\` | ${shownDefault(s, opts.requiredWithoutDefault ?? false)} | ${cell(s.describe)} |`,
  );
  return ['| setting | environment | default | meaning |', '|---|---|---|---|', ...rows].join('\n');
}

/** Replaces the text between the markers of `name`; throws when they are missing. */
export function replaceGenerated(text, name, body) {
  const open = `<!-- generated:${name} (scripts/gen-config-docs.mjs) -->`;
  const close = `<!-- /generated:${name} -->`;
  const start = text.indexOf(open);
  const end = text.indexOf(close);
  if (start < 0 || end < start) throw new Error(`README.md has no ${open} … ${close} block`);
  return `${text.slice(0, start + open.length)}\n${body}\n${text.slice(end)}`;
}

/** README text with both tables regenerated. */
export function withGeneratedTables(text, controller, agent) {
  const c = settingsTable(controller.settings, controller.envName);
  const a = settingsTable(agent.settings, agent.envName, { requiredWithoutDefault: true });
  return replaceGenerated(replaceGenerated(text, 'controller-settings', c), 'agent-settings', a);
}

async function main() {
  const check = process.argv.includes('--check');
  const root = new URL('..', import.meta.url);
  let controllerModule;
  let agentModule;
  try {
    controllerModule = await import(new URL('dist/controller/settings.js', root).href);
    agentModule = await import(new URL('dist/agent/config.js', root).href);
  } catch (err) {
    console.error(`gen-config-docs: run npm run build first (${err.message})`);
    process.exit(2);
  }
  const readme = new URL('README.md', root);
  const text = readFileSync(readme, 'utf8');
  const next = withGeneratedTables(
    text,
    { settings: controllerModule.CONTROLLER_SETTINGS, envName: controllerModule.envName },
    { settings: agentModule.AGENT_SETTINGS, envName: agentModule.envName },
  );
  if (check) {
    if (next !== text) {
      console.error('gen-config-docs: README.md is out of date; run node scripts/gen-config-docs.mjs');
      process.exit(1);
    }
    return;
  }
  if (next !== text) writeFileSync(readme, next);
  console.log(`gen-config-docs: README.md ${next === text ? 'unchanged' : 'updated'}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
