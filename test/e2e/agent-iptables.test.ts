/**
 * CF's custom_iptables_compatibility on a lab cell: a real `cfnet agent` process (filterMode
 * iptables) and a container made by the real CNI plugin. The operator's rule is the one CF's
 * iptables-writer job inserts in post-start:
 *   iptables -I INPUT 1 -s <overlay> -d <cell ip> -p tcp --dport 8898 -j ACCEPT
 * With one configured executable: once with iptables-nft, whose flush the agent sees through nft
 * monitor (the periodic drift check is set to an hour, so only the monitor can repair in time),
 * and once with iptables-legacy (when installed), which nft monitor cannot see: the periodic check
 * (1 s here) repairs it. Then with the default iptablesBinaries (both backends, when both are
 * installed): the operator's rule wins whichever executable wrote it, CF's job's iptables-legacy
 * included.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { backendRuleArgs, iptablesComment, splitRuleLine } from '../../src/dataplane/host-filter.js';
import { Cluster, type ContainerRef } from '../helpers/cluster.js';
import { tcp } from '../helpers/fixtures.js';
import { expectTraffic } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

const OVERLAY = '10.255.0.0/16';

/** CF's iptables-writer rule: ACCEPT from the overlay to the cell's own address on tcp 8898. */
const operatorAccept = (cellIp: string) => [
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
];

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
          iptablesBinaries: [v.binary],
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
      await iptables('-I', 'INPUT', '1', ...operatorAccept(cellIp));
      await expectTraffic(
        '8898 accepted by the operator',
        ctr.ns,
        [tcp(cellIp, 8898), tcp(cellIp, 8899)],
        ['open', 'refused'],
      );
    });

    it(`after iptables -F INPUT ${v.repairedBy} re-appends cfnet's rule behind the operator's`, async () => {
      await iptables('-F', 'INPUT');
      await iptables('-I', 'INPUT', '1', ...operatorAccept(cellIp));
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

const BOTH = ['iptables-legacy', 'iptables-nft'] as const;
const installed = (b: string) => ['/usr/sbin', '/sbin'].some((d) => existsSync(`${d}/${b}`));

if (BOTH.every(installed))
  describe("agent with the default iptablesBinaries (both backends): CF's iptables-legacy rule and an iptables-nft rule each win; a flush in either backend is repaired", () => {
    let cluster: Cluster;
    let ctr: ContainerRef;
    let cellIp = '';
    const ipt = (binary: string, ...args: string[]) => ctr.cell.exec([binary, '-w', ...args]);
    const ours = async (binary: string, chain: string) =>
      (await ipt(binary, '-S', chain)).stdout
        .split('\n')
        .filter((l) => l.includes(iptablesComment('cfnet')))
        .map((l) => splitRuleLine(l).slice(2));
    const operator = () => operatorAccept(cellIp);
    const hostPorts = () => [tcp(cellIp, 8898), tcp(cellIp, 8899)];

    before(async () => {
      // no iptablesBinaries: the agent's default is what a lab cluster and a BOSH cell get
      cluster = await Cluster.start({
        cells: 1,
        agent: { filterMode: 'iptables', driftCheckIntervalSeconds: 1 },
      });
      const app = await cluster.app('ipt2');
      ctr = await cluster.container(cluster.cells[0]!, app, 0);
      cellIp = ctr.cell.underlayIp;
      await cluster.serve(ctr.cell.ns, [8898, 8899], [cellIp]);
    });
    after(async () => {
      await cluster?.stop();
    });

    it('the agent put its two rules in INPUT and FORWARD of each backend; without an operator rule 8898 is rejected', async () => {
      for (const binary of BOTH) {
        const backend = binary === 'iptables-legacy' ? 'legacy' : 'nft';
        for (const chain of ['INPUT', 'FORWARD'])
          assert.deepEqual(await ours(binary, chain), backendRuleArgs('cfnet', backend, ['legacy', 'nft']));
      }
      await expectTraffic('container→host rejected', ctr.ns, hostPorts(), ['refused', 'refused']);
    });

    for (const binary of BOTH)
      it(`${binary} -I INPUT 1 … --dport 8898 -j ACCEPT opens 8898; 8899 stays rejected`, async () => {
        await ipt(binary, '-I', 'INPUT', '1', ...operator());
        await expectTraffic(`8898 accepted via ${binary}`, ctr.ns, hostPorts(), ['open', 'refused']);
        await ipt(binary, '-D', 'INPUT', ...operator());
        await expectTraffic('rejected again', ctr.ns, hostPorts(), ['refused', 'refused']);
      });

    for (const binary of BOTH)
      it(`after ${binary} -F INPUT the agent re-appends its rules there; 8899 rejected again`, async () => {
        await ipt(binary, '-F', 'INPUT');
        await ipt(binary, '-I', 'INPUT', '1', ...operator());
        await waitUntil(
          `cfnet rules back in ${binary} INPUT`,
          async () => (await ours(binary, 'INPUT')).length === 2,
          5_000,
          50,
        );
        await expectTraffic('8899 rejected again', ctr.ns, hostPorts(), ['open', 'refused']);
        await ipt(binary, '-D', 'INPUT', ...operator());
      });

    it('restarting the agent adds no duplicate in either backend', async () => {
      await ctr.cell.stopAgent();
      await ctr.cell.startAgent();
      for (const binary of BOTH)
        for (const chain of ['INPUT', 'FORWARD'])
          assert.equal((await ours(binary, chain)).length, 2, `${binary} ${chain}`);
    });
  });
