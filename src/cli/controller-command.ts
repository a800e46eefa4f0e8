/**
 * `cfnet controller`: run a controller replica. Every setting is a flag, a `CFNET_…` environment
 * variable or a key of the `--config` JSON file (flag > environment > file > default).
 */
import type { Command } from 'commander';
import { Controller } from '../controller/controller.js';
import { SettingsError } from '../controller/errors.js';
import {
  CONTROLLER_TABLE,
  type ControllerSettings,
  checkSettingFiles,
  describeSettings,
  parseControllerSettings,
  readSettingsFile,
  toControllerConfig,
} from '../controller/settings.js';
import { helpFooter } from '../lib/command.js';
import { errorMessage } from '../lib/errors.js';
import { EXIT, exitHelp } from '../lib/exit-codes.js';
import { createLogger } from '../lib/log.js';
import { redactUrlCredentials } from '../lib/redact.js';
import { addSettingOptions, flagValues } from '../lib/settings/index.js';

/**
 * How long a stop may take, whatever is unreachable (Redis, BBS, …): leadership released and
 * workers drained when possible, then the process exits regardless. A second signal exits at once.
 */
export const CONTROLLER_STOP_DEADLINE_MS = 5000;

export function registerControllerCommands(program: Command): void {
  const cmd = program
    .command('controller')
    .description(
      'run a controller replica: reconcile workers and the agent API on every replica; the elected leader also watches BBS, CAPI and the policy server and writes the world into Redis. ' +
        'Settings: flag > environment (CFNET_…) > --config JSON file (camelCase or snake_case keys) > default. SIGTERM/SIGINT stop gracefully (leadership released, workers drained).',
    )
    .option(
      '--config <file>',
      'JSON file of settings (keys as in parentheses below, e.g. "redisUrl"); env CFNET_CONFIG',
    )
    .option(
      '--check',
      'validate the settings and the files they name, print them (secrets redacted) and exit',
    );
  addSettingOptions(cmd, CONTROLLER_TABLE);
  helpFooter(cmd, {
    examples: [
      'cfnet controller --config controller.json',
      'cfnet controller --config controller.json --check   # validate, print, exit',
      'CFNET_REDIS_URL=redis://10.0.0.5:6379/0 cfnet controller --config c.json',
    ],
    exit: exitHelp(['ok', 'error', 'invalid']),
  });
  cmd.action(async (opts: Record<string, unknown>) => {
    let settings: ControllerSettings;
    try {
      const path = typeof opts.config === 'string' ? opts.config : process.env.CFNET_CONFIG;
      const file = path ? readSettingsFile(path) : {};
      const flags = flagValues(CONTROLLER_TABLE, opts);
      settings = parseControllerSettings({ flags, env: process.env, file });
      checkSettingFiles(settings);
    } catch (err) {
      const msg = err instanceof SettingsError ? err.message : errorMessage(err);
      process.stderr.write(`cfnet controller: ${redactUrlCredentials(msg)}\n`);
      process.exitCode = EXIT.invalid;
      return;
    }
    if (opts.check) {
      process.stdout.write(`${JSON.stringify(describeSettings(settings), null, 2)}\n`);
      return;
    }
    let controller: Controller;
    let stopping: Promise<void> | null = null;
    /** Stop within the deadline, then exit with `code`; a second call (signal) exits at once. */
    const stop = (reason: string, code: number) => {
      if (stopping) {
        process.exit(code === EXIT.ok ? EXIT.error : code);
      }
      controller.log.info({ reason, deadlineMs: CONTROLLER_STOP_DEADLINE_MS }, 'stopping');
      setTimeout(() => {
        controller.log.warn({ reason }, 'stop deadline reached; exiting without finishing');
        process.exit(code === EXIT.ok ? EXIT.error : code);
      }, CONTROLLER_STOP_DEADLINE_MS).unref();
      stopping = controller
        .stop()
        .catch((err) => controller.log.error({ err }, 'error while stopping'))
        .finally(() => process.exit(code));
    };
    try {
      const config = toControllerConfig(settings);
      config.logger = createLogger('controller', { level: settings.logLevel });
      // A fatal error of the leader (or anything unexpected) releases leadership before the exit,
      // so a standby takes over at once instead of after the lease runs out.
      config.onFatal = (err) => {
        controller.log.fatal({ err }, 'fatal error; releasing leadership and exiting');
        stop('fatal', EXIT.error);
      };
      controller = new Controller(config);
      process.on('uncaughtException', (err) => config.onFatal!(err));
      process.on('unhandledRejection', (err) => config.onFatal!(err));
      await controller.start();
    } catch (err) {
      process.stderr.write(`cfnet controller: ${redactUrlCredentials(errorMessage(err))}\n`);
      process.exitCode = err instanceof SettingsError ? EXIT.invalid : EXIT.error;
      return;
    }
    process.on('SIGTERM', () => stop('SIGTERM', EXIT.ok));
    process.on('SIGINT', () => stop('SIGINT', EXIT.ok));
  });
}
