/**
 * What the agent enforces = the controller's rule set for the cell + the local containers the CNI
 * plugin attached that the controller does not know yet (they keep their CNI-time rules: ASGs from
 * Garden's netOutRules, NetIn from the port mappings, no c2c tag) until the controller's rule set
 * includes them. Pure.
 *
 * The CNI datastore (handle → ip) is the truth about which address belongs to which container on
 * this cell. When the controller still lists a container whose address (or host port) now belongs
 * to another attached container, the stale controller entry gives way: a rule set never names one
 * address or host port twice (the dataplane would refuse it), and a new container never inherits
 * the rules of the one that had its address before.
 */
import { canonicalJson } from '../model/canonical.js';
import { sortRuleSet } from '../model/ruleset.js';
import type { CellContainer, CellRuleSet, EgressRule } from '../model/types.js';

/** A container as the CNI plugin attached it (what the dataplane got at ADD time). */
export interface LocalContainer {
  container: CellContainer;
  egressRules: EgressRule[];
  /** ms since the epoch. */
  addedAt: number;
}

export interface MergeResult {
  ruleSet: CellRuleSet;
  /** Local containers merged in (the controller does not know them yet). */
  merged: string[];
  /** Local records the controller now knows, or that are no longer attached: forget them. */
  obsolete: string[];
  /** Controller containers left out because their address belongs to another attached container. */
  dropped: string[];
}

/**
 * @param base     the controller's rule set
 * @param local    CNI-time records by handle
 * @param attached datastore view (handle → ip), or null when unknown (then no record is obsolete
 *                 for lack of attachment and no controller entry is dropped for an address clash
 *                 with an unrecorded container)
 */
export function mergeLocal(
  base: CellRuleSet,
  local: ReadonlyMap<string, LocalContainer>,
  attached: ReadonlyMap<string, string> | null,
): MergeResult {
  const known = new Set(base.containers.map((c) => c.handle));
  const merged: string[] = [];
  const obsolete: string[] = [];
  const adds: LocalContainer[] = [];
  for (const [handle, rec] of [...local.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))) {
    if (known.has(handle)) {
      obsolete.push(handle);
      continue;
    }
    if (attached !== null && attached.get(handle) !== rec.container.ip) {
      obsolete.push(handle);
      continue;
    }
    adds.push(rec);
  }

  // Address owners on this cell: attached containers first, then the local records.
  const ipOwner = new Map<string, string>();
  if (attached !== null) for (const [h, ip] of attached) ipOwner.set(ip, h);
  for (const a of adds) ipOwner.set(a.container.ip, a.container.handle);
  const localPorts = new Set<number>();
  for (const a of adds) for (const m of a.container.netIn) localPorts.add(m.hostPort);

  const dropped: string[] = [];
  const containers: CellContainer[] = [];
  const seenIp = new Set<string>();
  for (const c of base.containers) {
    const owner = ipOwner.get(c.ip);
    if ((owner !== undefined && owner !== c.handle) || seenIp.has(c.ip)) {
      dropped.push(c.handle);
      continue;
    }
    seenIp.add(c.ip);
    if (c.netIn.some((m) => localPorts.has(m.hostPort))) {
      containers.push({ ...c, netIn: c.netIn.filter((m) => !localPorts.has(m.hostPort)) });
    } else containers.push(c);
  }

  const asgSets: Record<string, EgressRule[]> = { ...base.asgSets };
  const usedPorts = new Set<number>();
  for (const c of containers) for (const m of c.netIn) usedPorts.add(m.hostPort);
  for (const a of adds) {
    if (seenIp.has(a.container.ip)) continue; // two records claim one address: keep the first
    seenIp.add(a.container.ip);
    let key = a.container.egress;
    const existing = asgSets[key];
    if (existing !== undefined && canonicalJson(existing) !== canonicalJson(a.egressRules)) {
      key = `cni_${key}`;
    }
    asgSets[key] = a.egressRules;
    const netIn = a.container.netIn.filter((m) => {
      if (usedPorts.has(m.hostPort)) return false;
      usedPorts.add(m.hostPort);
      return true;
    });
    containers.push({ ...a.container, egress: key, netIn });
    merged.push(a.container.handle);
  }

  const ruleSet = sortRuleSet({ ...base, containers, asgSets });
  return { ruleSet, merged, obsolete, dropped };
}
