/**
 * cfnet-cni works by attachment — (container ID, interface name) — never by address, in real
 * namespaces with real packets through the warm executor:
 * - one container attached on eth0 and eth1: each attachment has its own address, veth, rules and
 *   record, and DEL, CHECK and GC act on exactly one;
 * - an ADD whose address a live container holds (a second datastore path on the cell) is refused
 *   before anything changes, while FlowWatch probes the live container's flows without a failure;
 * - DEL after the container's ctr_addrs element was removed by hand still removes everything of it
 *   (the datastore's record, not the table's labels, says what to remove).
 * Every namespace, process and file is removed in `after`, also on failure.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hostIfName } from '../../src/cni/names.js';
import type { StoreData } from '../../src/cni/store.js';
import {
  Cell,
  EXTERNAL_ALLOWED,
  EXTERNAL_DENIED,
  linkNames,
  nftSet,
  readStore,
  removeInstalls,
  resultIp,
  UNDERLAY_CELL_IP,
} from '../helpers/cni.js';
import { FlowWatch } from '../helpers/flow-watch.js';
import { type Server, startServers, tcp } from '../helpers/netns.js';

const T = { timeout: 90_000 };

const ALLOW_HTTP = {
  protocol: 1,
  networks: [{ start: EXTERNAL_ALLOWED, end: EXTERNAL_ALLOWED }],
  ports: [{ start: 80, end: 80 }],
};

let seq = 0;
const handle = (p: string) => `${p}-${process.pid.toString(36)}-${++seq}`;

after(removeInstalls);

describe('cfnet-cni keys everything by attachment (container ID, interface name)', {
  concurrency: false,
}, () => {
  let cell: Cell;
  const servers: Server[] = [];

  before(async () => {
    cell = await Cell.create({ subnet: `10.255.${40 + (process.pid % 40)}.0/24` });
    await cell.startExecutor();
    servers.push(await startServers(cell.router, { tcp: [80], hosts: [EXTERNAL_ALLOWED, EXTERNAL_DENIED] }));
  });

  after(async () => {
    for (const s of servers.splice(0)) s.close();
    await cell?.cleanup();
  });

  const call = (
    command: string,
    containerId: string,
    ctr: string | undefined,
    ifname: string,
    extra: Record<string, unknown> = {},
  ) =>
    cell.call({
      command,
      containerId,
      ...(ctr ? { netns: ctr } : {}),
      ifname,
      config: cell.config(extra),
      mode: 'executor',
    });

  it(
    'a container on eth0 and eth1: two attachments, each with its own address, veth, rules and record; DEL, CHECK and GC act on one',
    T,
    async () => {
      const ctr = await cell.newContainer();
      servers.push(await startServers(ctr, { tcp: [8080] }));
      const h = handle('two-nics');
      const v = { cniVersion: '1.1.0' };
      const r0 = await call('ADD', h, ctr, 'eth0', {
        ...v,
        runtimeConfig: {
          portMappings: [{ host_port: 61101, container_port: 8080 }],
          netOutRules: [ALLOW_HTTP],
        },
      });
      assert.equal(r0.code, 0, r0.stdout);
      const r1 = await call('ADD', h, ctr, 'eth1', {
        ...v,
        runtimeConfig: { portMappings: [{ host_port: 61102, container_port: 8080 }] },
      });
      assert.equal(r1.code, 0, r1.stdout);
      const ip0 = resultIp(r0.json);
      const ip1 = resultIp(r1.json);
      assert.notEqual(ip0, ip1);

      // the datastore: CF's attachment under the bare container ID (Silk's shape), the other by name
      const store = await readStore(cell);
      assert.equal(store[h]?.ip, ip0);
      assert.equal(store[h]?.handle, h);
      assert.equal(store[h]?.cfnet?.ifname, 'eth0');
      assert.equal(store[`${h}:eth1`]?.ip, ip1);
      assert.equal(store[`${h}:eth1`]?.handle, h, "Silk's handle field stays the container ID");
      assert.equal(store[`${h}:eth1`]?.cfnet?.ifname, 'eth1');
      assert.deepEqual(store[h]?.cfnet?.hostPorts, [61101]);
      const addrs = await nftSet(cell, 'ctr_addrs');
      assert.match(addrs, new RegExp(`${ip0.replaceAll('.', '\\.')} comment "${h}"`));
      assert.match(addrs, new RegExp(`${ip1.replaceAll('.', '\\.')} comment "${h}:eth1"`));
      const hostIfs = await linkNames(cell.ns);
      assert.ok(hostIfs.includes(hostIfName(h)) && hostIfs.includes(hostIfName(`${h}:eth1`)));
      assert.deepEqual((await linkNames(ctr)).sort(), ['eth0', 'eth1', 'lo']);
      // NetIn reaches the container through each attachment
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61101), 'open', 'NetIn via eth0');
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61102), 'open', 'NetIn via eth1');

      const check = (ifname: string, prev: Record<string, unknown> | null) =>
        call('CHECK', h, ctr, ifname, { ...v, prevResult: prev });
      assert.equal((await check('eth0', r0.json)).code, 0, 'CHECK eth0');
      assert.equal((await check('eth1', r1.json)).code, 0, 'CHECK eth1');

      // DEL of eth1 removes eth1's attachment only
      assert.equal((await call('DEL', h, ctr, 'eth1', v)).code, 0);
      assert.deepEqual((await linkNames(ctr)).sort(), ['eth0', 'lo']);
      const after1 = await readStore(cell);
      assert.equal(after1[`${h}:eth1`], undefined);
      assert.equal(after1[h]?.ip, ip0);
      assert.doesNotMatch(await nftSet(cell, 'ctr_addrs'), new RegExp(`${ip1.replaceAll('.', '\\.')} `));
      assert.doesNotMatch(await nftSet(cell, 'netin_dnat'), /61102/);
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61101), 'open', 'eth0 untouched');
      assert.equal((await check('eth0', r0.json)).code, 0, 'CHECK eth0 after DEL eth1');
      assert.equal((await check('eth1', r1.json)).json?.code, 3, 'CHECK eth1: not attached');
      const rules = await cell.exec(['nsenter', `--net=/run/netns/${ctr}`, 'ip', 'rule', 'show']);
      assert.doesNotMatch(rules.stdout, new RegExp(ip1.replaceAll('.', '\\.')), "eth1's source rule removed");

      // attached again on eth1; GC keeps exactly the valid attachment (h, eth0)
      const r2 = await call('ADD', h, ctr, 'eth1', v);
      assert.equal(r2.code, 0, r2.stdout);
      const gc = await cell.call({
        command: 'GC',
        config: cell.config({ ...v, 'cni.dev/valid-attachments': [{ containerID: h, ifname: 'eth0' }] }),
        mode: 'executor',
      });
      assert.equal(gc.code, 0, gc.stdout);
      const after2 = await readStore(cell);
      assert.deepEqual(Object.keys(after2), [h]);
      assert.ok(!(await linkNames(cell.ns)).includes(hostIfName(`${h}:eth1`)), "GC removed eth1's veth");
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61101), 'open', 'GC kept eth0');

      // the same attachment twice is an error naming it; DEL of an interface it does not have is a no-op
      const again = await call('ADD', h, ctr, 'eth0', v);
      assert.equal(again.code, 1);
      assert.match(String(again.json?.msg), new RegExp(`container ${h} is already attached on eth0`));
      assert.equal((await call('DEL', h, ctr, 'eth7', v)).code, 0);
      assert.equal((await readStore(cell))[h]?.ip, ip0);
      assert.equal((await call('DEL', h, ctr, 'eth0', v)).code, 0);
      assert.deepEqual(Object.keys(await readStore(cell)), []);
    },
  );

  it(
    'an ADD colliding with a live container’s address is refused before any change; the live flows never fail',
    T,
    async () => {
      const live = await cell.newContainer();
      const peer = await cell.newContainer();
      servers.push(await startServers(live, { tcp: [8080] }), await startServers(peer, { tcp: [8080] }));
      const hl = handle('live');
      const hp = handle('peer');
      const rl = await call('ADD', hl, live, 'eth0', {
        runtimeConfig: {
          portMappings: [{ host_port: 61201, container_port: 8080 }],
          netOutRules: [ALLOW_HTTP],
        },
        metadata: { policy_group_id: 'live-app' },
      });
      assert.equal(rl.code, 0, rl.stdout);
      const rp = await call('ADD', hp, peer, 'eth0');
      assert.equal(rp.code, 0, rp.stdout);
      const ipLive = resultIp(rl.json);
      const ipPeer = resultIp(rp.json);
      // what the agent writes for "peer may reach live on tcp 8080"
      const c2c = await cell.exec([
        'nft',
        `add element inet cfnet ctr_tag { ${ipPeer} : 0x00000009 }; add element inet cfnet c2c_tcp { 0x00000009 . ${ipLive} . 8080 }`,
      ]);
      assert.equal(c2c.code, 0, c2c.stderr);

      const watch = await FlowWatch.start(
        [
          {
            name: 'NetIn router→live',
            ns: cell.router,
            proto: 'tcp',
            host: UNDERLAY_CELL_IP,
            port: 61201,
            expect: 'open',
          },
          {
            name: 'ASG live→allowed:80',
            ns: live,
            proto: 'tcp',
            host: EXTERNAL_ALLOWED,
            port: 80,
            expect: 'open',
          },
          {
            name: 'ASG live→denied:80',
            ns: live,
            proto: 'tcp',
            host: EXTERNAL_DENIED,
            port: 80,
            expect: 'closed',
          },
          { name: 'c2c peer→live:8080', ns: peer, proto: 'tcp', host: ipLive, port: 8080, expect: 'open' },
          { name: 'c2c live→peer:8080', ns: live, proto: 'tcp', host: ipPeer, port: 8080, expect: 'closed' },
        ],
        { intervalMs: 200 },
      );
      try {
        // a second datastore on the same cell (an operator's mistake) that hands out the live address next
        const second = join(cell.dir, 'second', 'store.json');
        await mkdir(join(cell.dir, 'second'), { recursive: true });
        const last = ipLive.split('.').map(Number);
        last[3]! -= 1;
        await writeFile(`${second}_ipam`, JSON.stringify({ lastReserved: last.join('.') }));
        const table = async () => (await cell.exec(['nft', 'list', 'table', 'inet', 'cfnet'])).stdout;
        const cellState = async () => ({
          table: await table(),
          routes: (await cell.exec(['ip', 'route', 'show'])).stdout,
          links: (await cell.exec(['ip', '-o', 'link', 'show'])).stdout.replace(/\s+\\\s+link\/.*$/gm, ''),
          neigh: (await cell.exec(['ip', 'neigh', 'show', 'nud', 'permanent'])).stdout,
        });
        while (watch.counted.sent < 15) await new Promise((r) => setTimeout(r, 100));
        const before = await cellState();
        const intruder = await cell.newContainer();
        const h = handle('intruder');
        const r = await call('ADD', h, intruder, 'eth0', {
          datastore: second,
          runtimeConfig: { portMappings: [{ host_port: 61202, container_port: 8080 }] },
        });
        assert.equal(r.code, 1, r.stdout);
        const e = r.json as { code: number; msg: string };
        assert.equal(e.code, 999);
        assert.match(
          e.msg,
          new RegExp(
            `address ${ipLive.replaceAll('.', '\\.')} is free in the datastore .* but in use on the cell`,
          ),
        );
        assert.match(e.msg, new RegExp(`nft ctr_addrs element of ${hl}`));
        assert.match(e.msg, /route .*\/32 dev cfn/);
        assert.match(e.msg, /nothing changed/);
        assert.deepEqual(await cellState(), before, 'the cell is exactly as it was');
        assert.deepEqual(await linkNames(intruder), ['lo'], 'nothing in the refused container');
        const secondStore = await readFile(second, 'utf8').catch(() => '{}');
        assert.deepEqual(JSON.parse(secondStore || '{}'), {}, 'nothing recorded in the second datastore');
        assert.equal((await readStore(cell))[hl]?.ip, ipLive, "the live container's record is untouched");

        // the refused address moved the round robin on: the next ADD through that datastore gets another
        // (the peer holds the next address: that try is refused too, naming it; then a free one)
        const tried: string[] = [];
        let attached = '';
        for (let i = 0; i < 3 && !attached; i++) {
          const retry = await call('ADD', h, intruder, 'eth0', { datastore: second });
          if (retry.code === 0) attached = resultIp(retry.json);
          else tried.push(/address (\S+) is free/.exec(String(retry.json?.msg))?.[1] ?? '?');
        }
        assert.ok(attached, `attached after ${tried.join(', ')}`);
        assert.ok(![ipLive, ipPeer].includes(attached), `got a free address (${attached})`);
        assert.ok(!tried.includes(ipLive), 'the refused address was not tried again');
        assert.equal((await call('DEL', h, intruder, 'eth0', { datastore: second })).code, 0);
        const settle = watch.counted.sent + 15;
        while (watch.counted.sent < settle) await new Promise((r2) => setTimeout(r2, 100));
      } catch (err) {
        await watch.stop();
        throw err;
      }
      const report = await watch.stop();
      assert.equal(report.failed, 0, report.summary());
      assert.ok(report.sent >= 30, `probes were sent throughout (${report.sent})`);
      assert.equal((await call('DEL', hl, live, 'eth0')).code, 0);
      assert.equal((await call('DEL', hp, peer, 'eth0')).code, 0);
    },
  );

  it(
    'an address the table gives to an attachment not on the cell (a stale rule-set entry) is taken over: the new container gets exactly its own rules',
    T,
    async () => {
      const ctr = await cell.newContainer();
      servers.push(await startServers(ctr, { tcp: [8080] }));
      const store: StoreData = await readStore(cell);
      const used = new Set(Object.values(store).map((e) => e.ip));
      const net = cell.subnet.split('.').slice(0, 3).join('.');
      let stale = '';
      for (let i = 200; i < 250 && !stale; i++) if (!used.has(`${net}.${i}`)) stale = `${net}.${i}`;
      const prev = stale.split('.').map(Number);
      prev[3]! -= 1;
      await writeFile(`${cell.datastore}_ipam`, JSON.stringify({ lastReserved: prev.join('.') }));
      // what the agent enforces for a departed container the controller still lists: membership,
      // a tag and a NetIn mapping, but no veth and no route
      const put = await cell.exec([
        'nft',
        `add element inet cfnet ctr_addrs { ${stale} comment "departed-container" }; add element inet cfnet ctr_tag { ${stale} : 0x0000000d }; add element inet cfnet netin_dnat { 61250 : ${stale} . 8080 }`,
      ]);
      assert.equal(put.code, 0, put.stderr);
      const h = handle('takes-over');
      const r = await call('ADD', h, ctr, 'eth0', {
        runtimeConfig: { portMappings: [{ host_port: 61251, container_port: 8080 }] },
      });
      assert.equal(r.code, 0, r.stdout);
      assert.equal(resultIp(r.json), stale, 'the address the datastore chose');
      const esc = stale.replaceAll('.', '\\.');
      assert.match(await nftSet(cell, 'ctr_addrs'), new RegExp(`${esc} comment "${h}"`));
      assert.doesNotMatch(await nftSet(cell, 'ctr_addrs'), /departed-container/);
      assert.doesNotMatch(
        await nftSet(cell, 'ctr_tag'),
        new RegExp(esc),
        "the departed container's tag is gone",
      );
      const dnat = await nftSet(cell, 'netin_dnat');
      assert.doesNotMatch(dnat, /61250/, "the departed container's NetIn mapping is gone");
      assert.match(dnat, new RegExp(`61251 : ${esc} \\. 8080`));
      assert.equal(await tcp(cell.router, UNDERLAY_CELL_IP, 61251), 'open', 'its own NetIn works');
      assert.equal((await call('DEL', h, ctr, 'eth0')).code, 0);
      assert.doesNotMatch(await nftSet(cell, 'ctr_addrs'), new RegExp(`${esc} `));
    },
  );

  it(
    'DEL after the container’s ctr_addrs element was removed by hand leaves nothing of it in the table',
    T,
    async () => {
      const ctr = await cell.newContainer();
      const h = handle('drifted');
      // an ASG rule set of its own, so its chain is this container's alone
      const ownAsg = {
        protocol: 1,
        networks: [{ start: '203.0.113.7', end: '203.0.113.7' }],
        ports: [{ start: 4443, end: 4443 }],
      };
      const r = await call('ADD', h, ctr, 'eth0', {
        iptables_logging: true,
        runtimeConfig: { portMappings: [{ host_port: 61301, container_port: 8080 }], netOutRules: [ownAsg] },
        metadata: { policy_group_id: 'drift-app', container_workload: 'app' },
      });
      assert.equal(r.code, 0, r.stdout);
      const ip = resultIp(r.json);
      const ipRe = new RegExp(`\\b${ip.replaceAll('.', '\\.')}\\b`);
      const chainOf = async () => {
        const m = /(asgh?_[A-Za-z0-9_]+)/.exec(
          (await nftSet(cell, 'ctr_asg')).split('\n').find((l) => ipRe.test(l)) ?? '',
        );
        return m?.[1] ?? '';
      };
      const asgChain = await chainOf();
      assert.ok(asgChain, 'the container jumps to its ASG chain');
      // c2c entries the agent would have written for it
      const c2c = await cell.exec([
        'nft',
        `add element inet cfnet ctr_tag { ${ip} : 0x0000000b }; add element inet cfnet c2c_tcp { 0x0000000c . ${ip} . 8080 }`,
      ]);
      assert.equal(c2c.code, 0, c2c.stderr);
      const drift = await cell.exec(['nft', `delete element inet cfnet ctr_addrs { ${ip} }`]);
      assert.equal(drift.code, 0, drift.stderr);
      const table = async () => (await cell.exec(['nft', 'list', 'table', 'inet', 'cfnet'])).stdout;
      assert.match(await table(), ipRe, 'its other elements are still there before DEL');

      assert.equal((await call('DEL', h, ctr, 'eth0')).code, 0);
      const t = await table();
      assert.doesNotMatch(t, ipRe, `an element of ${ip} left behind`);
      assert.doesNotMatch(t, new RegExp(`_${ip.replaceAll('.', '_')}\\b`), 'a log chain of it left behind');
      assert.ok(!t.includes(`chain ${asgChain} `), `its ASG chain ${asgChain} left behind`);
      assert.doesNotMatch(await nftSet(cell, 'netin_dnat'), /61301/);
      assert.equal((await readStore(cell))[h], undefined);

      // the host port is free again: a new container asking for it is attached
      const next = await cell.newContainer();
      const h2 = handle('same-port');
      const r2 = await call('ADD', h2, next, 'eth0', {
        runtimeConfig: { portMappings: [{ host_port: 61301, container_port: 8080 }] },
      });
      assert.equal(r2.code, 0, r2.stdout);
      assert.equal((await call('DEL', h2, next, 'eth0')).code, 0);
    },
  );
});
