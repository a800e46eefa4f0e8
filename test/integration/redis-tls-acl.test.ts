// The controller and the operator tools against a Redis that requires TLS and an ACL user limited
// to cfnet's key prefix (the cfnet-redis BOSH job's shape): settings → controller → informers →
// BullMQ reconcile jobs → rule sets in Redis; `cfnet queue counts` / `cfnet cells` with the user
// from flags, the password from the environment and the CA from a file. The server and its
// certificates are made here (src/lib/tls.ts); it listens on 127.0.0.1:6384 (TLS only).
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Controller } from '../../src/controller/controller.js';
import { parseControllerSettings, toControllerConfig } from '../../src/controller/settings.js';
import { createLogger } from '../../src/lib/log.js';
import { closeRedis } from '../../src/lib/redis.js';
import { createCa, issueCert, writePem } from '../../src/lib/tls.js';
import { connectRedis } from '../../src/ops/connect.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { testNamespace } from './controller-helpers.js';
import { cfnet } from './ops-helpers.js';

const PORT = Number(process.env.CFNET_TEST_TLS_REDIS_PORT ?? 6384);
const USER = 'cfnet';
const PASSWORD = 'acl-password-0123456789abcdef';

describe('Redis with TLS and an ACL user: controller and operator tools', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cfnet-redis-tls-'));
  const ns = testNamespace('tls');
  const url = `rediss://127.0.0.1:${PORT}/0`;
  let server: ChildProcess;
  let files: Record<string, string>;
  let sim: SimHandle;
  let ctl: Controller | null = null;

  before(async () => {
    const ca = createCa({ cn: 'redis test CA' });
    const cert = issueCert(ca, { cn: 'redis', sans: ['127.0.0.1', 'localhost'] });
    files = writePem(dir, { 'ca.crt': ca.cert, 'redis.crt': cert.cert, 'redis.key': cert.key });
    // the cfnet-redis job's ACL shape: default user off, cfnet's user limited to its prefix
    writeFileSync(
      join(dir, 'users.acl'),
      [
        'user default off',
        `user ${USER} on >${PASSWORD} resetkeys ~${ns}* resetchannels &${ns}* +@all -@dangerous +info +client|list +client|setname`,
        '',
      ].join('\n'),
    );
    server = spawn(
      'redis-server',
      [
        '--port',
        '0',
        '--tls-port',
        String(PORT),
        '--bind',
        '127.0.0.1',
        '--tls-cert-file',
        files['redis.crt']!,
        '--tls-key-file',
        files['redis.key']!,
        '--tls-ca-cert-file',
        files['ca.crt']!,
        '--tls-auth-clients',
        'no',
        '--aclfile',
        join(dir, 'users.acl'),
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dir,
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const r = await connectRedis(url, { auth: { username: USER, password: PASSWORD, tlsCa: ca.cert } });
        await closeRedis(r);
        break;
      } catch (err) {
        if (Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    sim = await startSimulator({ seed: 2, size: 'small' });
    Object.assign(
      files,
      writePem(join(dir, 'sim'), {
        'bbs-ca.crt': sim.tls.caCert,
        'bbs.crt': sim.tls.clientCert,
        'bbs.key': sim.tls.clientKey,
      }),
    );
  });

  after(async () => {
    await ctl?.stop();
    await sim?.stop();
    server?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses clients without the CA, without the password, and the ACL user outside its prefix', async () => {
    await assert.rejects(connectRedis(url, { auth: { username: USER, password: PASSWORD } }), /certificate/i);
    await assert.rejects(
      connectRedis(url, { auth: { tlsCa: sharedCa() } }),
      /NOAUTH|WRONGPASS|Authentication required|user is disabled/i,
    );
    const r = await connectRedis(url, { auth: { username: USER, password: PASSWORD, tlsCa: sharedCa() } });
    try {
      await r.set(`${ns}:probe`, '1');
      await assert.rejects(r.set('elsewhere:probe', '1'), /NOPERM/);
      await assert.rejects(r.flushall(), /NOPERM/);
    } finally {
      await closeRedis(r);
    }
  });

  it('the controller (from its settings) leads, runs reconcile jobs and stores rule sets over TLS as the ACL user', async () => {
    const settings = parseControllerSettings({
      file: {
        redisUrl: url,
        redisUsername: USER,
        redisCaCert: files['ca.crt'],
        redisNamespace: ns,
        bbsUrl: sim.urls.bbs,
        bbsCaCert: files['bbs-ca.crt'],
        bbsClientCert: files['bbs.crt'],
        bbsClientKey: files['bbs.key'],
        apiListen: 'off',
        operatorListen: 'off',
        initialSyncTimeoutMs: 0,
        leaseMs: 2000,
      },
      env: { CFNET_REDIS_PASSWORD: PASSWORD },
    });
    const cfg = toControllerConfig(settings);
    assert.equal(cfg.redisAuth?.username, USER);
    ctl = new Controller({ ...cfg, logger: createLogger('ctl-tls', { level: 'silent' }) });
    await ctl.start();
    await ctl.leading(30_000);
    const cellCount = sim.world.cells.size;
    const deadline = Date.now() + 30_000;
    while ((await ctl.ruleSetStore.cells()).length < cellCount) {
      assert.ok(Date.now() < deadline, 'every cell got a rule set');
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('the operator tools read the queue and the cells with the user from a flag, the password from the environment', async () => {
    const env = { CFNET_REDIS_PASSWORD: PASSWORD };
    const common = ['--redis-url', url, '--redis-username', USER, '--redis-ca-cert', files['ca.crt']!];
    const counts = await cfnet(['queue', 'counts', ...common, '--json'], { namespace: ns, env });
    assert.equal(counts.code, 0, counts.stderr);
    const parsed = JSON.parse(counts.stdout) as { counts: { completed: number }; workers: number };
    assert.ok(parsed.counts.completed > 0, 'the reconcile jobs of the controller');
    assert.equal(parsed.workers, 1, 'CLIENT LIST is allowed to the user');
    const cells = await cfnet(['cells', ...common, '--json'], { namespace: ns, env });
    assert.equal(cells.code, 0, cells.stderr);
    assert.ok(cells.stdout.includes('cell'));
    const noPassword = await cfnet(['queue', 'counts', ...common], { namespace: ns, env: {} });
    assert.equal(noPassword.code, 3, 'Redis refuses: exit status "unreachable"');
  });

  function sharedCa(): string {
    return readFileSync(files['ca.crt']!, 'utf8');
  }
});
