/**
 * The exit-code table (src/lib/exit-codes.ts) as the built `cfnet` executable honours it (needs
 * `npm run build`: bin/cfnet.js runs dist/): one row per (command line, setup, expected status),
 * against a controller and the simulator on the tests' Redis, and — as root with nft — a real nft
 * table in a network namespace of this test for `dataplane drift` and `show`.
 */
import assert from 'node:assert/strict';
import { type SpawnOptions, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sampleRuleSet } from '../../src/dataplane/sample.js';
import { EXIT } from '../../src/lib/exit-codes.js';
import { createNetns, deleteNetns, exec, uniqueName } from '../helpers/netns.js';
import { type Foundation, REDIS_URL, startFoundation, testNamespace, waitUntil } from './ops-helpers.js';

const CLI = join(import.meta.dirname, '../../bin/cfnet.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node bin/cfnet.js <args>`, pointed at the tests' Redis (never the default 127.0.0.1:6379). */
function cfnetBin(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  const opts: SpawnOptions = {
    env: { PATH: process.env.PATH ?? '', CFNET_REDIS_URL: REDIS_URL, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  };
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], opts);
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => {
      stdout += b.toString('utf8');
    });
    child.stderr!.on('data', (b: Buffer) => {
      stderr += b.toString('utf8');
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** One row of the table: the command line, the status it must end with, what it must print. */
interface Row {
  args: () => string[];
  exit: number;
  stdout?: RegExp;
  stderr?: RegExp;
  /** Text that must not appear on stdout or stderr. */
  not?: RegExp;
}

async function check(rows: readonly Row[]): Promise<void> {
  for (const row of rows) {
    const args = row.args();
    const r = await cfnetBin(args);
    const what = `cfnet ${args.join(' ')}\nstdout: ${r.stdout.slice(0, 400)}\nstderr: ${r.stderr.slice(0, 400)}`;
    assert.equal(r.code, row.exit, what);
    if (row.stdout) assert.match(r.stdout, row.stdout, what);
    if (row.stderr) assert.match(r.stderr, row.stderr, what);
    if (row.not) assert.doesNotMatch(r.stdout + r.stderr, row.not, what);
  }
}

describe('cfnet exit statuses: one table, every command', () => {
  let f: Foundation;
  let src = '';
  let dst = '';
  let cell = '';
  const empty = testNamespace('exit-empty');
  const ns = () => ['--redis-namespace', f.ns];
  const wrong = ['--redis-namespace', empty];

  before(async () => {
    f = await startFoundation('exit-codes');
    const cells = [...f.sim.world.cells.keys()].sort();
    cell = cells[0]!;
    const a = await f.sim.apply({ kind: 'app-start', name: 'exit-src', instances: 1, cellIds: [cells[0]!] });
    const b = await f.sim.apply({ kind: 'app-start', name: 'exit-dst', instances: 1, cellIds: [cells[1]!] });
    src = a.result.appGuid as string;
    dst = b.result.appGuid as string;
    await f.sim.apply({ kind: 'policy-add', source: src, destination: dst, port: 7001 });
    await waitUntil(
      'the policy is in the stored world',
      async () => {
        const r = await cfnetBin([
          'explain',
          '--from',
          src,
          '--to',
          dst,
          '--port',
          '7001',
          '--json',
          ...ns(),
        ]);
        return r.code === 0 ? r : null;
      },
      30_000,
      200,
    );
  });

  after(async () => {
    await f?.stop();
  });

  it('usage errors exit 2 with one short line and a pointer to --help', async () => {
    await check([
      {
        args: () => ['cells', '--bogus', ...ns()],
        exit: EXIT.invalid,
        stderr: /^cfnet cells: unknown option '--bogus'\n\(see 'cfnet cells --help'\)\n$/,
      },
      {
        args: () => ['explain', '--from', src, '--to', dst, '--port'],
        exit: EXIT.invalid,
        stderr: /^cfnet explain: --port needs a value\n\(see 'cfnet explain --help'\)\n$/,
        not: /undefined/,
      },
      {
        args: () => ['explain', '--from', src, '--to', dst, ...ns()],
        exit: EXIT.invalid,
        stderr: /--port needs a value for tcp/,
        not: /undefined/,
      },
      {
        args: () => ['queue', 'counts', '--redis-namespace'],
        exit: EXIT.invalid,
        stderr: /^cfnet queue counts: --redis-namespace needs a value\n/,
      },
      { args: () => ['rules', ...ns()], exit: EXIT.invalid, stderr: /^cfnet rules: --cell is required\n/ },
      { args: () => ['cells', '--sort', 'speed', ...ns()], exit: EXIT.invalid, stderr: /Allowed choices/ },
      { args: () => ['events', '--since', 'yesterdayish', ...ns()], exit: EXIT.invalid, stderr: /--help/ },
      { args: () => ['queue'], exit: EXIT.invalid, stderr: /Usage: cfnet queue/ },
      { args: () => ['no-such-command'], exit: EXIT.invalid, stderr: /unknown command 'no-such-command'/ },
      { args: () => ['controller', '--bogus'], exit: EXIT.invalid, stderr: /unknown option '--bogus'/ },
      // the agent's lean entry point (bin/cfnet.js agent) follows the same conventions
      { args: () => ['agent', '--bogus'], exit: EXIT.invalid, stderr: /unknown option '--bogus'/ },
      { args: () => ['sim', '--seed', 'x'], exit: EXIT.invalid, stderr: /--seed must be an integer/ },
      { args: () => ['dataplane', 'drift'], exit: EXIT.invalid, stderr: /missing required argument/ },
      { args: () => ['cells', '--help'], exit: EXIT.ok, stdout: /^Usage: cfnet cells/ },
      { args: () => ['--version'], exit: EXIT.ok, stdout: /^\d+\.\d+\.\d+\n$/ },
    ]);
  });

  it('a file named on the command line: unreadable is an error (1), not JSON is invalid input (2)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-exit-files-'));
    try {
      const bad = join(dir, 'bad.json');
      await writeFile(bad, '{not json');
      await check([
        { args: () => ['dataplane', 'render', bad], exit: EXIT.invalid, stderr: /not valid JSON/ },
        {
          args: () => ['dataplane', 'render', join(dir, 'missing.json')],
          exit: EXIT.error,
          stderr: /ENOENT/,
        },
        { args: () => ['asg', 'validate', bad], exit: EXIT.invalid, stderr: /not valid JSON/ },
        {
          args: () => ['asg', 'validate', join(dir, 'missing.json')],
          exit: EXIT.error,
          stderr: /cannot read/,
        },
      ]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a namespace no controller wrote exits 4 for every read command, as explain does', async () => {
    const msg = /no controller (in namespace|leader has written the world into this namespace)/;
    await check([
      { args: () => ['cells', ...wrong], exit: EXIT.noController, stderr: msg },
      { args: () => ['cells', '--json', ...wrong], exit: EXIT.noController, stderr: msg },
      { args: () => ['queue', 'counts', ...wrong], exit: EXIT.noController, stderr: msg },
      { args: () => ['queue', 'list', ...wrong], exit: EXIT.noController, stderr: msg },
      { args: () => ['events', ...wrong], exit: EXIT.noController, stderr: msg },
      { args: () => ['rules', '--cell', cell, ...wrong], exit: EXIT.noController, stderr: msg },
      { args: () => ['leases', ...wrong], exit: EXIT.noController, stderr: msg },
      {
        args: () => ['explain', '--from', src, '--to', dst, '--port', '7001', ...wrong],
        exit: EXIT.noController,
        stderr: msg,
      },
    ]);
  });

  it('read commands print a table by default and JSON with --json', async () => {
    const listed = await cfnetBin(['queue', 'list', '--limit', '1', '--json', ...ns()]);
    const jobId = (JSON.parse(listed.stdout) as { id: string }[])[0]?.id;
    assert.ok(jobId, `a reconcile job to show: ${listed.stderr}`);
    await check([
      { args: () => ['queue', 'list', '--limit', '1', ...ns()], exit: EXIT.ok, stdout: /^ID\s+STATE\s+CELL/ },
      { args: () => ['queue', 'show', jobId, ...ns()], exit: EXIT.ok, stdout: new RegExp(jobId) },
      { args: () => ['queue', 'show', jobId, '--json', ...ns()], exit: EXIT.ok, stdout: /^\{\n/ },
      { args: () => ['cells', ...ns()], exit: EXIT.ok, stdout: /^CELL\s+DESIRED\s+APPLIED/ },
      { args: () => ['cells', '--json', ...ns()], exit: EXIT.ok, stdout: /^\[\n/ },
      { args: () => ['queue', 'counts', ...ns()], exit: EXIT.ok, stdout: /^STATE\s+COUNT/ },
      { args: () => ['queue', 'counts', '--json', ...ns()], exit: EXIT.ok, stdout: /^\{\n/ },
      { args: () => ['queue', 'list', '--limit', '1', '--json', ...ns()], exit: EXIT.ok, stdout: /^\[/ },
      { args: () => ['events', '--limit', '3', ...ns()], exit: EXIT.ok, stdout: /^SEEN\s+TYPE/ },
      { args: () => ['events', '--limit', '3', '--json', ...ns()], exit: EXIT.ok, stdout: /^\[\n/ },
      { args: () => ['rules', '--cell', cell, ...ns()], exit: EXIT.ok, stdout: /^cell / },
      { args: () => ['rules', '--cell', cell, '--json', ...ns()], exit: EXIT.ok, stdout: /^\{\n/ },
      { args: () => ['leases', ...ns()], exit: EXIT.ok, stdout: /^(CELL|no leases)/ },
      { args: () => ['leases', '--json', ...ns()], exit: EXIT.ok, stdout: /^\{\n/ },
    ]);
  });

  it('explain answers with its status: 0 allowed, 1 denied (table or JSON), other failures their own', async () => {
    await check([
      {
        args: () => ['explain', '--from', src, '--to', dst, '--port', '7001', ...ns()],
        exit: EXIT.ok,
        stdout: /^ALLOWED by c2c policy tcp 7001 /,
      },
      {
        args: () => ['explain', '--from', src, '--to', dst, '--port', '7002', ...ns()],
        exit: EXIT.denied,
        stdout: /^DENIED: the policies from /,
        not: /DENIED: denied/,
      },
      {
        args: () => ['explain', '--from', dst, '--to', src, '--port', '7001', ...ns()],
        exit: EXIT.denied,
        stdout: /^DENIED: no c2c policy from /,
      },
      {
        args: () => ['explain', '--from', src, '--to', dst, '--port', '7002', '--json', ...ns()],
        exit: EXIT.denied,
        stdout: /"allowed": false/,
      },
      {
        args: () => ['explain', '--from', 'no-such-app', '--to', dst, '--port', '1', ...ns()],
        exit: EXIT.notFound,
        stderr: /no-such-app/,
      },
      {
        args: () => [
          'explain',
          '--from',
          src,
          '--to',
          dst,
          '--port',
          '7001',
          '--redis-url',
          'redis://127.0.0.1:1/0',
          '--connect-timeout',
          '1s',
        ],
        exit: EXIT.redisUnreachable,
        stderr: /unreachable/,
      },
      { args: () => ['queue', 'show', '424242', ...ns()], exit: EXIT.notFound, stderr: /not found/ },
    ]);
  });
});

const canNft = process.getuid?.() === 0;

describe('cfnet dataplane drift / show against a real nft table', {
  skip: !canNft && 'needs root and nft',
}, () => {
  const netns = uniqueName('hx');
  let dir = '';
  let rules = '';
  const dp = (...args: string[]) => [...args, '--netns', netns, '--state-dir', dir];

  before(async () => {
    await createNetns(netns);
    dir = await mkdtemp(join(tmpdir(), 'cfnet-exit-dp-'));
    rules = join(dir, 'rules.json');
    const rs = sampleRuleSet({ containers: 2, asgSets: 1, rulesPerSet: 2, c2cPerContainer: 1 });
    await writeFile(rules, JSON.stringify(rs));
  });

  after(async () => {
    await deleteNetns(netns);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('0 without drift, EXIT.drift with it (table or JSON), 0 after --repair', async () => {
    await check([
      // no table yet: drift found
      { args: () => dp('dataplane', 'drift', rules), exit: EXIT.drift, stdout: /table missing/ },
      { args: () => dp('dataplane', 'apply', rules), exit: EXIT.ok },
      { args: () => dp('dataplane', 'drift', rules), exit: EXIT.ok, stdout: /^no drift: table inet cfnet/ },
      { args: () => dp('dataplane', 'drift', rules, '--json'), exit: EXIT.ok, stdout: /"drift": false/ },
      {
        args: () => dp('dataplane', 'show'),
        exit: EXIT.ok,
        stdout: /^table inet cfnet: \d+ sets, \d+ chains/,
      },
      { args: () => dp('dataplane', 'show', '--json'), exit: EXIT.ok, stdout: /"exists": true/ },
    ]);
    // someone adds a chain to cfnet's table by hand
    const added = await exec(netns, ['nft', 'add', 'chain', 'inet', 'cfnet', 'hx_by_hand']);
    assert.equal(added.code, 0, added.stderr);
    await check([
      {
        args: () => dp('dataplane', 'drift', rules),
        exit: EXIT.drift,
        stdout: /extra chain\s+hx_by_hand\n1 difference\(s\) in table inet cfnet\n$/,
      },
      { args: () => dp('dataplane', 'drift', rules, '--json'), exit: EXIT.drift, stdout: /"drift": true/ },
      { args: () => dp('dataplane', 'drift', rules, '--repair'), exit: EXIT.ok, stdout: /repaired/ },
      { args: () => dp('dataplane', 'drift', rules), exit: EXIT.ok, stdout: /^no drift/ },
      {
        args: () => dp('dataplane', 'show', '--table', 'cfhxnone'),
        exit: EXIT.ok,
        stdout: /^table inet cfhxnone does not exist/,
      },
      {
        args: () => dp('dataplane', 'show', '--table', 'hx_none'),
        exit: EXIT.invalid,
        stderr: /invalid table/,
      },
    ]);
  });
});
