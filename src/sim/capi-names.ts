/**
 * The simulated Cloud Controller's v3 org, space and app listings (`/v3/organizations`,
 * `/v3/spaces`, `/v3/apps`): CC's pagination (`page`, `per_page` 1..5000, absolute `next.href`),
 * `order_by` (created_at, updated_at, name; `-` descending), `guids` and `names` filters, and the
 * relationships the controller reads (a space's organization, an app's space). A client without a
 * foundation-wide read scope sees none (it would see only the orgs it is a member of; the
 * simulator has no members).
 */
import type { Ctx, Router } from './http.js';
import { sendJson } from './http.js';
import type { SimWorld } from './world.js';

interface Row {
  guid: string;
  name: string;
  createdAt: string;
  updatedAt: string;
  resource: Record<string, unknown>;
}

const PARAMS = new Set(['page', 'per_page', 'order_by', 'guids', 'names']);

export interface NameRoutesOptions {
  world: SimWorld;
  /** The API's base URL (for absolute links). */
  base: () => string;
  /** Checks the token; null once the request was answered (401/403), else whether it reads all. */
  authorize: (ctx: Ctx) => { readAll: boolean } | null;
  unprocessable: (ctx: Ctx, detail: string) => void;
}

function list(ctx: Ctx, rows: Row[], o: NameRoutesOptions) {
  const q = ctx.url.searchParams;
  const unknown = [...q.keys()].filter((k) => !PARAMS.has(k));
  if (unknown.length > 0) {
    return o.unprocessable(
      ctx,
      `Unknown query parameter(s): '${unknown.join("', '")}'. Valid parameters are: '${[...PARAMS].join("', '")}'`,
    );
  }
  const pageRaw = q.get('page') ?? '1';
  const perPageRaw = q.get('per_page') ?? '50';
  if (!/^\d+$/.test(pageRaw) || Number(pageRaw) < 1)
    return o.unprocessable(ctx, 'Page must be greater than 0');
  if (!/^\d+$/.test(perPageRaw) || Number(perPageRaw) < 1 || Number(perPageRaw) > 5000)
    return o.unprocessable(ctx, 'Per page must be between 1 and 5000');
  const orderBy = q.get('order_by') ?? 'created_at';
  const field = orderBy.replace(/^-/, '');
  if (!['created_at', 'updated_at', 'name'].includes(field))
    return o.unprocessable(ctx, "Order by can only be: 'created_at', 'updated_at', 'name'");
  const set = (k: string) => (q.has(k) ? new Set((q.get(k) ?? '').split(',').filter(Boolean)) : null);
  const guids = set('guids');
  const names = set('names');
  const key = (r: Row) => (field === 'name' ? r.name : field === 'updated_at' ? r.updatedAt : r.createdAt);
  const dir = orderBy.startsWith('-') ? -1 : 1;
  const rows2 = rows
    .filter((r) => (!guids || guids.has(r.guid)) && (!names || names.has(r.name)))
    .sort((a, b) => dir * (key(a).localeCompare(key(b)) || a.guid.localeCompare(b.guid)));
  const page = Number(pageRaw);
  const perPage = Number(perPageRaw);
  const totalPages = Math.max(1, Math.ceil(rows2.length / perPage));
  const rest = new URLSearchParams();
  for (const [k, v] of q) if (k !== 'page' && k !== 'per_page') rest.append(k, v);
  const restStr = rest.toString();
  const href = (p: number) => ({
    href: `${o.base()}${ctx.url.pathname}?page=${p}&per_page=${perPage}${restStr ? `&${restStr}` : ''}`,
  });
  sendJson(ctx, 200, {
    pagination: {
      total_results: rows2.length,
      total_pages: totalPages,
      first: href(1),
      last: href(totalPages),
      next: page < totalPages ? href(page + 1) : null,
      previous: page > 1 ? href(page - 1) : null,
    },
    resources: rows2.slice((page - 1) * perPage, page * perPage).map((r) => r.resource),
  });
}

export function registerNameRoutes(router: Router, o: NameRoutesOptions): void {
  const { world } = o;
  const self = (path: string) => ({ self: { href: `${o.base()}${path}` } });
  const routes: Array<[string, () => Row[]]> = [
    [
      '/v3/organizations',
      () =>
        [...world.orgs.values()].map((g) => ({
          guid: g.guid,
          name: g.name,
          createdAt: g.createdAt,
          updatedAt: g.createdAt,
          resource: {
            guid: g.guid,
            created_at: g.createdAt,
            updated_at: g.createdAt,
            name: g.name,
            suspended: false,
            relationships: { quota: { data: null } },
            links: self(`/v3/organizations/${g.guid}`),
          },
        })),
    ],
    [
      '/v3/spaces',
      () =>
        [...world.spaces.values()].map((s) => ({
          guid: s.guid,
          name: s.name,
          createdAt: s.createdAt,
          updatedAt: s.updatedAt,
          resource: {
            guid: s.guid,
            created_at: s.createdAt,
            updated_at: s.updatedAt,
            name: s.name,
            relationships: { organization: { data: { guid: s.orgGuid } }, quota: { data: null } },
            links: self(`/v3/spaces/${s.guid}`),
          },
        })),
    ],
    [
      '/v3/apps',
      () =>
        [...world.apps.values()].map((a) => ({
          guid: a.guid,
          name: a.name,
          createdAt: a.createdAt,
          updatedAt: a.updatedAt,
          resource: {
            guid: a.guid,
            created_at: a.createdAt,
            updated_at: a.updatedAt,
            name: a.name,
            state: a.state,
            lifecycle: { type: 'buildpack', data: { buildpacks: [], stack: 'cflinuxfs4' } },
            relationships: { space: { data: { guid: a.spaceGuid } }, current_droplet: { data: null } },
            links: self(`/v3/apps/${a.guid}`),
          },
        })),
    ],
  ];
  for (const [path, rows] of routes) {
    router.on('GET', path, (ctx) => {
      const a = o.authorize(ctx);
      if (a) list(ctx, a.readAll ? rows() : [], o);
    });
  }
}
