/** The one runner for host commands (src/host): argv only, stdin, timeout, allowFail, CommandError. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CommandError, run, runCommand } from '../../src/host/index.js';

describe('host command runner', () => {
  it('passes argv verbatim (no shell) and feeds stdin', async () => {
    const r = await run(['cat'], { input: 'a $(b) ; c' });
    assert.equal(r.stdout, 'a $(b) ; c');
    assert.equal(r.code, 0);
    const echoed = await run(['echo', '$HOME', '|', 'x']);
    assert.equal(echoed.stdout, '$HOME | x\n');
  });

  it('rejects a non-zero exit with CommandError carrying code, argv, exit code and stderr', async () => {
    const err = await run(['sh', '-c', 'echo nope >&2; exit 3']).catch((e: unknown) => e);
    assert.ok(err instanceof CommandError);
    assert.equal(err.code, 'CFNET_HOST_COMMAND');
    assert.deepEqual(err.argv, ['sh', '-c', 'echo nope >&2; exit 3']);
    assert.equal(err.exitCode, 3);
    assert.equal(err.stderr, 'nope\n');
    assert.equal(err.context.exitCode, 3);
  });

  it('resolves a non-zero exit with its code when allowFail', async () => {
    const r = await run(['sh', '-c', 'exit 4'], { allowFail: true });
    assert.equal(r.code, 4);
  });

  it('kills a command after its timeout', async () => {
    const err = await run(['sleep', '5'], { timeoutMs: 50 }).catch((e: unknown) => e);
    assert.ok(err instanceof CommandError);
    assert.equal(err.timedOut, true);
    assert.equal(err.exitCode, null);
    const allowed = await run(['sleep', '5'], { timeoutMs: 50, allowFail: true });
    assert.equal(allowed.code, null);
  });

  it('rejects a command that cannot start, even when allowFail', async () => {
    const err = await run(['/nonexistent/cfnet-no-such-binary'], { allowFail: true }).catch(
      (e: unknown) => e,
    );
    assert.ok(err instanceof CommandError);
    assert.equal(err.exitCode, null);
  });

  it('runCommand (the agent Runner) returns stdout and stderr', async () => {
    const r = await runCommand(['sh', '-c', 'echo out; echo err >&2']);
    assert.deepEqual(r, { stdout: 'out\n', stderr: 'err\n' });
  });
});
