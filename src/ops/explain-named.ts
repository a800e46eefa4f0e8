/**
 * `cfnet explain` as operators ask it: apps named the way the `cf` CLI names them (name narrowed
 * by space and org, `org/space/app`, or guid; ops/names.ts), a port and a protocol, answered from
 * the world and rule sets in Redis (ops/explain.ts). One entry point for the CLI and the
 * dashboard's explain page, so both resolve names and report errors (ambiguous or unknown names,
 * bad ports) with the same typed errors and messages.
 */
import type { Redis } from 'ioredis';
import { CfnetError } from '../lib/errors.js';
import { isIp } from '../model/ip.js';
import type { AppPath } from '../model/names.js';
import type { Keys } from '../state/keys.js';
import type { RuleSetStore } from '../state/ruleset-store.js';
import { type Explanation, explain, leaseAddresses, parseExplainQuery, requireWorld } from './explain.js';
import { resolveApp } from './names.js';
import { loadRedisWorld } from './world-reader.js';

/** The question as the CLI's options carry it (strings, as typed). */
export interface NamedExplainQuery {
  from: string;
  space?: string | undefined;
  org?: string | undefined;
  /** An app (name, org/space/app, guid) or an IP address. */
  to: string;
  toSpace?: string | undefined;
  toOrg?: string | undefined;
  port?: string | undefined;
  protocol: string;
}

const opt = <K extends string>(k: K, v: string | undefined) =>
  (v === undefined || v === '' ? {} : { [k]: v }) as Partial<Record<K, string>>;

/** Checks that need no Redis (the CLI runs them before it connects). */
export function checkNamedQuery(o: NamedExplainQuery) {
  if ((o.port === undefined || o.port === '') && o.protocol !== 'icmp') {
    throw new CfnetError('CFNET_INVALID', `--port needs a value for ${o.protocol} (1-65535)`);
  }
  const named = parseExplainQuery({ ...o, ...(o.port === '' ? { port: undefined } : {}) });
  if (isIp(named.to) && ((o.toSpace ?? '') !== '' || (o.toOrg ?? '') !== '')) {
    throw new CfnetError('CFNET_INVALID', '--to-space and --to-org apply to an app, not to an address');
  }
  return named;
}

/** Resolve the named apps and explain; every error is a typed CfnetError (or subclass). */
export async function explainNamed(
  ctx: { redis: Redis; keys: Keys; store: RuleSetStore },
  o: NamedExplainQuery,
): Promise<Explanation> {
  const named = checkNamedQuery(o);
  const world = await loadRedisWorld(ctx.redis, ctx.keys);
  requireWorld(world);
  const known = (g: string) => world.knowsApp(g);
  const q = {
    ...named,
    from: resolveApp(
      world.names,
      { app: named.from, ...opt('space', o.space), ...opt('org', o.org) },
      { app: '--from', space: '--space', org: '--org' },
      known,
    ),
    to: isIp(named.to)
      ? named.to
      : resolveApp(
          world.names,
          { app: named.to, ...opt('space', o.toSpace), ...opt('org', o.toOrg) },
          { app: '--to', space: '--to-space', org: '--to-org' },
          known,
        ),
  };
  return explain(world, ctx.store, q, leaseAddresses(ctx.redis, ctx.keys));
}

/**
 * The first line: the verdict in capitals, then the reason. A reason that starts with its verdict
 * ("denied: no c2c policy …") has that word capitalised instead of repeated ("DENIED: denied: …").
 */
export function verdictLine(x: Pick<Explanation, 'allowed' | 'reason'>): string {
  const verdict = x.allowed === true ? 'ALLOWED' : x.allowed === false ? 'DENIED' : 'DEPENDS';
  const own = /^(allowed|denied|depends)\b/i.exec(x.reason);
  return own && own[1]!.toUpperCase() === verdict
    ? `${verdict}${x.reason.slice(own[0].length)}`
    : `${verdict}: ${x.reason}`;
}

/** `org/space/app` (the guid when its name is unknown); with `guids`, the guid after the name. */
export function appText(p: AppPath, guids: boolean): string {
  if (p.app === undefined) return p.guid;
  const label = `${p.org ?? '?'}/${p.space ?? '?'}/${p.app}`;
  return guids ? `${label} (${p.guid})` : label;
}
