/**
 * What the agent enforces = the controller's rule set for the cell + the local containers the CNI
 * plugin attached that the controller does not know yet (they keep their CNI-time rules: ASGs from
 * Garden's netOutRules, NetIn from the port mappings) until the controller's rule set includes
 * them. Their c2c identity comes from the rule set itself, with no controller round trip
 * (`localC2C`): the source tag from its tag table, and, as a destination, the c2c entries of
 * another container of the same app on the cell. Pure.
 *
 * The CNI datastore (handle → ip) is the truth about which address belongs to which container on
 * this cell. When the controller still lists a container whose address (or host port) now belongs
 * to another attached container, the stale controller entry gives way: a rule set never names one
 * address or host port twice (the dataplane would refuse it), and a new container never inherits
 * the rules of the one that had its address before.
 */
import { canonicalJson } from '../model/canonical.js';
import { sortRuleSet } from '../model/ruleset.js';
import type { C2CAllow, CellContainer, CellRuleSet, EgressRule } from '../model/types.js';

/** What a CNI-time container gets from the rule set in hand: its c2c source tag and allow entries. */
export interface LocalC2C {
  /** The container with `tag` from the rule set's tag table (null when its app is no source). */
  container: CellContainer;
  /**
   * Allow entries to the container: those of another container of its app on the cell (c2c
   * entries depend only on the destination app), re-aimed at its address. Empty when no other
   * instance of the app runs here: then the controller's rule set brings them.
   */
  c2c: C2CAllow[];
}

/**
 * The c2c identity a new container of app `container.appGuid` has in `base`, computed locally (CNI
 * ADD uses it inside the admitting transaction; `mergeLocal` keeps it until the controller knows
 * the container). A task's policy group is its app, so tasks are tagged alike.
 */
export function localC2C(base: CellRuleSet | null, container: CellContainer): LocalC2C {
  const app = container.appGuid;
  const tag =
    app !== '' && base?.tags !== undefined && Object.hasOwn(base.tags, app) ? base.tags[app]! : null;
  const tagged = tag === container.tag ? container : { ...container, tag };
  if (base === null || app === '') return { container: tagged, c2c: [] };
  const peer = base.containers.find(
    (c) => c.appGuid === app && c.handle !== container.handle && c.ip !== container.ip,
  );
  if (peer === undefined) return { container: tagged, c2c: [] };
  const c2c = base.c2c
    .filter((e) => e.dstIp === peer.ip)
    .map((e) => ({ srcTag: e.srcTag, dstIp: container.ip, protocol: e.protocol, ports: { ...e.ports } }));
  return { container: tagged, c2c };
}

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
  const c2c = [...base.c2c];
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
    const local = localC2C(base, a.container);
    containers.push({ ...local.container, egress: key, netIn });
    c2c.push(...local.c2c);
    merged.push(a.container.handle);
  }

  const ruleSet = sortRuleSet({ ...base, containers, asgSets, c2c });
  return { ruleSet, merged, obsolete, dropped };
}
