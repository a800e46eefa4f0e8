/** lib/tls: CA and certificate generation, PEM files, certificate description. */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/lib/errors.js';
import { createCa, describeCert, issueCert, loadPem, loadTlsFiles, writePem } from '../../src/lib/tls.js';

describe('lib/tls', () => {
  const ca = createCa({ cn: 'test CA' });

  it('issues RSA server and client certificates signed by the CA, with SANs and EKUs', () => {
    const server = issueCert(ca, {
      cn: 'bbs.service.cf.internal',
      sans: ['bbs.service.cf.internal', '127.0.0.1'],
    });
    const client = issueCert(ca, { cn: 'cell-007', usage: 'client', key: server.key });
    const caX = new X509Certificate(ca.cert);
    const srvX = new X509Certificate(server.cert);
    const cliX = new X509Certificate(client.cert);
    assert.equal(caX.ca, true);
    assert.equal(srvX.ca, false);
    assert.ok(srvX.verify(caX.publicKey));
    assert.ok(cliX.verify(caX.publicKey));
    assert.ok(srvX.checkIssued(caX));
    assert.equal(srvX.publicKey.asymmetricKeyType, 'rsa');
    assert.ok(srvX.checkHost('bbs.service.cf.internal'));
    assert.ok(srvX.checkIP('127.0.0.1'));
    assert.equal(srvX.checkHost('evil.example'), undefined);
    assert.deepEqual(srvX.keyUsage, ['1.3.6.1.5.5.7.3.1']);
    assert.deepEqual(cliX.keyUsage, ['1.3.6.1.5.5.7.3.2']);
    assert.equal(client.key, server.key, 'key reused when given');
    assert.equal(server.ca, ca.cert);
    const d = describeCert(client.cert);
    assert.equal(d.cn, 'cell-007');
    assert.equal(d.issuerCn, 'test CA');
    assert.ok(d.notAfter.getTime() > Date.now());
    assert.deepEqual(describeCert(server.cert).ip, ['127.0.0.1']);
    assert.throws(() => issueCert(ca, { cn: '' }), ValidationError);
  });

  it('writes PEM files (keys 0600) and loads them back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-tls-test-'));
    try {
      const c = issueCert(ca, { cn: 'x', usage: 'both' });
      const files = writePem(join(dir, 'sub'), { 'ca.crt': ca.cert, 'x.crt': c.cert, 'x.key': c.key });
      assert.equal(statSync(files['x.key'] as string).mode & 0o777, 0o600);
      assert.equal(statSync(files['x.crt'] as string).mode & 0o777, 0o644);
      const loaded = loadTlsFiles({
        ca: files['ca.crt'] as string,
        cert: files['x.crt'] as string,
        key: files['x.key'] as string,
      });
      assert.equal(loaded.cert, c.cert);
      writePem(dir, { 'junk.crt': 'not a pem' });
      assert.throws(() => loadPem(join(dir, 'junk.crt')), ValidationError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
