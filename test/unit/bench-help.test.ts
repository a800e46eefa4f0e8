/**
 * Every benchmark under bench/ answers `--help` with its usage and exits 0 without running: a
 * benchmark is a command too (the modules they share are not: fixtures, the connect client and
 * the Redis sampler).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
/** Modules the benchmarks import, not commands. */
const MODULES = new Set(['connect-client.ts', 'controller-fixtures.ts', 'redis-stats.ts']);
const benches = readdirSync(`${root}bench`).filter((f) => f.endsWith('.ts') && !MODULES.has(f));

describe('bench --help', () => {
  it('finds the benchmarks (the fan-out, dataplane, queue and CNI ones among them)', () => {
    for (const b of ['fanout-agents.ts', 'dataplane-apply.ts', 'controller-queue.ts', 'cni-latency.ts'])
      assert.ok(benches.includes(b), b);
  });

  for (const b of benches) {
    it(`${b} prints its usage and exits 0`, async () => {
      const { stdout } = await run(process.execPath, ['--import', 'tsx', `bench/${b}`, '--help'], {
        cwd: root,
        timeout: 30_000,
      });
      assert.match(stdout, /usage/i, `${b} --help printed no usage`);
    });
  }
});
