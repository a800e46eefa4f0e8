// `cfnet agent --check` as the executable runs it (needs `npm run build`: bin/cfnet.js runs dist/):
// the settings and the files they name are checked without starting the agent.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EXIT } from '../../src/lib/exit-codes.js';
import { createCa, issueCert } from '../../src/lib/tls.js';

const cli = join(import.meta.dirname, '../../bin/cfnet.js');

describe('cfnet agent --check', () => {
  let dir: string;
  const file = (name: string) => join(dir, name);

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cfnet-agent-check-'));
    const ca = createCa({ cn: 'agent check CA' });
    const cell = issueCert(ca, { cn: 'cell-1', sans: ['cell-1.cell.cfnet'], bits: 1024 });
    const other = issueCert(ca, { cn: 'cell-2', sans: ['cell-2.cell.cfnet'], bits: 1024 });
    writeFileSync(file('ca.crt'), ca.cert);
    writeFileSync(file('cell.crt'), cell.cert);
    writeFileSync(file('cell.key'), cell.key);
    writeFileSync(file('other.key'), other.key);
    writeFileSync(file('token'), 'a-bootstrap-token\n');
    writeFileSync(file('empty-token'), '');
    writeFileSync(file('not-pem'), 'hello\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  function check(settings: Record<string, string>) {
    const flags = Object.entries({
      cellId: 'cell-1',
      controllerUrl: 'https://127.0.0.1:4443',
      caCert: file('ca.crt'),
      clientCert: file('cell.crt'),
      clientKey: file('cell.key'),
      ...settings,
    }).flatMap(([k, v]) => [`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`, v]);
    return spawnSync(process.execPath, [cli, 'agent', '--check', ...flags], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '' },
    });
  }

  it('valid settings and files: exit 0 with a summary naming each file', () => {
    const r = check({});
    assert.equal(r.status, EXIT.ok, r.stderr);
    assert.match(r.stdout, /settings valid for cell cell-1/);
    for (const f of ['ca.crt', 'cell.crt', 'cell.key']) assert.ok(r.stdout.includes(file(f)), r.stdout);
  });

  it('an invalid setting: exit 2 (invalid) naming the setting', () => {
    const r = check({ vni: '0' });
    assert.equal(r.status, EXIT.invalid, r.stdout);
    assert.match(r.stderr, /vni/);
  });

  it('a missing or non-PEM CA: exit 2 naming caCert', () => {
    for (const path of [file('nonexistent.crt'), file('not-pem')]) {
      const r = check({ caCert: path });
      assert.equal(r.status, EXIT.invalid, `${path}: ${r.stdout}`);
      assert.match(r.stderr, /caCert.*cannot use/);
    }
  });

  it('a key of another pair or a certificate of another cell: exit 2 naming the setting', () => {
    const wrongKey = check({ clientKey: file('other.key') });
    assert.equal(wrongKey.status, EXIT.invalid, wrongKey.stdout);
    assert.match(wrongKey.stderr, /clientKey.*does not belong/);
    const otherCell = check({ cellId: 'cell-2' });
    assert.equal(otherCell.status, EXIT.invalid, otherCell.stdout);
    assert.match(otherCell.stderr, /clientCert.*another cell/);
  });

  it('with a bootstrap token the certificate may be absent; the token must then hold one', () => {
    const absent = { clientCert: file('new.crt'), clientKey: file('new.key') };
    const ok = check({ ...absent, bootstrapTokenFile: file('token') });
    assert.equal(ok.status, EXIT.ok, ok.stderr);
    assert.match(ok.stdout, /requests a new certificate/);
    const empty = check({ ...absent, bootstrapTokenFile: file('empty-token') });
    assert.equal(empty.status, EXIT.invalid, empty.stdout);
    assert.match(empty.stderr, /bootstrapTokenFile/);
    const noToken = check({ ...absent, bootstrapTokenFile: file('no-token') });
    assert.equal(noToken.status, EXIT.invalid, noToken.stdout);
    assert.match(noToken.stderr, /bootstrapTokenFile/);
    const withoutBootstrap = check(absent);
    assert.equal(withoutBootstrap.status, EXIT.invalid, withoutBootstrap.stdout);
    assert.match(withoutBootstrap.stderr, /clientCert/);
  });
});
