/**
 * The Lua scripts of the Redis contract, one per file in ./lua (each opens with a header naming its
 * KEYS and ARGV), defined on a connection once as ioredis commands. The files are read on first use
 * from next to this module: under src/ when run through tsx, under dist/ once built (the build copies
 * them, scripts/copy-lua.mjs), so the agent, the controller and the packages carry them.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** Command name → its file in ./lua and its number of keys (undefined: the caller passes it first). */
export const SCRIPTS = {
  cfnetLeaderAcquire: { file: 'leader-acquire.lua', numberOfKeys: 2 },
  cfnetLeaderRenew: { file: 'leader-renew.lua', numberOfKeys: 1 },
  cfnetLeaderRelease: { file: 'leader-release.lua', numberOfKeys: 1 },
  cfnetFenced: { file: 'world-fenced.lua', numberOfKeys: undefined },
  cfnetLeaseClaim: { file: 'lease-claim.lua', numberOfKeys: 3 },
  cfnetLeaseRenew: { file: 'lease-renew.lua', numberOfKeys: 3 },
  cfnetLeaseRelease: { file: 'lease-release.lua', numberOfKeys: 4 },
  cfnetLeaseRecovery: { file: 'lease-recovery.lua', numberOfKeys: 2 },
  cfnetWriteRuleSet: { file: 'ruleset-write.lua', numberOfKeys: 5 },
  cfnetRaiseFloor: { file: 'ruleset-raise-floor.lua', numberOfKeys: 1 },
} as const satisfies Record<string, { file: string; numberOfKeys: number | undefined }>;

export type ScriptName = keyof typeof SCRIPTS;

const LUA_DIR = new URL('./lua/', import.meta.url);
const sources = new Map<ScriptName, string>();

/** The text of one script (read once per process). */
export function scriptSource(name: ScriptName): string {
  let text = sources.get(name);
  if (text === undefined) {
    text = readFileSync(new URL(SCRIPTS[name].file, LUA_DIR), 'utf8');
    sources.set(name, text);
  }
  return text;
}

const defined = new WeakSet<Redis>();

/**
 * Defines every script on `redis` (a no-op on a connection that already has them), so a store or
 * an election built on a shared connection can call them as `redis.<name>(…)`.
 */
export function defineScripts(redis: Redis): void {
  if (defined.has(redis)) return;
  for (const [name, { numberOfKeys }] of Object.entries(SCRIPTS) as [
    ScriptName,
    { numberOfKeys: number | undefined },
  ][]) {
    const lua = scriptSource(name);
    redis.defineCommand(name, numberOfKeys === undefined ? { lua } : { numberOfKeys, lua });
  }
  defined.add(redis);
}
