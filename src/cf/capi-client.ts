/**
 * Cloud Controller client for security groups (docs/cf-interfaces.md, "Security groups in Cloud Controller").
 *
 * - `info()`: `GET /` → which APIs the foundation serves (v2 only when `links.cloud_controller_v2`
 *   is present) and the UAA URL.
 * - `listSecurityGroups()`: v3 (`/v3/security_groups?per_page=5000`, following `next.href`) or v2
 *   (`/v2/security_groups?inline-relations-depth=1&results-per-page=100`, following the RELATIVE
 *   `next_url`; spaces paged from `/v2/security_groups/:guid/{spaces,staging_spaces}` whenever CC
 *   omitted the inlined list (>50 members); globals from `/v2/config/{running,staging}_security_groups`).
 * - Invalid groups do not fail the listing: a group whose rules (or shape) are invalid is left out
 *   of `groups` and reported in `invalid` as a `CfInvalidSecurityGroupError` (its `cause` is the
 *   model's ValidationError naming the field, e.g. `rules[2].ports`). The consumer decides what to
 *   enforce for it (e.g. keep the group's last valid version).
 * - `listNames()`, `namesFingerprint()`: org, space and app names (capi-names.ts).
 * - `asgLatestUpdate()`: CC's internal mTLS `GET /internal/v4/asg_latest_update` (404 → zero time).
 * - `listSecurityGroupsStable()`: the policy-server asg-syncer's pattern: read asg_latest_update,
 *   page, re-read it after each page; if it moved, discard and start again (3 tries), else
 *   `CapiUnstableListError`.
 *
 * Requests carry a UAA token (refreshed once on 401); 429 waits out `Retry-After`; 5xx, timeouts
 * and connection errors are retried with backoff (see `http.ts`).
 *
 * Longer than ~400 lines: the v3 and v2 listings with their different pagination and relations, and
 * the UAA token handling they share.
 */

import type { BackoffOptions } from '../lib/backoff.js';
import { ValidationError } from '../lib/errors.js';
import { defaultLogger, type Logger } from '../lib/log.js';
import { parseCapiRules } from '../model/asg-rule.js';
import type { NameData } from '../model/names.js';
import { parseCapiV3SecurityGroup } from '../model/security-group.js';
import type { SecurityGroup } from '../model/types.js';
import { listNames, namesFingerprint } from './capi-names.js';
import {
  CapiUnstableListError,
  CfInvalidSecurityGroupError,
  CfMalformedResponseError,
  type CfRequestContext,
} from './errors.js';
import { HttpJsonClient, type TokenSource } from './http.js';
import type { TlsMaterial } from './tls-config.js';

export type CapiVersion = 'v2' | 'v3';

export interface CapiClientConfig {
  /** CC API base URL, e.g. `https://api.sys.example.com`. */
  url: string;
  /** CA of CC's (or the router's) certificate. */
  tls?: TlsMaterial;
  /** Token source (the UAA client). */
  auth: TokenSource;
  /** CC's internal mTLS endpoint (`https://cloud-controller-ng.service.cf.internal:9023`), for asg_latest_update. */
  internal?: { url: string; tls?: TlsMaterial };
  timeoutMs?: number;
  retries?: number;
  backoff?: Partial<BackoffOptions>;
  rateLimitWaits?: number;
  maxRetryAfterMs?: number;
  /** v3 page size (1..5000). Default 5000. */
  perPageV3?: number;
  /** v2 page size (1..100). Default 100. */
  perPageV2?: number;
  logger?: Logger;
}

export interface CapiInfo {
  v2: boolean;
  v3: boolean;
  uaaUrl?: string;
  loginUrl?: string;
}

export interface SecurityGroupListing {
  /** Valid groups, in API order. */
  groups: SecurityGroup[];
  /** Groups left out because they are invalid, one typed error each. */
  invalid: CfInvalidSecurityGroupError[];
  source: CapiVersion;
  /** HTTP requests the listing took (pages, space pages, config endpoints). */
  requests: number;
}

export interface AsgLatestUpdate {
  /** As CC wrote it (`""` when the endpoint answered 404). */
  raw: string;
  /** Nanoseconds since the epoch (0n = no change recorded / endpoint absent). */
  nanos: bigint;
}

export interface StableListing extends SecurityGroupListing {
  /** asg_latest_update the listing is consistent with. */
  lastUpdate: AsgLatestUpdate;
  tries: number;
}

export interface ListOptions {
  /** Default: v3 when served, else v2 (from `info()`, cached). */
  version?: CapiVersion;
  /** Called after each page of groups; throwing aborts the listing. */
  afterPage?: () => Promise<void>;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `2024-05-01T10:20:30.123456789+00:00` → nanoseconds since the epoch (exact, bigint). */
export function parseRfc3339Nanos(text: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|z|[+-]\d{2}:\d{2})$/.exec(
    text.trim(),
  );
  if (!m) throw new ValidationError('last_update', text, 'not an RFC 3339 date-time');
  const zone = m[6]!.toUpperCase() === 'Z' ? 'Z' : m[6]!;
  const seconds = Date.parse(`${m[1]}T${m[2]}:${m[3]}:${m[4]}${zone}`);
  if (Number.isNaN(seconds)) throw new ValidationError('last_update', text, 'not a valid date-time');
  const frac = BigInt((m[5] ?? '').padEnd(9, '0'));
  return BigInt(seconds) * 1_000_000n + frac;
}

export class CapiClient {
  private readonly http: HttpJsonClient;
  private readonly internal: HttpJsonClient | undefined;
  private readonly perPageV3: number;
  private readonly perPageV2: number;
  private readonly log: Logger;
  private infoCache: Promise<CapiInfo> | undefined;

  constructor(config: CapiClientConfig) {
    this.log = config.logger ?? defaultLogger('cf.capi');
    const common = {
      timeoutMs: config.timeoutMs,
      retries: config.retries,
      backoff: config.backoff,
      rateLimitWaits: config.rateLimitWaits,
      maxRetryAfterMs: config.maxRetryAfterMs,
      logger: this.log,
    };
    this.http = new HttpJsonClient({
      service: 'capi',
      url: config.url,
      tls: config.tls,
      auth: config.auth,
      ...common,
    });
    if (config.internal) {
      this.internal = new HttpJsonClient({
        service: 'ccInternal',
        url: config.internal.url,
        tls: config.internal.tls,
        ...common,
      });
    }
    this.perPageV3 = Math.min(5000, Math.max(1, config.perPageV3 ?? 5000));
    this.perPageV2 = Math.min(100, Math.max(1, config.perPageV2 ?? 100));
  }

  /** Request counters (requests, retries, 429s, 401s) of the CAPI connection. */
  get stats() {
    return this.http.stats;
  }

  close(): void {
    this.http.close();
    this.internal?.close();
  }

  /** `GET /`: which API versions are served (v2 only with `links.cloud_controller_v2`). Cached. */
  info(refresh = false): Promise<CapiInfo> {
    if (!this.infoCache || refresh) {
      this.infoCache = this.fetchInfo().catch((err: unknown) => {
        this.infoCache = undefined;
        throw err;
      });
    }
    return this.infoCache;
  }

  private async fetchInfo(): Promise<CapiInfo> {
    const { body } = await this.http.getJson<unknown>('/', { auth: false });
    const links = isObject(body) && isObject(body.links) ? body.links : undefined;
    if (!links) {
      throw new CfMalformedResponseError({
        service: 'capi',
        method: 'GET',
        path: '/',
        reason: 'no links object',
      });
    }
    const href = (k: string): string | undefined => {
      const l = links[k];
      return isObject(l) && typeof l.href === 'string' ? l.href : undefined;
    };
    const info: CapiInfo = {
      v2: isObject(links.cloud_controller_v2),
      v3: isObject(links.cloud_controller_v3),
    };
    const uaa = href('uaa');
    const login = href('login');
    if (uaa) info.uaaUrl = uaa;
    if (login) info.loginUrl = login;
    this.log.info({ v2: info.v2, v3: info.v3 }, 'cloud controller APIs');
    return info;
  }

  /** Every security group (v3 when served, else v2; or `opts.version`). */
  async listSecurityGroups(opts: ListOptions = {}): Promise<SecurityGroupListing> {
    let version = opts.version;
    if (!version) {
      const info = await this.info();
      version = info.v3 ? 'v3' : 'v2';
    }
    return version === 'v3' ? this.listV3(opts.afterPage) : this.listV2(opts.afterPage);
  }

  /** Every org, space and app name (v3, paged; capi-names.ts). */
  listNames(): Promise<NameData> {
    return listNames(this.http, this.perPageV3);
  }

  /** Size and newest update of the org, space and app collections (three small v3 requests). */
  namesFingerprint(): Promise<string> {
    return namesFingerprint(this.http);
  }

  /** `GET /internal/v4/asg_latest_update` on the internal mTLS endpoint; 404 → zero time. */
  async asgLatestUpdate(): Promise<AsgLatestUpdate> {
    if (!this.internal) {
      throw new ValidationError(
        'internal',
        undefined,
        'asgLatestUpdate needs the internal CC endpoint configured',
      );
    }
    const path = '/internal/v4/asg_latest_update';
    const res = await this.internal.request({ path, accept: [404] });
    if (res.status === 404) return { raw: '', nanos: 0n };
    const body = this.internal.parseJson<unknown>(res, 'GET', path);
    const raw = isObject(body) ? body.last_update : undefined;
    if (typeof raw !== 'string') {
      throw new CfMalformedResponseError({
        service: 'ccInternal',
        method: 'GET',
        path,
        status: res.status,
        reason: 'last_update must be a string',
      });
    }
    try {
      return { raw, nanos: parseRfc3339Nanos(raw) };
    } catch (err) {
      throw new CfMalformedResponseError(
        { service: 'ccInternal', method: 'GET', path, status: res.status, reason: (err as Error).message },
        { cause: err },
      );
    }
  }

  /**
   * A listing no ASG change overlapped: asg_latest_update read before, and re-read after every
   * page; a change discards the pass. Up to `tries` passes (default 3), then CapiUnstableListError.
   */
  async listSecurityGroupsStable(
    opts: { tries?: number; version?: CapiVersion } = {},
  ): Promise<StableListing> {
    const tries = Math.max(1, opts.tries ?? 3);
    const unstable = Symbol('unstable');
    for (let attempt = 1; attempt <= tries; attempt++) {
      const before = await this.asgLatestUpdate();
      try {
        const listing = await this.listSecurityGroups({
          ...(opts.version ? { version: opts.version } : {}),
          afterPage: async () => {
            const now = await this.asgLatestUpdate();
            if (now.nanos !== before.nanos) throw unstable;
          },
        });
        return { ...listing, lastUpdate: before, tries: attempt };
      } catch (err) {
        if (err !== unstable) throw err;
        this.log.warn({ attempt, tries }, 'security groups changed while listing; starting again');
      }
    }
    throw new CapiUnstableListError({ service: 'capi', method: 'GET', path: '/v3/security_groups', tries });
  }

  // ------------------------------------------------------------------------------------------------
  // v3

  private async listV3(afterPage?: () => Promise<void>): Promise<SecurityGroupListing> {
    const groups: SecurityGroup[] = [];
    const invalid: CfInvalidSecurityGroupError[] = [];
    let requests = 0;
    let path: string | null = `/v3/security_groups?per_page=${this.perPageV3}`;
    const seen = new Set<string>();
    while (path) {
      if (seen.has(path)) throw this.malformed('GET', path, 'pagination loops back to a page already read');
      seen.add(path);
      const { body } = await this.http.getJson<unknown>(path);
      requests += 1;
      if (!isObject(body) || !Array.isArray(body.resources)) {
        throw this.malformed('GET', path, 'expected {pagination, resources: [...]}');
      }
      for (const [i, resource] of body.resources.entries()) {
        try {
          groups.push(parseCapiV3SecurityGroup(resource));
        } catch (err) {
          invalid.push(this.invalidGroup('/v3/security_groups', resource, i, err));
        }
      }
      path = this.v3Next(body, path);
      if (afterPage) await afterPage();
    }
    this.logListing('v3', groups.length, invalid.length, requests);
    return { groups, invalid, source: 'v3', requests };
  }

  /** The next page's path (taken from the absolute `next.href`, applied to our base URL). */
  private v3Next(body: Json, current: string): string | null {
    const pagination = body.pagination;
    if (!isObject(pagination)) return null;
    const next = pagination.next;
    if (next === null || next === undefined) return null;
    if (!isObject(next) || typeof next.href !== 'string') {
      throw this.malformed('GET', current, 'pagination.next must be null or {href}');
    }
    try {
      const u = new URL(next.href, `${this.http.baseUrl}/`);
      return `${u.pathname}${u.search}`;
    } catch {
      throw this.malformed('GET', current, 'pagination.next.href is not a URL');
    }
  }

  // ------------------------------------------------------------------------------------------------
  // v2

  private async listV2(afterPage?: () => Promise<void>): Promise<SecurityGroupListing> {
    const counter = { requests: 0 };
    const running = await this.v2GuidSet('/v2/config/running_security_groups', counter);
    const staging = await this.v2GuidSet('/v2/config/staging_security_groups', counter);
    const groups: SecurityGroup[] = [];
    const invalid: CfInvalidSecurityGroupError[] = [];
    const first = `/v2/security_groups?inline-relations-depth=1&results-per-page=${this.perPageV2}`;
    let index = 0;
    for await (const resource of this.v2Pages(first, counter, afterPage)) {
      const i = index++;
      try {
        groups.push(await this.v2Group(resource, running, staging, counter));
      } catch (err) {
        invalid.push(this.invalidGroup('/v2/security_groups', resource, i, err));
      }
    }
    this.logListing('v2', groups.length, invalid.length, counter.requests);
    return { groups, invalid, source: 'v2', requests: counter.requests };
  }

  /** Resources of a v2 collection, following the relative `next_url` (prefixed with the API base). */
  private async *v2Pages(
    firstPath: string,
    counter: { requests: number },
    afterPage?: () => Promise<void>,
  ): AsyncGenerator<unknown> {
    let path: string | null = firstPath;
    const seen = new Set<string>();
    while (path) {
      if (seen.has(path)) throw this.malformed('GET', path, 'pagination loops back to a page already read');
      seen.add(path);
      const { body }: { body: unknown } = await this.http.getJson<unknown>(path);
      counter.requests += 1;
      if (!isObject(body) || !Array.isArray(body.resources)) {
        throw this.malformed('GET', path, 'expected {total_results, next_url, resources: [...]}');
      }
      for (const r of body.resources) yield r;
      const next: unknown = body.next_url;
      if (next !== null && next !== undefined && typeof next !== 'string') {
        throw this.malformed('GET', path, 'next_url must be a string or null');
      }
      path = next ? (next.startsWith('/') ? next : `/${next}`) : null;
      if (afterPage) await afterPage();
    }
  }

  private async v2GuidSet(path: string, counter: { requests: number }): Promise<Set<string>> {
    const out = new Set<string>();
    const sep = path.includes('?') ? '&' : '?';
    for await (const r of this.v2Pages(`${path}${sep}results-per-page=${this.perPageV2}`, counter)) {
      const guid = isObject(r) && isObject(r.metadata) ? r.metadata.guid : undefined;
      if (typeof guid !== 'string' || guid === '')
        throw this.malformed('GET', path, 'resource without metadata.guid');
      out.add(guid);
    }
    return out;
  }

  private async v2Group(
    resource: unknown,
    running: Set<string>,
    staging: Set<string>,
    counter: { requests: number },
  ): Promise<SecurityGroup> {
    if (!isObject(resource) || !isObject(resource.metadata) || !isObject(resource.entity)) {
      throw new ValidationError('security_group', resource, 'must be {metadata, entity}');
    }
    const guid = resource.metadata.guid;
    const e = resource.entity;
    if (typeof guid !== 'string' || guid === '') {
      throw new ValidationError('metadata.guid', guid, 'guid must be a non-empty string');
    }
    if (typeof e.name !== 'string') throw new ValidationError('entity.name', e.name, 'name must be a string');
    const rules = parseCapiRules(e.rules ?? [], { path: 'entity.rules', allowUnknownKeys: true });
    const runningSpaces = await this.v2Spaces(guid, e, 'spaces', counter);
    const stagingSpaces = await this.v2Spaces(guid, e, 'staging_spaces', counter);
    return {
      guid,
      name: e.name,
      rules,
      runningDefault: running.has(guid) || e.running_default === true,
      stagingDefault: staging.has(guid) || e.staging_default === true,
      runningSpaces,
      stagingSpaces,
    };
  }

  /** Inlined `entity.<key>` when present; else page `<key>_url` (CC omits lists over 50 members). */
  private async v2Spaces(
    guid: string,
    entity: Json,
    key: 'spaces' | 'staging_spaces',
    counter: { requests: number },
  ): Promise<string[]> {
    const inline = entity[key];
    const guids: string[] = [];
    const take = (r: unknown, at: string): void => {
      const g = isObject(r) && isObject(r.metadata) ? r.metadata.guid : undefined;
      if (typeof g !== 'string' || g === '') throw new ValidationError(at, r, 'space without metadata.guid');
      guids.push(g);
    };
    if (Array.isArray(inline)) {
      for (const [i, r] of inline.entries()) take(r, `entity.${key}[${i}]`);
      return guids;
    }
    const urlField = entity[`${key}_url`];
    const base =
      typeof urlField === 'string' && urlField.startsWith('/')
        ? urlField
        : `/v2/security_groups/${guid}/${key}`;
    let i = 0;
    for await (const r of this.v2Pages(`${base}?results-per-page=${this.perPageV2}`, counter)) {
      take(r, `${key}[${i++}]`);
    }
    return guids;
  }

  // ------------------------------------------------------------------------------------------------

  private invalidGroup(
    path: string,
    resource: unknown,
    index: number,
    err: unknown,
  ): CfInvalidSecurityGroupError {
    if (!(err instanceof ValidationError)) throw err;
    const r = isObject(resource) ? resource : {};
    const meta = isObject(r.metadata) ? r.metadata : {};
    const entity = isObject(r.entity) ? r.entity : {};
    const guid =
      typeof r.guid === 'string' ? r.guid : typeof meta.guid === 'string' ? meta.guid : `#${index}`;
    const name = typeof r.name === 'string' ? r.name : typeof entity.name === 'string' ? entity.name : '';
    const e = new CfInvalidSecurityGroupError(
      { service: 'capi', method: 'GET', path, guid, name, field: err.field, reason: err.message },
      { cause: err },
    );
    this.log.warn({ guid, name, field: err.field, reason: err.message }, 'invalid security group left out');
    return e;
  }

  private malformed(method: string, path: string, reason: string): CfMalformedResponseError {
    const ctx: CfRequestContext & { reason: string } = {
      service: 'capi',
      method,
      path: path.split('?')[0] ?? path,
      reason,
    };
    return new CfMalformedResponseError(ctx);
  }

  private logListing(source: CapiVersion, groups: number, invalid: number, requests: number): void {
    this.log.info({ source, groups, invalid, requests }, 'listed security groups');
  }
}
