/**
 * A cell's rule set as the controller stored it (what its agent pulls), optionally narrowed to one
 * container or one app's containers, and its nft text as the agent would apply it (the dataplane's own renderer, so the
 * text is exactly what `nft -f` gets on a full apply).
 */

import { renderFull } from '../dataplane/render.js';
import { ValidationError } from '../lib/errors.js';
import { isHandle } from '../model/identifiers.js';
import type { NameDirectory } from '../model/names.js';
import type { CellContainer, CellRuleSet } from '../model/types.js';
import { validateCellId } from '../state/keys.js';
import type { AgentStatus, RuleSetStore, StoredMeta } from '../state/ruleset-store.js';
import { NotFoundError } from './errors.js';
import { type AppRef, resolveApp } from './names.js';

export interface StoredRules {
  ruleSet: CellRuleSet;
  meta: StoredMeta;
  status: AgentStatus | null;
  /** Set when narrowed to one container. */
  container?: string;
  /** Set when narrowed to one app's containers (its guid). */
  app?: string;
}

/**
 * The part of a rule set that concerns one container: the container, its egress rule list and the
 * c2c entries that allow traffic to it, its app's entry of the tag table. Cell-wide config stays (it
 * shapes the container's rules).
 */
export function containerSlice(rs: CellRuleSet, handle: string): CellRuleSet | null {
  return sliceOf(rs, (c) => c.handle === handle);
}

/** The part of a rule set that concerns one app's containers on the cell (as containerSlice). */
export function appSlice(rs: CellRuleSet, appGuid: string): CellRuleSet | null {
  return sliceOf(rs, (c) => c.appGuid === appGuid);
}

function sliceOf(
  rs: CellRuleSet,
  pick: (c: CellRuleSet['containers'][number]) => boolean,
): CellRuleSet | null {
  const cs = rs.containers.filter(pick);
  if (cs.length === 0) return null;
  const { tags, ...rest } = rs;
  const asgSets: CellRuleSet['asgSets'] = {};
  const ownTags: Record<string, number> = {};
  for (const c of cs) {
    const rules = rs.asgSets[c.egress];
    if (rules) asgSets[c.egress] = rules;
    // of the foundation's tag table, only the entries of the containers' own apps
    if (tags !== undefined && Object.hasOwn(tags, c.appGuid)) ownTags[c.appGuid] = tags[c.appGuid]!;
  }
  const ips = new Set(cs.map((c) => c.ip));
  return {
    ...rest,
    containers: cs,
    asgSets,
    c2c: rs.c2c.filter((e) => ips.has(e.dstIp)),
    ...(Object.keys(ownTags).length > 0 ? { tags: ownTags } : {}),
  };
}

/**
 * The stored rule set of a cell (and its agent's status), narrowed to a container or to the
 * containers of an app (`app`: a name, org/space/app or guid, resolved with `names`) when given.
 */
export async function loadRules(
  store: RuleSetStore,
  cell: string,
  container?: string,
  app?: { ref: AppRef; names: NameDirectory },
): Promise<StoredRules> {
  const cellId = validateCellId(cell, 'cell');
  if (container !== undefined && !isHandle(container)) {
    throw new ValidationError('container', container, 'must be a container handle (1-128 of [A-Za-z0-9_.-])');
  }
  const [ruleSet, meta, status] = await Promise.all([
    store.get(cellId),
    store.meta(cellId),
    store.status(cellId),
  ]);
  if (!ruleSet || !meta) {
    const known = await store.cells();
    throw new NotFoundError(
      'cell',
      cellId,
      known.length > 0
        ? `no rule set stored for it (${known.length} cells have one; see cfnet cells)`
        : 'no rule set stored in this namespace (is the controller running, is the namespace right?)',
    );
  }
  if (app !== undefined) {
    if (container !== undefined)
      throw new ValidationError('app', app.ref.app, 'give --app or --container, not both');
    const onCell = new Set(ruleSet.containers.map((c) => c.appGuid));
    const guid = resolveApp(app.names, app.ref, { app: '--app', space: '--space', org: '--org' }, (g) =>
      onCell.has(g),
    );
    const slice = appSlice(ruleSet, guid);
    if (!slice) {
      throw new NotFoundError(
        'app',
        app.names.appLabel(guid),
        `no container of it in the rule set of cell ${cellId} (${ruleSet.containers.length} containers)`,
      );
    }
    return { ruleSet: slice, meta, status, app: guid };
  }
  if (container === undefined) return { ruleSet, meta, status };
  const slice = containerSlice(ruleSet, container);
  if (!slice) {
    let hint = `not in the rule set of cell ${cellId} (${ruleSet.containers.length} containers)`;
    for (const other of await store.cells()) {
      if (other === cellId) continue;
      if ((await store.get(other))?.containers.some((c) => c.handle === container)) {
        hint = `it is on cell ${other}, not ${cellId}`;
        break;
      }
    }
    throw new NotFoundError('container', container, hint);
  }
  return { ruleSet: slice, meta, status, container };
}

/** A container's app, space and org by name (null when the controller holds no name for it). */
export interface ContainerNames {
  app: string | null;
  space: string | null;
  org: string | null;
}

/** A rule set as `cfnet rules --json` prints it: the stored one, each container with its names. */
export type NamedRuleSet = Omit<CellRuleSet, 'containers'> & {
  containers: Array<CellContainer & { names: ContainerNames }>;
};

/**
 * The rule set with `names` added to each container (the names the summary tables print). Additive:
 * every stored field stays as the agent pulls it, so tools reading the stored form keep working.
 */
export function withNames(rs: CellRuleSet, names: NameDirectory): NamedRuleSet {
  return {
    ...rs,
    containers: rs.containers.map((c) => ({
      ...c,
      names: {
        app: names.app(c.appGuid)?.name ?? null,
        space: names.space(c.spaceGuid)?.name ?? null,
        org: names.org(c.orgGuid)?.name ?? null,
      },
    })),
  };
}

/** The nft script a full apply of the rule set runs (`table` as on the cell, default `cfnet`). */
export function nftText(rs: CellRuleSet, table?: string): string {
  return renderFull(rs, table ? { table } : undefined);
}
