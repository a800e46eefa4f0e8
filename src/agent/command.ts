import type { Command } from 'commander';
import type { LogFn } from 'pino';
import { helpFooter } from '../lib/command.js';
import { errorMessage } from '../lib/errors.js';
import { EXIT, exitHelp } from '../lib/exit-codes.js';
import { redactUrlCredentials } from '../lib/redact.js';
import { addSettingOptions, flagValues, SettingsError } from '../lib/settings/index.js';
import { AGENT_TABLE, type AgentConfig, readConfigFile, resolveAgentConfig } from './config.js';

/**
 * How long a stop may take whatever is unreachable: loops get 2 s, the state is saved, then the
 * process exits regardless (nothing is flushed: every rule stays in force). A second signal exits now.
 */
export const AGENT_STOP_DEADLINE_MS = 5000;

/** `cfnet agent`: the per-cell agent. Every setting is a flag, a CFNET_AGENT_* variable or a config key. */
export function registerAgentCommands(program: Command): void {
  const cmd = program
    .command('agent')
    .description(
      "run the cell agent: overlay subnet lease and VXLAN routes, rule-set long-poll applied with one nft transaction per change, status reports, the warm CNI executor. Run it in the cell's network namespace as root. Settings: flag > environment > --config file > default.",
    )
    .option('--config <file>', 'JSON file of settings (keys as in parentheses below, e.g. "cellId")')
    .option(
      '--dry-run',
      'render and report rule sets and overlay changes but write nothing to the kernel (no nft, no VXLAN device, no CNI executor); needs no root. For demos',
    )
    .option(
      '--check',
      'validate the settings and the files they name (caCert; clientCert and clientKey: one pair naming this cell, unexpired, or absent with bootstrapTokenFile, which must then hold a token), print a short summary and exit: 0 valid, 2 invalid',
    );
  addSettingOptions(cmd, AGENT_TABLE);
  helpFooter(cmd, {
    examples: [
      'cfnet agent --config /var/vcap/jobs/cfnet-agent/config/agent.json',
      'cfnet agent --config agent.json --dry-run   # render and report only',
    ],
    exit: exitHelp(['ok', 'error', 'invalid']),
  });
  cmd.action(async (opts: Record<string, unknown>) => {
    let config: AgentConfig;
    try {
      const file = typeof opts.config === 'string' ? readConfigFile(opts.config) : {};
      config = resolveAgentConfig({ file, env: process.env, flags: flagValues(AGENT_TABLE, opts) });
      if (opts.check) {
        const { checkAgentFiles } = await import('./check.js');
        const found = checkAgentFiles(config);
        const lines = [
          `cfnet agent: settings valid for cell ${config.cellId}, controller ${redactUrlCredentials(config.controllerUrl)}`,
          ...found.map((f) => `  ${f.setting} ${f.path}: ${f.found}`),
        ];
        process.stdout.write(`${lines.join('\n')}\n`);
        return;
      }
    } catch (err) {
      const msg = err instanceof SettingsError ? err.message : errorMessage(err);
      process.stderr.write(`cfnet agent: ${msg}\n`);
      process.exitCode = EXIT.invalid;
      return;
    }
    // loaded here, not at start-up of the CLI: other commands do not pay for the agent's modules
    let agent: {
      log: { info: LogFn; warn: LogFn; fatal: LogFn };
      start(): Promise<void>;
      stop(): Promise<void>;
    };
    if (config.router) {
      if (opts.dryRun === true) {
        process.stderr.write('cfnet agent: --dry-run is not available in router mode\n');
        process.exitCode = EXIT.invalid;
        return;
      }
      const { RouterAgent } = await import('./router.js');
      agent = new RouterAgent({ config });
    } else {
      const { CellAgent } = await import('./agent.js');
      agent = new CellAgent({ config, dryRun: opts.dryRun === true });
    }
    let stopping: Promise<void> | null = null;
    const stop = (signal: string) => {
      if (stopping) process.exit(EXIT.error); // a second signal: now
      agent.log.info({ signal, deadlineMs: AGENT_STOP_DEADLINE_MS }, 'signal received');
      setTimeout(() => {
        agent.log.warn('stop deadline reached; exiting (rules stay in force)');
        process.exit(EXIT.error);
      }, AGENT_STOP_DEADLINE_MS).unref();
      stopping = agent.stop().finally(() => process.exit(EXIT.ok));
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    try {
      await agent.start();
    } catch (err) {
      agent.log.fatal({ err }, config.router ? 'router agent failed to start' : 'cell agent failed to start');
      await agent.stop().catch(() => undefined);
      process.exit(EXIT.error);
    }
  });
}
