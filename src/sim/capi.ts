/**
 * Simulated Cloud Controller: `GET /`, `/v2/info`, v3 org/space/app listings (capi-names.ts), v3
 * security groups (list with CC's filters and
 * pagination, get, writes), v2 security groups (relative next_url, inline relations with the >50
 * omission, config endpoints), and CC's internal mTLS endpoint `/internal/v4/asg_latest_update`.
 *
 * Longer than ~400 lines: CC's v2 and v3 security-group APIs side by side, whose differences
 * (pagination, inline relations, the >50 omission) are what the simulator exists to reproduce.
 */
import { errorMessage, ValidationError } from '../lib/errors.js';
import { registerNameRoutes } from './capi-names.js';
import type { ChangeEngine, SimChange } from './changes.js';
import type { FaultState } from './faults.js';
import {
  type Ctx,
  parseJsonBody,
  Router,
  type RunningService,
  sendJson,
  sendText,
  startService,
} from './http.js';
import type { TokenStore } from './uaa.js';
import type { CcRule, SimSecurityGroup, SimSpace, SimWorld } from './world.js';

export interface CapiOptions {
  host: string;
  port: number;
  tls: { cert: string; key: string };
  world: SimWorld;
  engine: ChangeEngine;
  tokens: TokenStore;
  faults: FaultState;
  v2: boolean;
  uaaUrl: () => string;
}

const V2_VERSION = '2.250.0';
const V3_VERSION = '3.185.0';
const READ_ALL = [
  'cloud_controller.admin',
  'cloud_controller.admin_read_only',
  'cloud_controller.global_auditor',
];
const MAX_INLINE = 50;

/** Ruby `DateTime#rfc3339(9)` of a ns timestamp: `2024-01-01T00:00:00.123456789+00:00`. */
export function rfc3339Nanos(ns: bigint): string {
  const ms = Number(ns / 1_000_000n);
  const frac = (ns % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${frac}+00:00`;
}

// ---- error bodies ----

function v3Error(
  ctx: Ctx,
  status: number,
  code: number,
  title: string,
  detail: string,
  headers: Record<string, string> = {},
): void {
  sendJson(ctx, status, { errors: [{ detail, title, code }] }, headers);
}

function v2Error(
  ctx: Ctx,
  status: number,
  code: number,
  errorCode: string,
  description: string,
  headers: Record<string, string> = {},
): void {
  sendJson(ctx, status, { description, error_code: errorCode, code }, headers);
}

const isV2 = (ctx: Ctx) => ctx.url.pathname.startsWith('/v2/');

/** A CC error in the format of the API the request used; v3's `title` is v2's `error_code`. */
function ccError(
  ctx: Ctx,
  status: number,
  code: number,
  name: string,
  message: string,
  headers: Record<string, string> = {},
): void {
  if (isV2(ctx)) v2Error(ctx, status, code, name, message, headers);
  else v3Error(ctx, status, code, name, message, headers);
}

const v3GroupNotFound = (ctx: Ctx) =>
  v3Error(ctx, 404, 10010, 'CF-ResourceNotFound', 'Security group not found');

const v2GroupNotFound = (ctx: Ctx, guid: string | undefined) =>
  v2Error(ctx, 404, 300002, 'CF-SecurityGroupNotFound', `The security group could not be found: ${guid}`);

type Access = { ok: true; readAll: boolean; admin: boolean } | { ok: false };

/** Check the bearer token; replies 401 itself when it is missing or invalid. */
function authorize(ctx: Ctx, tokens: TokenStore): Access {
  const header = ctx.req.headers.authorization ?? '';
  const m = /^bearer\s+(.+)$/i.exec(header.trim());
  if (!m) {
    if (isV2(ctx)) v2Error(ctx, 401, 10002, 'CF-NotAuthenticated', 'Authentication error');
    else
      v3Error(
        ctx,
        401,
        10002,
        'CF-NotAuthenticated',
        'No auth token was given, but authentication is required for this endpoint',
      );
    return { ok: false };
  }
  const check = tokens.check(m[1] as string);
  if (!check.ok) {
    const headers = {
      'WWW-Authenticate': `Bearer error="invalid_token", error_description="${check.reason}"`,
    };
    ccError(ctx, 401, 1000, 'CF-InvalidAuthToken', 'Invalid Auth Token', headers);
    return { ok: false };
  }
  const readAll = check.scopes.some((s) => READ_ALL.includes(s));
  const canRead = readAll || check.scopes.includes('cloud_controller.read');
  if (!canRead) {
    forbidden(ctx);
    return { ok: false };
  }
  return { ok: true, readAll, admin: check.scopes.includes('cloud_controller.admin') };
}

function forbidden(ctx: Ctx): void {
  ccError(ctx, 403, 10003, 'CF-NotAuthorized', 'You are not authorized to perform the requested action');
}

function unprocessable(ctx: Ctx, detail: string): void {
  v3Error(ctx, 422, 10008, 'CF-UnprocessableEntity', detail);
}

// ---- v3 ----

const V3_LIST_PARAMS = new Set([
  'page',
  'per_page',
  'order_by',
  'guids',
  'names',
  'globally_enabled_running',
  'globally_enabled_staging',
  'running_space_guids',
  'staging_space_guids',
  'created_ats',
  'updated_ats',
]);

function baseParam(key: string): string {
  const i = key.indexOf('[');
  return i < 0 ? key : key.slice(0, i);
}

function timeFilter(
  values: Map<string, string>,
  field: 'createdAt' | 'updatedAt',
  g: SimSecurityGroup,
): boolean {
  const t = Date.parse(g[field]);
  for (const [op, raw] of values) {
    const list = raw.split(',').map((s) => Date.parse(s));
    const x = list[0] ?? Number.NaN;
    if (op === 'eq' && !list.includes(t)) return false;
    if (op === 'lt' && !(t < x)) return false;
    if (op === 'lte' && !(t <= x)) return false;
    if (op === 'gt' && !(t > x)) return false;
    if (op === 'gte' && !(t >= x)) return false;
  }
  return true;
}

function v3Resource(g: SimSecurityGroup, base: string, readAll: boolean): unknown {
  return {
    guid: g.guid,
    created_at: g.createdAt,
    updated_at: g.updatedAt,
    name: g.name,
    globally_enabled: { running: g.runningDefault, staging: g.stagingDefault },
    rules: g.rules,
    relationships: {
      running_spaces: { data: readAll ? [...g.runningSpaces].map((guid) => ({ guid })) : [] },
      staging_spaces: { data: readAll ? [...g.stagingSpaces].map((guid) => ({ guid })) : [] },
    },
    links: { self: { href: `${base}/v3/security_groups/${g.guid}` } },
  };
}

/** List v3 security groups with CC's query semantics; replies 422 on bad parameters. */
function v3List(
  ctx: Ctx,
  world: SimWorld,
  base: string,
  access: { readAll: boolean },
  scope?: (g: SimSecurityGroup) => boolean,
) {
  const q = ctx.url.searchParams;
  const unknown = [...new Set([...q.keys()].filter((k) => !V3_LIST_PARAMS.has(baseParam(k))))];
  if (unknown.length > 0) {
    unprocessable(
      ctx,
      `Unknown query parameter(s): '${unknown.join("', '")}'. Valid parameters are: '${[...V3_LIST_PARAMS].join("', '")}'`,
    );
    return;
  }
  const pageRaw = q.get('page') ?? '1';
  const perPageRaw = q.get('per_page') ?? '50';
  if (!/^\d+$/.test(pageRaw) || Number(pageRaw) < 1) return unprocessable(ctx, 'Page must be greater than 0');
  if (!/^\d+$/.test(perPageRaw) || Number(perPageRaw) < 1 || Number(perPageRaw) > 5000) {
    return unprocessable(ctx, 'Per page must be between 1 and 5000');
  }
  const page = Number(pageRaw);
  const perPage = Number(perPageRaw);
  const orderBy = q.get('order_by') ?? 'created_at';
  if (!['created_at', '-created_at', 'updated_at', '-updated_at'].includes(orderBy)) {
    return unprocessable(ctx, "Order by can only be: 'created_at', 'updated_at'");
  }
  const bools: Partial<Record<'running' | 'staging', boolean>> = {};
  for (const lc of ['running', 'staging'] as const) {
    const v = q.get(`globally_enabled_${lc}`);
    if (v === null) continue;
    if (v !== 'true' && v !== 'false') return unprocessable(ctx, `Globally enabled ${lc} must be a boolean`);
    bools[lc] = v === 'true';
  }
  const list = (k: string) => (q.has(k) ? new Set((q.get(k) ?? '').split(',').filter(Boolean)) : null);
  const guids = list('guids');
  const names = list('names');
  const runningSpaces = list('running_space_guids');
  const stagingSpaces = list('staging_space_guids');
  const times: Record<'createdAt' | 'updatedAt', Map<string, string>> = {
    createdAt: new Map(),
    updatedAt: new Map(),
  };
  for (const [k, v] of q) {
    const m = /^(created_ats|updated_ats)(?:\[(lt|lte|gt|gte)\])?$/.exec(k);
    if (!m) continue;
    const op = m[2] ?? 'eq';
    if (v.split(',').some((s) => Number.isNaN(Date.parse(s)))) {
      return unprocessable(
        ctx,
        `${m[1]} has an invalid timestamp format. Timestamps should be formatted as 'YYYY-MM-DDThh:mm:ssZ'`,
      );
    }
    times[m[1] === 'created_ats' ? 'createdAt' : 'updatedAt'].set(op, v);
  }
  let groups = [...world.securityGroups.values()].filter((g) => {
    if (!access.readAll && !g.runningDefault && !g.stagingDefault) return false;
    if (scope && !scope(g)) return false;
    if (guids && !guids.has(g.guid)) return false;
    if (names && !names.has(g.name)) return false;
    if (bools.running !== undefined && g.runningDefault !== bools.running) return false;
    if (bools.staging !== undefined && g.stagingDefault !== bools.staging) return false;
    if (runningSpaces && ![...runningSpaces].some((s) => g.runningSpaces.has(s))) return false;
    if (stagingSpaces && ![...stagingSpaces].some((s) => g.stagingSpaces.has(s))) return false;
    if (!timeFilter(times.createdAt, 'createdAt', g) || !timeFilter(times.updatedAt, 'updatedAt', g))
      return false;
    return true;
  });
  const field = orderBy.replace('-', '') === 'updated_at' ? 'updatedAt' : 'createdAt';
  const dir = orderBy.startsWith('-') ? -1 : 1;
  groups = groups.sort((a, b) => dir * (a[field].localeCompare(b[field]) || a.id - b.id));
  const total = groups.length;
  const totalPages = Math.max(1, Math.ceil(total / perPage));
  const slice = groups.slice((page - 1) * perPage, page * perPage);
  const rest = new URLSearchParams();
  for (const [k, v] of q) if (k !== 'page' && k !== 'per_page') rest.append(k, v);
  const restStr = rest.toString();
  const href = (p: number) => ({
    href: `${base}${ctx.url.pathname}?page=${p}&per_page=${perPage}${restStr ? `&${restStr}` : ''}`,
  });
  sendJson(ctx, 200, {
    pagination: {
      total_results: total,
      total_pages: totalPages,
      first: href(1),
      last: href(totalPages),
      next: page < totalPages ? href(page + 1) : null,
      previous: page > 1 ? href(page - 1) : null,
    },
    resources: slice.map((g) => v3Resource(g, base, access.readAll)),
  });
}

// ---- v2 ----

function v2SpaceResource(s: SimSpace): unknown {
  const u = `/v2/spaces/${s.guid}`;
  return {
    metadata: { guid: s.guid, url: u, created_at: s.createdAt, updated_at: s.updatedAt },
    entity: {
      name: s.name,
      organization_guid: s.orgGuid,
      space_quota_definition_guid: null,
      isolation_segment_guid: null,
      allow_ssh: true,
      organization_url: `/v2/organizations/${s.orgGuid}`,
      developers_url: `${u}/developers`,
      managers_url: `${u}/managers`,
      auditors_url: `${u}/auditors`,
      apps_url: `${u}/apps`,
      routes_url: `${u}/routes`,
      domains_url: `${u}/domains`,
      service_instances_url: `${u}/service_instances`,
      app_events_url: `${u}/app_events`,
      events_url: `${u}/events`,
      security_groups_url: `${u}/security_groups`,
      staging_security_groups_url: `${u}/staging_security_groups`,
    },
  };
}

function v2GroupResource(
  g: SimSecurityGroup,
  world: SimWorld,
  depth: number,
  configLifecycle?: 'running' | 'staging',
): unknown {
  if (configLifecycle) {
    return {
      metadata: {
        guid: g.guid,
        url: `/v2/config/${configLifecycle}_security_groups/${g.guid}`,
        created_at: g.createdAt,
        updated_at: g.updatedAt,
      },
      entity: {
        name: g.name,
        rules: g.rules,
        running_default: g.runningDefault,
        staging_default: g.stagingDefault,
      },
    };
  }
  const entity: Record<string, unknown> = {
    name: g.name,
    rules: g.rules,
    running_default: g.runningDefault,
    staging_default: g.stagingDefault,
    spaces_url: `/v2/security_groups/${g.guid}/spaces`,
    staging_spaces_url: `/v2/security_groups/${g.guid}/staging_spaces`,
  };
  if (depth >= 1) {
    const inline = (set: ReadonlySet<string>) =>
      [...set]
        .map((s) => world.spaces.get(s))
        .filter((s): s is SimSpace => s !== undefined)
        .map(v2SpaceResource);
    // A to-many relation with more than 50 members is silently left out (only the *_url stays).
    if (g.runningSpaces.size <= MAX_INLINE) entity.spaces = inline(g.runningSpaces);
    if (g.stagingSpaces.size <= MAX_INLINE) entity.staging_spaces = inline(g.stagingSpaces);
  }
  return {
    metadata: {
      guid: g.guid,
      url: `/v2/security_groups/${g.guid}`,
      created_at: g.createdAt,
      updated_at: g.updatedAt,
    },
    entity,
  };
}

interface V2Page {
  page: number;
  perPage: number;
  desc: boolean;
  depth: number;
  q: string | null;
  orderBy: string | null;
}

function v2PageParams(ctx: Ctx): V2Page | null {
  const sp = ctx.url.searchParams;
  const bad = (msg: string) => {
    v2Error(ctx, 400, 10005, 'CF-BadQueryParameter', `The query parameter is invalid: ${msg}`);
    return null;
  };
  const page = sp.get('page') ?? '1';
  const perPage = sp.get('results-per-page') ?? '50';
  const depth = sp.get('inline-relations-depth') ?? '0';
  if (!/^\d+$/.test(page) || Number(page) < 1) return bad('page must be greater than or equal to 1');
  if (!/^\d+$/.test(perPage) || Number(perPage) < 1)
    return bad('results_per_page must be greater than or equal to 1');
  if (Number(perPage) > 100) return bad('results_per_page must be less than or equal to 100');
  if (!/^\d+$/.test(depth) || Number(depth) > 2)
    return bad('inline_relations_depth must be less than or equal to 2');
  const dir = sp.get('order-direction') ?? 'asc';
  if (dir !== 'asc' && dir !== 'desc') return bad("order_direction must be 'asc' or 'desc'");
  return {
    page: Number(page),
    perPage: Number(perPage),
    desc: dir === 'desc',
    depth: Number(depth),
    q: sp.get('q'),
    orderBy: sp.get('order-by'),
  };
}

/** A relative v2 page URL with Rails-style sorted query parameters. */
function v2Url(path: string, p: V2Page, page: number, explicitDepth: boolean): string {
  const params: [string, string][] = [];
  if (explicitDepth) params.push(['inline-relations-depth', String(p.depth)]);
  if (p.orderBy) params.push(['order-by', p.orderBy]);
  params.push(['order-direction', p.desc ? 'desc' : 'asc']);
  params.push(['page', String(page)]);
  if (p.q !== null) params.push(['q', p.q]);
  params.push(['results-per-page', String(p.perPage)]);
  params.sort((a, b) => a[0].localeCompare(b[0]));
  return `${path}?${params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`;
}

function v2Paged<T>(ctx: Ctx, p: V2Page, items: T[], render: (t: T) => unknown): void {
  const ordered = p.desc ? items.slice().reverse() : items;
  const total = ordered.length;
  const totalPages = Math.ceil(total / p.perPage);
  const slice = ordered.slice((p.page - 1) * p.perPage, p.page * p.perPage);
  const explicitDepth = ctx.url.searchParams.has('inline-relations-depth');
  sendJson(ctx, 200, {
    total_results: total,
    total_pages: totalPages,
    prev_url: p.page > 1 ? v2Url(ctx.url.pathname, p, p.page - 1, explicitDepth) : null,
    next_url: p.page < totalPages ? v2Url(ctx.url.pathname, p, p.page + 1, explicitDepth) : null,
    resources: slice.map(render),
  });
}

/** `q=name:<v>` (also `name IN a,b`, `>=`, `<=`, `<`, `>`). Returns null (and replies) when invalid. */
function v2NameFilter(ctx: Ctx, q: string | null): ((g: SimSecurityGroup) => boolean) | null | undefined {
  if (q === null) return undefined;
  const m = /^([a-z_]+)(:|>=|<=|<|>| IN )(.*)$/.exec(q);
  if (m?.[1] !== 'name') {
    v2Error(ctx, 400, 10005, 'CF-BadQueryParameter', `The query parameter is invalid: ${q}`);
    return null;
  }
  const v = m[3] as string;
  switch (m[2]) {
    case ':':
      return (g) => g.name === v;
    case ' IN ': {
      const set = new Set(v.split(','));
      return (g) => set.has(g.name);
    }
    case '>=':
      return (g) => g.name >= v;
    case '<=':
      return (g) => g.name <= v;
    case '<':
      return (g) => g.name < v;
    default:
      return (g) => g.name > v;
  }
}

// ---- server ----

export function startCapi(opts: CapiOptions): Promise<RunningService> {
  const { world, engine, tokens } = opts;
  let base = '';
  const router = new Router();
  const sortedGroups = () => [...world.securityGroups.values()].sort((a, b) => a.id - b.id);

  const change = async (ctx: Ctx, c: SimChange, onOk: () => void): Promise<void> => {
    try {
      await engine.apply(c);
      onOk();
    } catch (err) {
      if (err instanceof ValidationError) {
        if (isV2(ctx))
          v2Error(
            ctx,
            400,
            300001,
            'CF-SecurityGroupInvalid',
            `The security group is invalid: ${err.message}`,
          );
        else unprocessable(ctx, err.message);
      } else throw err;
    }
  };

  router.on('GET', '/', (ctx) => {
    const links: Record<string, unknown> = {
      self: { href: base },
      bits_service: null,
      cloud_controller_v2: { href: `${base}/v2`, meta: { version: V2_VERSION } },
      cloud_controller_v3: { href: `${base}/v3`, meta: { version: V3_VERSION } },
      network_policy_v0: { href: `${base}/networking/v0/external` },
      network_policy_v1: { href: `${base}/networking/v1/external` },
      login: { href: opts.uaaUrl() },
      uaa: { href: opts.uaaUrl() },
      credhub: null,
      routing: { href: `${base}/routing` },
      logging: { href: 'wss://doppler.sim.internal:443' },
      log_cache: { href: 'https://log-cache.sim.internal' },
      log_stream: { href: 'https://log-stream.sim.internal' },
      app_ssh: {
        href: 'ssh.sim.internal:2222',
        meta: { host_key_fingerprint: 'sim', oauth_client: 'ssh-proxy' },
      },
    };
    if (!opts.v2) delete links.cloud_controller_v2;
    sendJson(ctx, 200, { links });
  });
  router.on('GET', '/v2/info', (ctx) =>
    sendJson(ctx, 200, {
      name: 'cfnet-sim',
      build: '',
      support: opts.v2 ? 'https://example.invalid/support' : 'CF API v2 is disabled',
      version: 0,
      description: 'cfnet foundation simulator',
      authorization_endpoint: opts.uaaUrl(),
      token_endpoint: opts.uaaUrl(),
      min_cli_version: null,
      min_recommended_cli_version: null,
      app_ssh_endpoint: 'ssh.sim.internal:2222',
      app_ssh_host_key_fingerprint: 'sim',
      app_ssh_oauth_client: 'ssh-proxy',
      doppler_logging_endpoint: 'wss://doppler.sim.internal:443',
      api_version: opts.v2 ? V2_VERSION : '',
      osbapi_version: '2.15',
      routing_endpoint: `${base}/routing`,
    }),
  );
  router.on('GET', '/v3', (ctx) =>
    sendJson(ctx, 200, {
      links: {
        self: { href: `${base}/v3` },
        security_groups: { href: `${base}/v3/security_groups` },
        organizations: { href: `${base}/v3/organizations` },
        spaces: { href: `${base}/v3/spaces` },
        apps: { href: `${base}/v3/apps` },
      },
    }),
  );
  registerNameRoutes(router, {
    world,
    base: () => base,
    authorize: (ctx) => {
      const a = authorize(ctx, tokens);
      return a.ok ? { readAll: a.readAll } : null;
    },
    unprocessable,
  });

  // v3 reads
  router.on('GET', '/v3/security_groups', (ctx) => {
    const a = authorize(ctx, tokens);
    if (a.ok) v3List(ctx, world, base, a);
  });
  router.on('GET', '/v3/security_groups/:guid', (ctx) => {
    const a = authorize(ctx, tokens);
    if (!a.ok) return;
    const g = world.securityGroups.get(ctx.params.guid ?? '');
    if (!g || (!a.readAll && !g.runningDefault && !g.stagingDefault)) return v3GroupNotFound(ctx);
    sendJson(ctx, 200, v3Resource(g, base, a.readAll));
  });
  for (const lc of ['running', 'staging'] as const) {
    router.on('GET', `/v3/spaces/:guid/${lc}_security_groups`, (ctx) => {
      const a = authorize(ctx, tokens);
      if (!a.ok) return;
      const space = ctx.params.guid ?? '';
      if (!world.spaces.has(space)) {
        v3Error(ctx, 404, 10010, 'CF-ResourceNotFound', 'Space not found');
        return;
      }
      v3List(ctx, world, base, { readAll: true }, (g) =>
        lc === 'running'
          ? g.runningDefault || g.runningSpaces.has(space)
          : g.stagingDefault || g.stagingSpaces.has(space),
      );
    });
  }
  router.on('GET', '/v3/jobs/:guid', (ctx) => {
    const a = authorize(ctx, tokens);
    if (!a.ok) return;
    const guid = ctx.params.guid ?? '';
    sendJson(ctx, 200, {
      guid,
      created_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      updated_at: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      operation: 'security_group.delete',
      state: 'COMPLETE',
      errors: [],
      warnings: [],
      links: { self: { href: `${base}/v3/jobs/${guid}` } },
    });
  });

  // v3 writes (admin only)
  const writer = (ctx: Ctx) => {
    const a = authorize(ctx, tokens);
    if (!a.ok) return false;
    if (!a.admin) {
      forbidden(ctx);
      return false;
    }
    return true;
  };
  /** The guid of the group a v3 write names, or null once the request was answered (401/403/404). */
  const writableGroup = (ctx: Ctx): string | null => {
    if (!writer(ctx)) return null;
    const guid = ctx.params.guid ?? '';
    if (world.securityGroups.has(guid)) return guid;
    v3GroupNotFound(ctx);
    return null;
  };
  const jsonBody = (ctx: Ctx): Record<string, unknown> | null => {
    try {
      const b = parseJsonBody(ctx);
      if (typeof b === 'object' && b !== null && !Array.isArray(b)) return b as Record<string, unknown>;
      v3Error(
        ctx,
        400,
        1001,
        'CF-MessageParseError',
        'Request invalid due to parse error: invalid request body',
      );
    } catch (err) {
      v3Error(
        ctx,
        400,
        1001,
        'CF-MessageParseError',
        `Request invalid due to parse error: ${errorMessage(err)}`,
      );
    }
    return null;
  };
  const relData = (v: unknown): string[] | undefined => {
    const data = (v as { data?: unknown } | undefined)?.data;
    if (!Array.isArray(data)) return undefined;
    return data.map((d) => String((d as { guid?: unknown }).guid));
  };
  router.on('POST', '/v3/security_groups', async (ctx) => {
    if (!writer(ctx)) return;
    const b = jsonBody(ctx);
    if (!b) return;
    const unknown = Object.keys(b).filter(
      (k) => !['name', 'rules', 'globally_enabled', 'relationships'].includes(k),
    );
    if (unknown.length > 0) return unprocessable(ctx, `Unknown field(s): '${unknown.join("', '")}'`);
    const ge = (b.globally_enabled ?? {}) as { running?: boolean; staging?: boolean };
    const rel = (b.relationships ?? {}) as Record<string, unknown>;
    const guidHolder: { guid?: string } = {};
    await change(
      ctx,
      {
        kind: 'asg-create',
        name: String(b.name ?? ''),
        rules: (b.rules ?? []) as CcRule[],
        globallyEnabled: ge,
        runningSpaces: relData(rel.running_spaces),
        stagingSpaces: relData(rel.staging_spaces),
        via: 'v3',
      },
      () => {
        const g = [...world.securityGroups.values()].find((x) => x.name === b.name);
        guidHolder.guid = g?.guid;
        if (g) sendJson(ctx, 201, v3Resource(g, base, true));
      },
    );
  });
  router.on('PATCH', '/v3/security_groups/:guid', async (ctx) => {
    const guid = writableGroup(ctx);
    if (guid === null) return;
    const b = jsonBody(ctx);
    if (!b) return;
    const unknown = Object.keys(b).filter((k) => !['name', 'rules', 'globally_enabled'].includes(k));
    if (unknown.length > 0) return unprocessable(ctx, `Unknown field(s): '${unknown.join("', '")}'`);
    await change(
      ctx,
      {
        kind: 'asg-update',
        guid,
        name: b.name === undefined ? undefined : String(b.name),
        rules: b.rules as CcRule[] | undefined,
        globallyEnabled: b.globally_enabled as { running?: boolean; staging?: boolean } | undefined,
        via: 'v3',
      },
      () => sendJson(ctx, 200, v3Resource(world.securityGroups.get(guid) as SimSecurityGroup, base, true)),
    );
  });
  router.on('DELETE', '/v3/security_groups/:guid', async (ctx) => {
    const guid = writableGroup(ctx);
    if (guid === null) return;
    await change(ctx, { kind: 'asg-delete', guid, via: 'v3' }, () => {
      const job = `sg-delete-${guid}`;
      ctx.res.writeHead(202, { Location: `${base}/v3/jobs/${job}`, 'Content-Length': '0' });
      ctx.res.end();
    });
  });
  for (const lc of ['running', 'staging'] as const) {
    router.on('POST', `/v3/security_groups/:guid/relationships/${lc}_spaces`, async (ctx) => {
      const guid = writableGroup(ctx);
      if (guid === null) return;
      const b = jsonBody(ctx);
      if (!b) return;
      const spaces = relData(b);
      if (!spaces || spaces.length === 0)
        return unprocessable(ctx, 'Data must be an array of objects with guids');
      await change(
        ctx,
        { kind: 'asg-bind-space', guid, spaceGuids: spaces, lifecycle: lc, via: 'v3' },
        () => {
          const g = world.securityGroups.get(guid) as SimSecurityGroup;
          const set = lc === 'running' ? g.runningSpaces : g.stagingSpaces;
          sendJson(ctx, 200, {
            data: [...set].map((s) => ({ guid: s })),
            links: { self: { href: `${base}/v3/security_groups/${guid}/relationships/${lc}_spaces` } },
          });
        },
      );
    });
    router.on('DELETE', `/v3/security_groups/:guid/relationships/${lc}_spaces/:space`, async (ctx) => {
      const guid = writableGroup(ctx);
      if (guid === null) return;
      await change(
        ctx,
        { kind: 'asg-unbind-space', guid, spaceGuid: ctx.params.space, lifecycle: lc, via: 'v3' },
        () => {
          ctx.res.writeHead(204);
          ctx.res.end();
        },
      );
    });
  }

  // v2
  /** Page parameters and the group a v2 read names, or null once the request was answered. */
  const v2ReadGroup = (ctx: Ctx): { p: V2Page; g: SimSecurityGroup } | null => {
    const a = authorize(ctx, tokens);
    if (!a.ok) return null;
    if (!a.readAll) {
      forbidden(ctx);
      return null;
    }
    const p = v2PageParams(ctx);
    if (!p) return null;
    const g = world.securityGroups.get(ctx.params.guid ?? '');
    if (g) return { p, g };
    v2GroupNotFound(ctx, ctx.params.guid);
    return null;
  };
  /** The guid of the group a v2 config write names, or null once the request was answered. */
  const v2AdminGroup = (ctx: Ctx): string | null => {
    const a = authorize(ctx, tokens);
    if (!a.ok) return null;
    if (!a.admin) {
      forbidden(ctx);
      return null;
    }
    const guid = ctx.params.guid ?? '';
    if (world.securityGroups.has(guid)) return guid;
    v2GroupNotFound(ctx, guid);
    return null;
  };
  router.on('GET', '/v2/security_groups', (ctx) => {
    const a = authorize(ctx, tokens);
    if (!a.ok) return;
    if (!a.readAll) return forbidden(ctx);
    const p = v2PageParams(ctx);
    if (!p) return;
    const filter = v2NameFilter(ctx, p.q);
    if (filter === null) return;
    let groups = sortedGroups();
    if (filter) groups = groups.filter(filter);
    if (p.orderBy === 'name') groups.sort((x, y) => x.name.localeCompare(y.name));
    v2Paged(ctx, p, groups, (g) => v2GroupResource(g, world, p.depth));
  });
  router.on('GET', '/v2/security_groups/:guid', (ctx) => {
    const r = v2ReadGroup(ctx);
    if (r) sendJson(ctx, 200, v2GroupResource(r.g, world, r.p.depth));
  });
  for (const rel of ['spaces', 'staging_spaces'] as const) {
    router.on('GET', `/v2/security_groups/:guid/${rel}`, (ctx) => {
      const r = v2ReadGroup(ctx);
      if (!r) return;
      const { p, g } = r;
      const set = rel === 'spaces' ? g.runningSpaces : g.stagingSpaces;
      const spaces = [...set].map((s) => world.spaces.get(s)).filter((s): s is SimSpace => s !== undefined);
      v2Paged(ctx, p, spaces, v2SpaceResource);
    });
  }
  for (const lc of ['running', 'staging'] as const) {
    router.on('GET', `/v2/config/${lc}_security_groups`, (ctx) => {
      const a = authorize(ctx, tokens);
      if (!a.ok) return;
      const p = v2PageParams(ctx);
      if (!p) return;
      const groups = sortedGroups().filter((g) => (lc === 'running' ? g.runningDefault : g.stagingDefault));
      v2Paged(ctx, p, groups, (g) => v2GroupResource(g, world, 0, lc));
    });
    router.on('PUT', `/v2/config/${lc}_security_groups/:guid`, async (ctx) => {
      const guid = v2AdminGroup(ctx);
      if (guid === null) return;
      await change(ctx, { kind: 'asg-set-global', guid, lifecycle: lc, enabled: true, via: 'v2' }, () =>
        sendJson(ctx, 200, v2GroupResource(world.securityGroups.get(guid) as SimSecurityGroup, world, 0, lc)),
      );
    });
    router.on('DELETE', `/v2/config/${lc}_security_groups/:guid`, async (ctx) => {
      const guid = v2AdminGroup(ctx);
      if (guid === null) return;
      await change(ctx, { kind: 'asg-set-global', guid, lifecycle: lc, enabled: false, via: 'v2' }, () => {
        ctx.res.writeHead(204);
        ctx.res.end();
      });
    });
  }

  return startService({
    name: 'capi',
    host: opts.host,
    port: opts.port,
    tls: { cert: opts.tls.cert, key: opts.tls.key },
    router,
    faults: opts.faults,
    before: (ctx) => {
      // capi-release ≥ 1.201.0 nginx: every /v2 path except /v2/info answers 404 when v2 is off.
      if (!opts.v2 && ctx.url.pathname.startsWith('/v2') && ctx.url.pathname !== '/v2/info') {
        sendText(ctx, 404, 'V2 endpoints disabled');
        return true;
      }
      return false;
    },
    onFault: (ctx, d) => {
      if (d.kind === 'rate-limit') {
        const reset = String(Math.floor(Date.now() / 1000) + d.retryAfter);
        if (isV2(ctx)) {
          v2Error(
            ctx,
            429,
            10013,
            'CF-RateLimitV2APIExceeded',
            'Rate Limit of V2 API Exceeded. Please consider using the V3 API',
            {
              'Retry-After': String(d.retryAfter),
              'X-RateLimit-Limit-V2-API': '2000',
              'X-RateLimit-Remaining-V2-API': '0',
              'X-RateLimit-Reset-V2-API': reset,
            },
          );
        } else {
          v3Error(ctx, 429, 10013, 'CF-RateLimitExceeded', 'Rate Limit Exceeded', {
            'Retry-After': String(d.retryAfter),
            'X-RateLimit-Limit': '20000',
            'X-RateLimit-Remaining': '0',
            'X-RateLimit-Reset': reset,
          });
        }
        return;
      }
      ccError(ctx, d.status, 10001, 'CF-ServerError', 'An unknown error occurred.');
    },
    faultBodyType: 'application/json; charset=utf-8',
    notFound: (ctx) => ccError(ctx, 404, 10000, 'CF-NotFound', 'Unknown request'),
  }).then((svc) => {
    base = svc.url;
    return svc;
  });
}

export interface CcInternalOptions {
  host: string;
  port: number;
  tls: { cert: string; key: string; clientCa: string };
  world: SimWorld;
  faults: FaultState;
}

/** CC's internal mTLS listener (tls_port 9023): only what cfnet needs. */
export function startCcInternal(opts: CcInternalOptions): Promise<RunningService> {
  const router = new Router();
  router.on('GET', '/internal/v4/asg_latest_update', (ctx) =>
    sendJson(ctx, 200, { last_update: rfc3339Nanos(opts.world.asgLatestUpdate) }),
  );
  return startService({
    name: 'ccInternal',
    host: opts.host,
    port: opts.port,
    tls: opts.tls,
    router,
    faults: opts.faults,
    onFault: (ctx, d) => {
      if (d.kind === 'rate-limit')
        return v3Error(ctx, 429, 10013, 'CF-RateLimitExceeded', 'Rate Limit Exceeded');
      v3Error(ctx, d.status, 10001, 'CF-ServerError', 'An unknown error occurred.');
    },
    faultBodyType: 'application/json',
    notFound: (ctx) => v3Error(ctx, 404, 10000, 'CF-NotFound', 'Unknown request'),
  });
}
