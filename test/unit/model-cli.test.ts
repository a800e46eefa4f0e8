import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { validateAsgDocument } from '../../src/cli/model-commands.js';
import { ValidationError } from '../../src/lib/errors.js';
import { ruleSetHash } from '../../src/model/canonical.js';
import { allAddresses } from '../../src/model/ip.js';

const root = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'cfnet-model-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const rules = [
  { protocol: 'tcp', destination: '10.10.10.0/24', ports: '443,80,8080' },
  { protocol: 'icmp', destination: '10.10.10.0/24', type: 8, code: 0, description: 'ping' },
];
const v3 = {
  guid: 'sg-1',
  name: 'my-group0',
  globally_enabled: { running: true, staging: false },
  rules,
  relationships: { running_spaces: { data: [] }, staging_spaces: { data: [] } },
};

// Runs `cfnet asg …` with only this module's commands registered (isolated from other components).
function cfnet(args: string[], input?: string) {
  const script =
    "import { Command } from 'commander'; import { registerModelCommands } from './src/cli/model-commands.ts';" +
    "const p = new Command('cfnet'); registerModelCommands(p); await p.parseAsync(process.argv);";
  return spawnSync(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', script, 'cfnet', ...args],
    {
      cwd: root,
      input,
      encoding: 'utf8',
      timeout: 30_000,
    },
  );
}

describe('validateAsgDocument', () => {
  it('recognises every supported document shape', () => {
    const r1 = validateAsgDocument(JSON.stringify(rules));
    assert.equal(r1.format, 'capi-rules');
    assert.equal(r1.groups.length, 1);
    assert.equal(r1.groups[0]!.rules.length, 2);
    assert.equal(r1.groups[0]!.hash, ruleSetHash(r1.groups[0]!.rules));

    const r2 = validateAsgDocument(JSON.stringify(v3));
    assert.equal(r2.format, 'capi-v3-security-group');
    assert.equal(r2.groups[0]!.guid, 'sg-1');
    assert.equal(r2.groups[0]!.hash, r1.groups[0]!.hash, 'same rules, same hash');

    const r3 = validateAsgDocument(
      JSON.stringify({ pagination: {}, resources: [v3, { ...v3, guid: 'sg-2', rules: [] }] }),
    );
    assert.equal(r3.format, 'capi-v3-security-group-list');
    assert.deepEqual(
      r3.groups.map((g) => g.guid),
      ['sg-1', 'sg-2'],
    );

    const v2 = { metadata: { guid: 'sg-v2' }, entity: { name: 'old', rules: [rules[1]] } };
    assert.equal(validateAsgDocument(JSON.stringify(v2)).format, 'capi-v2-security-group');
    const r4 = validateAsgDocument(JSON.stringify({ total_results: 1, resources: [v2] }));
    assert.equal(r4.format, 'capi-v2-security-group-list');
    assert.equal(r4.groups[0]!.name, 'old');

    const ps = {
      next: 0,
      security_groups: [
        {
          guid: 'g',
          name: 'dns',
          rules:
            '[{"protocol":"udp","destination":"0.0.0.0/0","ports":"53","type":0,"code":0,"description":"","log":false}]',
          staging_default: true,
          running_default: true,
          staging_space_guids: [],
          running_space_guids: [],
        },
      ],
    };
    const r5 = validateAsgDocument(JSON.stringify(ps));
    assert.equal(r5.format, 'policy-server-security-groups');
    assert.deepEqual(r5.groups[0]!.rules, [
      { protocol: 'udp', destinations: [allAddresses(4)], ports: [{ start: 53, end: 53 }], log: false },
    ]);
  });

  it('names the offending field', () => {
    const bad = (text: string, field: string, reason: RegExp, opts = {}) => {
      assert.throws(
        () => validateAsgDocument(text, opts),
        (e: unknown) => e instanceof ValidationError && e.field === field && reason.test(e.message),
      );
    };
    bad(
      '[{"protocol":"tcp","destination":"10.0.0.9-10.0.0.1","ports":"80"}]',
      'rules[0].destination',
      /greater than its end/,
    );
    bad(
      JSON.stringify({ ...v3, rules: [rules[0], { protocol: 'all', destination: '1.2.3.4', x: 1 }] }),
      'rules[1].x',
      /unknown field/,
    );
    bad(JSON.stringify({ resources: [v3, { ...v3, guid: '' }] }), 'resources[1].guid', /non-empty string/);
    bad(
      JSON.stringify({ resources: [{ entity: { rules: [{ protocol: 'udp', destination: '1.2.3.4' }] } }] }),
      'resources[0].entity.rules[0].ports',
      /required/,
    );
    bad(
      '{"next":0,"security_groups":[{"guid":"g","rules":"[{\\"protocol\\":\\"tcp\\"}]"}]}',
      'security_groups[0].rules[0].destination',
      /required/,
    );
    bad('nope', 'document', /not valid JSON/);
    bad('"x"', 'document', /expected a rules array/);
    bad('{"foo":1}', 'document', /not a recognised ASG document/);
    assert.equal(
      validateAsgDocument('[{"protocol":"all","destination":"1.2.3.4","x":1}]', { allowUnknownKeys: true })
        .groups[0]!.rules.length,
      1,
    );
  });
});

describe('cfnet asg validate (process)', () => {
  it('prints normalised rules and hash, exit 0', () => {
    const file = join(dir, 'ok.json');
    writeFileSync(file, JSON.stringify(rules));
    const res = cfnet(['asg', 'validate', file]);
    assert.equal(res.status, 0, res.stderr);
    const out = JSON.parse(res.stdout);
    assert.equal(out.format, 'capi-rules');
    assert.match(out.groups[0].hash, /^[0-9a-f]{16}$/);
    assert.equal(out.groups[0].rules[0].protocol, 'icmp'); // normalised order
  });

  it('reads standard input with "-" and prints compact JSON', () => {
    const res = cfnet(['asg', 'validate', '--compact', '-'], JSON.stringify(v3));
    assert.equal(res.status, 0, res.stderr);
    assert.equal(res.stdout.trim().split('\n').length, 1);
    assert.equal(JSON.parse(res.stdout).groups[0].guid, 'sg-1');
  });

  it('exits 2 with a message naming the field', () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify([rules[0], { protocol: 'tcp', destination: '10.0.0.0/33', ports: '80' }]),
    );
    const res = cfnet(['asg', 'validate', file]);
    assert.equal(res.status, 2);
    assert.equal(res.stdout, '');
    assert.match(
      res.stderr,
      /invalid rules\[1\]\.destination "10\.0\.0\.0\/33": prefix length 33 exceeds 32/,
    );
    assert.match(res.stderr, /\(field: rules\[1\]\.destination\)/);
  });

  it('exits 1 when the file cannot be read; --help documents every option', () => {
    const res = cfnet(['asg', 'validate', join(dir, 'missing.json')]);
    assert.equal(res.status, 1);
    assert.match(res.stderr, /cannot read .*missing\.json/);
    const help = cfnet(['asg', 'validate', '--help']);
    assert.equal(help.status, 0);
    for (const s of ['--allow-unknown-keys', '--compact', '<file>', 'Exit status'])
      assert.ok(help.stdout.includes(s), s);
  });
});
