/**
 * The nft scripts of `bench/dataplane-apply.ts`'s cell and c2c churn, written to a directory for
 * load-independent measures (element counts, bytes, `valgrind --tool=callgrind nft -c -f`): no
 * timing, no nft run. Writes `full.nft` (the cell's full replace), `churn.nft` (the churn, from the
 * cell) and `churn-back.nft` (back again), and prints their diff summaries as JSON.
 *
 * Usage: npx tsx bench/c2c-churn-scripts.ts DIR
 * Then (docs/benchmarks.md, 2026-12-08): `nft -f DIR/full.nft` in a scratch namespace, and there
 * `valgrind --tool=callgrind nft -c -f DIR/churn.nft`; `nft -c -f DIR/full.nft` in an empty one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { desiredState, diffStates, renderStateFull } from '../src/dataplane/index.js';
import { BENCH_CELL, sampleC2CChurn, sampleRuleSet } from '../src/dataplane/sample.js';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(
    "usage: npx tsx bench/c2c-churn-scripts.ts DIR\n  writes the dataplane bench cell's full.nft, churn.nft and churn-back.nft to DIR (no timing, no nft run)",
  );
  process.exit(0);
}
const dir = process.argv[2];
if (!dir) {
  console.error('usage: npx tsx bench/c2c-churn-scripts.ts DIR');
  process.exit(2);
}
mkdirSync(dir, { recursive: true });
// the same cell as bench/dataplane-apply.ts and bench/c2c-churn-cpu.ts
const rs = sampleRuleSet(BENCH_CELL);
const cell = desiredState(rs);
const churned = desiredState(sampleC2CChurn(rs));
const full = renderStateFull(cell);
const churn = diffStates(cell, churned);
const back = diffStates(churned, cell);
writeFileSync(join(dir, 'full.nft'), full);
writeFileSync(join(dir, 'churn.nft'), churn.script);
writeFileSync(join(dir, 'churn-back.nft'), back.script);
let c2cElements = 0;
for (const [name, elems] of cell.sets) if (name.startsWith('c2c_')) c2cElements += elems.size;
console.log(
  JSON.stringify({
    churn: churn.summary,
    back: back.summary,
    c2cElementsInCell: c2cElements,
    fullBytes: full.length,
    churnBytes: churn.script.length,
  }),
);
