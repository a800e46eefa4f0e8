/** World summary (counts, timestamps) and a content hash for determinism checks. */
import { createHash } from 'node:crypto';
import { rfc3339Nanos } from './capi.js';
import type { SimWorld } from './world.js';

export interface WorldSummary {
  seed: number;
  size: string;
  overlayNetwork: string;
  counts: {
    cells: number;
    orgs: number;
    spaces: number;
    apps: number;
    startedApps: number;
    desiredLrps: number;
    actualLrps: number;
    runningActualLrps: number;
    tasks: number;
    securityGroups: number;
    asgRules: number;
    policies: number;
    tags: number;
  };
  asgLatestUpdate: string;
  asgLatestUpdateNs: string;
  policiesLastUpdated: string;
}

export function summarize(world: SimWorld): WorldSummary {
  let running = 0;
  for (const a of world.actualLrps.values()) if (a.state === 'RUNNING') running++;
  let rules = 0;
  for (const g of world.securityGroups.values()) rules += g.rules.length;
  let started = 0;
  for (const a of world.apps.values()) if (a.state === 'STARTED') started++;
  return {
    seed: world.seed,
    size: world.size,
    overlayNetwork: world.overlayNetwork,
    counts: {
      cells: world.cells.size,
      orgs: world.orgs.size,
      spaces: world.spaces.size,
      apps: world.apps.size,
      startedApps: started,
      desiredLrps: world.desiredLrps.size,
      actualLrps: world.actualLrps.size,
      runningActualLrps: running,
      tasks: world.tasks.size,
      securityGroups: world.securityGroups.size,
      asgRules: rules,
      policies: world.policies.length,
      tags: world.tags.size,
    },
    asgLatestUpdate: rfc3339Nanos(world.asgLatestUpdate),
    asgLatestUpdateNs: world.asgLatestUpdate.toString(),
    policiesLastUpdated: world.policiesLastUpdated.toString(),
  };
}

function replacer(_k: string, v: unknown): unknown {
  if (typeof v === 'bigint') return v.toString();
  if (v instanceof Set) return [...v];
  if (v instanceof Map) return [...v.entries()];
  return v;
}

/** SHA-256 over every collection of the world, in insertion order (hex). */
export function worldHash(world: SimWorld): string {
  const h = createHash('sha256');
  const feed = (label: string, items: Iterable<unknown>) => {
    h.update(`#${label}\n`);
    for (const item of items) h.update(`${JSON.stringify(item, replacer)}\n`);
  };
  feed('cells', world.cells.values());
  feed('orgs', world.orgs.values());
  feed('spaces', world.spaces.values());
  feed('apps', world.apps.values());
  feed('desired', world.desiredLrps.values());
  feed('actual', world.actualLrps.values());
  feed('tasks', world.tasks.values());
  feed('asgs', world.securityGroups.values());
  feed('policies', world.policies);
  feed('tags', world.tags.values());
  feed('stamps', [world.asgLatestUpdate, world.policiesLastUpdated, world.overlayNetwork]);
  return h.digest('hex');
}
