/**
 * The rule set of one cell as a pure function of the world (docs/architecture.md, "The rule set of a cell").
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
 * desire time (it is then the newer information). With static ASGs (`egressSource: 'static'`,
 * CF's `dynamic_asgs_enabled: false`) it is always that snapshot: a security-group change reaches a
 * container only when it is desired again (a restart). Each distinct rule list is stored once in
 * `asgSets` under its content hash, so containers with identical rules share one set.
 *
 * c2c: for every container whose app is the destination of policies, one allow per policy (source
 * tag, container IP, protocol, ports). A container's `tag` is its app's policy tag when its app is
 * the source of some policy (null otherwise: no c2c entry matches its packets). NetIn: the instance's host→container port mappings.
 *
 * Tags: the foundation's source tag table (every app that is the source of some policy → its tag),
 * the same on every cell: an instance or task of any of those apps may start on the cell, and its
 * agent tags it at CNI ADD from this table, before ADD returns and without asking the controller.
 *
 * Per-cell conflicts never block the cell; they are resolved deterministically and reported through
 * `onConflict`. Candidates are taken in a fixed order: those the cell's agent reports attached
 * first (they exist), then those BBS knows, then by handle. A container whose handle or address
 * the dataplane does not accept (a record stored before validation existed) is left out; the
 * first container of an address keeps it and a later one is left out; the first container of a
 * host port keeps the mapping and a later one loses that mapping only.
 */

import { containerIpv4, isHandle, isPort } from '../model/identifiers.js';
import { sortRuleSet } from '../model/ruleset.js';
import type { C2CAllow, CellConfig, CellContainer, CellRuleSet, EgressRule } from '../model/types.js';
import { MissingSnapshotError } from './errors.js';
import { lifecycleOf } from './indexes.js';
import type { ContainerRecord, EgressSnapshot, InventoryEntry, NetworkIdentity } from './records.js';
import { snapshotOf } from './records.js';
import type { WorldView } from './view.js';

export type EgressSource = 'auto' | 'dynamic' | 'snapshot' | 'static';

export interface ComputeOptions {
  /**
   * Where egress rules come from: 'auto' (default, as described above), 'dynamic' (CAPI state
   * whenever known), 'snapshot' (BBS snapshot whenever there is one, else the CAPI state) or
   * 'static' (CF's static ASGs, `dynamicAsgs: false`: the BBS snapshot only, never the CAPI state;
   * a container without a known snapshot — BBS does not know it or its desired LRP yet — gets no
   * ASG rules, as a container whose desired LRP carried none).
   */
  egressSource?: EgressSource;
  /** A per-cell conflict resolved while computing (a container or a mapping left out). */
  onConflict?: (c: CellConflict) => void;
}

export interface CellConflict {
  cellId: string;
  reason: 'address-conflict' | 'host-port-conflict' | 'invalid-handle' | 'invalid-address';
  /** The container that lost (left out, or without the mapping). */
  handle: string;
  /** The container that kept the address or host port (conflicts only). */
  winner?: string;
  field: string;
  value: string | number;
}

const NO_RULES: EgressSnapshot = snapshotOf([]);

interface Candidate {
  id: NetworkIdentity;
  handle: string;
  ip: string;
  rec: ContainerRecord | null;
  /** The cell's agent reports it attached (its CNI datastore holds it). */
  attached: boolean;
}

function egressOf(
  view: WorldView,
  cellId: string,
  c: Candidate,
  mode: NonNullable<ComputeOptions['egressSource']>,
): EgressSnapshot {
  const asg = mode === 'static' ? null : view.asgs();
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
    candidates.push({ id: rec, handle: rec.handle, ip, rec, attached: inv !== undefined });
  }
  for (const inv of inventory.values()) {
    if (inv.ip === '') continue;
    candidates.push({ id: inv, handle: inv.handle, ip: inv.ip, rec: null, attached: true });
  }

  const containers: CellContainer[] = [];
  const asgSets: Record<string, EgressRule[]> = {};
  const c2c: C2CAllow[] = [];
  const conflict = (x: Omit<CellConflict, 'cellId'>) => opts.onConflict?.({ cellId, ...x });
  const byIp = new Map<string, string>();
  const byHostPort = new Map<number, string>();
  const rank = (c: Candidate) => (c.attached ? 0 : 2) + (c.rec ? 0 : 1);
  candidates.sort((a, b) => rank(a) - rank(b) || (a.handle < b.handle ? -1 : a.handle > b.handle ? 1 : 0));
  for (const c of candidates) {
    if (!isHandle(c.handle)) {
      conflict({ reason: 'invalid-handle', handle: c.handle, field: 'handle', value: c.handle });
      continue;
    }
    const ip = containerIpv4(c.ip);
    if (ip === null) {
      conflict({ reason: 'invalid-address', handle: c.handle, field: 'ip', value: c.ip });
      continue;
    }
    const owner = byIp.get(ip);
    if (owner !== undefined) {
      conflict({ reason: 'address-conflict', handle: c.handle, winner: owner, field: 'ip', value: ip });
      continue;
    }
    byIp.set(ip, c.handle);
    const netIn: CellContainer['netIn'] = [];
    for (const m of c.rec?.netIn ?? []) {
      if (!isPort(m.hostPort) || !isPort(m.containerPort)) continue;
      const holder = byHostPort.get(m.hostPort);
      if (holder !== undefined) {
        conflict({
          reason: 'host-port-conflict',
          handle: c.handle,
          winner: holder,
          field: 'netIn.hostPort',
          value: m.hostPort,
        });
        continue;
      }
      byHostPort.set(m.hostPort, c.handle);
      netIn.push({ hostPort: m.hostPort, containerPort: m.containerPort });
    }
    const egress = egressOf(view, cellId, c, mode);
    asgSets[egress.hash] = egress.rules;
    const app = c.id.appGuid;
    containers.push({
      handle: c.handle,
      ip,
      appGuid: app,
      spaceGuid: c.id.spaceGuid,
      orgGuid: c.id.orgGuid,
      workload: c.id.workload,
      // only a policy source's packets need a mark (no c2c entry matches any other app's tag), and
      // exactly these tags are in the tag table CNI ADD tags new containers from
      tag: app === '' ? null : policies.sourceTagOf(app),
      egress: egress.hash,
      netIn,
    });
    if (app === '') continue;
    for (const p of policies.to(app)) {
      c2c.push({
        srcTag: p.source.tag,
        dstIp: ip,
        protocol: p.destination.protocol,
        ports: { start: p.destination.ports.start, end: p.destination.ports.end },
      });
    }
  }
  const tags = policies.sourceTags();
  return sortRuleSet({ cellId, version: 0, containers, asgSets, c2c, config, ...(tags ? { tags } : {}) });
}
