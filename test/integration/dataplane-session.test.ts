/**
 * NftSession against the real nft in a scratch namespace: transactions are atomic, errors name the
 * script line, large scripts go through a scratch file, a dead nft process is replaced, the process
 * is recycled (its exit never fails its successor's transaction), and an idle session never keeps
 * Node alive (the CNI one-off path must exit).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NftApplyError } from '../../src/dataplane/nft.js';
import { errorLine, NftSession, toLine } from '../../src/dataplane/session.js';
import { createNetns, deleteNetns, exec, uniqueName } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';

test('toLine joins a script into one nft input line; errorLine maps a caret back to a line', () => {
  const script = 'add element inet t s { 1.2.3.4 }\n\n  delete element inet t s { 1.2.3.5 }\nbogus x\n';
  const line = toLine(script);
  assert.equal(line, 'add element inet t s { 1.2.3.4 }; delete element inet t s { 1.2.3.5 }; bogus x');
  const col = line.indexOf('bogus');
  const stderr = `Error: syntax error\n${line}\n${' '.repeat(col)}^^^^^\n`;
  assert.equal(errorLine(stderr, script), 4);
  assert.equal(errorLine(`Error: x\n${line}\n${' '.repeat(3)}^\n`, script), 1);
  assert.equal(errorLine('Error: no caret', script), null);
});

describe('NftSession (real nft)', () => {
  const ns = uniqueName('cftsess');
  let s: NftSession;
  const list = async () => (await exec(ns, ['nft', 'list', 'set', 'inet', 't', 's'])).stdout;

  before(async () => {
    await createNetns(ns);
    await exec(ns, ['nft', 'add table inet t; add set inet t s { type ipv4_addr; }; add chain inet t c']);
    s = new NftSession({ netns: ns, nsenter: true });
  });
  after(async () => {
    await s.close();
    await deleteNetns(ns);
  });

  test('applies transactions, one per call, and keeps one process', async () => {
    await s.run('add element inet t s { 192.0.2.1 }\nadd element inet t s { 192.0.2.2 }\n');
    const pid = s.pid;
    await s.run(
      'delete element inet t s { 192.0.2.1 }\nadd rule inet t c ip saddr @s accept comment "x:1"\n',
    );
    assert.equal(s.pid, pid);
    const set = await list();
    assert.match(set, /192\.0\.2\.2/);
    assert.doesNotMatch(set, /192\.0\.2\.1\b/);
    await s.run(''); // nothing to do
  });

  test('a failing transaction applies nothing and names the failing line', async () => {
    const script = 'add element inet t s { 192.0.2.9 }\ndelete element inet t s { 192.0.2.77 }\n';
    await assert.rejects(s.run(script), (err: unknown) => {
      assert.ok(err instanceof NftApplyError, String(err));
      assert.match(err.stderr, /Error/);
      return true;
    });
    assert.doesNotMatch(await list(), /192\.0\.2\.9/);
    const syntax = 'add element inet t s { 192.0.2.9 }\nadd rule inet t c bogus garbage\n';
    await assert.rejects(s.run(syntax), (err: unknown) => {
      assert.ok(err instanceof NftApplyError);
      assert.equal(err.line, 2);
      assert.match(err.lineText ?? '', /bogus garbage/);
      return true;
    });
    assert.doesNotMatch(await list(), /192\.0\.2\.9/);
    // the session goes on after errors
    await s.run('add element inet t s { 192.0.2.9 }\n');
    assert.match(await list(), /192\.0\.2\.9/);
  });

  test('concurrent calls are serialised; a killed nft is replaced on the next call', async () => {
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.run(`add element inet t s { 198.51.100.${i + 1} }\n`)),
    );
    assert.equal((await list()).match(/198\.51\.100\.\d+/g)?.length, 20);
    const pid = s.pid!;
    process.kill(pid, 'SIGKILL');
    await waitUntil('s.pid === null', () => s.pid === null, 5000, 10);
    await s.run('flush set inet t s\n');
    assert.notEqual(s.pid, pid);
    assert.doesNotMatch(await list(), /198\.51\.100/);
  });

  test('the process is recycled after recycleBytes of input', async () => {
    const small = new NftSession({ netns: ns, recycleBytes: 200 });
    try {
      await small.run('add element inet t s { 203.0.113.1 }\n');
      const first = small.pid;
      await small.run(
        `add element inet t s { ${Array.from({ length: 20 }, (_, i) => `203.0.113.${i + 2}`).join(', ')} }\n`,
      );
      await waitUntil('small.pid === null', () => small.pid === null, 5000, 10); // closed once over recycleBytes
      await small.run('add element inet t s { 203.0.113.99 }\n');
      assert.notEqual(small.pid, first);
      assert.match(await list(), /203\.0\.113\.99/);
    } finally {
      await small.close();
    }
  });

  test('a large script goes through a scratch file: one transaction, errors name its line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-sess-'));
    const big = new NftSession({ netns: ns, nsenter: true, scratchDir: dir, inlineMaxBytes: 100 });
    try {
      const ips = Array.from({ length: 60 }, (_, i) => `198.18.${i >> 4}.${(i % 16) + 1}`);
      const script = ips.map((ip) => `add element inet t s { ${ip} }`).join('\n');
      assert.ok(script.length > 100);
      await big.run(`${script}\n`);
      assert.equal((await list()).match(/198\.18\.\d+\.\d+/g)?.length, 60);
      const pid = big.pid;
      // line 3 fails: nothing of lines 1-2 is applied, and the error points at line 3
      const bad = [
        'add element inet t s { 198.19.0.1 }',
        'add element inet t s { 198.19.0.2 }',
        'delete element inet t s { 198.19.0.99 }',
        ...Array.from({ length: 10 }, (_, i) => `add element inet t s { 198.19.1.${i + 1} }`),
      ].join('\n');
      await assert.rejects(big.run(bad), (err: unknown) => {
        assert.ok(err instanceof NftApplyError, String(err));
        assert.equal(err.line, 3);
        assert.match(err.lineText ?? '', /198\.19\.0\.99/);
        return true;
      });
      assert.doesNotMatch(await list(), /198\.19\./);
      assert.equal(big.pid, pid, 'same process for both');
      assert.deepEqual(readdirSync(dir), [], 'scratch files removed');
      assert.throws(() => new NftSession({ scratchDir: '/tmp/x" ; flush ruleset' }), /scratchDir/);
    } finally {
      await big.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a recycled process exiting never fails the transaction already sent to its successor', async () => {
    // recycleBytes 1: every transaction retires its process, so each next one races the exit of
    // the previous process (the exit of a retired nft used to reject the successor's transaction)
    const tiny = new NftSession({ netns: ns, recycleBytes: 1 });
    try {
      for (let i = 0; i < 8; i++) {
        await tiny.run(`add element inet t s { 203.0.114.${i + 1} }\n`);
        assert.equal(tiny.pid, null, 'retired right after its transaction');
      }
      await Promise.all(
        Array.from({ length: 8 }, async (_, i) => {
          await tiny.run(`add element inet t s { 203.0.114.${i + 101} }\n`);
        }),
      );
      // a failing transaction on a fresh process still reports its own error, not an exit
      await assert.rejects(tiny.run('delete element inet t s { 203.0.114.250 }\n'), (err: unknown) => {
        assert.ok(err instanceof NftApplyError);
        assert.doesNotMatch(err.message, /session exited/);
        return true;
      });
      const set = await list();
      assert.equal(set.match(/203\.0\.114\.\d+/g)?.length, 16);
      await tiny.close();
      assert.equal(tiny.pid, null);
    } finally {
      await tiny.close();
    }
  });

  test('an idle session never keeps the Node process alive', async () => {
    const mod = fileURLToPath(new URL('../../src/dataplane/session.ts', import.meta.url));
    const code = `import { NftSession } from ${JSON.stringify(mod)};
      const s = new NftSession({ netns: ${JSON.stringify(ns)} });
      await s.run('add element inet t s { 203.0.113.200 }\\n');
      console.log('applied');`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d;
    });
    const exited = await new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(-1);
      }, 15_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(exited, 0, `child did not exit by itself: ${out}`);
    assert.match(out, /applied/);
    assert.match(await list(), /203\.0\.113\.200/);
  });
});
