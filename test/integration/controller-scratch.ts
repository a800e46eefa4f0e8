/**
 * The independent side of the controller's end-to-end checks: list the simulator again with fresh
 * clients (no informer, no Redis world, no span, no queue), compute every cell from scratch and
 * compare with what a controller stored. Shared by the in-process and the real-process tests.
 */
import { BbsClient } from '../../src/cf/bbs-client.js';
import { CapiClient } from '../../src/cf/capi-client.js';
import { PolicyServerClient } from '../../src/cf/policy-client.js';
import { UaaClient } from '../../src/cf/uaa-client.js';
import { canonicalJson } from '../../src/model/canonical.js';
import { ruleSetsEqual } from '../../src/model/ruleset.js';
import type { CellConfig, CellRuleSet } from '../../src/model/types.js';
import { computeCellRuleSet } from '../../src/rules/compute.js';
import {
  desiredFromBbs,
  type InventoryEntry,
  instanceFromBbs,
  taskFromBbs,
} from '../../src/rules/records.js';
import { World } from '../../src/rules/world.js';
import type { SimHandle } from '../../src/sim/index.js';
import type { RuleSetStore } from '../../src/state/ruleset-store.js';
import { waitUntil } from '../helpers/wait.js';

/** Every cell of the simulator computed from a fresh listing of BBS, CAPI and the policy server. */
export async function fromScratch(
  sim: SimHandle,
  config: CellConfig,
  inventoryOf: (cell: string) => Promise<InventoryEntry[]>,
  /** The cells to compute (default: every cell of the simulated foundation). */
  cellIds?: Iterable<string>,
): Promise<Map<string, CellRuleSet>> {
  const mtls = { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey };
  const bbs = new BbsClient({ url: sim.urls.bbs, tls: mtls });
  const uaa = new UaaClient({
    url: sim.urls.uaa,
    clientId: sim.uaaClient.id,
    clientSecret: sim.uaaClient.secret,
    tls: { ca: sim.tls.caCert },
  });
  const capi = new CapiClient({ url: sim.urls.capi, tls: { ca: sim.tls.caCert }, auth: uaa });
  const pol = new PolicyServerClient({ url: sim.urls.policyServer, tls: mtls });
  try {
    const [desired, actual, tasks, groups, policies] = await Promise.all([
      bbs.desiredLrps(),
      bbs.actualLrps(),
      bbs.tasks(),
      capi.listSecurityGroups(),
      pol.policies(),
    ]);
    const w = new World();
    const t = { kind: 'resync' as const, id: 'scratch', at: 0 };
    w.replaceBbs(
      {
        desired: desired.flatMap((d) => desiredFromBbs(d, 0) ?? []),
        instances: actual.flatMap((a) => instanceFromBbs(a) ?? []),
        tasks: tasks.flatMap((x) => taskFromBbs(x, 0) ?? []),
      },
      t,
    );
    w.setAsgs(groups.groups, Date.now(), t);
    w.setPolicies(policies, t);
    const cells = new Set(cellIds ?? sim.world.cells.keys());
    for (const c of cells) w.setInventory(c, await inventoryOf(c));
    const out = new Map<string, CellRuleSet>();
    for (const c of cells) out.set(c, computeCellRuleSet(w, c, config));
    return out;
  } finally {
    bbs.close();
    capi.close();
    pol.close();
  }
}

/** A readable account of how two rule sets of a cell differ. */
export function describeDifference(cell: string, got: CellRuleSet, want: CellRuleSet): string {
  const gk = Object.keys(got.asgSets).sort().join(',');
  const wk = Object.keys(want.asgSets).sort().join(',');
  if (gk !== wk) {
    const onlyG = Object.keys(got.asgSets).filter((k) => !(k in want.asgSets));
    const onlyW = Object.keys(want.asgSets).filter((k) => !(k in got.asgSets));
    const users = (rs: CellRuleSet, k: string) =>
      rs.containers.filter((c) => c.egress === k).map((c) => `${c.handle}/${c.workload}/${c.spaceGuid}`);
    const gs = new Set(onlyG.flatMap((k) => got.asgSets[k]!.map((r) => canonicalJson(r))));
    const ws = new Set(onlyW.flatMap((k) => want.asgSets[k]!.map((r) => canonicalJson(r))));
    return `${cell}: asg sets differ; stored-only ${onlyG.map((k) => `${k}[${users(got, k)}]`)} expected-only ${onlyW.map((k) => `${k}[${users(want, k)}]`)}; rules only stored: ${[...gs].filter((x) => !ws.has(x))}; rules only expected: ${[...ws].filter((x) => !gs.has(x))}`;
  }
  const g = canonicalJson({ ...got, version: 0 });
  const e = canonicalJson(want);
  let i = 0;
  while (i < g.length && g[i] === e[i]) i++;
  return `${cell} differs at ${i}: stored …${g.slice(Math.max(0, i - 80), i + 120)}… expected …${e.slice(Math.max(0, i - 80), i + 120)}…`;
}

export interface ConvergenceTarget {
  sim: SimHandle;
  store: RuleSetStore;
  config: CellConfig;
  inventoryOf(cell: string): Promise<InventoryEntry[]>;
}

/** true when every cell's stored rule set equals the from-scratch one, else the first difference. */
export async function converged(t: ConvergenceTarget): Promise<string | true> {
  const expected = await fromScratch(t.sim, t.config, t.inventoryOf);
  for (const [cell, want] of expected) {
    const got = await t.store.get(cell);
    if (!got) return `${cell}: nothing stored`;
    if (!ruleSetsEqual(got, want)) return describeDifference(cell, got, want);
  }
  return true;
}

/** Wait until `converged`; the error names the last difference seen. */
export async function waitConverged(t: ConvergenceTarget, what: string, timeoutMs = 30_000): Promise<void> {
  let last: string | true = 'not checked';
  try {
    await waitUntil(
      what,
      async () => {
        last = await converged(t);
        return last === true;
      },
      timeoutMs,
      300,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last difference: ${last}`);
  }
}
