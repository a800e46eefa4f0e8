/**
 * Exit statuses of every `cfnet` command, in one table (the help texts are made from it). The CNI
 * plugin (`cfnet cni`, bin/cfnet-cni) is the one exception: the CNI specification fixes its statuses.
 *
 * A status means the same thing for every command, with one exception kept on purpose: `explain`
 * answers a yes/no question the way `kubectl auth can-i` does, so "denied" is 1, like a general
 * error; a denial prints its verdict on stdout, an error only a message on stderr (and `--json`
 * tells them apart). Other yes/no answers that are not "yes" have their own status (`drift`), so a
 * script can tell the answer from a failure of the tool.
 *
 * This module imports nothing: lib/error-codes.ts (which the pure layers import) reads it.
 */
export const EXIT = {
  ok: 0,
  /** Anything not listed below (a crash, a failed start, a fatal error of the leader). */
  error: 1,
  /** `explain`: the traffic is denied (for every container, or for some: the verdict DEPENDS). */
  denied: 1,
  /** Invalid input: a setting, a flag (unknown, missing its value), a file named by a setting, an identifier. */
  invalid: 2,
  redisUnreachable: 3,
  /** No leader wrote the world into the namespace (or a wrong --redis-namespace), no worker, or the operator port is down. */
  noController: 4,
  notFound: 5,
  /** `dataplane drift`: the kernel's table differs from the rule set (and was not repaired). */
  drift: 6,
} as const;

export type ExitName = keyof typeof EXIT;

export const EXIT_MEANING: Record<ExitName, string> = {
  ok: 'ok',
  error: 'error',
  denied: 'denied (explain only)',
  invalid: 'invalid input (settings, flags, their values, files they name)',
  redisUnreachable: 'Redis unreachable',
  noController: 'no controller (world not written into the namespace, or no reconcile worker)',
  notFound: 'not found',
  drift: 'drift found (dataplane drift only)',
};

/** The statuses every command that reads the controller's Redis can end with. */
export const COMMON_EXITS: readonly ExitName[] = [
  'ok',
  'error',
  'invalid',
  'redisUnreachable',
  'noController',
  'notFound',
];

/**
 * "Exit status: 0 ok, 1 error, …" for `--help` (one line: the command layer wraps it). `meanings`
 * words a status for one command (e.g. `ok: 'allowed'` for explain).
 */
export function exitHelp(
  names: readonly ExitName[] = COMMON_EXITS,
  meanings: Partial<Record<ExitName, string>> = {},
): string {
  return `Exit status: ${names.map((k) => `${EXIT[k]} ${meanings[k] ?? EXIT_MEANING[k]}`).join('; ')}.`;
}

/** The statuses of the operator commands, for `--help`. */
export const EXIT_HELP = `\n${exitHelp()}`;
