/**
 * Org, space and app names as Cloud Controller lists them (v3 `/v3/organizations`, `/v3/spaces`,
 * `/v3/apps`), and the lookups the operator tools need: an app's `org/space/app` label, and the
 * apps that carry a name. Names are for people only: no rule depends on them, so a missing or
 * stale directory changes what tools print, never what cells enforce.
 *
 * CF names are unique only within their parent (an app name within its space, a space name within
 * its org), as the `cf` CLI assumes: an app is named unambiguously by org, space and app name.
 */
import { canonicalJson, shortHash } from './canonical.js';

export interface OrgName {
  guid: string;
  name: string;
}

export interface SpaceName {
  guid: string;
  name: string;
  orgGuid: string;
}

export interface AppName {
  guid: string;
  name: string;
  spaceGuid: string;
}

/** What the controller stores (`ns:w:names`, field `data`). */
export interface NameData {
  orgs: OrgName[];
  spaces: SpaceName[];
  apps: AppName[];
}

/** An app's place by name; a part is undefined when the directory does not know it. */
export interface AppPath {
  guid: string;
  app?: string;
  space?: string;
  org?: string;
  spaceGuid?: string;
  orgGuid?: string;
}

const byGuid = <T extends { guid: string }>(a: T, b: T) => (a.guid < b.guid ? -1 : a.guid > b.guid ? 1 : 0);

export class NameDirectory {
  static readonly EMPTY = new NameDirectory({ orgs: [], spaces: [], apps: [] });

  /** Content hash (order-free): a listing equal to the one in effect changes nothing. */
  readonly hash: string;
  readonly data: NameData;
  private readonly orgs = new Map<string, OrgName>();
  private readonly spaces = new Map<string, SpaceName>();
  private readonly apps = new Map<string, AppName>();
  private readonly appsByName = new Map<string, AppName[]>();

  constructor(data: NameData) {
    this.data = {
      orgs: [...data.orgs].sort(byGuid),
      spaces: [...data.spaces].sort(byGuid),
      apps: [...data.apps].sort(byGuid),
    };
    this.hash = shortHash(canonicalJson(this.data));
    for (const o of this.data.orgs) this.orgs.set(o.guid, o);
    for (const s of this.data.spaces) this.spaces.set(s.guid, s);
    for (const a of this.data.apps) {
      this.apps.set(a.guid, a);
      const list = this.appsByName.get(a.name);
      if (list) list.push(a);
      else this.appsByName.set(a.name, [a]);
    }
  }

  get size(): number {
    return this.apps.size;
  }

  app(guid: string): AppName | undefined {
    return this.apps.get(guid);
  }

  space(guid: string): SpaceName | undefined {
    return this.spaces.get(guid);
  }

  org(guid: string): OrgName | undefined {
    return this.orgs.get(guid);
  }

  /** Apps with exactly this name (CF names are case-sensitive). */
  appsNamed(name: string): readonly AppName[] {
    return this.appsByName.get(name) ?? [];
  }

  /** Where an app is, by name (the parts the directory knows). */
  appPath(guid: string): AppPath {
    const a = this.apps.get(guid);
    const s = a ? this.spaces.get(a.spaceGuid) : undefined;
    const o = s ? this.orgs.get(s.orgGuid) : undefined;
    return {
      guid,
      ...(a ? { app: a.name, spaceGuid: a.spaceGuid } : {}),
      ...(s ? { space: s.name, orgGuid: s.orgGuid } : {}),
      ...(o ? { org: o.name } : {}),
    };
  }

  /** `org/space/app` as operators name an app; the guid itself when the app's name is unknown. */
  appLabel(guid: string): string {
    const p = this.appPath(guid);
    if (p.app === undefined) return guid;
    return `${p.org ?? '?'}/${p.space ?? '?'}/${p.app}`;
  }

  /** `org/space`; the guid itself when the space's name is unknown. */
  spaceLabel(guid: string): string {
    const s = this.spaces.get(guid);
    if (!s) return guid;
    return `${this.orgs.get(s.orgGuid)?.name ?? '?'}/${s.name}`;
  }
}
