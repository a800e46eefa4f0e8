/**
 * The `dynamic_asgs_enabled: false` branches of cf-networking-release's `asg_test` and
 * `external_connectivity`: with static ASGs, binding or unbinding changes nothing for a running
 * app; its restart (a new DesiredLRP carrying the rules Cloud Controller compiled at that moment,
 * which Garden hands to the CNI ADD as `netOutRules`) does. The controller runs with
 * `dynamicAsgs: false` at its production cadence. Mapping and times: docs/acceptance.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type AppRef, Cluster, type ContainerRef, EXTERNAL_IP } from '../helpers/cluster.js';
import { icmp, type Server, startServers } from '../helpers/netns.js';
import {
  ASG_EXTERNAL_BOUND_MS,
  ASG_TEST_BOUND_MS,
  CONNECTION_EVENTUALLY_MS,
  consistently,
  productionCadence,
  tcp,
  UNBIND_CONSISTENTLY_MS,
  udp,
  unbindDefaultRunningAsgs,
  until,
  watchUnbindWindow,
  within,
} from './cf-bounds.js';

const ALL_IPV4 = '0.0.0.0-255.255.255.255';
/**
 * How long a bind or unbind must change nothing before the restart. CF's `Consistently` uses
 * Gomega's default (100 ms); cfnet holds it over two of its `asg_latest_update` checks.
 */
const STATIC_HOLD_MS = 2 * productionCadence().asgCheckIntervalMs!;

describe('CF acceptance: ASGs with dynamic_asgs_enabled false (asg_test, external_connectivity)', {
  concurrency: true,
}, () => {
  let cluster: Cluster;
  let udpServer: Server;

  async function asg(name: string, rules: Record<string, unknown>[]): Promise<string> {
    const r = await cluster.sim.apply({ kind: 'asg-create', name, rules: rules as never });
    return r.result.guid as string;
  }
  const ping = async (ns: string) => (await icmp(ns, EXTERNAL_IP, { timeoutMs: 1000 })) === 'reply';

  /** `cf restart`: a new DesiredLRP (current ASGs), its instance made as Garden does, the old one gone. */
  async function restart(app: AppRef, old: ContainerRef): Promise<{ app: AppRef; container: ContainerRef }> {
    const r = await cluster.sim.apply({ kind: 'app-restage', appGuid: app.appGuid });
    const next: AppRef = { ...app, processGuid: r.result.processGuid as string };
    await cluster.removeContainer(old, { registered: false });
    const container = await cluster.container(old.cell, next, 0, { netOutRules: 'desired' });
    return { app: next, container };
  }

  before(async () => {
    cluster = await Cluster.start({ cells: 2, dynamicAsgs: false, controller: productionCadence() });
    await cluster.serve(cluster.underlay, [80, 443, 9024], [EXTERNAL_IP]);
    udpServer = await startServers(cluster.underlay, { udp: [53], hosts: [EXTERNAL_IP] });
    // external_connectivity unbinds the default running ASGs before pushing its app
    await unbindDefaultRunningAsgs(cluster);
  });
  after(async () => {
    udpServer?.close();
    await cluster?.stop();
  });

  it('asg_test: "applies security group changes" — with static ASGs an app restart is required for a bind and for an unbind', async (t) => {
    let app = await cluster.app('static-asg');
    let c = await cluster.container(cluster.cells[0]!, app, 0, { netOutRules: 'desired' });
    const cc = [tcp(EXTERNAL_IP, 9024)];
    await within(t, 'initially cannot reach cloud controller', CONNECTION_EVENTUALLY_MS, c.ns, cc, [
      'closed',
    ]);
    const guid = await asg('ccAllow-static', [{ destination: '10.0.0.0/0', protocol: 'tcp', ports: '9024' }]);
    await cluster.sim.apply({ kind: 'asg-bind-space', guid, spaceGuid: app.spaceGuid });
    await consistently('bound but not restarted: still refused', STATIC_HOLD_MS, c.ns, cc, ['closed']);
    let restartedAt = Date.now();
    ({ app, container: c } = await restart(app, c));
    await within(t, 'restart after bind: reaches cloud controller', ASG_TEST_BOUND_MS, c.ns, cc, ['open'], {
      since: restartedAt,
    });

    await cluster.sim.apply({ kind: 'asg-unbind-space', guid, spaceGuid: app.spaceGuid });
    await consistently('unbound but not restarted: still reaches it', STATIC_HOLD_MS, c.ns, cc, ['open']);
    restartedAt = Date.now();
    ({ app, container: c } = await restart(app, c));
    await within(t, 'restart after unbind: refused again', ASG_TEST_BOUND_MS, c.ns, cc, ['closed'], {
      since: restartedAt,
    });
  });

  it('external_connectivity: "makes the app reachable from the router, and the app can reach the internet only if allowed" — static ASGs, restart after binding and after unbinding tcp-asg', async (t) => {
    let app = await cluster.app('static-ext');
    let c = await cluster.container(cluster.cells[1]!, app, 0, { netOutRules: 'desired' });
    const proxy = [tcp(EXTERNAL_IP, 80), tcp(EXTERNAL_IP, 443), udp(EXTERNAL_IP, 53)];
    await within(t, 'cannot reach the internet', CONNECTION_EVENTUALLY_MS, c.ns, proxy, [
      'closed',
      'closed',
      'closed',
    ]);
    const tcpAsg = await asg('static-tcp-asg', [{ destination: ALL_IPV4, protocol: 'tcp', ports: '80,443' }]);
    const udpAsg = await asg('static-udp-asg', [{ destination: ALL_IPV4, protocol: 'udp', ports: '53' }]);
    await cluster.sim.apply({ kind: 'asg-bind-space', guid: tcpAsg, spaceGuid: app.spaceGuid });
    await cluster.sim.apply({ kind: 'asg-bind-space', guid: udpAsg, spaceGuid: app.spaceGuid });
    await consistently('bound, not restarted', STATIC_HOLD_MS, c.ns, proxy, ['closed', 'closed', 'closed']);
    let restartedAt = Date.now();
    ({ app, container: c } = await restart(app, c));
    await within(
      t,
      'restart: tcp-asg and udp-asg in force',
      ASG_EXTERNAL_BOUND_MS,
      c.ns,
      proxy,
      ['open', 'open', 'open'],
      { since: restartedAt },
    );
    assert.equal(await ping(c.ns), false, 'cannot ping');

    await cluster.sim.apply({ kind: 'asg-unbind-space', guid: tcpAsg, spaceGuid: app.spaceGuid });
    restartedAt = Date.now();
    ({ app, container: c } = await restart(app, c));
    await within(
      t,
      'restart: tcp-asg gone',
      CONNECTION_EVENTUALLY_MS,
      c.ns,
      proxy,
      ['closed', 'closed', 'open'],
      { since: restartedAt },
    );
    const report = await watchUnbindWindow(c.ns);
    assert.equal(report.failed, 0, report.summary());
    t.diagnostic(`unbind held for ${UNBIND_CONSISTENTLY_MS} ms: ${report.sent} probes, 0 failed`);
  });

  it('external_connectivity: "allows outbound ICMP only if allowed" — static ASGs, after a restart', async (t) => {
    let app = await cluster.app('static-icmp');
    let c = await cluster.container(cluster.cells[0]!, app, 0, { netOutRules: 'desired' });
    assert.equal(await ping(c.ns), false, 'cannot ping');
    const icmpAsg = await asg('static-icmp-asg', [
      { destination: ALL_IPV4, protocol: 'icmp', type: 8, code: 0 },
    ]);
    await cluster.sim.apply({ kind: 'asg-bind-space', guid: icmpAsg, spaceGuid: app.spaceGuid });
    await new Promise((r) => setTimeout(r, STATIC_HOLD_MS));
    assert.equal(await ping(c.ns), false, 'bound, not restarted: cannot ping');
    const restartedAt = Date.now();
    ({ app, container: c } = await restart(app, c));
    await until(t, 'restart: icmp-asg in force', ASG_EXTERNAL_BOUND_MS, () => ping(c.ns), {
      since: restartedAt,
    });
  });
});
