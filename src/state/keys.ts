/**
 * Redis key layout of one cfnet installation. Every key starts with the namespace, which carries a
 * Redis Cluster hash tag (default `{cfnet}`): all keys share one slot, so Lua scripts and MULTI
 * blocks may touch any of them, and BullMQ uses the same namespace as its `prefix`.
 *
 * | key | type | content |
 * |---|---|---|
 * | `ns:leader` | string (PX lease) | `<fence>:<instance>` of the leader |
 * | `ns:leader:fence` | counter | last fencing token handed out |
 * | `ns:w:ready` | string | fence of the leader whose full world write is complete |
 * | `ns:w:readyAt` | string | when (Redis clock, ms) the world was last written in full |
 * | `ns:w:publish` | hash | leader's publish state: `state` waiting/publishing, `missing` sources, `since` |
 * | `ns:w:cell:<cell>` | hash | handle → ContainerRecord JSON (BBS-derived) |
 * | `ns:w:cells` | set | cells with a `w:cell` hash |
 * | `ns:w:snap` | hash | egress snapshot hash → normalised rules JSON |
 * | `ns:w:asg` | hash | `version` (counter), `hash` (content), `stateAt` (ms), `data` (groups JSON) |
 * | `ns:w:pol` | hash | `version`, `hash`, `data` (policies JSON) |
 * | `ns:w:names` | hash | `hash`, `data` (org, space and app names JSON, model/names.ts) |
 * | `ns:w:inv:<cell>` | hash | handle → InventoryEntry JSON (written by the agent API) |
 * | `ns:w:invcells` | set | cells with inventory |
 * | `ns:rs:<cell>` | hash | `version`, `hash`, `snapshot` (rule set JSON, its ASG sets' rules left out), `sets` (the keys of its ASG sets), `size` (length of the whole JSON), `tagsRef`, `updatedAt`, `behindSince` (ms: when the agent's applied version first fell behind) |
 * | `ns:rsets` | hash | ASG set key (content hash) → rules JSON, shared by every snapshot naming it |
 * | `ns:rsetrefs` | hash | ASG set key → how many cell snapshots name it (a set goes when none does) |
 * | `ns:rslog:<cell>` | list | `<from> <to> <LogEntry JSON>`, oldest first, bounded |
 * | `ns:rs:cells` | set | cells with a stored rule set |
 * | `ns:st:<cell>` | hash | agent status: applied version, times, error, its report interval |
 * | `ns:lease:cells` | hash | cell → Lease JSON |
 * | `ns:lease:subnets` | hash | subnet → owning cell |
 * | `ns:lease:expiry` | sorted set | cell → lease expiry (ms) |
 * | `ns:lease:recovery` | string | ms from which fresh subnets are handed out (recovery window) |
 * | `ns:lease:released` | hash | cell → release tombstone JSON, kept one TTL |
 * | `ns:lease:move` | set | cells an operator moves to a fresh subnet |
 * | channels `ns:rs:changed`, `ns:w:inv:changed` | pub/sub | `<cell> <version>`, `<cell>` |
 * | channel `ns:w:resync` | pub/sub | `<cell>`: a worker asks the leader for a full world rewrite |
 */
import { ValidationError } from '../lib/errors.js';
import { isCellId } from '../model/identifiers.js';

export const DEFAULT_NAMESPACE = '{cfnet}';

/**
 * A Redis namespace: printable, no spaces, at most 64 characters, with a Redis Cluster hash tag
 * (`{…}`, non-empty, the first `{` … `}` pair is the one Redis hashes). Every key, BullMQ's
 * included, then lands in one slot: the Lua scripts and MULTI blocks touch several keys, which a
 * cluster only allows within one slot.
 */
export function validateNamespace(ns: string, field = 'redis_namespace'): string {
  if (!/^[\x21-\x7e]{1,64}$/.test(ns)) {
    throw new ValidationError(field, ns, 'must be 1-64 printable characters without spaces, e.g. {cfnet}');
  }
  const open = ns.indexOf('{');
  const close = open < 0 ? -1 : ns.indexOf('}', open + 1);
  if (open < 0 || close <= open + 1) {
    throw new ValidationError(
      field,
      ns,
      'must contain a non-empty Redis Cluster hash tag in braces, e.g. {cfnet} or {cfnet}-prod',
    );
  }
  return ns;
}

export class Keys {
  readonly ns: string;

  constructor(ns: string = DEFAULT_NAMESPACE) {
    this.ns = validateNamespace(ns);
  }

  get leader(): string {
    return `${this.ns}:leader`;
  }

  get fence(): string {
    return `${this.ns}:leader:fence`;
  }

  get ready(): string {
    return `${this.ns}:w:ready`;
  }

  /** When (Redis clock, ms) the world was last written in full. */
  get readyAt(): string {
    return `${this.ns}:w:readyAt`;
  }

  /** Workers ask the leader for a full world rewrite here (an agent is ahead of the store). */
  get resyncChannel(): string {
    return `${this.ns}:w:resync`;
  }

  cellWorld(cell: string): string {
    return `${this.ns}:w:cell:${cell}`;
  }

  get worldCells(): string {
    return `${this.ns}:w:cells`;
  }

  get snapshots(): string {
    return `${this.ns}:w:snap`;
  }

  get asg(): string {
    return `${this.ns}:w:asg`;
  }

  get policies(): string {
    return `${this.ns}:w:pol`;
  }

  /** Org, space and app names (display only). */
  get names(): string {
    return `${this.ns}:w:names`;
  }

  inventory(cell: string): string {
    return `${this.ns}:w:inv:${cell}`;
  }

  get inventoryCells(): string {
    return `${this.ns}:w:invcells`;
  }

  get inventoryChannel(): string {
    return `${this.ns}:w:inv:changed`;
  }

  ruleSet(cell: string): string {
    return `${this.ns}:rs:${cell}`;
  }

  ruleSetLog(cell: string): string {
    return `${this.ns}:rslog:${cell}`;
  }

  get ruleSetCells(): string {
    return `${this.ns}:rs:cells`;
  }

  /** Tag tables by content hash (hash field → JSON text), shared by every cell's snapshot. */
  get tagTables(): string {
    return `${this.ns}:rs:tags`;
  }

  /** How many cell snapshots name each tag table (a table goes when none does). */
  get tagTableRefs(): string {
    return `${this.ns}:rs:tagrefs`;
  }

  /**
   * ASG sets by key (the content hash of their rules: hash field → JSON text), shared by every
   * cell's snapshot. Outside `rs:`, where any name could be a cell's.
   */
  get asgSets(): string {
    return `${this.ns}:rsets`;
  }

  /** How many cell snapshots name each ASG set (a set goes when none does). */
  get asgSetRefs(): string {
    return `${this.ns}:rsetrefs`;
  }

  get ruleSetChannel(): string {
    return `${this.ns}:rs:changed`;
  }

  status(cell: string): string {
    return `${this.ns}:st:${cell}`;
  }

  get leases(): string {
    return `${this.ns}:lease:cells`;
  }

  get leaseSubnets(): string {
    return `${this.ns}:lease:subnets`;
  }

  get leaseExpiry(): string {
    return `${this.ns}:lease:expiry`;
  }

  /** The leader's publish state: `leader`, `state` (waiting|publishing), `missing` sources, `since`. */
  get publishState(): string {
    return `${this.ns}:w:publish`;
  }

  /** Time (ms) from which fresh subnets are handed out after the lease table was found empty. */
  get leaseRecovery(): string {
    return `${this.ns}:lease:recovery`;
  }

  /** Tombstones of released leases (cell → {cellId, subnet, releasedAt}), kept one TTL. */
  get leaseReleased(): string {
    return `${this.ns}:lease:released`;
  }

  /** Cells an operator moves to a fresh subnet at their next lease request. */
  get leaseMoves(): string {
    return `${this.ns}:lease:move`;
  }

  /** Glob matching every key of the namespace (for tests and resets). */
  get pattern(): string {
    return `${this.ns.replace(/[*?[\]\\]/g, '\\$&')}:*`;
  }
}

/** A cell id as cfnet accepts it (Diego cell ids, BOSH instance names/guids): src/model/identifiers. */
export { CELL_ID_PATTERN } from '../model/identifiers.js';

export function validateCellId(id: unknown, field = 'cell_id'): string {
  if (!isCellId(id)) {
    throw new ValidationError(field, id, 'must be 1-128 characters of [A-Za-z0-9_.-], starting alphanumeric');
  }
  return id;
}
