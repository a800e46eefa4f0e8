/**
 * cf-networking-release's ASG acceptance scenarios with dynamic ASGs (CF's default), translated to
 * the lab: `external_connectivity` (TCP/UDP and ICMP), `asg_test`, `big_asg`, plus the same bind
 * and unbind written through CAPI v2 (which does not move `asg_latest_update`). CF's "internet"
 * and "internal Cloud Controller" are echo servers on EXTERNAL_IP in the underlay namespace; CF's
 * router is the underlay reaching the cell's host port (NetIn). The scenarios run side by side
 * (each in its own space), as CF's specs could, so the 180 s windows overlap. Times and mapping:
 * docs/acceptance.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GardenNetOutRule } from '../../src/lab/garden-rules.js';
import { type AppRef, Cluster, EXTERNAL_IP } from '../helpers/cluster.js';
import { icmp, type Server, startServers } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';
import {
  ASG_EXTERNAL_BOUND_MS,
  ASG_TEST_BOUND_MS,
  CONNECTION_EVENTUALLY_MS,
  consistently,
  outcome,
  productionCadence,
  ROUTER_REACHABLE_MS,
  tcp,
  UNBIND_CONSISTENTLY_MS,
  UNBIND_SETTLE_MS,
  udp,
  unbindDefaultRunningAsgs,
  until,
  watchUnbindWindow,
  within,
} from './cf-bounds.js';

const ALL_IPV4 = '0.0.0.0-255.255.255.255';
const CONSISTENTLY_MS = 2_000;

describe('CF acceptance: ASGs with dynamic ASGs (external_connectivity, asg_test, big_asg)', {
  concurrency: true,
}, () => {
  let cluster: Cluster;
  let udpServer: Server;

  async function asg(name: string, rules: Record<string, unknown>[]): Promise<string> {
    const r = await cluster.sim.apply({ kind: 'asg-create', name, rules: rules as never });
    return r.result.guid as string;
  }
  async function bind(guid: string, app: AppRef, via: 'v3' | 'v2' = 'v3'): Promise<void> {
    await cluster.sim.apply({ kind: 'asg-bind-space', guid, spaceGuid: app.spaceGuid, via });
  }
  async function unbind(guid: string, app: AppRef, via: 'v3' | 'v2' = 'v3'): Promise<void> {
    await cluster.sim.apply({ kind: 'asg-unbind-space', guid, spaceGuid: app.spaceGuid, via });
  }
  const ping = async (ns: string) => (await icmp(ns, EXTERNAL_IP, { timeoutMs: 1000 })) === 'reply';

  before(async () => {
    cluster = await Cluster.start({ cells: 3, controller: productionCadence() });
    await cluster.serve(cluster.underlay, [80, 443, 9000, 9024], [EXTERNAL_IP]);
    udpServer = await startServers(cluster.underlay, { udp: [53], hosts: [EXTERNAL_IP] });
    // CF's external_connectivity first unbinds every default running ASG (cf-deployment's
    // public_networks and dns): without that, dns allows udp 53 and ICMP everywhere
    await unbindDefaultRunningAsgs(cluster);
    // CF's BeforeEach then pushes the app, which takes far longer than cfnet needs to apply the
    // unbinding; here a canary container shows when it is in force
    const canary = await cluster.container(cluster.cells[0]!, await cluster.app('canary'), 0);
    await waitUntil('default ASGs unbound on the cells', async () => {
      const [dns] = await outcome(canary.ns, [udp(EXTERNAL_IP, 53)]);
      return dns === 'closed' && !(await ping(canary.ns));
    });
  });
  after(async () => {
    udpServer?.close();
    await cluster?.stop();
  });

  it('external_connectivity: "makes the app reachable from the router, and the app can reach the internet only if allowed" (tcp 80/443 and udp 53 ASGs; unbinding holds for 180 s)', async (t) => {
    const app = await cluster.app('ext-basic');
    const cell = cluster.cells[0]!;
    const a = await cluster.container(cell, app, 0, {
      hostPorts: [{ hostPort: 61011, containerPort: 8080 }],
    });
    await cluster.serve(a.ns, [8080]);
    const router = [tcp(cell.underlayIp, 61011)];
    await within(t, 'reachable via the router', ROUTER_REACHABLE_MS, cluster.underlay, router, ['open']);
    await consistently('reachable via the router', CONSISTENTLY_MS, cluster.underlay, router, ['open']);

    const proxy = [tcp(EXTERNAL_IP, 80), tcp(EXTERNAL_IP, 443), udp(EXTERNAL_IP, 53)];
    await within(t, 'cannot reach the internet (http, dns)', CONNECTION_EVENTUALLY_MS, a.ns, proxy, [
      'closed',
      'closed',
      'closed',
    ]);
    await consistently('cannot reach the internet', CONSISTENTLY_MS, a.ns, proxy, [
      'closed',
      'closed',
      'closed',
    ]);
    assert.equal(await ping(a.ns), false, 'cannot ping (first time)');

    const tcpAsg = await asg('tcp-asg', [{ destination: ALL_IPV4, protocol: 'tcp', ports: '80,443' }]);
    const udpAsg = await asg('udp-asg', [{ destination: ALL_IPV4, protocol: 'udp', ports: '53' }]);
    const bound = Date.now();
    await bind(tcpAsg, app);
    await bind(udpAsg, app);
    await within(
      t,
      'tcp-asg and udp-asg in force',
      ASG_EXTERNAL_BOUND_MS,
      a.ns,
      proxy,
      ['open', 'open', 'open'],
      { since: bound },
    );
    await consistently('can reach the internet', CONSISTENTLY_MS, a.ns, proxy, ['open', 'open', 'open']);
    assert.equal(await ping(a.ns), false, 'cannot ping (second time)');

    await unbind(tcpAsg, app);
    await new Promise((r) => setTimeout(r, UNBIND_SETTLE_MS));
    const report = await watchUnbindWindow(a.ns);
    assert.equal(report.failed, 0, report.summary());
    assert.ok(report.sent >= (UNBIND_CONSISTENTLY_MS / 500) * 2, `probed throughout (${report.sent})`);
    t.diagnostic(`unbind held for ${UNBIND_CONSISTENTLY_MS} ms: ${report.sent} probes, 0 failed`);
  });

  it('external_connectivity: "allows outbound ICMP only if allowed" (icmp type 8 code 0)', async (t) => {
    const app = await cluster.app('ext-icmp');
    const a = await cluster.container(cluster.cells[1]!, app, 0);
    assert.equal(await ping(a.ns), false, 'cannot ping before the ASG');
    assert.equal(await ping(a.ns), false, 'cannot ping before the ASG (again)');
    const icmpAsg = await asg('icmp-asg', [{ destination: ALL_IPV4, protocol: 'icmp', type: 8, code: 0 }]);
    const bound = Date.now();
    await bind(icmpAsg, app);
    await until(t, 'icmp-asg in force', ASG_EXTERNAL_BOUND_MS, () => ping(a.ns), { since: bound });
    for (let i = 0; i < 4; i++) assert.equal(await ping(a.ns), true, 'can ping, consistently');
    // only echo (type 8) was allowed: a timestamp request (type 13) stays closed
    assert.notEqual(await icmp(a.ns, EXTERNAL_IP, { type: 13, timeoutMs: 1000 }), 'reply');
  });

  for (const via of ['v3', 'v2'] as const) {
    const bound = via === 'v3' ? ASG_TEST_BOUND_MS : ASG_EXTERNAL_BOUND_MS;
    it(`asg_test: "applies security group changes" (internal CC on tcp 9024, destination 10.0.0.0/0), bound and unbound through CAPI ${via}`, async (t) => {
      const app = await cluster.app(`asg-${via}`);
      const a = await cluster.container(cluster.cells[2]!, app, 0);
      const cc = [tcp(EXTERNAL_IP, 9024)];
      await within(t, `${via}: initially cannot reach cloud controller`, CONNECTION_EVENTUALLY_MS, a.ns, cc, [
        'closed',
      ]);
      const guid = await asg(`ccAllow-${via}`, [
        { destination: '10.0.0.0/0', protocol: 'tcp', ports: '9024' },
      ]);
      const bindAt = Date.now();
      await bind(guid, app, via);
      await within(t, `${via}: bind in force`, bound, a.ns, cc, ['open'], { since: bindAt, intervalMs: 250 });
      const unbindAt = Date.now();
      await unbind(guid, app, via);
      await within(t, `${via}: unbind in force`, bound, a.ns, cc, ['closed'], {
        since: unbindAt,
        intervalMs: 250,
      });
    });
  }

  it('big_asg: "should not give large time difference" — a container of a space with a 1,000-rule ASG is created about as fast as one without (CF prints both)', async (t) => {
    const plain = await cluster.app('big-plain');
    let start = Date.now();
    await cluster.container(cluster.cells[0]!, plain, 0);
    const withoutMs = Date.now() - start;

    const app = await cluster.app('big-asg-app');
    const ccRules: Record<string, unknown>[] = [];
    const gardenRules: GardenNetOutRule[] = [];
    for (let i = 0; i < 999; i++) {
      const net = `10.${(i >> 8) + 1}.${i & 255}`;
      ccRules.push({ destination: `${net}.0/24`, protocol: 'tcp', ports: String(1000 + i) });
      gardenRules.push({
        protocol: 1,
        networks: [{ start: `${net}.0`, end: `${net}.255` }],
        ports: [{ start: 1000 + i, end: 1000 + i }],
      });
    }
    ccRules.push({ destination: EXTERNAL_IP, protocol: 'tcp', ports: '9000' });
    gardenRules.push({
      protocol: 1,
      networks: [{ start: EXTERNAL_IP, end: EXTERNAL_IP }],
      ports: [{ start: 9000, end: 9000 }],
    });
    const guid = await asg('big-asg', ccRules);
    await bind(guid, app);
    start = Date.now();
    // Garden hands the DesiredLRP's egress rules to the CNI ADD, as CC compiled them
    const b = await cluster.container(cluster.cells[0]!, app, 0, { netOutRules: gardenRules });
    const withMs = Date.now() - start;
    await within(
      t,
      'the 1,000th rule is in force',
      ASG_EXTERNAL_BOUND_MS,
      b.ns,
      [tcp(EXTERNAL_IP, 9000)],
      ['open'],
      { since: start },
    );
    t.diagnostic(`container without ASG ${withoutMs} ms, with the 1,000-rule ASG ${withMs} ms`);
    // CF only prints both (Silk once took minutes here); on a loaded CI machine allow 5 s of noise
    assert.ok(withMs <= withoutMs + 5_000, `with the big ASG ${withMs} ms vs ${withoutMs} ms without`);
  });
});
