/**
 * The rule set of one cell as a pure function of the world (design.md "Rule set of a cell").
 *
 * Containers: every active container BBS places on the cell (RUNNING/CLAIMED LRP instances, Running
 * tasks and staging tasks) that has an IP (from BBS, or from the cell agent's inventory: BBS does
 * not know task IPs), plus containers the agent reports that BBS does not know at all (they keep
 * the agent's metadata). A container BBS knows as not active is left out even if the agent still
 * reports it (it is being torn down).
 *
 * Egress of a container: the globally enabled running groups plus its space's running groups (apps
 * and tasks) or the staging ones (staging), from the controller's CAPI state, when that state was
 * listed after the container was desired; otherwise the `egress_rules` snapshot CC put into BBS at
 * desire time (it is then the newer information). Each distinct rule list is stored once in
 * `asgSets` under its content hash.
 *
 * c2c: for every container whose app is the destination of policies, one allow per policy (source
 * tag, container IP, protocol, ports). A container's `tag` is its app's policy tag (null if its app
 * is in no policy). NetIn: the instance's host→container port mappings.
 */

import { sortRuleSet } from '../model/ruleset.js';
import type { C2CAllow, CellConfig, CellContainer, CellRuleSet, EgressRule } from '../model/types.js';
import { MissingSnapshotError } from './errors.js';
import { lifecycleOf } from './world/indexes.js';
import type { ContainerRecord, EgressSnapshot, InventoryEntry, NetworkIdentity } from './world/records.js';
import { snapshotOf } from './world/records.js';
import type { WorldView } from './world/view.js';

export interface ComputeOptions {
  /**
   * Where egress rules come from: 'auto' (default, as described above), 'dynamic' (CAPI state
   * whenever known) or 'snapshot' (BBS snapshot whenever there is one).
   */
  egressSource?: 'auto' | 'dynamic' | 'snapshot';
}

const NO_RULES: EgressSnapshot = snapshotOf([]);

interface Candidate {
  id: NetworkIdentity;
  handle: string;
  ip: string;
  rec: ContainerRecord | null;
}

function egressOf(
  view: WorldView,
  cellId: string,
  c: Candidate,
  mode: NonNullable<ComputeOptions['egressSource']>,
): EgressSnapshot {
  const asg = view.asgs();
  const snapshot = c.rec?.snapshot ?? null;
  const dynamicWins =
    asg !== null &&
    (snapshot === null || mode === 'dynamic' || (mode === 'auto' && c.rec!.desiredAt <= asg.stateAt));
  if (dynamicWins) return asg.effective(c.id.spaceGuid, lifecycleOf(c.id.workload));
  if (snapshot !== null) {
    const rules = view.snapshotRules(snapshot);
    if (rules === undefined) throw new MissingSnapshotError(cellId, c.handle, snapshot);
    return { hash: snapshot, rules: rules as EgressRule[] };
  }
  return NO_RULES;
}

/** Compute the rule set of `cellId` (version 0; the store assigns versions). Sorted canonically. */
export function computeCellRuleSet(
  view: WorldView,
  cellId: string,
  config: CellConfig,
  opts: ComputeOptions = {},
): CellRuleSet {
  const mode = opts.egressSource ?? 'auto';
  const policies = view.policies();
  const inventory = new Map<string, InventoryEntry>();
  for (const e of view.cellInventory(cellId)) inventory.set(e.handle, e);

  const candidates: Candidate[] = [];
  for (const rec of view.cellRecords(cellId)) {
    const inv = inventory.get(rec.handle);
    inventory.delete(rec.handle);
    if (!rec.active) continue;
    const ip = rec.ip || inv?.ip || '';
    if (ip === '') continue;
    candidates.push({ id: rec, handle: rec.handle, ip, rec });
  }
  for (const inv of inventory.values()) {
    if (inv.ip === '') continue;
    candidates.push({ id: inv, handle: inv.handle, ip: inv.ip, rec: null });
  }

  const containers: CellContainer[] = [];
  const asgSets: Record<string, EgressRule[]> = {};
  const c2c: C2CAllow[] = [];
  for (const c of candidates) {
    const egress = egressOf(view, cellId, c, mode);
    asgSets[egress.hash] = egress.rules;
    const app = c.id.appGuid;
    containers.push({
      handle: c.handle,
      ip: c.ip,
      appGuid: app,
      spaceGuid: c.id.spaceGuid,
      orgGuid: c.id.orgGuid,
      workload: c.id.workload,
      tag: app === '' ? null : policies.tagOf(app),
      egress: egress.hash,
      netIn: c.rec ? c.rec.netIn.map((m) => ({ hostPort: m.hostPort, containerPort: m.containerPort })) : [],
    });
    if (app === '') continue;
    for (const p of policies.to(app)) {
      c2c.push({
        srcTag: p.source.tag,
        dstIp: c.ip,
        protocol: p.destination.protocol,
        ports: { start: p.destination.ports.start, end: p.destination.ports.end },
      });
    }
  }
  return sortRuleSet({ cellId, version: 0, containers, asgSets, c2c, config });
}
