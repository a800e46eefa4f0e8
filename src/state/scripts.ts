/**
 * The Lua scripts of the Redis contract, one per file in ./lua (each opens with a header naming its
 * KEYS and ARGV), defined on a connection once by the loader in ../lib/redis-scripts.ts.
 */
import type { Redis } from 'ioredis';
import { defineScripts, type ScriptSpec, scriptSource } from '../lib/redis-scripts.js';

/** Command name → its file in ./lua and its number of keys (undefined: the caller passes it first). */
export const STATE_SCRIPTS = {
  cfnetFenced: { file: 'world-fenced.lua', numberOfKeys: undefined },
  cfnetLeaseClaim: { file: 'lease-claim.lua', numberOfKeys: 3 },
  cfnetLeaseClaimSingle: { file: 'lease-claim-single.lua', numberOfKeys: 3 },
  cfnetLeaseRenew: { file: 'lease-renew.lua', numberOfKeys: 3 },
  cfnetLeaseRelease: { file: 'lease-release.lua', numberOfKeys: 4 },
  cfnetLeaseRecovery: { file: 'lease-recovery.lua', numberOfKeys: 2 },
  cfnetWriteRuleSet: { file: 'ruleset-write.lua', numberOfKeys: 8 },
  cfnetReportStatus: { file: 'ruleset-report.lua', numberOfKeys: 3 },
  cfnetRaiseFloor: { file: 'ruleset-raise-floor.lua', numberOfKeys: 1 },
} as const satisfies Record<string, ScriptSpec>;

export const STATE_LUA_DIR = new URL('./lua/', import.meta.url);

/** Defines the Redis contract's scripts on `redis` (a no-op for those it already has). */
export function defineStateScripts(redis: Redis): void {
  defineScripts(redis, STATE_LUA_DIR, STATE_SCRIPTS);
}

/** The text of one of the contract's scripts. */
export function stateScriptSource(name: keyof typeof STATE_SCRIPTS): string {
  return scriptSource(STATE_LUA_DIR, STATE_SCRIPTS[name]);
}
