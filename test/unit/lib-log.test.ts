/** Errors logged as `{ err }` keep their stable code and context (src/lib/log.ts). */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { CommandError } from '../../src/host/index.js';
import { createLogger } from '../../src/lib/log.js';
import { FencedOffError } from '../../src/state/errors.js';

function capture(): { lines: Record<string, unknown>[]; sink: Writable } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      lines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, sink };
}

describe('logged errors', () => {
  it('a CfnetError logged as { err } keeps type, code, message and context', () => {
    const { lines, sink } = capture();
    const log = createLogger('t', { level: 'info' }, sink);
    log.warn({ err: new CommandError(['ip', 'link', 'del', 'x'], 1, 'Cannot find device "x"\n') }, 'failed');
    log.warn({ err: new FencedOffError({ cellId: 'c1' }), cell: 'c1' }, 'fenced');
    const [cmd, fenced] = lines.map((l) => l.err as Record<string, unknown>);
    assert.equal(cmd!.type, 'CommandError');
    assert.equal(cmd!.code, 'CFNET_HOST_COMMAND');
    assert.deepEqual((cmd!.context as { argv: string[] }).argv, ['ip', 'link', 'del', 'x']);
    assert.equal((cmd!.context as { exitCode: number }).exitCode, 1);
    assert.equal(typeof cmd!.message, 'string');
    assert.equal(fenced!.code, 'CFNET_FENCED_OFF');
    assert.deepEqual(fenced!.context, { cellId: 'c1' });
    assert.equal(lines[1]!.cell, 'c1');
  });

  it('a value that is not an Error is logged as it is', () => {
    const { lines, sink } = capture();
    createLogger('t', { level: 'info' }, sink).warn({ err: 'plain text' }, 'failed');
    assert.equal(lines[0]!.err, 'plain text');
  });
});
