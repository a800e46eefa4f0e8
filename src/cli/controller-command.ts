/**
 * `cfnet controller`: run a controller replica. Every setting is a flag, a `CFNET_…` environment
 * variable or a key of the `--config` JSON file (flag > environment > file > default).
 */
import type { Command } from 'commander';
import { Controller } from '../controller/controller.js';
import { SettingsError } from '../controller/errors.js';
import {
  CONTROLLER_SETTINGS,
  type ControllerSettings,
  describeSettings,
  envName,
  flagName,
  parseControllerSettings,
  readSettingsFile,
  type SettingKind,
  toControllerConfig,
} from '../controller/settings.js';
import { errorMessage } from '../lib/errors.js';
import { createLogger } from '../lib/log.js';

function placeholder(kind: SettingKind): string {
  switch (kind) {
    case 'int':
      return '<n>';
    case 'bool':
      return '[bool]';
    case 'path':
      return '<pem-file>';
    case 'url':
      return '<url>';
    case 'list':
      return '<a,b,…>';
    case 'listen':
      return '<host:port|off>';
    case 'secret':
      return '<secret>';
    default:
      return '<value>';
  }
}

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
    .option('--check', 'validate the settings, print them (secrets redacted) and exit');
  for (const s of CONTROLLER_SETTINGS) {
    const def =
      s.def === undefined
        ? ''
        : ` [default: ${Array.isArray(s.def) ? s.def.join(',') || '""' : String(s.def)}]`;
    cmd.option(
      `${flagName(s.key)} ${placeholder(s.kind)}`,
      `${s.describe} (${s.key}; env ${envName(s.key)})${def}`,
    );
  }
  cmd.action(async (opts: Record<string, unknown>) => {
    let settings: ControllerSettings;
    try {
      const path = typeof opts.config === 'string' ? opts.config : process.env.CFNET_CONFIG;
      const file = path ? readSettingsFile(path) : {};
      const flags: Record<string, unknown> = {};
      for (const s of CONTROLLER_SETTINGS) if (opts[s.key] !== undefined) flags[s.key] = opts[s.key];
      settings = parseControllerSettings({ flags, env: process.env, file });
    } catch (err) {
      process.stderr.write(
        `cfnet controller: ${err instanceof SettingsError ? err.message : errorMessage(err)}\n`,
      );
      process.exitCode = 2;
      return;
    }
    if (opts.check) {
      process.stdout.write(`${JSON.stringify(describeSettings(settings), null, 2)}\n`);
      return;
    }
    let controller: Controller;
    try {
      const config = toControllerConfig(settings);
      config.logger = createLogger('controller', { level: settings.logLevel });
      controller = new Controller(config);
      await controller.start();
    } catch (err) {
      process.stderr.write(`cfnet controller: ${errorMessage(err)}\n`);
      process.exitCode = 1;
      return;
    }
    let stopping: Promise<void> | null = null;
    const stop = (signal: string) => {
      if (stopping) return;
      controller.log.info({ signal }, 'stopping');
      stopping = controller
        .stop()
        .catch((err) => controller.log.error({ err: errorMessage(err) }, 'error while stopping'))
        .finally(() => process.exit(process.exitCode ?? 0));
      setTimeout(() => process.exit(1), 30_000).unref();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
