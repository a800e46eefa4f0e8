/**
 * `cfnet <argv> --help` run in-process on the command tree of the source (src/cli/main.ts): the
 * documentation and packaging tests check commands and options without a build or a process.
 */
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.js';

/** What `cfnet <argv> --help` prints (stdout and stderr) and its exit status. */
export function cfnetHelp(argv: string[]): { status: number; text: string } {
  const program = buildProgram();
  let text = '';
  const capture = (c: Command): void => {
    c.exitOverride().configureOutput({
      writeOut: (s) => {
        text += s;
      },
      writeErr: (s) => {
        text += s;
      },
    });
    for (const sub of c.commands) capture(sub);
  };
  capture(program);
  try {
    program.parse(['node', 'cfnet', ...argv, '--help']);
  } catch (err) {
    return { status: (err as { exitCode?: number }).exitCode ?? 1, text };
  }
  return { status: 0, text };
}
