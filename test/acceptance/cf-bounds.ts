/**
 * What the acceptance scenarios share: CF's own time bounds (cf-networking-release's acceptance and
 * smoke suites, see docs/acceptance.md), the controller cadence of a production deployment (the
 * lab's own defaults poll far faster, which would flatter cfnet's times), and a timer that asserts a
 * CF bound while recording how long cfnet took.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { ASG_FULL_LIST_DEFAULT_MS, CONTROLLER_SETTINGS } from '../../src/controller/settings.js';
import { type Cluster, EXTERNAL_IP } from '../helpers/cluster.js';
import { type FlowReport, FlowWatch } from '../helpers/flow-watch.js';
import { type Probe, type ProbeResult, probe } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

/** CF's `PolicyWaitTime`: the suite sleeps this long after a policy change before it checks. */
export const POLICY_WAIT_MS = 7_000;
/** CF's per-connection `Eventually` after that sleep (`assertResponseContains`). */
export const CONNECTION_EVENTUALLY_MS = 10_000;
/** `external_connectivity`: a bound ASG must be in effect within 180 s (`Eventually(…, "180s")`). */
export const ASG_EXTERNAL_BOUND_MS = 180_000;
/** `asg_test`: binding or unbinding must be in effect within 60 s (`WithTimeout(60 * time.Second)`). */
export const ASG_TEST_BOUND_MS = 60_000;
/** `external_connectivity` sleeps 10 s after an unbind, then checks `Consistently` for 180 s. */
export const UNBIND_SETTLE_MS = 10_000;
export const UNBIND_CONSISTENTLY_MS = 180_000;
/** `task_connectivity`: the task's curl loop must succeed within `Timeout_Task_Curl` (1 minute). */
export const TASK_CURL_BOUND_MS = 60_000;
/** `inter_container_connectivity`: scaling must show in the registry within 60 s. */
export const SCALE_BOUND_MS = 60_000;
/** smoke: each stage (`runWithTimeout`) has 5 minutes; it sleeps 10 s after creating policies. */
export const SMOKE_STAGE_MS = 300_000;
export const SMOKE_POLICY_SLEEP_MS = 10_000;
/** `custom_iptables_compatibility`: 180 s overall, each `cf ssh … curl` 10 s. */
export const CUSTOM_IPTABLES_BOUND_MS = 180_000;
/** `external_connectivity`: the app is reachable through the router within 10 s. */
export const ROUTER_REACHABLE_MS = 10_000;

function defaultOf(key: string): number {
  const def = CONTROLLER_SETTINGS.find((s) => s.key === key)?.def;
  if (typeof def !== 'number') throw new Error(`setting ${key} has no numeric default`);
  return def;
}

/**
 * The controller's production polling cadence (the settings' own defaults), for `Cluster.start({
 * controller })`: acceptance times must be what an operator would see, not the lab's fast polls.
 */
export function productionCadence(): Record<string, number> {
  const cadence: Record<string, number> = {
    policyPollIntervalMs: defaultOf('policyPollIntervalMs'),
    asgCheckIntervalMs: defaultOf('asgCheckIntervalMs'),
  };
  // the lab's controller reads CC's internal endpoint (asg_latest_update), as BOSH deployments do
  cadence.asgFullListIntervalMs = ASG_FULL_LIST_DEFAULT_MS.withLatestUpdate;
  return cadence;
}

/**
 * Probes `probes` from `ns` until the results equal `want`; asserts that took no more than CF's
 * `boundMs` and reports cfnet's time as a test diagnostic (collected into docs/acceptance.md).
 * Returns the time in ms.
 */
export async function within(
  t: TestContext,
  what: string,
  boundMs: number,
  ns: string,
  probes: Probe[],
  want: Expect[],
  opts: { since?: number; intervalMs?: number; timeoutMs?: number } = {},
): Promise<number> {
  return until(
    t,
    what,
    boundMs,
    async () => {
      const last = await probe(ns, probes, opts.timeoutMs ?? 1000);
      if (matches(last, want)) return true;
      // waitUntil names the last failure when the bound runs out
      throw new Error(`want ${want.join(',')}, still ${last.join(',')}`);
    },
    opts,
  );
}

/** `closed`: what CF calls "request failed" — refused, unreachable or no answer; anything but open. */
export type Expect = 'open' | 'closed';

export function matches(results: readonly ProbeResult[], want: readonly Expect[]): boolean {
  return results.length === want.length && results.every((r, i) => (want[i] === 'open') === (r === 'open'));
}

/** One round of probes, as open/closed (CF's outcomes). */
export async function outcome(ns: string, probes: Probe[], timeoutMs = 1000): Promise<Expect[]> {
  return (await probe(ns, probes, timeoutMs)).map((r) => (r === 'open' ? 'open' : 'closed'));
}

export { tcp, udp } from '../helpers/fixtures.js';

/**
 * Waits until `check` holds; asserts that took no more than CF's `boundMs` and reports cfnet's
 * time as a diagnostic. For checks that are not TCP/UDP probes (ICMP, rule sets).
 */
export async function until(
  t: TestContext,
  what: string,
  boundMs: number,
  check: () => Promise<boolean>,
  opts: { since?: number; intervalMs?: number } = {},
): Promise<number> {
  const since = opts.since ?? Date.now();
  const { took } = await waitUntil(
    `${what}: within CF's ${boundMs} ms`,
    async () => (await check()) && { took: Date.now() - since },
    Math.max(0, since + boundMs - Date.now()),
    opts.intervalMs ?? 100,
  );
  t.diagnostic(`${what}: cfnet ${took} ms (CF bound ${boundMs} ms)`);
  return took;
}

/** CF's `Consistently`: every round of probes for `ms` gives `want`. */
export async function consistently(
  what: string,
  ms: number,
  ns: string,
  probes: Probe[],
  want: Expect[],
  intervalMs = 500,
): Promise<void> {
  const end = Date.now() + ms;
  do {
    const got = await outcome(ns, probes);
    assert.deepEqual(got, want, `${what}: changed during CF's Consistently window`);
    await new Promise((r) => setTimeout(r, intervalMs));
  } while (Date.now() < end);
}

/** CF's external_connectivity first unbinds the default running ASGs (`cf unbind-running-security-group`). */
export async function unbindDefaultRunningAsgs(cluster: Cluster): Promise<void> {
  for (const g of [...cluster.sim.world.securityGroups.values()]) {
    if (g.runningDefault) {
      await cluster.sim.apply({ kind: 'asg-set-global', guid: g.guid, lifecycle: 'running', enabled: false });
    }
  }
}

/**
 * external_connectivity after unbinding `tcp-asg` (udp-asg stays bound): CF's `Consistently` for
 * 180 s as continuous probes from `ns` — http closed, dns open. Returns the report to assert on.
 */
export async function watchUnbindWindow(ns: string): Promise<FlowReport> {
  const flow = (name: string, proto: 'tcp' | 'udp', port: number, expect: 'open' | 'closed') => ({
    name,
    ns,
    proto,
    host: EXTERNAL_IP,
    port,
    expect,
  });
  const watch = await FlowWatch.start(
    [
      flow('app→internet tcp 80', 'tcp', 80, 'closed'),
      flow('app→internet tcp 443', 'tcp', 443, 'closed'),
      flow('app→dns udp 53 (udp-asg stays)', 'udp', 53, 'open'),
    ],
    { intervalMs: 500 },
  );
  await new Promise((r) => setTimeout(r, UNBIND_CONSISTENTLY_MS));
  return watch.stop();
}
