/** Host commands: the one runner (argv only, never a shell) and commands started ahead of input. */
export { type PendingCommand, startCommand } from './pending.js';
export {
  CommandError,
  type CommandResult,
  DEFAULT_TIMEOUT_MS,
  parseJsonOutput,
  type Runner,
  type RunOptions,
  type RunResult,
  run,
  runCommand,
} from './run.js';
