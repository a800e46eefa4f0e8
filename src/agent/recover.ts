/**
 * Recovering CNI-time containers the agent never heard of (the plugin ran its one-off fallback
 * while the agent was down, and the controller does not know them yet) from the kernel's table:
 * the container's address, ASG chain, NetIn mappings and workload are read back, its identity
 * comes from the datastore metadata. Its egress rules are recovered only when some known rule set
 * has the same content hash (the ASG chain is named after it); otherwise it is not recovered and
 * the caller leaves it to the controller (which learns it from the inventory report). Pure.
 */
import type { Atom, Element } from '../dataplane/elements.js';
import type { CellContainer, EgressRule, Workload } from '../model/types.js';
import type { InventoryItem } from './client.js';
import type { LocalContainer } from './merge.js';

/** The part of a read-back table this needs (NftDataplane's KernelState fits). */
export interface TableSets {
  exists: boolean;
  sets: Map<string, Map<string, Element>>;
}

function ipText(a: Atom | undefined): string | null {
  return a?.k === 'ip' ? a.v : null;
}

function meta(m: Record<string, unknown>, k: string): string {
  const v = m[k];
  return typeof v === 'string' ? v : '';
}

/**
 * @param known egress hash → rules, from every rule set the agent holds
 */
export function recoverFromKernel(
  table: TableSets,
  item: InventoryItem,
  known: ReadonlyMap<string, EgressRule[]>,
  now = Date.now(),
): LocalContainer | null {
  if (!table.exists) return null;
  let inTable = false;
  for (const e of table.sets.get('ctr_addrs')?.values() ?? []) {
    if (ipText(e.key[0]) === item.ip) inTable = true;
  }
  if (!inTable) return null;
  let egress: string | null = null;
  for (const e of table.sets.get('ctr_asg')?.values() ?? []) {
    if (ipText(e.key[0]) !== item.ip) continue;
    const v = e.value?.[0];
    if (v?.k === 'verdict') {
      const m = /^asg_([A-Za-z0-9_]+)$/.exec(v.target);
      if (m) egress = m[1]!;
    }
  }
  if (egress === null) return null;
  const rules = known.get(egress);
  if (rules === undefined) return null;
  const netIn: CellContainer['netIn'] = [];
  for (const e of table.sets.get('netin_dnat')?.values() ?? []) {
    const [ip, port] = e.value ?? [];
    const host = e.key[0];
    if (ipText(ip) === item.ip && host?.k === 'port' && port?.k === 'port') {
      netIn.push({ hostPort: host.v, containerPort: port.v });
    }
  }
  netIn.sort((a, b) => a.hostPort - b.hostPort);
  let workload: Workload = 'app';
  for (const e of table.sets.get('ctr_staging')?.values() ?? []) {
    if (ipText(e.key[0]) === item.ip) workload = 'staging';
  }
  const w = meta(item.metadata, 'container_workload');
  if (w === 'app' || w === 'task' || w === 'staging') workload = w;
  return {
    container: {
      handle: item.handle,
      ip: item.ip,
      appGuid: meta(item.metadata, 'policy_group_id') || meta(item.metadata, 'app_id'),
      spaceGuid: meta(item.metadata, 'space_id'),
      orgGuid: meta(item.metadata, 'org_id'),
      workload,
      tag: null,
      egress,
      netIn,
    },
    egressRules: rules,
    addedAt: now,
  };
}
