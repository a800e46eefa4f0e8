/**
 * The CNI datastore's lock (src/cni/store.ts): the synchronous fast path and proper-lockfile's
 * waiting path must exclude each other across real processes, a stale lock is taken over, a held
 * one is waited for and kept fresh. Files live in a temp dir removed at the end.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, stat, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Datastore } from '../../src/cni/store.js';

const STORE_URL = new URL('../../src/cni/store.ts', import.meta.url).href;

/** A child process doing `n` read-modify-write increments of one counter entry under the lock. */
const WORKER = `
const { Datastore } = await import(process.argv[1]);
const [path, n, startAt] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4])];
const store = new Datastore(path);
// every worker starts at the same moment, whatever its start-up took
await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
for (let i = 0; i < n; i++) {
  await store.update(async (tx) => {
    const cur = Number(tx.data.counter?.ip ?? 0);
    await new Promise((r) => setTimeout(r, 1)); // yield inside the lock: a race would lose updates
    tx.data.counter = { handle: 'counter', ip: String(cur + 1), metadata: {} };
    tx.changed = true;
  });
}
`;

function worker(path: string, n: number, startAt: number): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', WORKER, STORE_URL, path, String(n), String(startAt)],
      { stdio: ['ignore', 'inherit', 'inherit'] },
    );
    child.on('error', reject);
    child.on('exit', (code) => resolve(code));
  });
}

describe('CNI datastore lock', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cfnet-cni-store-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('processes and in-process callers racing on one store lose no update', {
    timeout: 120_000,
  }, async () => {
    const path = join(dir, 'race', 'store.json');
    const store = new Datastore(path);
    const startAt = Date.now() + 4000; // after the workers' start-up (tsx), even on a busy machine
    const workers = [worker(path, 25, startAt), worker(path, 25, startAt), worker(path, 25, startAt)];
    await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
    const inProcess = Array.from({ length: 20 }, () =>
      store.update(async (tx) => {
        await new Promise((r) => setTimeout(r, 1));
        const cur = Number(tx.data.counter?.ip ?? 0);
        tx.data.counter = { handle: 'counter', ip: String(cur + 1), metadata: {} };
        tx.changed = true;
      }),
    );
    const codes = await Promise.all([...workers, ...inProcess]);
    assert.deepEqual(codes.slice(0, 3), [0, 0, 0], 'workers succeeded');
    assert.equal((await store.read()).counter?.ip, String(3 * 25 + 20));
    assert.equal(await readFile(`${path}_version`, 'utf8'), String(3 * 25 + 20), 'one version per write');
    await assert.rejects(stat(`${path}.lock`), /ENOENT/, 'lock released');
  });

  it('waits for a lock another process holds, and takes over a stale one', { timeout: 30_000 }, async () => {
    const path = join(dir, 'held', 'store.json');
    const store = new Datastore(path, { staleMs: 2000 });
    await mkdir(`${path}.lock`, { recursive: true }); // held by "another process", fresh
    const t0 = Date.now();
    let ranAt = 0;
    const p = store.update((tx) => {
      ranAt = Date.now();
      tx.data.a = { handle: 'a', ip: '10.255.0.2', metadata: {} };
      tx.changed = true;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(ranAt, 0, 'did not run while the lock was held');
    // the holder died: its lock ages past staleMs and is taken over
    const old = new Date(Date.now() - 60_000);
    await utimes(`${path}.lock`, old, old);
    await p;
    assert.ok(ranAt - t0 >= 300);
    assert.equal((await store.read()).a?.ip, '10.255.0.2');
    await assert.rejects(stat(`${path}.lock`), /ENOENT/, 'lock released');
  });

  it('keeps a lock it holds fresh, so nobody takes it as stale', { timeout: 30_000 }, async () => {
    const path = join(dir, 'fresh', 'store.json');
    const store = new Datastore(path, { staleMs: 2000 });
    const mtimes: number[] = [];
    await store.update(async () => {
      const first = (await stat(`${path}.lock`)).mtimeMs;
      // the holder is slow (longer than staleMs): the lock's mtime must move on meanwhile
      await new Promise((r) => setTimeout(r, 2600));
      mtimes.push(first, (await stat(`${path}.lock`)).mtimeMs);
    });
    assert.ok(mtimes[1]! > mtimes[0]!, `lock refreshed while held: ${mtimes.join(' -> ')}`);
    assert.ok(Date.now() - mtimes[1]! < 60_000);
  });
});
