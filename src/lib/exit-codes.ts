/**
 * Exit statuses of every `cfnet` command, in one table (the help texts are made from it).
 */
export const EXIT = {
  ok: 0,
  /** Anything not listed below (a crash, a failed start, a fatal error of the leader). */
  error: 1,
  /** Invalid input: a setting, a flag, a file named by a setting, an identifier. */
  invalid: 2,
  redisUnreachable: 3,
  /** No leader wrote the world into the namespace, no worker, or the operator port is down. */
  noController: 4,
  notFound: 5,
} as const;

const MEANING: Record<keyof typeof EXIT, string> = {
  ok: 'ok',
  error: 'error',
  invalid: 'invalid input (settings, flags, files they name)',
  redisUnreachable: 'Redis unreachable',
  noController: 'no controller (world not written into the namespace, or no reconcile worker)',
  notFound: 'not found',
};

/** "Exit status: 0 ok, 1 error, …" for `--help`. */
export const EXIT_HELP = `\nExit status: ${(Object.keys(EXIT) as (keyof typeof EXIT)[])
  .map((k) => `${EXIT[k]} ${MEANING[k]}`)
  .join(', ')}.`;
