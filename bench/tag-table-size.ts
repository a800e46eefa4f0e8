/**
 * Bytes the source tag table adds to the cell rule sets (a size measurement, not a timing):
 * - apps with a tag, apps that are a policy source (what the table holds);
 * - the table's JSON text, and a cell's rule-set text as an agent gets it (EncodedRuleSet.size) with and without it
 *   (smallest, median and largest cell);
 * - what Redis holds: every cell's snapshot names the one stored table (versus a copy per cell);
 * - the patch of one source tag change, and of one new policy source (every cell gets it).
 *
 *   npx tsx bench/tag-table-size.ts [small|medium|large] [seed]
 */

import { diffRuleSets } from '../src/model/ruleset.js';
import { type C2CPolicy, type CellRuleSet, DEFAULT_CELL_CONFIG } from '../src/model/types.js';
import { computeCellRuleSet } from '../src/rules/compute.js';
import { generateWorld } from '../src/sim/generate.js';
import type { FoundationSize } from '../src/sim/world.js';
import { EncodedRuleSet } from '../src/state/ruleset-store.js';
import { policiesOf, worldFromSim } from './controller-fixtures.js';

if (process.argv.includes('--help')) {
  console.log('usage: npx tsx bench/tag-table-size.ts [small|medium|large] [seed]');
  process.exit(0);
}
const size = (process.argv[2] ?? 'large') as FoundationSize;
const seed = Number(process.argv[3] ?? 1);

const sim = generateWorld(seed, size);
const world = worldFromSim(sim);
const config = { ...DEFAULT_CELL_CONFIG, overlayNetwork: sim.overlayNetwork };
const cells = [...sim.cells.keys()];
const policies = world.policies();
const table = policies.sourceTags() ?? {};
const tableBytes = JSON.stringify(table).length;

// the rule set as an agent is sent it, sets included (the store keeps those apart too)
const bytes = (rs: CellRuleSet) => new EncodedRuleSet(rs).size;
const sizes = cells
  .map((c) => {
    const rs = computeCellRuleSet(world, c, config);
    // the stored body leaves the table out (stored once, named by ref); an agent's snapshot has it
    const without = bytes(rs);
    return { cell: c, with: without + (rs.tags ? ',"tags":'.length + tableBytes : 0), without };
  })
  .sort((a, b) => a.without - b.without);
const pick = (i: number) => sizes[Math.min(sizes.length - 1, Math.max(0, i))]!;

// one source's tag changes; then a new app becomes a policy source
const cell = pick(sizes.length >> 1).cell;
const before = { ...computeCellRuleSet(world, cell, config), version: 1 };
const pols: C2CPolicy[] = policiesOf(sim);
const src = pols[0]!.source.appGuid;
const retag = pols.map((p) =>
  p.source.appGuid === src ? { ...p, source: { ...p.source, tag: 65_000 } } : p,
);
world.setPolicies(retag, { kind: 'resync', id: 'bench', at: 0 });
const retagged = { ...computeCellRuleSet(world, cell, config), version: 2 };
const fresh: C2CPolicy = {
  source: { appGuid: 'new-source-app-guid-0000-000000000000', tag: 65_001 },
  destination: pols[0]!.destination,
};
world.setPolicies([...retag, fresh], { kind: 'resync', id: 'bench', at: 0 });
const added = { ...computeCellRuleSet(world, cell, config), version: 3 };

const kb = (n: number) => `${(n / 1024).toFixed(1)} KiB`;
const rows: [string, string][] = [
  ['foundation', `${size} (seed ${seed}): ${cells.length} cells, ${pols.length} policies`],
  ['apps with a tag (source or destination)', String([...policies.tagEntries()].length)],
  ['apps in the table (policy sources)', String(Object.keys(table).length)],
  [
    'tag table JSON',
    `${kb(tableBytes)} (${(tableBytes / Math.max(1, Object.keys(table).length)).toFixed(1)} B/app)`,
  ],
  ['served snapshot, smallest cell: without / with table', `${kb(pick(0).without)} / ${kb(pick(0).with)}`],
  [
    'served snapshot, median cell: without / with table',
    `${kb(pick(sizes.length >> 1).without)} / ${kb(pick(sizes.length >> 1).with)}`,
  ],
  [
    'served snapshot, largest cell: without / with table',
    `${kb(pick(sizes.length - 1).without)} / ${kb(pick(sizes.length - 1).with)}`,
  ],
  [
    'Redis: all cells’ snapshots + the one stored table',
    `${kb(sizes.reduce((n, s) => n + s.without, 0))} + ${kb(tableBytes)} (per-cell copies would be ${kb(sizes.reduce((n, s) => n + s.with, 0))})`,
  ],
  ['patch: one source tag changes', `${JSON.stringify(diffRuleSets(before, retagged)).length} B`],
  ['patch: a new policy source (every cell)', `${JSON.stringify(diffRuleSets(retagged, added)).length} B`],
];
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
