/**
 * Naming an app the way the `cf` CLI does: by its name, narrowed by space and org when the name
 * alone is not unique (`--from web --space prod --org acme`, or `acme/prod/web` in one value), or by
 * its guid. Pure: the directory is the controller's copy of CAPI's names (world-reader.ts).
 *
 * - a name (and the given space/org) that fits exactly one app → that app's guid;
 * - fits several → CFNET_INVALID (exit 2), naming each candidate as `org/space/app`;
 * - fits none → the value itself when it is the guid of an app the directory or the world knows
 *   (GUIDs are always accepted, also when the controller has no names), else NotFoundError (exit 5).
 */
import { CfnetError, ValidationError } from '../lib/errors.js';
import type { AppName, NameDirectory } from '../model/names.js';
import { NotFoundError } from './errors.js';

/** An app as an operator named it. */
export interface AppRef {
  /** App name or guid, or `org/space/app` (also `space/app`). */
  app: string;
  /** Space name or guid. */
  space?: string;
  /** Org name or guid. */
  org?: string;
}

/** The options a query names an app with, for messages (`--from`, `--space`, `--org`). */
export interface RefOptions {
  app: string;
  space: string;
  org: string;
}

/** Split `org/space/app` or `space/app`; the flags win over nothing, and must not contradict. */
function splitPath(ref: AppRef, opts: RefOptions): AppRef {
  if (!ref.app.includes('/')) return ref;
  const parts = ref.app.split('/');
  if (parts.length > 3 || parts.some((p) => p === '')) {
    throw new ValidationError(opts.app, ref.app, 'must be an app name or guid, space/app or org/space/app');
  }
  const app = parts[parts.length - 1]!;
  const space = parts.length >= 2 ? parts[parts.length - 2] : undefined;
  const org = parts.length === 3 ? parts[0] : undefined;
  if (ref.space !== undefined && space !== undefined && ref.space !== space) {
    throw new ValidationError(opts.space, ref.space, `contradicts the space in ${opts.app} ${ref.app}`);
  }
  if (ref.org !== undefined && org !== undefined && ref.org !== org) {
    throw new ValidationError(opts.org, ref.org, `contradicts the org in ${opts.app} ${ref.app}`);
  }
  return {
    app,
    ...((space ?? ref.space) !== undefined ? { space: (space ?? ref.space)! } : {}),
    ...((org ?? ref.org) !== undefined ? { org: (org ?? ref.org)! } : {}),
  };
}

function where(ref: AppRef): string {
  return [ref.space !== undefined && `space ${ref.space}`, ref.org !== undefined && `org ${ref.org}`]
    .filter(Boolean)
    .join(', ');
}

/**
 * The guid of the app `ref` names. `knownGuid` says whether the world knows a guid (containers or
 * policies of it), so guids resolve also for apps the directory has no name for.
 */
export function resolveApp(
  dir: NameDirectory,
  input: AppRef,
  opts: RefOptions,
  knownGuid: (guid: string) => boolean = () => false,
): string {
  const ref = splitPath(input, opts);
  const fits = (a: AppName): boolean => {
    const s = dir.space(a.spaceGuid);
    if (ref.space !== undefined && a.spaceGuid !== ref.space && s?.name !== ref.space) return false;
    if (ref.org !== undefined) {
      const orgGuid = s?.orgGuid;
      if (orgGuid !== ref.org && (orgGuid === undefined || dir.org(orgGuid)?.name !== ref.org)) return false;
    }
    return true;
  };
  const named = dir.appsNamed(ref.app);
  const candidates = named.filter(fits);
  if (candidates.length === 1) return candidates[0]!.guid;
  if (candidates.length > 1) {
    const labels = candidates.map((a) => dir.appLabel(a.guid)).sort();
    throw new CfnetError(
      'CFNET_INVALID',
      `app name ${JSON.stringify(ref.app)} is ambiguous${where(ref) ? ` in ${where(ref)}` : ''}: ${labels.join(', ')}; narrow it with ${opts.space} and ${opts.org}, or give org/space/app or the guid`,
      { field: opts.app, value: ref.app, candidates: labels },
    );
  }
  // no name fits: a guid (with no space/org, or ones that agree with where the app is)
  const guidApp = dir.app(ref.app);
  if (guidApp ? fits(guidApp) : knownGuid(ref.app) && ref.space === undefined && ref.org === undefined) {
    return ref.app;
  }
  const hint =
    named.length > 0
      ? `apps of that name are in ${named.map((a) => dir.spaceLabel(a.spaceGuid)).join(', ')}, not in ${where(ref)}`
      : dir.size === 0
        ? 'no app guid of that value is known, and the controller holds no app names (is CAPI configured, has its leader listed them yet?)'
        : `no app has this name${where(ref) ? ` in ${where(ref)}` : ''} or this guid (names as of the controller's last CAPI listing)`;
  throw new NotFoundError('app', ref.app, hint);
}

/**
 * The guid of a space named by name, `org/space` or guid (events' `--space`). A value no space name
 * fits passes through as a guid: the journal keeps spaces that no longer exist.
 */
export function resolveSpace(dir: NameDirectory, value: string, field: string): string {
  const parts = value.split('/');
  if (parts.length > 2 || parts.some((p) => p === '')) {
    throw new ValidationError(field, value, 'must be a space name or guid, or org/space');
  }
  const [org, name] = parts.length === 2 ? [parts[0], parts[1]!] : [undefined, parts[0]!];
  const fits = dir.data.spaces.filter(
    (s) => s.name === name && (org === undefined || s.orgGuid === org || dir.org(s.orgGuid)?.name === org),
  );
  if (fits.length === 1) return fits[0]!.guid;
  if (fits.length > 1) {
    const labels = fits.map((s) => dir.spaceLabel(s.guid)).sort();
    throw new CfnetError(
      'CFNET_INVALID',
      `space name ${JSON.stringify(value)} is ambiguous: ${labels.join(', ')}; give org/space or the guid`,
      { field, value, candidates: labels },
    );
  }
  return value;
}
