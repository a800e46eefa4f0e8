/**
 * Where one c2c churn apply spends its CPU: `bench/dataplane-apply.ts`'s churn (500 of a
 * 250-container cell's 750 c2c entries replaced) applied back and forth through one NftDataplane
 * session, with the CPU time of this process (render, diff, I/O) and of the session's nft process
 * (parse, evaluate, netlink, commit; from /proc/<pid>/schedstat) per apply, then the render and
 * the diff alone. CPU time rather than wall time: on a shared machine the wall time is the
 * scheduler's. Runs in a scratch netns it creates and removes.
 *
 * Usage: npx tsx bench/c2c-churn-cpu.ts [--runs 40] [--ns NAME (default cfb-churn-<pid>)]
 *        (add `node --cpu-prof` through NODE_OPTIONS for a profile of the Node side)
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { desiredState, diffStates, NftDataplane } from '../src/dataplane/index.js';
import { BENCH_CELL, sampleC2CChurn, sampleRuleSet } from '../src/dataplane/sample.js';
import type { CellRuleSet } from '../src/model/types.js';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(
    'usage: npx tsx bench/c2c-churn-cpu.ts [--runs 40] [--ns NAME]\n  CPU of one c2c churn apply (Node vs nft) through one nft session in a scratch netns; root',
  );
  process.exit(0);
}
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const RUNS = Number(arg('runs') ?? 40);

/** The same cell and churn as bench/dataplane-apply.ts. */
function cells(): [CellRuleSet, CellRuleSet] {
  const rs = sampleRuleSet(BENCH_CELL);
  const churn = sampleC2CChurn(rs);
  return [rs, churn];
}

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!.toFixed(2);

async function main(): Promise<void> {
  const [rs, churn] = cells();
  const ns = arg('ns') ?? `cfb-churn-${process.pid.toString(36)}`;
  const stateDir = mkdtempSync(join(tmpdir(), 'cfnet-churn-'));
  spawnSync('ip', ['netns', 'add', ns]);
  const dp = new NftDataplane({ netns: ns, netnsEnter: true, stateDir, session: true });
  try {
    // the session's process id is private: read it for its CPU time only
    const nftMs = (): number => {
      const pid = (dp as unknown as { session: { pid: number | null } }).session.pid;
      return pid ? Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]) / 1e6 : 0;
    };
    await dp.applyFull(rs);
    await dp.apply(churn);
    await dp.apply(rs);
    const wall: number[] = [];
    const node: number[] = [];
    const nft: number[] = [];
    for (let k = 0; k < RUNS; k++) {
      const n0 = nftMs();
      const c0 = process.cpuUsage();
      const r = await dp.apply(k % 2 === 0 ? churn : rs);
      const c = process.cpuUsage(c0);
      node.push((c.user + c.system) / 1000);
      nft.push(nftMs() - n0);
      if (r.mode !== 'incremental') throw new Error(`expected incremental, got ${r.mode}`);
      wall.push(r.ms);
    }
    const render: number[] = [];
    const diff: number[] = [];
    let prev = desiredState(rs);
    for (let k = 0; k < RUNS; k++) {
      const t0 = performance.now();
      const next = desiredState(k % 2 === 0 ? churn : rs);
      const t1 = performance.now();
      diffStates(prev, next);
      diff.push(performance.now() - t1);
      render.push(t1 - t0);
      prev = next;
    }
    console.log(
      `c2c churn, ${RUNS} applies (p50): wall ${p50(wall)} ms; CPU: node ${p50(node)} ms, nft ${p50(nft)} ms; ` +
        `render ${p50(render)} ms, diff ${p50(diff)} ms`,
    );
  } finally {
    await dp.close();
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(stateDir, { recursive: true, force: true });
  }
}

await main();
