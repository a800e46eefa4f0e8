/**
 * NftQuerySession (one `nft -j -i` answering read-only commands for the CNI executor's address
 * check) and NftDataplane.addressUse, in a namespace of their own: answers match `nft -j list`,
 * errors are errors, queries keep their order, and a killed process is replaced.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NftDataplane } from '../../src/dataplane/apply.js';
import { runNft } from '../../src/dataplane/nft.js';
import { NftQuerySession } from '../../src/dataplane/query-session.js';
import { sampleRuleSet } from '../../src/dataplane/sample.js';
import { withNetns } from '../helpers/netns.js';

const T = { timeout: 60_000 };

describe('NftQuerySession and addressUse', () => {
  it('answers like `nft -j list`, reports errors, keeps order and survives a killed process', T, async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'cfnet-query-'));
    try {
      await withNetns(['cell'], async (ns) => {
        const run = { netns: ns.cell!, nsenter: true };
        const q = new NftQuerySession(run);
        const plain = new NftDataplane({ ...run, stateDir });
        const warm = new NftDataplane({ ...run, stateDir, session: true });
        try {
          // no table yet: an error from the session, empty address use from both dataplanes
          await assert.rejects(q.query('list set inet cfnet ctr_addrs'), /No such file or directory/);
          assert.deepEqual(await warm.addressUse(), { handles: new Map(), netIn: new Map() });
          const rs = sampleRuleSet({ containers: 40, asgSets: 2, rulesPerSet: 3, c2cPerContainer: 2 });
          rs.containers[3]!.netIn = [{ hostPort: 61999, containerPort: 8080 }];
          await plain.applyFull(rs);
          const expected = (await runNft(['-j', 'list', 'set', 'inet', 'cfnet', 'ctr_addrs'], undefined, run))
            .stdout;
          assert.equal(await q.query('list set inet cfnet ctr_addrs'), expected.trimEnd());
          // concurrent queries come back in order, each its own document
          const names = ['ctr_addrs', 'ctr_running', 'ctr_staging', 'dns_servers'];
          const docs = await Promise.all(names.map((n) => q.query(`list set inet cfnet ${n}`)));
          docs.forEach((d, i) => {
            const set = (JSON.parse(d) as { nftables: { set?: { name: string } }[] }).nftables.find(
              (x) => x.set,
            );
            assert.equal(set?.set?.name, names[i]);
          });
          await assert.rejects(q.query('list set inet cfnet no_such_set'), /No such file or directory/);
          assert.ok(
            (await q.query('list set inet cfnet ctr_addrs')).startsWith('{"nftables"'),
            'fine after an error',
          );
          await assert.rejects(q.query('list set inet cfnet a; flush ruleset'), /one command per query/);

          const warmUse = await warm.addressUse();
          assert.deepEqual(warmUse, await plain.addressUse(), 'the session and a process agree');
          assert.equal(warmUse.handles.size, 40);
          assert.equal(warmUse.handles.get(rs.containers[3]!.ip), rs.containers[3]!.handle);
          assert.equal(warmUse.netIn.get(61999), rs.containers[3]!.ip);

          // a killed nft is replaced by the next query; so is a closed one
          const pid = q.pid;
          assert.ok(pid !== null, 'a query process is running');
          process.kill(pid, 'SIGKILL');
          await new Promise((r) => setTimeout(r, 100));
          assert.ok(
            (await q.query('list set inet cfnet ctr_addrs')).includes('"ctr_addrs"'),
            'replaced after a kill',
          );
          assert.notEqual(q.pid, pid);
          await q.close();
          assert.ok(
            (await q.query('list set inet cfnet ctr_addrs')).includes('"ctr_addrs"'),
            'restarted after close',
          );
        } finally {
          await q.close();
          await warm.close();
          await plain.close();
        }
      });
    } finally {
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
