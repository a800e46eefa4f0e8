import type { Command } from 'commander';
import { applyCommandConventions, CfnetCommand, exitStatusOf, helpFooter } from '../lib/command.js';
import { COMMON_EXITS, exitHelp } from '../lib/exit-codes.js';
import { registerCommands } from './commands.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new CfnetCommand('cfnet')
    .description(
      'cfnet: container networking for Cloud Foundry (controller, cell agent, CNI plugin, simulator, operator tools)',
    )
    .version(VERSION)
    .enablePositionalOptions();
  registerCommands(program);
  helpFooter(program, {
    examples: [
      'cfnet cells                                   # is every cell enforcing?',
      'cfnet explain --from <app> --to <app> --port 8080',
      'cfnet controller --config controller.json',
      'cfnet <command> --help',
    ],
    exit: exitHelp([...COMMON_EXITS, 'denied', 'drift']),
  });
  applyCommandConventions(program);
  return program;
}

/** Runs the CLI; usage errors end in exit status 2 (src/lib/exit-codes.ts), other errors are thrown. */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const status = exitStatusOf(err, (t) => process.stderr.write(t));
    if (status === undefined) throw err;
    process.exitCode = status;
  }
}
