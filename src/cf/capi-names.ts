/**
 * Org, space and app names from Cloud Controller v3 (docs/cf-interfaces.md, "Names"):
 *
 * - `listNames()`: `/v3/organizations`, `/v3/spaces`, `/v3/apps`, each paged (`per_page` up to
 *   5000, following `pagination.next.href`). A resource without a guid or name is skipped (names
 *   are for display; one bad row must not hide the others).
 * - `namesFingerprint()`: the cheap check, three requests: `per_page=1&order_by=-updated_at` of each
 *   collection gives its size and newest `updated_at`. A rename moves `updated_at`, a creation or a
 *   deletion moves the size (or the newest time), so an unchanged fingerprint means a listing would
 *   most likely find nothing new; the informer lists in full periodically anyway, because CC's
 *   times have one-second resolution and a deletion plus a creation within one check keeps the size.
 */
import type { NameData } from '../model/names.js';
import { CfMalformedResponseError } from './errors.js';
import type { HttpJsonClient } from './http.js';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const COLLECTIONS = ['organizations', 'spaces', 'apps'] as const;

function malformed(path: string, reason: string): CfMalformedResponseError {
  return new CfMalformedResponseError({
    service: 'capi',
    method: 'GET',
    path: path.split('?')[0] ?? path,
    reason,
  });
}

function nextPath(http: HttpJsonClient, body: Json, current: string): string | null {
  const p = body.pagination;
  const next = isObject(p) ? p.next : null;
  if (next === null || next === undefined) return null;
  if (!isObject(next) || typeof next.href !== 'string')
    throw malformed(current, 'pagination.next must be null or {href}');
  try {
    const u = new URL(next.href, `${http.baseUrl}/`);
    return `${u.pathname}${u.search}`;
  } catch {
    throw malformed(current, 'pagination.next.href is not a URL');
  }
}

async function listAll(http: HttpJsonClient, first: string): Promise<Json[]> {
  const out: Json[] = [];
  const seen = new Set<string>();
  let path: string | null = first;
  while (path) {
    if (seen.has(path)) throw malformed(path, 'pagination loops back to a page already read');
    seen.add(path);
    const { body }: { body: unknown } = await http.getJson<unknown>(path);
    if (!isObject(body) || !Array.isArray(body.resources))
      throw malformed(path, 'expected {pagination, resources: [...]}');
    for (const r of body.resources) if (isObject(r)) out.push(r);
    path = nextPath(http, body, path);
  }
  return out;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

/** `relationships.<rel>.data.guid` of a v3 resource. */
function related(r: Json, rel: string): string | undefined {
  const rels = r.relationships;
  const one = isObject(rels) ? rels[rel] : undefined;
  const data = isObject(one) ? one.data : undefined;
  return isObject(data) ? str(data.guid) : undefined;
}

/** Every org, space and app name (`perPage` 1..5000). */
export async function listNames(http: HttpJsonClient, perPage: number): Promise<NameData> {
  const [orgs, spaces, apps] = await Promise.all(
    COLLECTIONS.map((c) => listAll(http, `/v3/${c}?per_page=${perPage}`)),
  );
  const out: NameData = { orgs: [], spaces: [], apps: [] };
  for (const r of orgs ?? []) {
    const guid = str(r.guid);
    const name = str(r.name);
    if (guid && name) out.orgs.push({ guid, name });
  }
  for (const r of spaces ?? []) {
    const guid = str(r.guid);
    const name = str(r.name);
    const orgGuid = related(r, 'organization');
    if (guid && name && orgGuid) out.spaces.push({ guid, name, orgGuid });
  }
  for (const r of apps ?? []) {
    const guid = str(r.guid);
    const name = str(r.name);
    const spaceGuid = related(r, 'space');
    if (guid && name && spaceGuid) out.apps.push({ guid, name, spaceGuid });
  }
  return out;
}

/** Size and newest `updated_at` of each collection, as one comparable string. */
export async function namesFingerprint(http: HttpJsonClient): Promise<string> {
  const parts = await Promise.all(
    COLLECTIONS.map(async (c) => {
      const path = `/v3/${c}?per_page=1&order_by=-updated_at`;
      const { body } = await http.getJson<unknown>(path);
      if (!isObject(body) || !Array.isArray(body.resources) || !isObject(body.pagination))
        throw malformed(path, 'expected {pagination, resources: [...]}');
      const total = body.pagination.total_results;
      const first = body.resources[0];
      const newest = isObject(first) ? String(first.updated_at ?? '') : '';
      return `${c}:${String(total)}:${newest}`;
    }),
  );
  return parts.join(' ');
}
