/** Errors of the operator tools: one line each, a stable code, and the exit status the CLI uses. */
import { CfnetError, ValidationError } from '../lib/errors.js';
import { EXIT } from '../lib/exit-codes.js';
import { redactUrlCredentials } from '../lib/redact.js';

/** Redis does not answer (refused, timed out, wrong password, …). Exit status 3. */
export class RedisUnreachableError extends CfnetError {
  constructor(url: string, reason: string) {
    super('CFNET_REDIS_UNREACHABLE', `Redis at ${redactUrl(url)} is unreachable: ${reason}`, {
      url: redactUrl(url),
    });
  }
}

/**
 * What the command needs from a controller is missing: no leader has written the world into this
 * namespace, no reconcile worker is connected, or the controller's operator port does not answer.
 * Exit status 4.
 */
export class ControllerUnavailableError extends CfnetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('CFNET_CONTROLLER_UNAVAILABLE', message, context);
  }
}

/** A job, cell, app or container the operator named does not exist. Exit status 5. */
export class NotFoundError extends CfnetError {
  constructor(what: string, id: string, hint = '') {
    super('CFNET_NOT_FOUND', `${what} ${JSON.stringify(id)} not found${hint ? `: ${hint}` : ''}`, {
      what,
      id,
    });
  }
}

/** The credentials of a Redis URL replaced by `***` (for messages and logs). */
export function redactUrl(url: string): string {
  return redactUrlCredentials(url);
}

const CONNECTION_ERRORS =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENOTFOUND|EAI_AGAIN|Connection is closed|connect ETIMEDOUT|Command timed out|Reached the max retries|Stream isn't writeable|NOAUTH|WRONGPASS/;

/**
 * An error of a Redis command turned into RedisUnreachableError when it means the connection is
 * gone (Redis stopped in the middle of a command), anything else as it is.
 */
export function classifyRedisError(err: unknown, url: string): unknown {
  if (err instanceof CfnetError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return CONNECTION_ERRORS.test(msg) ? new RedisUnreachableError(url, msg) : err;
}

/** Exit status for an error of the operator tools (2 = invalid input, 1 = anything else). */
export function exitCodeOf(err: unknown): number {
  if (err instanceof RedisUnreachableError) return EXIT.redisUnreachable;
  if (err instanceof ControllerUnavailableError) return EXIT.noController;
  if (err instanceof NotFoundError) return EXIT.notFound;
  if (err instanceof ValidationError) return EXIT.invalid;
  if (err instanceof CfnetError && err.code === 'CFNET_INVALID') return EXIT.invalid;
  return EXIT.error;
}
