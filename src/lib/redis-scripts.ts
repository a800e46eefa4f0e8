/**
 * The one loader of Redis Lua scripts. Scripts are files, one per script, `<dir>/<name>.lua` opening
 * with a header that names the command, its KEYS and ARGV; a module lists its scripts in a table and
 * defines them on a connection once, as ioredis commands (`redis.<name>(…)`). Files are read on
 * first use from next to the module that lists them: under src/ when run through tsx, under dist/
 * once built (`npm run build` copies them, scripts/copy-lua.mjs), so the packages carry them.
 * Tables: src/state/scripts.ts (the Redis contract), src/lib/leader.ts (leader election).
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

export interface ScriptSpec {
  /** File name in the table's directory. */
  file: string;
  /** Number of KEYS; undefined: the caller passes it as the first argument. */
  numberOfKeys: number | undefined;
}

const sources = new Map<string, string>();

/** The text of one script file (read once per process). */
export function scriptSource(dir: URL, spec: ScriptSpec): string {
  const url = new URL(spec.file, dir);
  let text = sources.get(url.href);
  if (text === undefined) {
    text = readFileSync(url, 'utf8');
    sources.set(url.href, text);
  }
  return text;
}

const defined = new WeakMap<Redis, Set<string>>();

/** Defines each script of `table` (files in `dir`) on `redis`, skipping those it already has. */
export function defineScripts(redis: Redis, dir: URL, table: Readonly<Record<string, ScriptSpec>>): void {
  let names = defined.get(redis);
  if (names === undefined) {
    names = new Set();
    defined.set(redis, names);
  }
  for (const [name, spec] of Object.entries(table)) {
    if (names.has(name)) continue;
    const lua = scriptSource(dir, spec);
    redis.defineCommand(
      name,
      spec.numberOfKeys === undefined ? { lua } : { numberOfKeys: spec.numberOfKeys, lua },
    );
    names.add(name);
  }
}
