// Copies the Redis Lua scripts (src/**/*.lua) next to the compiled modules in dist/: tsc emits only
// JavaScript, and the stores read their scripts from next to themselves (src/state/scripts.ts).
// Usage: node scripts/copy-lua.mjs (run by `npm run build`)
import { copyFileSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const src = join(root, 'src');
const dist = join(root, 'dist');

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.lua') ? [p] : [];
  });
}

const files = walk(src);
for (const file of files) {
  const target = join(dist, relative(src, file));
  mkdirSync(dirname(target), { recursive: true });
  copyFileSync(file, target);
}
console.log(`copy-lua: ${files.length} scripts into dist/`);
