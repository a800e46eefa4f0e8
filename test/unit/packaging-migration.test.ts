// Migrating a cell from Silk in place: the agent's pre-start removes Silk's leftover VXLAN device
// (same VNI and port as cfnet's, which the kernel would refuse) and nothing else, and leaves
// everything alone on a cell that never ran Silk. The rendered script runs with every host command
// stubbed on PATH (each stub records its argv).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'cfnet-migration-'));
after(() => rmSync(work, { recursive: true, force: true }));

function renderPreStart(): string {
  const out = join(work, 'render');
  const res = spawnSync(
    'ruby',
    [
      join(root, 'scripts', 'render-bosh-templates.rb'),
      '--out',
      out,
      '--job',
      'cfnet-agent',
      '--only',
      'bin/pre-start',
    ],
    { encoding: 'utf8' },
  );
  const report = JSON.parse(res.stdout) as { files: { dest: string; path: string }[]; errors: unknown[] };
  assert.deepEqual(report.errors, []);
  return report.files.find((f) => f.dest === 'bin/pre-start')!.path;
}

/** Runs pre-start with stubbed host commands; `silkVtep` says whether `ip link show silk-vtep` finds it. */
function runPreStart(
  script: string,
  silkVtep: boolean,
): { status: number | null; calls: string[]; stdout: string } {
  const dir = mkdtempSync(join(work, 'stubs-'));
  const log = join(dir, 'calls.log');
  for (const cmd of ['sysctl', 'mkdir', 'chown', 'chmod', 'ip']) {
    const body =
      cmd === 'ip'
        ? `echo "ip $*" >> ${log}\nif [ "$1 $2" = "link show" ]; then exit ${silkVtep ? 0 : 1}; fi\nexit 0\n`
        : `echo "${cmd} $*" >> ${log}\n`;
    writeFileSync(join(dir, cmd), `#!/bin/sh\n${body}`);
    chmodSync(join(dir, cmd), 0o755);
  }
  const res = spawnSync('bash', [script], { encoding: 'utf8', env: { PATH: `${dir}:/usr/bin:/bin` } });
  const calls = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
  return { status: res.status, calls, stdout: res.stdout };
}

describe('cfnet-agent pre-start on a cell that ran Silk', () => {
  const script = renderPreStart();

  it("removes Silk's leftover silk-vtep so the agent can make its own VTEP", () => {
    assert.ok(
      !existsSync('/var/vcap/jobs/silk-daemon'),
      'this test expects no silk-daemon job on the machine',
    );
    const r = runPreStart(script, true);
    assert.equal(r.status, 0);
    assert.ok(r.calls.includes('ip link del silk-vtep'), r.calls.join('\n'));
    assert.match(r.stdout, /removing Silk's leftover VXLAN device silk-vtep/);
    // the only ip command that changes anything
    assert.deepEqual(
      r.calls.filter((c) => c.startsWith('ip ') && !c.startsWith('ip link show')),
      ['ip link del silk-vtep'],
    );
  });

  it('touches no interface on a cell without silk-vtep', () => {
    const r = runPreStart(script, false);
    assert.equal(r.status, 0);
    assert.deepEqual(
      r.calls.filter((c) => c.startsWith('ip ')),
      ['ip link show silk-vtep'],
    );
  });

  it('keeps silk-vtep while the silk-daemon job is still on the VM (Silk and cfnet never share a cell)', () => {
    const text = readFileSync(script, 'utf8');
    assert.match(text, /if \[ ! -e \/var\/vcap\/jobs\/silk-daemon \] && ip link show silk-vtep/);
  });
});
