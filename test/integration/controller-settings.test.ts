// The controller's settings as the `cfnet` executable applies them (needs `npm run build`: bin/cfnet.js
// runs dist/); the settings themselves are specified in test/unit/controller-settings.test.ts.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';

describe('cfnet controller --check', () => {
  it('cfnet controller --check exits 2 on a missing file and prints the Redis URL without its password', () => {
    const cli = join(import.meta.dirname, '../../bin/cfnet.js');
    const check = (...flags: string[]) =>
      spawnSync(
        process.execPath,
        [cli, 'controller', '--check', '--campaign', 'false', '--api-listen', 'off', ...flags],
        {
          encoding: 'utf8',
          env: { PATH: process.env.PATH ?? '' },
        },
      );
    const missing = check('--bbs-ca-cert', '/nonexistent.crt');
    assert.equal(missing.status, 2, missing.stderr);
    assert.match(missing.stderr, /bbsCaCert/);
    const ok = check('--redis-url', 'redis://cfnet:hunter2hunter2@10.0.0.5:6379/0');
    assert.equal(ok.status, 0, ok.stderr);
    assert.ok(!ok.stdout.includes('hunter2'), ok.stdout);
    assert.equal(JSON.parse(ok.stdout).redisUrl, 'redis://cfnet:***@10.0.0.5:6379/0');
  });
});
