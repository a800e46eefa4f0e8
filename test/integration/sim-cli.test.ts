/**
 * `cfnet sim` itself (a child process: ephemeral ports, certificates written out and usable by the
 * clients, clean stop on SIGTERM), and `cfnet sim change|churn|summary|fault` against a running
 * simulator's admin API.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import { BbsClient } from '../../src/cf/bbs-client.js';
import { PolicyServerClient } from '../../src/cf/policy-client.js';
import { buildProgram } from '../../src/cli/main.js';
import { parseDuration } from '../../src/cli/sim-command.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';

async function run(args: string[]): Promise<unknown[]> {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  // The CLI prints JSON text; the test runner's own protocol writes bytes, which pass through.
  process.stdout.write = ((chunk: string | Uint8Array, ...rest: never[]) => {
    if (typeof chunk !== 'string') return write(chunk, ...rest);
    lines.push(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    await buildProgram()
      .exitOverride()
      .parseAsync(['node', 'cfnet', ...args]);
  } finally {
    process.stdout.write = write;
  }
  return lines
    .join('')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe('cfnet sim (the simulator process)', () => {
  it('starts on ephemeral ports, writes its CA and client certificate for the clients, stops on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-sim-cli-'));
    const ports = ['bbs', 'capi', 'uaa', 'cc-internal', 'policy', 'admin'].flatMap((s) => [
      `--${s}-port`,
      '0',
    ]);
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        "const { main } = await import('./src/cli/main.ts'); await main(['node', 'cfnet', ...process.argv.slice(1)]);",
        'sim',
        '--seed',
        '6',
        '--cert-dir',
        dir,
        ...ports,
      ],
      { cwd: new URL('../..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const out = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    try {
      const started = JSON.parse(String((await out.next()).value)) as {
        event: string;
        urls: Record<string, string>;
        tls: { ca: string; cert: string; key: string; caKey: string };
        counts: { actualLrps: number };
      };
      assert.equal(started.event, 'sim-started');
      for (const f of [started.tls.ca, started.tls.cert, started.tls.key, started.tls.caKey])
        assert.ok(f.startsWith(dir), f);
      assert.equal(statSync(started.tls.key).mode & 0o777, 0o600, 'keys are private');
      assert.equal(statSync(started.tls.caKey).mode & 0o777, 0o600);
      const tls = { caFile: started.tls.ca, certFile: started.tls.cert, keyFile: started.tls.key };
      const bbs = new BbsClient({ url: started.urls.bbs as string, tls });
      const policy = new PolicyServerClient({ url: started.urls.policyServer as string, tls });
      try {
        assert.equal((await bbs.actualLrps()).length, started.counts.actualLrps);
        assert.ok((await policy.policiesLastUpdated()) > 0n);
      } finally {
        bbs.close();
        policy.close();
      }
      child.kill('SIGTERM');
      const stopped = JSON.parse(String((await out.next()).value)) as { event: string };
      assert.equal(stopped.event, 'sim-stopped');
      assert.equal(await exited, 0);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('cfnet sim subcommands', () => {
  let sim: SimHandle;
  before(async () => {
    sim = await startSimulator({ seed: 2 });
  });
  after(() => sim.stop());

  it('change applies a change and prints the AppliedChange', async () => {
    const [out] = (await run([
      'sim',
      'change',
      'space-create',
      '--admin',
      sim.urls.admin,
      '--json',
      '{"count":2,"name":"cli"}',
    ])) as {
      kind: string;
      triggeredAt: number;
      result: { spaceGuids: string[] };
    }[];
    assert.equal(out?.kind, 'space-create');
    assert.equal(out?.result.spaceGuids.length, 2);
    assert.ok(out?.result.spaceGuids.every((g) => sim.world.spaces.has(g)));
    await assert.rejects(run(['sim', 'change', 'no-such-kind', '--admin', sim.urls.admin]));
    await assert.rejects(
      run(['sim', 'change', 'app-stop', '--admin', sim.urls.admin, '--json', '{"appGuid":"nope"}']),
      /422/,
    );
  });

  it('churn waits and prints the result; summary and fault work', async () => {
    const [res] = (await run([
      'sim',
      'churn',
      '--admin',
      sim.urls.admin,
      '--rate',
      '100',
      '--duration',
      '200ms',
      '--kinds',
      'policy-add,app-scale',
    ])) as {
      applied: number;
      byKind: Record<string, number>;
    }[];
    assert.ok((res?.applied ?? 0) >= 5);
    assert.deepEqual(
      Object.keys(res?.byKind ?? {})
        .sort()
        .filter((k) => !['app-scale', 'policy-add'].includes(k)),
      [],
    );
    const [summary] = (await run(['sim', 'summary', '--admin', sim.urls.admin])) as {
      counts: { spaces: number };
    }[];
    assert.equal(summary?.counts.spaces, sim.world.spaces.size);
    await run(['sim', 'fault', 'expire-tokens', '--admin', sim.urls.admin]);
    assert.equal(parseDuration('30s'), 30_000);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('250'), 250);
    assert.throws(() => parseDuration('soon'));
  });
});
