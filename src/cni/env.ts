/**
 * The CNI_* environment, checked like Go's `skel` (the de-facto implementation): CNI_PATH is
 * required for ADD/CHECK/DEL/GC/STATUS, CNI_NETNS for ADD/CHECK; missing variables are named in
 * one code-4 error (`required env variables [A B] missing`). An empty variable counts as missing.
 * VERSION looks at nothing but CNI_COMMAND, whatever else the environment holds.
 */
import { CNI_ERR, CniError } from './errors.js';
import { CNI_ENV_KEYS, type CniCommand, type CniEnv } from './types.js';

export const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];

const REQUIRED: Record<CniCommand, (keyof CniEnv)[]> = {
  ADD: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  CHECK: ['CNI_CONTAINERID', 'CNI_NETNS', 'CNI_IFNAME', 'CNI_PATH'],
  DEL: ['CNI_CONTAINERID', 'CNI_IFNAME', 'CNI_PATH'],
  GC: ['CNI_PATH'],
  STATUS: ['CNI_PATH'],
  VERSION: [],
};

/** alnum, then alnum `_ . -` (CNI_CONTAINERID and network names). */
export const CNI_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** The CNI_* variables of `source` that are set and non-empty. */
export function pickCniEnv(source: Record<string, string | undefined>): CniEnv {
  const env: CniEnv = {};
  for (const k of CNI_ENV_KEYS) {
    const v = source[k];
    if (typeof v === 'string' && v !== '') env[k] = v;
  }
  return env;
}

export interface CheckedEnv {
  command: CniCommand;
  containerId?: string;
  netns?: string;
  ifname?: string;
  args?: string;
  path?: string;
}

/** Interface names: 1..15 bytes, not `.`/`..`, no `/`, `:` or whitespace (Linux IFNAMSIZ). */
export function interfaceNameProblem(name: string): string | null {
  if (name.length === 0) return 'interface name is empty';
  if (Buffer.byteLength(name) > 15) return 'interface name is too long (at most 15 bytes)';
  if (name === '.' || name === '..') return 'interface name is . or ..';
  if (/[/:\s]/.test(name)) return 'interface name contains / or : or whitespace characters';
  return null;
}

/** Validates the environment for its command; throws CniError code 4 naming what is wrong. */
export function checkEnv(env: CniEnv): CheckedEnv {
  const raw = env.CNI_COMMAND;
  if (raw === undefined) {
    throw new CniError(CNI_ERR.INVALID_ENV, 'required env variables [CNI_COMMAND] missing', '', {
      missing: ['CNI_COMMAND'],
    });
  }
  if (!(COMMANDS as readonly string[]).includes(raw)) {
    throw new CniError(CNI_ERR.INVALID_ENV, `unknown CNI_COMMAND: ${raw}`, '', { command: raw });
  }
  const command = raw as CniCommand;
  // as skel: VERSION depends on CNI_COMMAND alone (libcni's GetVersionInfo sends CNI_NETNS=dummy)
  if (command === 'VERSION') return { command };
  const missing = REQUIRED[command].filter((k) => env[k] === undefined);
  if (missing.length > 0) {
    throw new CniError(CNI_ERR.INVALID_ENV, `required env variables [${missing.join(' ')}] missing`, '', {
      missing,
    });
  }
  const out: CheckedEnv = { command };
  if (env.CNI_CONTAINERID !== undefined && command !== 'GC' && command !== 'STATUS') {
    if (!CNI_ID.test(env.CNI_CONTAINERID) || env.CNI_CONTAINERID.length > 128) {
      throw new CniError(
        CNI_ERR.INVALID_ENV,
        `invalid CNI_CONTAINERID ${JSON.stringify(env.CNI_CONTAINERID)}: must be alphanumeric, then alphanumeric, "_", "." or "-" (at most 128 characters)`,
        env.CNI_CONTAINERID,
        { variable: 'CNI_CONTAINERID' },
      );
    }
    out.containerId = env.CNI_CONTAINERID;
  }
  if (env.CNI_IFNAME !== undefined && command !== 'GC' && command !== 'STATUS') {
    const problem = interfaceNameProblem(env.CNI_IFNAME);
    if (problem) {
      throw new CniError(
        CNI_ERR.INVALID_ENV,
        `invalid CNI_IFNAME ${JSON.stringify(env.CNI_IFNAME)}: ${problem}`,
        env.CNI_IFNAME,
        { variable: 'CNI_IFNAME' },
      );
    }
    out.ifname = env.CNI_IFNAME;
  }
  if (env.CNI_NETNS !== undefined && command !== 'GC' && command !== 'STATUS') {
    if (!env.CNI_NETNS.startsWith('/') || env.CNI_NETNS.includes('\n')) {
      throw new CniError(
        CNI_ERR.INVALID_ENV,
        `invalid CNI_NETNS ${JSON.stringify(env.CNI_NETNS)}: must be an absolute path`,
        env.CNI_NETNS,
        { variable: 'CNI_NETNS' },
      );
    }
    out.netns = env.CNI_NETNS;
  }
  if (env.CNI_ARGS !== undefined) out.args = env.CNI_ARGS;
  if (env.CNI_PATH !== undefined) out.path = env.CNI_PATH;
  return out;
}
