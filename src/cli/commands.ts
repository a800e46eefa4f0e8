import type { Command } from 'commander';
import { registerAgentCommands } from '../agent/command.js';
import { registerDataplaneCommands } from '../dataplane/commands.js';
import { registerDemoCommand } from '../demo/command.js';
import { registerCniCommands } from './cni-command.js';
import { registerControllerCommands } from './controller-command.js';
import { registerModelCommands } from './model-commands.js';
import { registerOpsCommands } from './ops-commands.js';
import { registerSimCommands } from './sim-command.js';

/**
 * Every subcommand of `cfnet`, one registration function per component. Each component owns its
 * command module; this list only wires them together.
 */
export function registerCommands(program: Command): void {
  registerModelCommands(program);
  registerDataplaneCommands(program);
  registerCniCommands(program);
  registerSimCommands(program);
  registerAgentCommands(program);
  registerControllerCommands(program);
  registerOpsCommands(program);
  registerDemoCommand(program);
}
