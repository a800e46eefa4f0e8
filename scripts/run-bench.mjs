// Runs one benchmark of bench/ (TypeScript through tsx); without a name, lists them.
// Usage: npm run bench -- <name> [bench options]   e.g. npm run bench -- dataplane-apply --help
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const benches = readdirSync(join(root, 'bench'))
  .filter(
    (f) =>
      f.endsWith('.ts') && !f.endsWith('-fixtures.ts') && !f.endsWith('-worker.ts') && !f.startsWith('.'),
  )
  .map((f) => f.slice(0, -3))
  .sort();
const [name, ...args] = process.argv.slice(2);
if (!name || name === '--help' || name === '-h') {
  console.log(`usage: npm run bench -- <name> [options]\n\nbenchmarks (numbers in docs/benchmarks.md):`);
  for (const b of benches) console.log(`  ${b}`);
  process.exit(name ? 0 : 2);
}
const file = join(root, 'bench', `${name.replace(/\.ts$/, '')}.ts`);
if (!existsSync(file)) {
  console.error(`run-bench: no benchmark "${name}"; one of: ${benches.join(', ')}`);
  process.exit(2);
}
const res = spawnSync(process.execPath, ['--import', 'tsx', file, ...args], { cwd: root, stdio: 'inherit' });
process.exit(res.status ?? 1);
