// docs/acceptance.md maps every test file of CF's networking acceptance and smoke suites to the
// cfnet test that translates it: the table names each CF file, every cfnet test file it names
// exists and holds a test named after that CF file, and every test under test/acceptance/ is in it.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;
const doc = readFileSync(join(root, 'docs', 'acceptance.md'), 'utf8');

/**
 * The test files of cf-networking-release's `test/acceptance` and `test/smoke` (their network-level
 * scenarios). `outbound_conn_limit` waits for outbound connection limits.
 */
const CF_FILES = [
  'asg_overlay_interaction_test.go',
  'asg_test.go',
  'big_asg_test.go',
  'custom_iptables_compatibility_test.go',
  'external_connectivity_test.go',
  'inter_container_connectivity_test.go',
  'outbound_conn_limit_test.go',
  'policy_cleanup_test.go',
  'search_domains_test.go',
  'source_ip_test.go',
  'space_developer_test.go',
  'task_connectivity_test.go',
  'smoke_test.go',
];
const NOT_YET = new Set(['outbound_conn_limit_test.go']);

interface Row {
  cfFile: string;
  cfnetFile: string | null;
}

function rows(): Row[] {
  return doc
    .split('\n')
    .filter((l) => l.startsWith('| ') && /_test\.go/.test(l))
    .map((l) => {
      const cells = l.split('|').map((c) => c.trim());
      const cf =
        /`(?:smoke )?`?([a-z_]+_test\.go)`/.exec(cells[1] ?? '') ?? /([a-z_]+_test\.go)/.exec(cells[1] ?? '');
      const ours = /`(acceptance\/[a-z0-9-]+\.test\.ts)`/.exec(cells[2] ?? '');
      return { cfFile: cf?.[1] ?? '', cfnetFile: ours?.[1] ?? null };
    });
}

describe('docs/acceptance.md maps CF acceptance and smoke tests to cfnet tests', () => {
  it('names every CF test file, each with a cfnet test (outbound_conn_limit: not yet)', () => {
    const table = rows();
    for (const f of CF_FILES) {
      const mine = table.filter((r) => r.cfFile === f);
      assert.ok(mine.length > 0, `${f} is not in the table`);
      if (NOT_YET.has(f)) continue;
      for (const r of mine) assert.ok(r.cfnetFile, `${f}: no cfnet test named`);
    }
  });

  it('every cfnet test the table names exists and has a test named after the CF file', () => {
    for (const r of rows()) {
      if (!r.cfnetFile) continue;
      const path = join(root, 'test', r.cfnetFile);
      assert.ok(existsSync(path), `${r.cfnetFile} does not exist`);
      // tests are named after CF's file without `_test.go` (asg_test.go's is `asg_test`, as CF says)
      const stem = r.cfFile.replace(/_test\.go$/, '');
      const scenario = stem === 'asg' ? 'asg_test' : stem;
      const named = new RegExp(`it\\(\\s*[\`'"]${scenario}:`).test(readFileSync(path, 'utf8'));
      assert.ok(named, `${r.cfnetFile} has no test named "${scenario}: …"`);
    }
  });

  it('every test file under test/acceptance/ appears in the table', () => {
    const named = new Set(rows().flatMap((r) => (r.cfnetFile ? [r.cfnetFile] : [])));
    for (const f of readdirSync(join(root, 'test', 'acceptance')).filter((n) => n.endsWith('.test.ts'))) {
      assert.ok(named.has(`acceptance/${f}`), `test/acceptance/${f} is not in docs/acceptance.md`);
    }
  });
});
