/**
 * Every `cfnet` command's `--help`, walked from the command tree: at most HELP_WIDTH (80) columns
 * whatever the terminal, with examples, and the exit statuses on every command that runs something.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';
import { fitLine, usageMessage } from '../../src/lib/command.js';
import { EXIT, exitHelp } from '../../src/lib/exit-codes.js';
import { HELP_WIDTH } from '../../src/lib/settings/help.js';
import { cfnetHelp } from '../helpers/cli-help.js';

function commandPaths(): { path: string[]; leaf: boolean }[] {
  const out: { path: string[]; leaf: boolean }[] = [];
  const walk = (c: Command, path: string[]) => {
    out.push({ path, leaf: c.commands.length === 0 });
    for (const s of c.commands) walk(s, [...path, s.name()]);
  };
  walk(buildProgram(), []);
  return out;
}

describe('cfnet --help, every command', () => {
  const commands = commandPaths();

  it('the walk finds every command of the CLI (operator, components, tools)', () => {
    const names = commands.map((c) => c.path.join(' '));
    for (const n of [
      '',
      'cells',
      'explain',
      'queue counts',
      'dataplane drift',
      'controller',
      'agent',
      'demo',
    ])
      assert.ok(names.includes(n), n);
  });

  for (const { path, leaf } of commands) {
    const name = `cfnet ${path.join(' ')}`.trim();
    it(`${name} --help fits ${HELP_WIDTH} columns and shows examples${leaf ? ' and exit statuses' : ''}`, () => {
      const { status, text } = cfnetHelp(path);
      assert.equal(status, 0, text);
      const wide = text.split('\n').filter((l) => l.length > HELP_WIDTH);
      assert.deepEqual(wide, [], `${name}: lines over ${HELP_WIDTH} columns`);
      assert.match(text, /\nExamples:\n {2}\S/, name);
      if (leaf) assert.match(text, /\nExit status: 0 /, name);
    });
  }

  it('whatever the terminal width (a 200-column terminal still gets 80)', () => {
    const columns = process.stdout.columns;
    Object.defineProperty(process.stdout, 'columns', { value: 200, configurable: true });
    try {
      const { text } = cfnetHelp(['controller']);
      assert.ok(Math.max(...text.split('\n').map((l) => l.length)) <= HELP_WIDTH);
    } finally {
      Object.defineProperty(process.stdout, 'columns', { value: columns, configurable: true });
    }
  });
});

describe('usage errors and the exit-code table', () => {
  it("commander's messages are reworded: a missing value names the flag, nothing says undefined", () => {
    assert.equal(
      usageMessage("error: option '--port <port>' argument missing", 'commander.optionMissingArgument'),
      '--port needs a value',
    );
    assert.equal(
      usageMessage("error: option '-f, --follow <x>' argument missing", 'commander.optionMissingArgument'),
      '--follow needs a value',
    );
    assert.equal(
      usageMessage(
        "error: required option '--cell <cell>' not specified",
        'commander.missingMandatoryOptionValue',
      ),
      '--cell is required',
    );
    assert.equal(
      usageMessage("error: unknown option '--x'", 'commander.unknownOption'),
      "unknown option '--x'",
    );
  });

  it('a lone word too wide for its column moves left, whole', () => {
    const url = 'https://cloud-controller-ng.service.cf.internal:9023';
    assert.equal(fitLine(`${' '.repeat(38)}${url}`), `${' '.repeat(80 - url.length)}${url}`);
    assert.equal(fitLine('  short'), '  short');
  });

  it('explain denies with 1 (as kubectl auth can-i), drift has its own status, usage errors are 2', () => {
    assert.equal(EXIT.denied, 1);
    assert.equal(EXIT.invalid, 2);
    assert.equal(EXIT.noController, 4);
    // drift is told apart from a failure of nft (1) and from every other status
    const others = Object.entries(EXIT).filter(([k]) => k !== 'drift');
    assert.ok(others.every(([, v]) => v !== EXIT.drift));
    assert.equal(
      exitHelp(['ok', 'drift'], { ok: 'no drift' }),
      `Exit status: 0 no drift; ${EXIT.drift} drift found (dataplane drift only).`,
    );
  });
});

describe('invalid input messages', () => {
  it('a value that was not given reads "missing <field>", never "invalid <field> undefined"', async () => {
    const { ValidationError } = await import('../../src/lib/errors.js');
    assert.equal(
      new ValidationError('port', undefined, 'must be 1-65535').message,
      'missing port: must be 1-65535',
    );
    assert.equal(
      new ValidationError('port', 'x', 'must be 1-65535').message,
      'invalid port "x": must be 1-65535',
    );
  });
});
