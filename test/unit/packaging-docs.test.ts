// README.md stays true to the code: the generated settings tables match the settings the programs
// parse, every `cfnet …` command it shows exists (`--help` exits 0, in-process), the quick-start commands are
// npm scripts, every file it links or names exists, and its CNI key table matches the keys
// the plugin reads (PLUGIN_KEYS, CELL_CONFIG_KEYS). docs/operations.md: every command and option it shows exists.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
// @ts-expect-error: a plain ESM script without type declarations
import { replaceGenerated, withGeneratedTables } from '../../scripts/gen-config-docs.mjs';
import { AGENT_SETTINGS, envName as agentEnvName } from '../../src/agent/config.js';
import { AGENT_METRICS } from '../../src/agent/metrics.js';
import { PLUGIN_KEYS, parseNetConfig } from '../../src/cni/config.js';
import { CONTROLLER_SETTINGS, envName as controllerEnvName } from '../../src/controller/settings.js';
import { ValidationError } from '../../src/lib/errors.js';
import { METRICS } from '../../src/lib/metrics.js';
import { CELL_CONFIG_KEYS } from '../../src/model/config.js';
import { cfnetHelp } from '../helpers/cli-help.js';

const root = new URL('../..', import.meta.url).pathname;
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** Lines of the README's fenced code blocks. */
function codeLines(text: string): string[] {
  const out: string[] = [];
  let inside = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('```')) inside = !inside;
    else if (inside) out.push(line);
  }
  return out;
}

/** The table rows (first cell) of the section that starts with `heading`. */
function tableKeys(text: string, heading: string): string[] {
  const start = text.indexOf(heading);
  assert.ok(start >= 0, `README has no ${heading}`);
  const rest = text.slice(start + heading.length);
  const end = rest.search(/\n#{1,3} /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `'))
    .flatMap((l) => [...l.split('|')[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
}

describe('README.md', () => {
  it('the settings tables are generated from the controller and agent settings', () => {
    const expected = withGeneratedTables(
      readme,
      { settings: CONTROLLER_SETTINGS, envName: controllerEnvName },
      { settings: AGENT_SETTINGS, envName: agentEnvName },
    );
    assert.equal(readme, expected, 'README.md is stale: npm run build && node scripts/gen-config-docs.mjs');
    for (const s of CONTROLLER_SETTINGS) assert.ok(readme.includes(`| \`${s.key}\` |`), s.key);
    for (const s of AGENT_SETTINGS) assert.ok(readme.includes(`| \`${s.key}\` |`), s.key);
    assert.throws(() => replaceGenerated('no markers', 'controller-settings', 'x'), /no <!-- generated/);
  });

  it('quick start: exactly the two commands, both npm scripts', () => {
    const lines = codeLines(readme);
    assert.ok(lines.some((l) => l.startsWith('npm ci && npm run demo ')));
    assert.ok(lines.some((l) => l.startsWith('npm ci && npm test ')));
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    assert.match(pkg.scripts.demo ?? '', /cfnet\.js demo/);
    assert.ok(pkg.scripts.test);
    const ci = readFileSync(join(root, '.ci', 'run'), 'utf8');
    assert.match(
      ci,
      /^PATH="\$\{node24_dir\}\/bin:\$\{PATH\}" npm test$/m,
      '.ci/run runs the README test command on the shipped Node.js 24',
    );
    assert.match(
      ci,
      /^"\$\{machine_node\}" scripts\/run-tests\.mjs unit\/$/m,
      "and the unit tests on the machine's node",
    );
    // What the README says .ci/run installs is what it installs.
    for (const pkgName of [
      'nftables',
      'iproute2',
      'iptables',
      'redis-server',
      'curl',
      'conntrack',
      'containernetworking-plugins',
      'ruby',
      'chromium',
      'prometheus',
      'golang-go',
      'golang-github-appc-cni-dev',
      'gcc',
      'libc6-dev',
    ]) {
      assert.ok(ci.includes(`need_apt+=(${pkgName})`), `.ci/run does not install ${pkgName}`);
      assert.ok(readme.includes(`\`${pkgName}\``), `README does not list ${pkgName}`);
    }
  });

  const commands = new Set<string>();
  for (const line of [...codeLines(readme), ...readme.matchAll(/`(cfnet [^`]+)`/g)].map((x) =>
    typeof x === 'string' ? x : x[1]!,
  )) {
    const m = /^(?:node bin\/cfnet\.js|cfnet) ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)*)/.exec(line.trim());
    if (m) commands.add(m[1]!);
  }
  for (const cmd of [...commands].sort()) {
    it(`\`cfnet ${cmd}\` exists`, () => {
      const res = cfnetHelp(cmd.split(' '));
      assert.equal(res.status, 0, `cfnet ${cmd} --help: ${res.text}`);
      // commander answers an unknown command's --help with the top-level usage: ask for this one's.
      assert.ok(res.text.startsWith(`Usage: cfnet ${cmd} `), `cfnet ${cmd} is not a command`);
    });
  }

  it('shows the operator and component commands', () => {
    for (const cmd of ['controller', 'agent', 'demo', 'queue', 'events', 'rules', 'cells', 'explain']) {
      assert.ok(
        [...commands].some((c) => c.split(' ')[0] === cmd),
        `README shows no cfnet ${cmd}`,
      );
    }
  });

  it('every linked or named file exists, and linked headings exist', () => {
    const links = [...readme.matchAll(/\]\(([^)#\s]+)(#[^)]+)?\)/g)].filter((m) => !/^[a-z]+:/.test(m[1]!));
    assert.ok(links.length > 5);
    for (const [, path, anchor] of links) {
      assert.ok(existsSync(join(root, path!)), `README links ${path}, which does not exist`);
      if (anchor) {
        const headings = readFileSync(join(root, path!), 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('#'))
          .map((l) =>
            l
              .replace(/^#+\s*/, '')
              .toLowerCase()
              .replace(/[^a-z0-9 -]/g, '')
              .replaceAll(' ', '-'),
          );
        assert.ok(headings.includes(anchor.slice(1)), `${path} has no heading ${anchor}`);
      }
    }
    const named = new Set(
      [
        ...readme.matchAll(
          /(?:^|[\s`(])((?:scripts|bosh\/scripts|bosh\/operations|\.ci|bin|docs|docker)\/[\w.-]+)/g,
        ),
      ].map((m) => m[1]!.replace(/[.,]$/, '')),
    );
    for (const p of named) assert.ok(existsSync(join(root, p)), `README names ${p}, which does not exist`);
    for (const p of ['docker-compose.yml', 'Dockerfile', 'bosh/operations/use-external-redis.yml']) {
      assert.ok(existsSync(join(root, p)), p);
    }
    assert.ok(existsSync(dirname(join(root, 'src', 'cni', 'config.ts'))));
  });

  it('the CNI key table lists the keys the plugin reads, and only those', () => {
    const documented = tableKeys(readme, '### CNI plugin');
    assert.deepEqual(
      [...documented].sort(),
      [...PLUGIN_KEYS, ...CELL_CONFIG_KEYS].sort(),
      'README ### CNI plugin documents exactly PLUGIN_KEYS (src/cni/config.ts) and CELL_CONFIG_KEYS (src/model/config.ts)',
    );
  });

  it('every key of the CNI key table is read: an invalid value of it is refused naming it', () => {
    const base = { cniVersion: '1.0.0', name: 'cfnet', type: 'cfnet-cni', subnet: '10.255.1.0/24' };
    assert.ok(parseNetConfig(base));
    for (const key of [...PLUGIN_KEYS, ...CELL_CONFIG_KEYS]) {
      assert.throws(
        () => parseNetConfig({ ...base, [key]: { not: 'a valid value' } }),
        (e: unknown) => e instanceof ValidationError && e.field.split(/[.[]/)[0] === key,
        `parseNetConfig does not read ${key}`,
      );
    }
  });
});

describe('docs/operations.md', () => {
  const ops = readFileSync(join(root, 'docs', 'operations.md'), 'utf8');
  /** command words → the options shown with it, from the code blocks and the inline examples */
  const shown = new Map<string, Set<string>>();
  for (const text of [...codeLines(ops), ...[...ops.matchAll(/`(cfnet [^`]+)`/g)].map((m) => m[1]!)]) {
    for (const part of text.split(/\s(?:\/|#)\s/)) {
      const m = /^\s*cfnet ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)*)(.*)$/.exec(part);
      if (!m) continue;
      const flags = shown.get(m[1]!) ?? new Set<string>();
      for (const f of m[2]!.matchAll(/(?:^|\s)(--[a-z][a-z-]*|-f)\b/g)) flags.add(f[1]!);
      shown.set(m[1]!, flags);
    }
  }

  it('shows every operator command', () => {
    for (const cmd of [
      'cells',
      'rules',
      'explain',
      'events',
      'queue counts',
      'queue replay',
      'queue retry',
    ]) {
      assert.ok(shown.has(cmd), `docs/operations.md shows no cfnet ${cmd}`);
    }
  });

  for (const [cmd, flags] of [...shown].sort()) {
    it(`\`cfnet ${cmd}\` and its options ${[...flags].join(' ')} exist`, () => {
      const res = cfnetHelp(cmd.split(' '));
      assert.equal(res.status, 0, `cfnet ${cmd} --help: ${res.text}`);
      assert.ok(res.text.startsWith(`Usage: cfnet ${cmd} `), `cfnet ${cmd} is not a command`);
      for (const f of flags) {
        assert.match(res.text, new RegExp(`(^|[ ,])${f}[ ,\n]`, 'm'), `cfnet ${cmd} has no option ${f}`);
      }
    });
  }

  it('names the metrics the controller and the agent export', () => {
    const named = [...ops.matchAll(/`(cfnet_(?:controller|agent)_[a-z_]+)`/g)].map((m) => m[1]!);
    assert.ok(named.length >= 10);
    const exported = new Set<string>([...Object.values(METRICS), ...Object.values(AGENT_METRICS)]);
    for (const name of named) assert.ok(exported.has(name), `${name} is not a metric of cfnet`);
  });
});
