/**
 * Benchmark fixtures: the simulator's generated foundation (no servers) turned into the
 * controller's in-memory World the way the informers would (BBS records through the same
 * converters, CAPI rules through the CAPI parser, policies with their tags).
 */

import { parseCapiRules } from '../src/model/asg-rule.js';
import type { C2CPolicy, SecurityGroup } from '../src/model/types.js';
import { type DesiredInfo, egressSnapshot, type InstanceInfo, type TaskInfo } from '../src/rules/records.js';
import { type Trigger, World } from '../src/rules/world.js';
import type { SimWorld } from '../src/sim/world.js';

const T: Trigger = { kind: 'resync', id: 'bench', at: 0 };

export function securityGroupsOf(sim: SimWorld): SecurityGroup[] {
  return [...sim.securityGroups.values()].map((g) => ({
    guid: g.guid,
    name: g.name,
    rules: parseCapiRules(g.rules),
    runningDefault: g.runningDefault,
    stagingDefault: g.stagingDefault,
    runningSpaces: [...g.runningSpaces],
    stagingSpaces: [...g.stagingSpaces],
  }));
}

export function policiesOf(sim: SimWorld): C2CPolicy[] {
  return sim.policies.map((p) => ({
    source: { appGuid: p.sourceId, tag: sim.tags.get(p.sourceId)!.tag },
    destination: {
      appGuid: p.destinationId,
      tag: sim.tags.get(p.destinationId)!.tag,
      protocol: p.protocol,
      ports: { start: p.start, end: p.end },
    },
  }));
}

/** Build the World from a generated foundation; snapshots are parsed once per distinct rule list. */
export function worldFromSim(sim: SimWorld, stateAt = Date.now()): World {
  const w = new World();
  const snaps = new Map<readonly unknown[], ReturnType<typeof egressSnapshot>>();
  const snapOf = (rules: readonly unknown[]) => {
    let s = snaps.get(rules);
    if (!s) {
      s = egressSnapshot(rules as unknown[]);
      snaps.set(rules, s);
    }
    return s;
  };
  const listing = {
    desired: [...sim.desiredLrps.values()].map((d) => {
      const snapshot = snapOf(d.egressRules);
      const info: DesiredInfo = {
        processGuid: d.processGuid,
        appGuid: d.network.policy_group_id ?? d.appGuid,
        spaceGuid: d.network.space_id ?? d.spaceGuid,
        orgGuid: d.network.org_id ?? d.orgGuid,
        workload: 'app',
        snapshot: snapshot.hash,
        desiredAt: 0,
      };
      return { info, snapshot };
    }),
    instances: [...sim.actualLrps.values()]
      .filter((a) => a.instanceGuid && a.cellId)
      .map(
        (a): InstanceInfo => ({
          handle: a.instanceGuid,
          processGuid: a.processGuid,
          index: a.index,
          cellId: a.cellId,
          state: a.state,
          ip: a.instanceAddress,
          netIn: a.ports
            .filter((p) => p.hostPort > 0)
            .map((p) => ({ hostPort: p.hostPort, containerPort: p.containerPort }))
            .sort((x, y) => x.hostPort - y.hostPort),
        }),
      ),
    tasks: [...sim.tasks.values()]
      .filter((t) => t.cellId)
      .map((t) => {
        const snapshot = snapOf(t.egressRules);
        const info: TaskInfo = {
          handle: t.taskGuid,
          cellId: t.cellId,
          state: t.state,
          appGuid: t.appGuid,
          spaceGuid: t.spaceGuid,
          orgGuid: t.orgGuid,
          workload: t.domain === 'cf-app-staging' ? 'staging' : 'task',
          snapshot: snapshot.hash,
          desiredAt: 0,
        };
        return { info, snapshot };
      }),
  };
  w.replaceBbs(listing, T);
  w.setKnownCells(sim.cells.keys(), T);
  w.setAsgs(securityGroupsOf(sim), stateAt, T);
  w.setPolicies(policiesOf(sim), T);
  // Task IPs come from the agents' inventories: give each running task one.
  const byCell = new Map<string, number>();
  for (const t of listing.tasks) {
    const n = (byCell.get(t.info.cellId) ?? 0) + 1;
    byCell.set(t.info.cellId, n);
    const net = sim.cells.get(t.info.cellId)!.subnet.split('/')[0]!.split('.');
    const ip = `${net[0]}.${net[1]}.${net[2]}.${250 - n}`;
    w.setInventory(t.info.cellId, [{ ...t.info, ip }]);
  }
  w.takeChanges();
  return w;
}

export function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(0)} MB`;
}

export function printTable(title: string, rows: Array<Record<string, string | number>>): void {
  console.log(`\n${title}`);
  console.table(rows);
}

export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}
