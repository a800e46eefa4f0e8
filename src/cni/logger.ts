/**
 * Loggers for the plugin. stdout belongs to CNI results, so a one-off invocation logs JSON lines to
 * stderr (the runtime captures it) or to `log_file`; secrets are redacted as everywhere in cfnet.
 */
import { pino } from 'pino';
import { type Logger, REDACT_PATHS } from '../lib/log.js';
import type { NetConfig } from './config.js';

export function pluginLogger(cfg: Pick<NetConfig, 'logLevel' | 'logFile'>): Logger {
  const level = process.env.CFNET_LOG_LEVEL ?? cfg.logLevel;
  const dest =
    cfg.logFile !== null
      ? pino.destination({ dest: cfg.logFile, sync: true, append: true, mkdir: true })
      : pino.destination({ dest: 2, sync: true });
  return pino({ name: 'cfnet-cni', level, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, dest);
}
