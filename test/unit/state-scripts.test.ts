/** The Redis Lua scripts (src/state/lua, loaded by src/state/scripts.ts): one per file, documented. */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { SCRIPTS, type ScriptName, scriptSource } from '../../src/state/scripts.js';

const LUA_DIR = new URL('../../src/state/lua/', import.meta.url);

describe('Redis Lua scripts', () => {
  it('every file under src/state/lua is defined as exactly one command', () => {
    const files = readdirSync(LUA_DIR)
      .filter((f) => f.endsWith('.lua'))
      .sort();
    const listed = Object.values(SCRIPTS)
      .map((s) => s.file)
      .sort();
    assert.deepEqual(listed, files);
  });

  it('each script opens with a header naming its command, KEYS and ARGV', () => {
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      const text = scriptSource(name);
      assert.ok(text.startsWith(`-- ${name}:`), `${name} header names the command`);
      assert.match(text, /^-- KEYS\[1\]/m, `${name} documents KEYS`);
      assert.match(text, /^-- ARGV\[1\]/m, `${name} documents ARGV`);
      assert.doesNotMatch(text, /\$\{/, `${name} has no template interpolation left`);
    }
  });
});
