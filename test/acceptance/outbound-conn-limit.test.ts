/**
 * cf-networking-release's `outbound_conn_limit` acceptance scenario, translated to the lab. CF's
 * actors: a `spammer` app that, asked for N calls, opens N concurrent HTTP connections (each with a
 * 7 s client timeout) to the `proxy` app's route — one destination address and port — and reports
 * how many answered; a foundation deployed with silk-cni's `outbound_connections` limit. CF checks
 * that a first batch gets the whole burst through and that a second batch right after it gets fewer.
 * Here: the spammer is a container on a cell (made by cfnet-cni ADD), the destination an echo
 * server on EXTERNAL_IP:80 outside every cell (what the route resolves to for the spammer), the
 * limit burst 30, 2 per second, logging on (the CNI job's properties, through the controller). Mapping
 * and times: docs/acceptance.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type KernelLogEntry, parseKernelLogLine } from '../../src/dataplane/kernel-log.js';
import { Cluster, type ContainerRef, EXTERNAL_IP } from '../helpers/cluster.js';
import { kernelLog, type Probe, probe, withSysctl } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';
import { outcome, productionCadence, tcp, unbindDefaultRunningAsgs } from './cf-bounds.js';

/** The limit CF's scenario runs with. */
const BURST = 30;
const RATE_PER_SEC = 2;
/** Connections per batch: twice the burst, all at once. */
const CALLS = 60;
/** The spammer's HTTP client timeout. */
const CLIENT_TIMEOUT_MS = 7_000;
/** The route's destination; a second port of the same address only shows the ASG is in force. */
const ROUTE_PORT = 80;
const OTHER_PORT = 443;

describe('CF acceptance: outbound_conn_limit', () => {
  let cluster: Cluster;
  let spammer: ContainerRef;

  /** The spammer's `/spam/<CALLS>`: CALLS concurrent connections; how many answered, and how long it took. */
  async function spam(): Promise<{ ok: number; ms: number }> {
    const probes: Probe[] = Array.from({ length: CALLS }, () => ({
      proto: 'tcp',
      host: EXTERNAL_IP,
      port: ROUTE_PORT,
    }));
    const t0 = performance.now();
    const results = await probe(spammer.ns, probes, CLIENT_TIMEOUT_MS);
    return { ok: results.filter((r) => r === 'open').length, ms: performance.now() - t0 };
  }

  before(async () => {
    cluster = await Cluster.start({
      cells: 1,
      controller: {
        ...productionCadence(),
        outboundConnLimit: true,
        outboundConnBurst: BURST,
        outboundConnRatePerSec: RATE_PER_SEC,
        outboundConnLogging: true,
      },
    });
    await cluster.serve(cluster.underlay, [ROUTE_PORT, OTHER_PORT], [EXTERNAL_IP]);
    // the spammer may reach the route (CF: the public_networks ASG covers the router's address)
    await unbindDefaultRunningAsgs(cluster);
    const app = await cluster.app('spammer');
    const asg = await cluster.sim.apply({
      kind: 'asg-create',
      name: 'route',
      rules: [{ protocol: 'tcp', destination: EXTERNAL_IP, ports: `${ROUTE_PORT},${OTHER_PORT}` }] as never,
    });
    await cluster.sim.apply({
      kind: 'asg-bind-space',
      guid: asg.result.guid as string,
      spaceGuid: app.spaceGuid,
    });
    spammer = await cluster.container(cluster.cells[0]!, app, 0);
    // CF pushes the app and starts spamming once it runs; here: once its ASG and its limit are in
    // force (probed on the other port: the route's bucket must start full)
    const meter = `jump orl_${spammer.ip.replaceAll('.', '_')}`;
    await waitUntil('the spammer reaches the other port and its limit is in the table', async () => {
      const [open] = await outcome(spammer.ns, [tcp(EXTERNAL_IP, OTHER_PORT)]);
      return open === 'open' && (await cluster.cells[0]!.table()).includes(meter);
    });
  });
  after(async () => {
    await cluster?.stop();
  });

  it('outbound_conn_limit: "the connections get rate limited" — 60 concurrent connections to one destination: the burst (30) gets through, the rest are refused and logged; a second batch right after gets fewer', async (t) => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      const first = await spam();
      const second = await spam();
      t.diagnostic(
        `cfnet: first batch ${first.ok}/${CALLS} in ${Math.round(first.ms)} ms, second ${second.ok}/${CALLS} in ${Math.round(second.ms)} ms (burst ${BURST}, ${RATE_PER_SEC}/s)`,
      );
      // CF: "the burst is available on start"; at most what the rate refilled meanwhile beyond it
      const refill = (ms: number) => Math.ceil((ms / 1000) * RATE_PER_SEC) + 1;
      assert.ok(first.ok >= BURST, `first batch: ${first.ok} < burst ${BURST}`);
      assert.ok(first.ok <= BURST + refill(first.ms), `first batch: ${first.ok} got through`);
      // CF: "the burst is exhausted": a second batch gets fewer (here: only what the rate refilled)
      assert.ok(second.ok < first.ok, `second batch ${second.ok} is not fewer than ${first.ok}`);
      assert.ok(second.ok <= refill(first.ms + second.ms), `second batch: ${second.ok} got through`);
      // the cut is logged: DENY_ORL_<handle> for the route's address and port, nothing else
      const cuts = async (): Promise<KernelLogEntry[]> =>
        (await kernelLog(`DENY_ORL_${spammer.handle} `))
          .map(parseKernelLogLine)
          .filter((e): e is KernelLogEntry => e?.kind === 'DENY_ORL_');
      const logged = await waitUntil('the refusals are in the kernel log', async () => {
        const c = await cuts();
        return c.length > 0 ? c : null;
      });
      assert.ok(
        logged.every(
          (e) =>
            e.packet.src_ip === spammer.ip &&
            e.packet.dst_ip === EXTERNAL_IP &&
            e.packet.dst_port === ROUTE_PORT,
        ),
        JSON.stringify(logged.map((e) => e.packet)),
      );
    });
  });
});
