/**
 * The Redis Lua scripts (src/state/lua, src/lib/lua; loader src/lib/redis-scripts.ts): one per file,
 * each file listed in its module's table, each documented.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { LEADER_LUA_DIR, LEADER_SCRIPTS } from '../../src/lib/leader.js';
import { type ScriptSpec, scriptSource } from '../../src/lib/redis-scripts.js';
import { STATE_LUA_DIR, STATE_SCRIPTS } from '../../src/state/scripts.js';

const TABLES: [string, URL, Record<string, ScriptSpec>][] = [
  ['src/state/lua', STATE_LUA_DIR, STATE_SCRIPTS],
  ['src/lib/lua', LEADER_LUA_DIR, LEADER_SCRIPTS],
];

describe('Redis Lua scripts', () => {
  it('every .lua file is defined as exactly one command of its directory’s table', () => {
    for (const [where, dir, table] of TABLES) {
      const files = readdirSync(dir)
        .filter((f) => f.endsWith('.lua'))
        .sort();
      const listed = Object.values(table)
        .map((s) => s.file)
        .sort();
      assert.deepEqual(listed, files, where);
    }
  });

  it('command names are unique across tables', () => {
    const names = TABLES.flatMap(([, , table]) => Object.keys(table));
    assert.equal(new Set(names).size, names.length);
  });

  it('each script opens with a header naming its command, KEYS and ARGV', () => {
    for (const [, dir, table] of TABLES) {
      for (const [name, spec] of Object.entries(table)) {
        const text = scriptSource(dir, spec);
        assert.ok(text.startsWith(`-- ${name}:`), `${name} header names the command`);
        assert.match(text, /^-- KEYS\[1\]/m, `${name} documents KEYS`);
        assert.match(text, /^-- ARGV\[1\]/m, `${name} documents ARGV`);
        assert.doesNotMatch(text, /\$\{/, `${name} has no template interpolation left`);
      }
    }
  });
});
