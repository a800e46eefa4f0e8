// The `cfnet` wrappers the BOSH jobs put in bin/: on a controller VM the operator tools run with the
// job's Node.js and the controller's config (its Redis settings, CFNET_CONFIG); on a cell
// `cfnet dataplane show|drift|apply` run with the agent's nft, table and lock directory, and any
// flag the operator gives wins. Rendered by scripts/render-bosh-templates.rb and run against a
// stand-in cfnet.js that reports its argv and environment.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_LOCK_DIR } from '../../src/dataplane/layout.js';

const root = new URL('../..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'cfnet-cli-wrapper-'));
after(() => rmSync(work, { recursive: true, force: true }));

// A package tree like /var/vcap/packages: node24/bin/node (this node) and cfnet/bin/cfnet.js (a
// stand-in printing what it was run with).
const packages = join(work, 'packages');
mkdirSync(join(packages, 'node24', 'bin'), { recursive: true });
mkdirSync(join(packages, 'cfnet', 'bin'), { recursive: true });
mkdirSync(join(packages, 'nftables', 'sbin'), { recursive: true });
symlinkSync(process.execPath, join(packages, 'node24', 'bin', 'node'));
writeFileSync(
  join(packages, 'cfnet', 'bin', 'cfnet.js'),
  'console.log(JSON.stringify({ node: process.execPath, argv: process.argv.slice(2), config: process.env.CFNET_CONFIG ?? null, path: process.env.PATH }));\n',
);

function renderWrapper(job: string, sets: string[] = []): string {
  const out = join(work, `render-${job}`);
  const res = spawnSync(
    'ruby',
    [
      join(root, 'scripts', 'render-bosh-templates.rb'),
      '--out',
      out,
      '--job',
      job,
      '--only',
      'bin/cfnet',
      ...sets,
    ],
    { encoding: 'utf8' },
  );
  const report = JSON.parse(res.stdout) as {
    files: { dest: string; path: string; kind: string }[];
    errors: unknown[];
  };
  assert.deepEqual(report.errors, []);
  const f = report.files.find((x) => x.dest === 'bin/cfnet');
  assert.ok(f, `${job} renders no bin/cfnet`);
  assert.equal(f.kind, 'shell');
  // point the wrapper at the stand-in package tree instead of /var/vcap/packages
  const text = readFileSync(f.path, 'utf8').replace('packages=/var/vcap/packages', `packages=${packages}`);
  assert.ok(text.includes(`packages=${packages}`), 'the wrapper names the package root once');
  const script = join(work, `${job}-cfnet`);
  writeFileSync(script, text);
  chmodSync(script, 0o755);
  return script;
}

function run(script: string, args: string[], env: Record<string, string> = {}) {
  const res = spawnSync(script, args, { encoding: 'utf8', env: { PATH: '/usr/bin:/bin', ...env } });
  return {
    status: res.status,
    stderr: res.stderr,
    out: res.status === 0 ? JSON.parse(res.stdout) : null,
  } as {
    status: number | null;
    stderr: string;
    out: { node: string; argv: string[]; config: string | null; path: string } | null;
  };
}

describe('bin/cfnet of cfnet-agent (on a cell)', () => {
  const nftDir = join(packages, 'nftables', 'sbin');
  const script = renderWrapper('cfnet-agent', [
    '--set',
    `cfnet-agent:node_binary=${join(packages, 'node24', 'bin', 'node')}`,
    '--set',
    `cfnet-agent:nft_binary=${join(nftDir, 'nft')}`,
  ]);

  it("cfnet dataplane show runs with the agent's node, nft first on PATH, its table and lock directory", () => {
    const r = run(script, ['dataplane', 'show']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.out!.argv, ['dataplane', 'show', '--table', 'cfnet', '--state-dir', DEFAULT_LOCK_DIR]);
    assert.equal(r.out!.path.split(':')[0], nftDir);
  });

  it('a table or lock directory the operator gives comes after the defaults (commander: the last wins)', () => {
    const r = run(script, ['dataplane', 'drift', 'rules.json', '--table', 'cfother']);
    assert.deepEqual(r.out!.argv, [
      'dataplane',
      'drift',
      '--table',
      'cfnet',
      '--state-dir',
      DEFAULT_LOCK_DIR,
      'rules.json',
      '--table',
      'cfother',
    ]);
  });

  it("follows the job's nft_table and cni_state_dir", () => {
    const custom = renderWrapper('cfnet-agent', [
      '--set',
      `cfnet-agent:node_binary=${join(packages, 'node24', 'bin', 'node')}`,
      '--set',
      'cfnet-agent:nft_table=cfnet_blue',
      '--set',
      'cfnet-agent:cni_state_dir=/var/vcap/data/cfnet-blue/state',
    ]);
    const r = run(custom, ['dataplane', 'apply', 'rules.json']);
    assert.deepEqual(r.out!.argv.slice(2, 6), [
      '--table',
      'cfnet_blue',
      '--state-dir',
      '/var/vcap/data/cfnet-blue/state',
    ]);
  });

  it('other commands pass through unchanged', () => {
    const r = run(script, ['dataplane', 'render', 'rules.json']);
    assert.deepEqual(r.out!.argv, ['dataplane', 'render', 'rules.json']);
    assert.deepEqual(run(script, ['--version']).out!.argv, ['--version']);
  });
});

describe('bin/cfnet of cfnet-controller', () => {
  const script = renderWrapper('cfnet-controller');
  const config = join(work, 'controller.json');
  writeFileSync(config, '{}\n');

  it("runs the CLI with the job's node24 and the controller's config (CFNET_CONFIG)", () => {
    const text = readFileSync(script, 'utf8');
    assert.match(text, /CFNET_CONFIG="\$\{CFNET_CONFIG:-\$\{job_dir\}\/config\/controller\.json\}"/);
    assert.match(text, /^job_dir=\/var\/vcap\/jobs\/cfnet-controller$/m);
    const r = run(script, ['cells', '--state', 'lagging'], { CFNET_CONFIG: config });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(r.out!.argv, ['cells', '--state', 'lagging']);
    assert.equal(r.out!.config, config);
  });

  it('says to use sudo when the config cannot be read', () => {
    const r = run(script, ['cells'], { CFNET_CONFIG: join(work, 'no-such.json') });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /cannot read .*no-such\.json \(run with sudo\)/);
  });
});
