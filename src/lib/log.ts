import { type DestinationStream, type Logger, type LoggerOptions, pino } from 'pino';
import { redactUrlCredentials } from './redact.js';

/** Paths that may hold secrets anywhere in a log object: never printed. */
export const REDACT_PATHS = [
  'password',
  'secret',
  'token',
  'key',
  'client_secret',
  'clientSecret',
  'access_token',
  'accessToken',
  'privateKey',
  '*.password',
  '*.secret',
  '*.token',
  '*.key',
  '*.client_secret',
  '*.clientSecret',
  '*.access_token',
  '*.accessToken',
  '*.privateKey',
  'headers.authorization',
  'headers.Authorization',
  '*.headers.authorization',
  '*.headers.Authorization',
  'config.headers.Authorization',
  'tls.key',
  'image_password',
];

export type { Logger };

/** `destination` defaults to stdout (tests pass a stream to read what would be logged). */
export function createLogger(
  name: string,
  options: LoggerOptions = {},
  destination?: DestinationStream,
): Logger {
  const opts: LoggerOptions = {
    name,
    level: process.env.CFNET_LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    // `{ err }` is serialised with its type, message, stack and own fields: a CfnetError keeps its
    // stable `code` and its `context` (log the error, not errorMessage(err))
    serializers: { err: pino.stdSerializers.err },
    // credentials inside URLs, wherever they appear in a line (messages, errors, fields)
    hooks: { streamWrite: redactUrlCredentials },
    ...options,
  };
  return destination ? pino(opts, destination) : pino(opts);
}

/** A logger for library code whose caller did not pass one: silent unless CFNET_LOG_LEVEL is set. */
export function defaultLogger(name: string): Logger {
  return createLogger(name, { level: process.env.CFNET_LOG_LEVEL ?? 'silent' });
}
