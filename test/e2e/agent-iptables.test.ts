/**
 * CF's custom_iptables_compatibility on a lab cell: a real `cfnet agent` process (filterMode
 * iptables) and a container made by the real CNI plugin. The operator's rule is the one CF's
 * iptables-writer job inserts in post-start:
 *   iptables -I INPUT 1 -s <overlay> -d <cell ip> -p tcp --dport 8898 -j ACCEPT
 * Once with iptables-nft, whose flush the agent sees through nft monitor (the periodic drift check
 * is set to an hour, so only the monitor can repair in time), and once with iptables-legacy (when
 * installed), which nft monitor cannot see: the periodic check (1 s here) repairs it.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { iptablesComment } from '../../src/dataplane/host-filter.js';
import { Cluster, type ContainerRef, waitUntil } from '../helpers/cluster.js';
import { expectTraffic, type Probe } from '../helpers/netns.js';

const OVERLAY = '10.255.0.0/16';
const tcp = (host: string, port: number): Probe => ({ proto: 'tcp', host, port });

const variants = [
  { binary: 'iptables', driftCheckIntervalSeconds: 3600, repairedBy: 'nft monitor' },
  { binary: 'iptables-legacy', driftCheckIntervalSeconds: 1, repairedBy: 'the periodic drift check' },
].filter((v) => ['/usr/sbin', '/sbin'].some((d) => existsSync(`${d}/${v.binary}`)));

for (const v of variants)
  describe(`agent in filterMode iptables (${v.binary}): an operator's INPUT accept wins, and ${v.repairedBy} re-appends cfnet's rule after a flush`, () => {
    let cluster: Cluster;
    let ctr: ContainerRef;
    let cellIp = '';
    const iptables = (...args: string[]) => ctr.cell.exec([v.binary, '-w', ...args]);
    const ours = async (chain: string) =>
      (await iptables('-S', chain)).stdout.split('\n').filter((l) => l.includes(iptablesComment('cfnet')));

    before(async () => {
      cluster = await Cluster.start({
        cells: 1,
        agent: {
          filterMode: 'iptables',
          iptablesBinary: v.binary,
          driftCheckIntervalSeconds: v.driftCheckIntervalSeconds,
        },
      });
      const app = await cluster.app('ipt');
      ctr = await cluster.container(cluster.cells[0]!, app, 0);
      cellIp = ctr.cell.underlayIp;
      await cluster.serve(ctr.cell.ns, [8898, 8899], [cellIp]);
    });
    after(async () => {
      await cluster?.stop();
    });

    it('the agent appended one rule to INPUT and FORWARD at start; without an operator rule 8898 is rejected', async () => {
      assert.equal((await ours('INPUT')).length, 1);
      assert.equal((await ours('FORWARD')).length, 1);
      await expectTraffic(
        'container→host rejected',
        ctr.ns,
        [tcp(cellIp, 8898), tcp(cellIp, 8899)],
        ['refused', 'refused'],
      );
    });

    it("with CF's iptables-writer rule the container reaches host port 8898; 8899 stays rejected", async () => {
      await iptables(
        '-I',
        'INPUT',
        '1',
        '-s',
        OVERLAY,
        '-d',
        cellIp,
        '-p',
        'tcp',
        '--dport',
        '8898',
        '-j',
        'ACCEPT',
      );
      await expectTraffic(
        '8898 accepted by the operator',
        ctr.ns,
        [tcp(cellIp, 8898), tcp(cellIp, 8899)],
        ['open', 'refused'],
      );
    });

    it(`after iptables -F INPUT ${v.repairedBy} re-appends cfnet's rule behind the operator's`, async () => {
      await iptables('-F', 'INPUT');
      await iptables(
        '-I',
        'INPUT',
        '1',
        '-s',
        OVERLAY,
        '-d',
        cellIp,
        '-p',
        'tcp',
        '--dport',
        '8898',
        '-j',
        'ACCEPT',
      );
      await waitUntil('cfnet rule back in INPUT', async () => (await ours('INPUT')).length === 1, 5_000, 50);
      const input = (await iptables('-S', 'INPUT')).stdout.trim().split('\n');
      assert.match(input[1]!, /--dport 8898 -j ACCEPT/);
      assert.equal(input.at(-1), (await ours('INPUT'))[0]);
      await expectTraffic(
        '8899 rejected again',
        ctr.ns,
        [tcp(cellIp, 8898), tcp(cellIp, 8899)],
        ['open', 'refused'],
      );
    });

    it('restarting the agent adds no duplicate', async () => {
      await ctr.cell.stopAgent();
      await ctr.cell.startAgent();
      assert.equal((await ours('INPUT')).length, 1);
      assert.equal((await ours('FORWARD')).length, 1);
    });
  });
