/**
 * Client of the CF policy server's internal API (docs/cf-interfaces.md, "Policy server internal API"): mTLS, JSON.
 *
 * - `policiesLastUpdated()` → bigint UnixNano, parsed from the raw text (never through a JS number:
 *   the value is above 2^53).
 * - `policies(ids?)` → `C2CPolicy[]` with tags; `id` matches source OR destination. Long id lists
 *   are split over several requests (URL length) and the union de-duplicated.
 * - `securityGroups({spaceGuids?, pageSize})` → every global group plus those bound to the spaces,
 *   following `from`/`limit`/`next` (the server reads `limit`, not `per_page`).
 * - `createOrGetTag(id, type)` → the tag of a group (`PUT …/tags`, idempotent; Silk asks it for
 *   `INGRESS_ROUTER` of type `router`, the tag routers' overlay packets carry).
 * Malformed JSON → `CfMalformedResponseError`; an invalid policy → `CfInvalidPolicyError`; an
 * invalid rule → `CfInvalidSecurityGroupError` naming the group and the field.
 */

import type { BackoffOptions } from '../lib/backoff.js';
import { ValidationError } from '../lib/errors.js';
import { defaultLogger, type Logger } from '../lib/log.js';
import {
  type PolicyListOptions,
  parseInternalPolicies,
  parseInternalSecurityGroups,
  parsePoliciesLastUpdated,
  parseTag,
} from '../model/policy.js';
import type { C2CPolicy, SecurityGroup } from '../model/types.js';
import { CfInvalidPolicyError, CfInvalidSecurityGroupError, CfMalformedResponseError } from './errors.js';
import { HttpJsonClient, type HttpResponse } from './http.js';
import type { TlsMaterial } from './tls-config.js';

export interface PolicyClientConfig {
  /** e.g. `https://policy-server.service.cf.internal:4003`. */
  url: string;
  /** CA, client certificate and key. */
  tls?: TlsMaterial;
  timeoutMs?: number;
  retries?: number;
  backoff?: Partial<BackoffOptions>;
  /** Longest query string per request when lists are split. Default 6,000 characters. */
  maxQueryLength?: number;
  logger?: Logger;
}

export interface SecurityGroupQuery {
  /** Groups bound to any of these spaces, plus the global ones (none: global ones only). */
  spaceGuids?: string[];
  /** `limit` per page. Default 5000. */
  pageSize?: number;
}

const BASE = '/networking/v1/internal';

function policyKey(p: C2CPolicy): string {
  const d = p.destination;
  return `${p.source.appGuid}|${p.source.tag}|${d.appGuid}|${d.tag}|${d.protocol}|${d.ports.start}-${d.ports.end}`;
}

/** Split `items` into comma-joined, URL-encoded batches no longer than `max` characters. */
export function batchQueryValues(items: string[], max: number): string[] {
  const batches: string[] = [];
  let cur = '';
  for (const item of items) {
    const enc = encodeURIComponent(item);
    if (cur && cur.length + 3 + enc.length > max) {
      batches.push(cur);
      cur = '';
    }
    cur = cur ? `${cur}%2C${enc}` : enc;
  }
  if (cur) batches.push(cur);
  return batches;
}

export class PolicyServerClient {
  private readonly http: HttpJsonClient;
  private readonly maxQuery: number;
  private readonly log: Logger;

  constructor(config: PolicyClientConfig) {
    this.log = config.logger ?? defaultLogger('cf.policy');
    this.http = new HttpJsonClient({
      service: 'policy',
      url: config.url,
      tls: config.tls,
      timeoutMs: config.timeoutMs ?? 15_000,
      retries: config.retries,
      backoff: config.backoff,
      logger: this.log,
    });
    this.maxQuery = config.maxQueryLength ?? 6000;
  }

  get stats() {
    return this.http.stats;
  }

  close(): void {
    this.http.close();
  }

  /** `GET …/policies_last_updated`: UnixNano as bigint. */
  async policiesLastUpdated(): Promise<bigint> {
    const path = `${BASE}/policies_last_updated`;
    const res = await this.http.request({ path });
    try {
      return parsePoliciesLastUpdated(res.text);
    } catch (err) {
      throw this.malformed(path, res, err);
    }
  }

  /** `GET …/policies[?id=…]`: all policies, or those whose source or destination is in `ids`. */
  async policies(ids?: string[], opts: PolicyListOptions = {}): Promise<C2CPolicy[]> {
    const path = `${BASE}/policies`;
    if (ids === undefined) return this.policiesPage(path, opts);
    if (ids.length === 0) return [];
    const out = new Map<string, C2CPolicy>();
    for (const batch of batchQueryValues([...new Set(ids)], this.maxQuery)) {
      for (const p of await this.policiesPage(`${path}?id=${batch}`, opts)) out.set(policyKey(p), p);
    }
    return [...out.values()];
  }

  private async policiesPage(path: string, opts: PolicyListOptions): Promise<C2CPolicy[]> {
    const res = await this.http.request({ path });
    const body = this.json(path, res);
    try {
      return parseInternalPolicies(body, opts);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      throw new CfInvalidPolicyError(
        {
          service: 'policy',
          method: 'GET',
          path: path.split('?')[0]!,
          status: res.status,
          field: err.field,
          reason: err.message,
        },
        { cause: err },
      );
    }
  }

  /** `GET …/security_groups`, every page (`from`/`limit`, until `next` is 0). */
  async securityGroups(query: SecurityGroupQuery = {}): Promise<SecurityGroup[]> {
    const limit = Math.max(1, query.pageSize ?? 5000);
    const spaces = query.spaceGuids ? [...new Set(query.spaceGuids)] : [];
    const batches = spaces.length > 0 ? batchQueryValues(spaces, this.maxQuery) : [undefined];
    const out = new Map<string, SecurityGroup>();
    for (const batch of batches) {
      let from = 0;
      const seen = new Set<number>();
      for (;;) {
        const params = [
          batch ? `space_guids=${batch}` : '',
          from > 0 ? `from=${from}` : '',
          `limit=${limit}`,
        ];
        const path = `${BASE}/security_groups?${params.filter(Boolean).join('&')}`;
        const res = await this.http.request({ path });
        const page = this.securityGroupPage(path, res);
        for (const g of page.groups) out.set(g.guid, g);
        if (page.next === 0) break;
        if (seen.has(page.next) || page.next <= from) {
          throw this.malformed(path, res, new Error(`next ${page.next} does not advance past from ${from}`));
        }
        seen.add(page.next);
        from = page.next;
      }
    }
    this.log.debug({ groups: out.size, spaces: spaces.length }, 'listed policy-server security groups');
    return [...out.values()];
  }

  /** `PUT …/tags` `{id, type}`: the group's tag, created on first use (the server is idempotent). */
  async createOrGetTag(id: string, type: string): Promise<number> {
    const path = `${BASE}/tags`;
    const res = await this.http.request({
      method: 'PUT',
      path,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ id, type }),
    });
    const body = this.http.parseJson<{ tag?: unknown }>(res, 'PUT', path);
    try {
      return parseTag(body?.tag, 'tag');
    } catch (err) {
      throw this.malformed(path, res, err, 'PUT');
    }
  }

  private securityGroupPage(path: string, res: HttpResponse): { next: number; groups: SecurityGroup[] } {
    const body = this.json(path, res);
    try {
      return parseInternalSecurityGroups(body);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      const m = /^security_groups\[(\d+)\]/.exec(err.field);
      const list = (body as { security_groups?: unknown }).security_groups;
      const group =
        m && Array.isArray(list) ? (list[Number(m[1])] as Record<string, unknown> | undefined) : undefined;
      if (group && typeof group === 'object') {
        throw new CfInvalidSecurityGroupError(
          {
            service: 'policy',
            method: 'GET',
            path: path.split('?')[0]!,
            status: res.status,
            guid: typeof group.guid === 'string' ? group.guid : `#${m![1]}`,
            name: typeof group.name === 'string' ? group.name : '',
            field: err.field,
            reason: err.message,
          },
          { cause: err },
        );
      }
      throw this.malformed(path, res, err);
    }
  }

  private json(path: string, res: HttpResponse): unknown {
    return this.http.parseJson<unknown>(res, 'GET', path);
  }

  private malformed(
    path: string,
    res: HttpResponse,
    err: unknown,
    method: 'GET' | 'PUT' = 'GET',
  ): CfMalformedResponseError {
    return new CfMalformedResponseError(
      {
        service: 'policy',
        method,
        path: path.split('?')[0]!,
        status: res.status,
        reason: err instanceof Error ? err.message : String(err),
      },
      { cause: err },
    );
  }
}
