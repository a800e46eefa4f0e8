/**
 * A cell's rule set as the controller stored it (what its agent pulls), optionally narrowed to one
 * container, and its nft text as the agent would apply it (the dataplane's own renderer, so the
 * text is exactly what `nft -f` gets on a full apply).
 */

import { renderFull } from '../dataplane/render.js';
import { ValidationError } from '../lib/errors.js';
import { isHandle } from '../model/identifiers.js';
import type { CellRuleSet } from '../model/types.js';
import { validateCellId } from '../state/keys.js';
import type { AgentStatus, RuleSetStore, StoredMeta } from '../state/ruleset-store.js';
import { NotFoundError } from './errors.js';

export interface StoredRules {
  ruleSet: CellRuleSet;
  meta: StoredMeta;
  status: AgentStatus | null;
  /** Set when narrowed to one container. */
  container?: string;
}

/**
 * The part of a rule set that concerns one container: the container, its egress rule list and the
 * c2c entries that allow traffic to it, its app's entry of the tag table. Cell-wide config stays (it
 * shapes the container's rules).
 */
export function containerSlice(rs: CellRuleSet, handle: string): CellRuleSet | null {
  const c = rs.containers.find((x) => x.handle === handle);
  if (!c) return null;
  const rules = rs.asgSets[c.egress];
  const { tags, ...rest } = rs;
  const tag = tags !== undefined && Object.hasOwn(tags, c.appGuid) ? tags[c.appGuid] : undefined;
  return {
    ...rest,
    containers: [c],
    asgSets: rules ? { [c.egress]: rules } : {},
    c2c: rs.c2c.filter((e) => e.dstIp === c.ip),
    // of the foundation's tag table, only the entry of the container's own app
    ...(tag !== undefined ? { tags: { [c.appGuid]: tag } } : {}),
  };
}

/** The stored rule set of a cell (and its agent's status), narrowed to a container when given. */
export async function loadRules(store: RuleSetStore, cell: string, container?: string): Promise<StoredRules> {
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

/** The nft script a full apply of the rule set runs (`table` as on the cell, default `cfnet`). */
export function nftText(rs: CellRuleSet, table?: string): string {
  return renderFull(rs, table ? { table } : undefined);
}
