/** The error-code table (src/lib/error-codes.ts): every code cfnet raises or answers with is in it. */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { CNI_ERR } from '../../src/cni/errors.js';
import { ERROR_CODES, isErrorCode } from '../../src/lib/error-codes.js';

const SRC = new URL('../../src/', import.meta.url).pathname;
const TABLE = join(SRC, 'lib', 'error-codes.ts');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return name === 'gen' ? [] : walk(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/**
 * Every `'CFNET_…'` string literal in src/ outside the table, except environment variable names
 * (read through the operator tools' `pick(flag, 'CFNET_…', …)`) and environment prefixes (`'CFNET_AGENT_'`,
 * ending in `_`).
 */
function codesUsedInSrc(): Map<string, string> {
  const used = new Map<string, string>();
  for (const file of walk(SRC)) {
    if (file === TABLE) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(pick\([^,()]*,\s*)?'(CFNET_[A-Z0-9_]*[A-Z0-9])'/g)) {
      if (m[1] === undefined) used.set(m[2]!, relative(SRC, file));
    }
  }
  return used;
}

describe('error codes', () => {
  it('are listed once each, named CFNET_…, each with a meaning', () => {
    const keys = [...readFileSync(TABLE, 'utf8').matchAll(/^\s+(CFNET_[A-Z0-9_]+): \{/gm)].map((m) => m[1]!);
    assert.equal(new Set(keys).size, keys.length, 'no code is listed twice');
    assert.deepEqual(keys.sort(), Object.keys(ERROR_CODES).sort());
    for (const [code, info] of Object.entries(ERROR_CODES)) {
      assert.match(code, /^CFNET_[A-Z0-9_]+$/);
      assert.ok(info.meaning.length > 0, `${code} has a meaning`);
    }
  });

  it('every code used in src is in the table', () => {
    const unknown = [...codesUsedInSrc()].filter(([code]) => !isErrorCode(code));
    assert.deepEqual(unknown, []);
  });

  it('every CNI wire code has its CFNET_CNI_<n> entry', () => {
    for (const n of Object.values(CNI_ERR)) assert.ok(isErrorCode(`CFNET_CNI_${n}`), `CFNET_CNI_${n}`);
  });

  it('every code in the table is used in src (no stale entries)', () => {
    const used = codesUsedInSrc();
    const stale = Object.keys(ERROR_CODES).filter((c) => !c.startsWith('CFNET_CNI_') && !used.has(c));
    assert.deepEqual(stale, []);
  });
});
