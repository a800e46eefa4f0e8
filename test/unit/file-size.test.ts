// Small modules with one job: a source file over ~400 lines says at its top why it is longer
// (a "Longer than ~400 lines:" line in its first comment). Generated code (src/gen) is exempt.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;
const LIMIT = 400;
const REASON = /Longer than ~400 lines: \S/;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'gen' ? [] : sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

describe('source files stay small or say why', () => {
  it(`every file under src/ over ${LIMIT} lines explains its length at its top`, () => {
    const unexplained: string[] = [];
    for (const file of sources(join(root, 'src'))) {
      const lines = readFileSync(file, 'utf8').split('\n');
      if (lines.length <= LIMIT) continue;
      const top = lines.slice(0, 60).join('\n');
      if (!REASON.test(top)) unexplained.push(`${relative(root, file)} (${lines.length} lines)`);
    }
    assert.deepEqual(unexplained, [], 'split these files or say at their top why they are long');
  });
});
