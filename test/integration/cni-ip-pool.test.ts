/**
 * The executor's ready-started `ip -batch -` processes (src/cni/ip-pool.ts, src/host PendingCommand):
 * real processes and a real network namespace made here (root), removed at the end.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { IpPool, ON_DEMAND } from '../../src/cni/ip-pool.js';
import { enterNetns, startIpBatchAnyNetns } from '../../src/cni/link.js';
import { startCommand } from '../../src/host/index.js';
import { createNetns, deleteNetns, ip, run, uniqueName } from '../helpers/netns.js';

/** True while a process with this pid exists. */
function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitGone(pid: number | undefined, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (alive(pid)) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

async function links(ns: string): Promise<string[]> {
  const r = await ip(ns, '-j', 'link', 'show');
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

describe('ip -batch processes started ahead of their input', () => {
  let ns = '';
  const path = () => `/run/netns/${ns}`;

  before(async () => {
    ns = uniqueName('cfcnipool');
    await createNetns(ns);
  });
  after(async () => {
    await deleteNetns(ns);
  });

  it('an "any netns" process runs its script in the netns it is pointed at, and only there', async () => {
    const p = startIpBatchAnyNetns();
    assert.equal(p.ready, true);
    enterNetns(p, path());
    const r = await p.run('link add name cfpool0 type veth peer name cfpool0p\nlink set dev cfpool0 up\n');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(p.ready, false, 'used');
    assert.ok((await links(ns)).includes('cfpool0'), 'made inside the netns');
    const here = await run(['ip', 'link', 'show', 'dev', 'cfpool0'], { allowFail: true });
    assert.notEqual(here.code, 0, "not in the test's own namespace");
    await assert.rejects(p.run('link show\n'), /already run/);
  });

  it('reports a failing line with its exit status and stderr, never by throwing', async () => {
    const p = ON_DEMAND.container(path());
    const r = await p.run(
      'link add name cfpool1 type veth peer name cfpool1p\nlink add name cfpool1 type veth peer name cfpool1q\n',
    );
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /File exists/);
    assert.match(r.stderr, /-:2/, 'ip names the failing line');
  });

  it('a netns that does not exist fails the run (nsenter), not the executor', async () => {
    const p = startIpBatchAnyNetns();
    enterNetns(p, '/run/netns/cfnet-no-such-netns');
    const r = await p.run('link show\n');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /nsenter/);
  });

  it('cancel: the process ends without doing anything, before or after it was pointed at a netns', async () => {
    const a = startIpBatchAnyNetns(null);
    const b = enterNetns(startIpBatchAnyNetns(null), path());
    const before = await links(ns);
    a.cancel();
    b.cancel();
    assert.equal(a.ready, false);
    assert.ok(await waitGone(a.pid), 'cancelled process exited');
    assert.ok(await waitGone(b.pid), 'cancelled (entered) process exited');
    assert.deepEqual(await links(ns), before, 'nothing changed in the netns');
  });

  it('a process that waits too long for its input is killed', async () => {
    const p = startCommand(['ip', '-batch', '-'], 200);
    assert.ok(await waitGone(p.pid), 'killed after its idle time');
    assert.equal(p.ready, false);
  });

  it('the pool hands out ready processes, skips dead ones, refills, and close() ends them all', async (t) => {
    const pool = new IpPool(2);
    t.after(() => pool.close());
    pool.refill();
    const [deadPid, nextPid] = pool.readyPids(); // the two ready in this namespace come first
    // one dies behind the pool's back: it is skipped
    process.kill(deadPid!, 'SIGKILL');
    const end = Date.now() + 10_000;
    while (pool.readyPids().includes(deadPid!) && Date.now() < end)
      await new Promise((r) => setTimeout(r, 25));
    assert.ok(!pool.readyPids().includes(deadPid!), 'the dead process is no longer counted as ready');
    const first = pool.host();
    assert.equal(first.pid, nextPid, 'the next ready process, not the dead one');
    // the pool has no more of this kind: one is started on demand
    const onDemand = pool.host();
    assert.ok(onDemand.pid !== undefined && onDemand.pid !== nextPid && onDemand.pid !== deadPid);
    const r = await first.run('link show dev lo\n');
    assert.equal(r.code, 0, r.stderr);
    onDemand.cancel();
    // the container kind enters the netns it is given
    const c = pool.container(path());
    const rc = await c.run('link add name cfpool2 type veth peer name cfpool2p\n');
    assert.equal(rc.code, 0, rc.stderr);
    assert.ok((await links(ns)).includes('cfpool2'));
    pool.refill();
    const waiting = pool.readyPids();
    assert.equal(waiting.length, 4, 'two of each kind');
    assert.ok(waiting.every(alive));
    pool.close();
    for (const pid of waiting) assert.ok(await waitGone(pid), `pid ${pid} exited`);
    pool.refill();
    assert.deepEqual(pool.readyPids(), [], 'a closed pool starts nothing');
  });
});
