/**
 * Lean entry point of the cell agent: `node dist/agent/main.js [--config agent.json] [flags]` takes
 * the same settings as `cfnet agent` but loads only the agent's modules (the full `cfnet` CLI loads
 * every component at start-up, which costs the agent tens of MB of resident memory).
 */
import { applyCommandConventions, CfnetCommand, exitStatusOf } from '../lib/command.js';
import { EXIT } from '../lib/exit-codes.js';
import { registerAgentCommands } from './command.js';

const program = new CfnetCommand('cfnet').enablePositionalOptions();
registerAgentCommands(program);
applyCommandConventions(program);
program.parseAsync([process.argv[0]!, process.argv[1]!, 'agent', ...process.argv.slice(2)]).catch((err) => {
  const status = exitStatusOf(err, (t) => process.stderr.write(t));
  if (status !== undefined) {
    process.exitCode = status;
    return;
  }
  process.stderr.write(`cfnet-agent: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(EXIT.error);
});
