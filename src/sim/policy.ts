/**
 * Simulated policy server internal API (mTLS, port 4003 in CF): policies with tags,
 * policies_last_updated as a bare UnixNano integer, security_groups synced from CAPI (rules as a
 * JSON-encoded string, paged by internal id with from/limit/next), and PUT tags.
 */
import type { FaultState } from './faults.js';
import {
  type Ctx,
  parseJsonBody,
  Router,
  type RunningService,
  sendJson,
  sendJsonText,
  startService,
} from './http.js';
import { type CcRule, type SimSecurityGroup, type SimWorld, tagHex } from './world.js';

export interface PolicyServerOptions {
  host: string;
  port: number;
  tls: { cert: string; key: string; clientCa: string };
  world: SimWorld;
  faults: FaultState;
}

/** The policy server's TLS 1.2 suite (TLS 1.3 suites stay enabled). */
const POLICY_CIPHERS =
  'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:ECDHE-RSA-AES128-GCM-SHA256';

/** Go's handlers set no Content-Type; net/http sniffs JSON text as this. */
const SNIFFED = { 'Content-Type': 'text/plain; charset=utf-8' };

function reply(ctx: Ctx, status: number, value: unknown): void {
  sendJson(ctx, status, value, SNIFFED);
}

function policyError(ctx: Ctx, status: number, message: string): void {
  reply(ctx, status, { error: message });
}

/** The asg-syncer's rule struct: all 7 keys, no omitempty. */
export function syncedRulesString(rules: readonly CcRule[]): string {
  return JSON.stringify(
    rules.map((r) => ({
      protocol: r.protocol ?? '',
      destination: r.destination ?? '',
      ports: r.ports ?? '',
      type: r.type ?? 0,
      code: r.code ?? 0,
      description: r.description ?? '',
      log: r.log ?? false,
    })),
  );
}

function sgJson(g: SimSecurityGroup): unknown {
  return {
    guid: g.guid,
    name: g.name,
    rules: syncedRulesString(g.rules),
    staging_default: g.stagingDefault,
    running_default: g.runningDefault,
    staging_space_guids: [...g.stagingSpaces],
    running_space_guids: [...g.runningSpaces],
  };
}

export function startPolicyServer(opts: PolicyServerOptions): Promise<RunningService> {
  const { world } = opts;
  const router = new Router();
  const tagOf = (id: string) => {
    const t = world.tags.get(id);
    return t ? tagHex(t.tag) : '';
  };

  router.on('GET', '/networking/:version/internal/policies', (ctx) => {
    const idParam = ctx.url.searchParams.get('id');
    const ids = idParam ? new Set(idParam.split(',').filter(Boolean)) : null;
    const policies = world.policies
      .filter((p) => !ids || ids.has(p.sourceId) || ids.has(p.destinationId))
      .map((p) => ({
        source: { id: p.sourceId, tag: tagOf(p.sourceId) },
        destination: {
          id: p.destinationId,
          tag: tagOf(p.destinationId),
          protocol: p.protocol,
          ports: { start: p.start, end: p.end },
        },
      }));
    reply(ctx, 200, { total_policies: policies.length, policies });
  });

  router.on('GET', '/networking/:version/internal/policies_last_updated', (ctx) => {
    // A bare integer above 2^53: written as text, never through a JS number.
    sendJsonText(ctx, 200, world.policiesLastUpdated.toString(), SNIFFED);
  });

  router.on('GET', '/networking/:version/internal/security_groups', (ctx) => {
    const sp = ctx.url.searchParams;
    const intParam = (name: string): number | null | undefined => {
      const v = sp.get(name);
      if (v === null || v === '') return undefined;
      return /^-?\d+$/.test(v) ? Number(v) : null;
    };
    const from = intParam('from');
    if (from === null) return policyError(ctx, 500, "invalid value for 'from' parameter");
    const limit = intParam('limit');
    if (limit === null) return policyError(ctx, 500, "invalid value for 'limit' parameter");
    const spacesParam = sp.get('space_guids');
    const spaces = spacesParam ? spacesParam.split(',').filter(Boolean) : [];
    const all = [...world.securityGroups.values()]
      .filter(
        (g) =>
          g.runningDefault ||
          g.stagingDefault ||
          spaces.some((s) => g.runningSpaces.has(s) || g.stagingSpaces.has(s)),
      )
      .filter((g) => from === undefined || g.id >= from)
      .sort((a, b) => a.id - b.id);
    const page = limit !== undefined && limit > 0 ? all.slice(0, limit) : all;
    const next =
      limit !== undefined && limit > 0 && all.length > limit ? (all[limit] as SimSecurityGroup).id : 0;
    reply(ctx, 200, { next, security_groups: page.map(sgJson) });
  });

  router.on('PUT', '/networking/:version/internal/tags', (ctx) => {
    let body: { id?: unknown; type?: unknown };
    try {
      body = (parseJsonBody(ctx) ?? {}) as { id?: unknown; type?: unknown };
    } catch {
      return policyError(ctx, 400, 'failed to parse request body');
    }
    if (typeof body.id !== 'string' || body.id === '' || typeof body.type !== 'string' || body.type === '') {
      return policyError(ctx, 400, 'missing id or type');
    }
    const existing = world.tags.get(body.id);
    if (existing && existing.type !== body.type) return policyError(ctx, 500, 'failed to create tag');
    const t = world.allocateTag(body.id, body.type);
    reply(ctx, 200, { id: t.id, tag: tagHex(t.tag), type: t.type });
  });

  return startService({
    name: 'policy',
    host: opts.host,
    port: opts.port,
    tls: { ...opts.tls, ciphers: POLICY_CIPHERS },
    router,
    faults: opts.faults,
    onFault: (ctx, d) => {
      if (d.kind === 'rate-limit') return policyError(ctx, 429, 'rate limit exceeded');
      policyError(ctx, d.status, 'database unavailable');
    },
    notFound: (ctx) => policyError(ctx, 404, 'not found'),
  });
}
