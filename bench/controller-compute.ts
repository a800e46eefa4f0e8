/**
 * Pure rule-set computation on a generated foundation (no Redis, no network):
 * - world build: the generated foundation ingested into the controller's World;
 * - full recompute: every cell's rule set from scratch (design target for the large foundation:
 *   ≤ 10 s on 2 cores, heap ≤ 2 GB);
 * - single event: one instance moves to another cell → span → recompute the touched cells.
 *
 *   npx tsx bench/controller-compute.ts [small|medium|large] [seed]
 *   NODE_OPTIONS=--expose-gc npx tsx bench/controller-compute.ts large   (heap after GC)
 */
import { cpus } from 'node:os';
import { DEFAULT_CELL_CONFIG } from '../src/model/types.js';
import { computeCellRuleSet } from '../src/rules/compute.js';
import type { Trigger } from '../src/rules/world.js';
import { generateWorld } from '../src/sim/generate.js';
import type { FoundationSize } from '../src/sim/world.js';
import { mb, percentile, printTable, worldFromSim } from './controller-fixtures.js';

if (process.argv.includes('--help')) {
  console.log(
    'usage: npx tsx bench/controller-compute.ts [small|medium|large] [seed]\n  (NODE_OPTIONS=--expose-gc for heap after GC)',
  );
  process.exit(0);
}

const size = (process.argv[2] ?? 'large') as FoundationSize;
const seed = Number(process.argv[3] ?? 1);
const gc = (globalThis as { gc?: () => void }).gc;
const heap = () => {
  gc?.();
  return process.memoryUsage().heapUsed;
};

const t0 = performance.now();
const sim = generateWorld(seed, size);
const tGen = performance.now() - t0;
const heap0 = heap();

const t1 = performance.now();
const world = worldFromSim(sim);
const tBuild = performance.now() - t1;
const heapWorld = heap();

const cells = [...sim.cells.keys()];
const config = { ...DEFAULT_CELL_CONFIG, overlayNetwork: sim.overlayNetwork };
let containers = 0;
let c2c = 0;
let sets = 0;
let rules = 0;
const runs: number[] = [];
let peak = 0;
for (let round = 0; round < 3; round++) {
  const t = performance.now();
  const out = cells.map((c) => computeCellRuleSet(world, c, config));
  runs.push(performance.now() - t);
  peak = Math.max(peak, process.memoryUsage().heapUsed);
  if (round === 0) {
    for (const rs of out) {
      containers += rs.containers.length;
      c2c += rs.c2c.length;
      sets += Object.keys(rs.asgSets).length;
      for (const r of Object.values(rs.asgSets)) rules += r.length;
    }
  }
}
const heapAfter = heap();

// Single events: move one instance to another cell, take the span, recompute the touched cells.
const handles = [...world.handles()];
const lat: number[] = [];
let touched = 0;
for (let i = 0; i < 1000; i++) {
  const h = handles[(i * 7919) % handles.length]!;
  const inst = world.instance(h)!;
  const to = cells[(cells.indexOf(inst.cellId) + 1) % cells.length]!;
  const trigger: Trigger = { kind: 'lrp', id: h, at: Date.now() };
  const t = performance.now();
  world.upsertInstance({ ...inst, cellId: to }, trigger);
  const ch = world.takeChanges();
  for (const c of ch.cells.keys()) computeCellRuleSet(world, c, config);
  lat.push(performance.now() - t);
  touched += ch.cells.size;
}
lat.sort((a, b) => a - b);

printTable(
  `controller pure computation — ${size} foundation (seed ${seed}), ${cpus().length} CPUs, node ${process.version}`,
  [
    {
      step: 'generate foundation (simulator)',
      ms: tGen.toFixed(0),
      note: `${cells.length} cells, ${sim.actualLrps.size} instances`,
    },
    { step: 'ingest into World', ms: tBuild.toFixed(0), note: `heap ${mb(heapWorld - heap0)} for the world` },
    { step: 'full recompute, all cells (cold: ASG sets built)', ms: runs[0]!.toFixed(0), note: '' },
    {
      step: 'full recompute, all cells (warm, best of 2)',
      ms: Math.min(runs[1]!, runs[2]!).toFixed(0),
      note: `runs ${runs.map((r) => r.toFixed(0)).join(' / ')} ms`,
    },
    {
      step: 'single event: span + recompute (p50)',
      ms: percentile(lat, 0.5).toFixed(3),
      note: `${(touched / lat.length).toFixed(1)} cells per event`,
    },
    { step: 'single event: span + recompute (p99)', ms: percentile(lat, 0.99).toFixed(3), note: '' },
  ],
);
printTable('rule sets', [
  {
    containers,
    c2c,
    'distinct asg sets (sum over cells)': sets,
    'rules in those sets': rules,
    'heap used after': mb(heapAfter),
    'heap peak': mb(peak),
    gc: gc ? 'yes' : 'no (NODE_OPTIONS=--expose-gc)',
  },
]);
