/**
 * The agent's audit log (Silk's iptables-logger) with real traffic: containers made by the real
 * CNI plugin on two lab cells, the controller's logging on (what a migrated `iptables_logging:
 * true` gives), the kernel's nf_log lines read from /dev/kmsg (net.netfilter.nf_log_all_netns=1,
 * the cells are network namespaces) and written as Silk's JSON lines, enriched from the rule set.
 *
 * /dev/kmsg is one buffer for the whole machine, so every lab agent sees every cell's lines: each
 * assertion looks for the line about its own container in the file of the cell that holds it.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { type AppRef, type CellNode, Cluster, type ContainerRef, EXTERNAL_IP } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { expectTraffic, icmp, probe, withSysctl } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

interface AuditLine {
  timestamp: string;
  level: string;
  source: string;
  message: string;
  data: {
    packet: Record<string, unknown>;
    source?: Record<string, string>;
    destination?: Record<string, string>;
  };
}

async function auditLines(cell: CellNode): Promise<AuditLine[]> {
  const text = await readFile(cell.auditLogPath, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as AuditLine);
}

/** Waits for the first line of `cell`'s audit log that `match` accepts. */
async function auditLine(cell: CellNode, what: string, match: (l: AuditLine) => boolean): Promise<AuditLine> {
  let found: AuditLine | undefined;
  await waitUntil(
    `${cell.id} audit log: ${what}`,
    async () => {
      found = (await auditLines(cell)).find(match);
      return found !== undefined;
    },
    5000,
  );
  return found!;
}

function described(c: ContainerRef, app: AppRef) {
  return {
    container_id: c.handle,
    app_guid: app.appGuid,
    space_guid: app.spaceGuid,
    organization_guid: app.orgGuid,
    host_ip: c.cell.underlayIp,
    host_guid: c.cell.id,
  };
}

const RFC3339_NANO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/;

describe('audit log: kernel log lines of real traffic become enriched Silk JSON lines', () => {
  let cluster: Cluster;
  let A: AppRef;
  let B: AppRef;
  let C: AppRef;
  let a1: ContainerRef;
  let b1: ContainerRef;
  let c1: ContainerRef;
  let cell1: CellNode;
  let cell2: CellNode;

  before(async () => {
    cluster = await Cluster.start({
      cells: 2,
      redisPrefix: 'audit',
      capiCheckIntervalMs: 500,
      agent: { auditLog: true },
      // Silk's iptables_logging on the cni job turns on both (the cni job renders it so)
      controller: { asgLogging: true, c2cLogging: true, deniedLogsPerSec: 100 },
    });
    [cell1, cell2] = cluster.cells as [CellNode, CellNode];
    [A, B, C] = [await cluster.app('a'), await cluster.app('b'), await cluster.app('c')];
    await cluster.sim.apply({ kind: 'policy-add', source: A.appGuid, destination: B.appGuid, port: 8080 });
    [a1, b1, c1] = await Promise.all([
      cluster.container(cell1, A, 0),
      cluster.container(cell2, B, 0),
      cluster.container(cell2, C, 0),
    ]);
    await Promise.all([
      cluster.serve(b1.ns, [8080, 8081]),
      cluster.serve(cluster.underlay, [9000, 9001], [EXTERNAL_IP]),
    ]);
    // the policy is in force on cell-2 (the rule set with B's allow entries has arrived)
    await expectTraffic('A → b1:8080 allowed', a1.ns, [tcp(b1.ip, 8080)], ['open']);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('a denied c2c connection: ingress-denied with the destination container, and the source container or app', async () => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      // same cell: the source is a container the agent knows
      assert.deepEqual(await probe(c1.ns, [tcp(b1.ip, 8081)]), ['refused']);
      const local = await auditLine(
        cell2,
        'c1 → b1:8081 denied',
        (l) =>
          l.data.destination?.container_id === b1.handle &&
          l.data.packet.src_ip === c1.ip &&
          l.data.packet.dst_port === 8081,
      );
      assert.match(local.timestamp, RFC3339_NANO);
      assert.equal(local.level, 'info');
      assert.equal(local.source, 'cfnetworking.iptables');
      assert.equal(local.message, 'cfnetworking.iptables.ingress-denied');
      assert.deepEqual(local.data.destination, described(b1, B));
      assert.deepEqual(local.data.source, described(c1, C));
      assert.deepEqual(
        { ...local.data.packet, src_port: 0 },
        {
          direction: 'ingress',
          allowed: false,
          src_ip: c1.ip,
          dst_ip: b1.ip,
          src_port: 0,
          dst_port: 8081,
          protocol: 'TCP',
          mark: '', // C is the source of no policy: no tag
          icmp_type: 0,
          icmp_code: 0,
        },
      );
      assert.ok(Number(local.data.packet.src_port) > 0);

      // across cells: the source app comes from the packet's c2c tag (VXLAN GBP → mark)
      assert.deepEqual(await probe(a1.ns, [tcp(b1.ip, 8081)]), ['refused']);
      const remote = await auditLine(
        cell2,
        'a1 → b1:8081 denied',
        (l) =>
          l.data.destination?.container_id === b1.handle &&
          l.data.packet.src_ip === a1.ip &&
          l.data.packet.dst_port === 8081,
      );
      assert.equal(remote.message, 'cfnetworking.iptables.ingress-denied');
      assert.deepEqual(remote.data.destination, described(b1, B));
      assert.match(String(remote.data.packet.mark), /^0x[0-9a-f]+$/);
      assert.deepEqual(remote.data.source, {
        container_id: '',
        app_guid: A.appGuid,
        space_guid: '',
        organization_guid: '',
        host_ip: '',
        host_guid: '',
      });
    });
  });

  it('an allowed c2c connection: ingress-allowed with the destination container and the source app from the tag', async () => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      assert.deepEqual(await probe(a1.ns, [tcp(b1.ip, 8080)]), ['open']);
      const allowed = await auditLine(
        cell2,
        'a1 → b1:8080 allowed',
        (l) =>
          l.message === 'cfnetworking.iptables.ingress-allowed' &&
          l.data.destination?.container_id === b1.handle &&
          l.data.packet.src_ip === a1.ip &&
          l.data.packet.dst_port === 8080,
      );
      assert.deepEqual(allowed.data.destination, described(b1, B));
      assert.deepEqual(
        { ...allowed.data.packet, src_port: 0, mark: '' },
        {
          direction: 'ingress',
          allowed: true,
          src_ip: a1.ip,
          dst_ip: b1.ip,
          src_port: 0,
          dst_port: 8080,
          protocol: 'TCP',
          mark: '',
          icmp_type: 0,
          icmp_code: 0,
        },
      );
      assert.match(String(allowed.data.packet.mark), /^0x[0-9a-f]+$/);
      assert.equal(allowed.data.source?.app_guid, A.appGuid);
      // one line per connection (conntrack NEW), not one per packet: every allowed line of a1's
      // connections to b1:8080 has its own source port, and a new connection adds its own line
      const allowedLines = async () =>
        (await auditLines(cell2)).filter(
          (l) =>
            l.message === 'cfnetworking.iptables.ingress-allowed' &&
            l.data.packet.src_ip === a1.ip &&
            l.data.packet.dst_port === 8080,
        );
      const ports = new Set((await allowedLines()).map((l) => l.data.packet.src_port));
      assert.deepEqual(await probe(a1.ns, [tcp(b1.ip, 8080)]), ['open']);
      await waitUntil(
        'the new connection has its line',
        async () => (await allowedLines()).some((l) => !ports.has(l.data.packet.src_port)),
        5000,
      );
      // a line per packet would show up alongside: give the kernel log a moment to deliver them
      await new Promise((r) => setTimeout(r, 500));
      const lines = await allowedLines();
      assert.equal(
        new Set(lines.map((l) => l.data.packet.src_port)).size,
        lines.length,
        'one line per connection, none per further packet',
      );
    });
  });

  it('egress: denied (no ASG), ICMP and allowed (ASG bound) connections carry the source container', async () => {
    await withSysctl('net.netfilter.nf_log_all_netns', '1', async () => {
      assert.deepEqual(await probe(a1.ns, [tcp(EXTERNAL_IP, 9001)]), ['refused']);
      const denied = await auditLine(
        cell1,
        'a1 → external:9001 denied',
        (l) => l.data.source?.container_id === a1.handle && l.data.packet.dst_port === 9001,
      );
      assert.equal(denied.message, 'cfnetworking.iptables.egress-denied');
      assert.deepEqual(denied.data.source, described(a1, A));
      assert.equal(denied.data.destination, undefined, "Silk's egress lines carry only the source");
      assert.equal(denied.data.packet.direction, 'egress');
      assert.equal(denied.data.packet.allowed, false);
      assert.equal(denied.data.packet.src_ip, a1.ip);
      assert.equal(denied.data.packet.dst_ip, EXTERNAL_IP);
      assert.equal(denied.data.packet.protocol, 'TCP');

      // ICMP: whether the foundation's default groups open it or not, the line says what the kernel did
      const echo = await icmp(a1.ns, EXTERNAL_IP, { type: 8, code: 0 });
      const ping = await auditLine(
        cell1,
        'a1 → external echo request',
        (l) => l.data.source?.container_id === a1.handle && l.data.packet.protocol === 'ICMP',
      );
      assert.equal(ping.message, `cfnetworking.iptables.egress-${echo === 'reply' ? 'allowed' : 'denied'}`);
      assert.deepEqual(ping.data.source, described(a1, A));
      assert.deepEqual(
        [ping.data.packet.icmp_type, ping.data.packet.icmp_code, ping.data.packet.dst_port],
        [8, 0, 0],
      );

      const asg = await cluster.sim.apply({
        kind: 'asg-create',
        name: 'audit-external-9000',
        rules: [{ protocol: 'tcp', destination: EXTERNAL_IP, ports: '9000' }],
      });
      await cluster.sim.apply({
        kind: 'asg-bind-space',
        guid: asg.result.guid as string,
        spaceGuid: A.spaceGuid,
      });
      await expectTraffic('a1 → external:9000 allowed', a1.ns, [tcp(EXTERNAL_IP, 9000)], ['open']);
      const allowed = await auditLine(
        cell1,
        'a1 → external:9000 allowed',
        (l) =>
          l.message.endsWith('egress-allowed') &&
          l.data.source?.container_id === a1.handle &&
          l.data.packet.dst_port === 9000,
      );
      assert.deepEqual(allowed.data.source, described(a1, A));
      assert.equal(allowed.data.packet.allowed, true);
      assert.equal(allowed.data.packet.dst_ip, EXTERNAL_IP);
      assert.equal(allowed.data.packet.dst_port, 9000);
    });
  });
});
