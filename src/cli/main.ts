import { Command } from 'commander';
import { registerCommands } from './commands.js';

export const VERSION = '0.1.0';

export function buildProgram(): Command {
  const program = new Command('cfnet')
    .description(
      'cfnet: container networking for Cloud Foundry (controller, cell agent, CNI plugin, simulator, operator tools)',
    )
    .version(VERSION)
    .showHelpAfterError()
    .enablePositionalOptions();
  registerCommands(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  await buildProgram().parseAsync(argv);
}
