import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildProgram } from '../../src/cli/main.js';
import { SettingsError } from '../../src/controller/errors.js';
import {
  CONTROLLER_SETTINGS,
  checkSettingFiles,
  controllerConfig,
  describeSettings,
  envName,
  flagName,
  parseControllerSettings,
  readSettingsFile,
  toControllerConfig,
} from '../../src/controller/settings.js';

const base = { flags: { campaign: 'false', apiListen: 'off' } };

function err(fn: () => unknown): SettingsError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SettingsError, String(e));
    return e;
  }
  assert.fail('no error');
}

describe('controller settings', () => {
  it('names flags and variables from the keys', () => {
    assert.equal(flagName('redisUrl'), '--redis-url');
    assert.equal(envName('policyServerClientKey'), 'CFNET_POLICY_SERVER_CLIENT_KEY');
  });

  it('applies defaults and precedence flag > env > file', () => {
    const s = parseControllerSettings({
      ...base,
      file: { worker_concurrency: 2, leaseMs: 5000, dnsServers: ['10.0.0.2'] },
      env: { CFNET_WORKER_CONCURRENCY: '3', CFNET_LEASE_MS: '7000' },
      flags: { ...base.flags, workerConcurrency: '8' },
    });
    assert.equal(s.workerConcurrency, 8);
    assert.equal(s.leaseMs, 7000);
    assert.deepEqual(s.dnsServers, ['10.0.0.2']);
    assert.equal(s.redisUrl, 'redis://127.0.0.1:6379/0');
    assert.equal(s.redisNamespace, '{cfnet}');
    assert.deepEqual(s.operatorListen, { host: '127.0.0.1', port: 9090 });
    assert.equal(s.apiListen, null);
    assert.equal(s.campaign, false);
  });

  it('reports the setting, the value and where it came from', () => {
    let e = err(() => parseControllerSettings({ ...base, env: { CFNET_LEASE_MS: 'soon' } }));
    assert.match(
      e.message,
      /leaseMs \(--lease-ms \/ CFNET_LEASE_MS\) "soon" from env CFNET_LEASE_MS: must be an integer/,
    );
    e = err(() => parseControllerSettings({ ...base, flags: { ...base.flags, redisUrl: 'localhost:6379' } }));
    assert.match(e.message, /redisUrl .* from flag --redis-url/);
    e = err(() =>
      parseControllerSettings({ ...base, file: { deny_networks_always: ['10.0.0.0/8', '300.0.0.0/8'] } }),
    );
    assert.match(e.message, /denyNetworksAlways .* from config file/);
    assert.equal(e.context.field, 'deny_networks.always[1]');
    e = err(() => parseControllerSettings({ ...base, file: { redis_urll: 'x' } }));
    assert.match(e.message, /unknown setting "redis_urll"/);
    e = err(() => parseControllerSettings({ ...base, flags: { ...base.flags, operatorListen: 'nowhere' } }));
    assert.match(e.message, /operatorListen .* must be host:port/);
    e = err(() => parseControllerSettings({ ...base, flags: { ...base.flags, uaaClientSecret: true } }));
    assert.match(e.message, /\[redacted\]/);
  });

  it('requires the settings a configuration needs', () => {
    assert.match(
      err(() => parseControllerSettings({ flags: { apiListen: 'off' } })).message,
      /bbsUrl .* required to run informers/,
    );
    assert.match(
      err(() =>
        parseControllerSettings({ ...base, flags: { ...base.flags, capiUrl: 'https://api.example.com' } }),
      ).message,
      /uaaUrl .* required with capiUrl/,
    );
    assert.match(
      err(() => parseControllerSettings({ flags: { campaign: 'false' } })).message,
      /apiCaCert .* required to serve/,
    );
  });

  it('builds the runtime config: cell config, leases, clients', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-settings-'));
    const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    for (const f of ['ca.crt', 'api.crt', 'api.key']) writeFileSync(join(dir, f), pem);
    const file = join(dir, 'controller.json');
    writeFileSync(
      file,
      JSON.stringify({
        bbs_url: 'https://bbs.service.cf.internal:8889',
        capiUrl: 'https://api.example.com',
        uaaUrl: 'https://uaa.example.com',
        uaaClientId: 'network-policy',
        uaaClientSecret: 's3cret',
        ccInternalUrl: 'https://cloud-controller-ng.service.cf.internal:9023',
        apiCaCert: join(dir, 'ca.crt'),
        apiCert: join(dir, 'api.crt'),
        apiKey: join(dir, 'api.key'),
        denyNetworksRunning: '10.0.0.0/8, 192.168.0.0/16',
        hostTcpServices: ['169.254.0.2:9001'],
        asgLogging: 'yes',
        overlayNetwork: '10.32.0.0/11',
        subnetPrefixLength: 22,
      }),
    );
    const s = parseControllerSettings({ file: readSettingsFile(file), env: {} });
    const c = toControllerConfig(s);
    assert.equal(c.cellConfig.overlayNetwork, '10.32.0.0/11');
    assert.deepEqual(
      c.cellConfig.denyNetworks.running.map((r) => `${r.start}-${r.end}`),
      ['10.0.0.0-10.255.255.255', '192.168.0.0-192.168.255.255'],
    );
    assert.deepEqual(c.cellConfig.hostTcpServices, [{ ip: '169.254.0.2', port: 9001 }]);
    assert.equal(c.cellConfig.logging.asg, true);
    assert.deepEqual(c.leases, {
      overlayNetwork: '10.32.0.0/11',
      subnetPrefixLength: 22,
      ttlMs: 168 * 3600_000,
      recoveryWindowMs: 90_000,
    });
    assert.equal(c.capi?.internal?.url, 'https://cloud-controller-ng.service.cf.internal:9023');
    assert.equal(c.api?.tls.ca, pem);
    assert.equal(c.api?.port, 4443);
    assert.equal(describeSettings(s).uaaClientSecret, '[redacted]');
  });

  it('signing cell certificates: the CA key, the bootstrap secret (redacted), the lifetime; Redis user, password, CA', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-settings-identity-'));
    const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    const key = '-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n';
    for (const f of ['ca.crt', 'api.crt']) writeFileSync(join(dir, f), pem);
    for (const f of ['api.key', 'ca.key']) writeFileSync(join(dir, f), key);
    const file = {
      bbsUrl: 'https://bbs.service.cf.internal:8889',
      apiCaCert: join(dir, 'ca.crt'),
      apiCaKey: join(dir, 'ca.key'),
      apiCert: join(dir, 'api.crt'),
      apiKey: join(dir, 'api.key'),
      cellCertTtlMinutes: 60,
      redisUrl: 'rediss://redis.example.com:6380/0',
      redisUsername: 'cfnet',
      redisCaCert: join(dir, 'ca.crt'),
    };
    const s = parseControllerSettings({
      file,
      env: { CFNET_CELL_BOOTSTRAP_SECRET: 'bootstrap-secret-0123456789', CFNET_REDIS_PASSWORD: 'pw' },
    });
    const c = toControllerConfig(s);
    assert.deepEqual(c.identity, {
      ca: { cert: pem, key },
      ttlMs: 3600_000,
      bootstrapSecret: 'bootstrap-secret-0123456789',
    });
    assert.deepEqual(c.redisAuth, { username: 'cfnet', password: 'pw', tlsCa: pem });
    assert.equal(describeSettings(s).cellBootstrapSecret, '[redacted]');
    assert.equal(describeSettings(s).redisPassword, '[redacted]');
    assert.match(
      err(() =>
        parseControllerSettings({ file: { ...file, bbsUrl: undefined }, flags: { campaign: 'false' } }),
      ).message,
      /bbsUrl.*apiCaKey/,
    );
    assert.match(
      err(() => parseControllerSettings({ file, env: { CFNET_CELL_BOOTSTRAP_SECRET: 'short' } })).message,
      /cellBootstrapSecret.*16 characters/,
    );
    assert.match(
      err(() => parseControllerSettings({ file: { ...file, redisUrl: 'redis://r:6379/0' } })).message,
      /redisCaCert needs a rediss/,
    );
    assert.match(
      err(() => parseControllerSettings({ file: { ...file, cellCertTtlMinutes: 1 } })).message,
      /at least 10/,
    );
  });

  it('code-built configs get exactly the compiled defaults', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-settings-defaults-'));
    const pem = '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n';
    const key = '-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n';
    for (const f of ['ca.crt', 'api.crt']) writeFileSync(join(dir, f), pem);
    for (const f of ['api.key', 'ca.key']) writeFileSync(join(dir, f), key);
    const urls = {
      bbs: 'https://bbs.service.cf.internal:8889',
      capi: 'https://api.sys.example.com',
      uaa: 'https://uaa.service.cf.internal:8443',
      internal: 'https://cloud-controller-ng.service.cf.internal:9023',
      policy: 'https://policy-server.service.cf.internal:4003',
    };
    // every part present, every tunable left at its default
    const fromSettings = (withInternal: boolean) =>
      toControllerConfig(
        parseControllerSettings({
          file: {
            bbsUrl: urls.bbs,
            capiUrl: urls.capi,
            uaaUrl: urls.uaa,
            uaaClientId: 'cfnet',
            uaaClientSecret: 'secret',
            ...(withInternal ? { ccInternalUrl: urls.internal } : {}),
            policyServerUrl: urls.policy,
            apiCaCert: join(dir, 'ca.crt'),
            apiCaKey: join(dir, 'ca.key'),
            apiCert: join(dir, 'api.crt'),
            apiKey: join(dir, 'api.key'),
          },
        }),
      );
    const fromCode = (withInternal: boolean) =>
      controllerConfig({
        redisUrl: 'redis://127.0.0.1:6379/0',
        bbs: { url: urls.bbs, tls: {} },
        capi: {
          url: urls.capi,
          tls: {},
          uaa: { url: urls.uaa, clientId: 'cfnet', clientSecret: 'secret', tls: {} },
          ...(withInternal ? { internal: { url: urls.internal, tls: {} } } : {}),
        },
        policy: { url: urls.policy, tls: {} },
        api: { tls: { ca: pem, cert: pem, key } },
        identity: { ca: { cert: pem, key } },
        operator: {},
      });
    for (const withInternal of [true, false]) {
      assert.deepEqual(fromCode(withInternal), fromSettings(withInternal), `ccInternalUrl ${withInternal}`);
    }
    assert.notEqual(
      fromCode(true).capi?.fullListIntervalMs,
      fromCode(false).capi?.fullListIntervalMs,
      'the full listing default follows asg_latest_update',
    );
    // a lease given in code moves the job lock as the leaseMs setting does
    const lease = 30_000;
    assert.equal(
      controllerConfig({ redisUrl: 'redis://127.0.0.1:6379/0', leaseMs: lease }).workers.lockDurationMs,
      toControllerConfig(
        parseControllerSettings({ ...base, flags: { ...base.flags, leaseMs: String(lease) } }),
      ).workers.lockDurationMs,
    );
  });

  it('refuses a value below the setting’s minimum, naming it and its source', () => {
    let e = err(() => parseControllerSettings({ ...base, env: { CFNET_JOB_BACKOFF_MS: '-1' } }));
    assert.match(
      e.message,
      /jobBackoffMs \(--job-backoff-ms \/ CFNET_JOB_BACKOFF_MS\) -1 from env CFNET_JOB_BACKOFF_MS: must be at least 0/,
    );
    e = err(() => parseControllerSettings({ ...base, file: { lease_ms: 100 } }));
    assert.match(e.message, /leaseMs .* 100 from config file: must be at least 500/);
    e = err(() => parseControllerSettings({ ...base, flags: { ...base.flags, workerConcurrency: '0' } }));
    assert.match(e.message, /workerConcurrency .* from flag --worker-concurrency: must be at least 1/);
    e = err(() => parseControllerSettings({ ...base, flags: { ...base.flags, keepFailedJobs: '1.5' } }));
    assert.match(e.message, /keepFailedJobs .* must be an integer/);
    // 0 where 0 means something (no periodic re-list, no long-poll wait, keep no completed jobs)
    const s = parseControllerSettings({
      ...base,
      flags: { ...base.flags, bbsRelistIntervalMs: '0', apiMaxWaitSeconds: '0', keepCompletedJobs: '0' },
    });
    assert.deepEqual([s.bbsRelistIntervalMs, s.apiMaxWaitSeconds, s.keepCompletedJobs], [0, 0, 0]);
    for (const spec of CONTROLLER_SETTINGS) {
      if (spec.kind === 'int' && spec.def !== undefined) {
        assert.ok(
          spec.min !== undefined && (spec.def as number) >= spec.min,
          `${spec.key} has a valid minimum`,
        );
      }
    }
  });

  it('wants a Redis Cluster hash tag in the namespace (BullMQ prefix) and a subnet size that fits', () => {
    for (const ns of ['cfnet', '{}cfnet', 'cf{net', 'a b']) {
      const e = err(() => parseControllerSettings({ ...base, flags: { ...base.flags, redisNamespace: ns } }));
      assert.match(e.message, /redisNamespace .* from flag --redis-namespace/, ns);
    }
    for (const ns of ['{cfnet}', '{cfnet}-prod', 'prod-{cf}']) {
      assert.equal(
        parseControllerSettings({ ...base, flags: { ...base.flags, redisNamespace: ns } }).redisNamespace,
        ns,
      );
    }
    const e = err(() =>
      parseControllerSettings({ ...base, file: { overlayNetwork: '10.255.0.0/16', subnetPrefixLength: 16 } }),
    );
    assert.match(e.message, /subnetPrefixLength .* from config file: .*greater than the overlay prefix/);
  });

  it('`cfnet controller --help` documents every setting: flag, key, environment variable, default', () => {
    const cmd = buildProgram().commands.find((c) => c.name() === 'controller');
    assert.ok(cmd);
    const help = cmd.helpInformation().replace(/\s+/g, ' ');
    for (const spec of CONTROLLER_SETTINGS) {
      assert.ok(help.includes(`${flagName(spec.key)} `), `flag of ${spec.key}`);
      assert.ok(help.includes(`(${spec.key}; env ${envName(spec.key)})`), `key and env of ${spec.key}`);
      if (spec.def !== undefined && !Array.isArray(spec.def)) {
        assert.ok(help.includes(`[default: ${String(spec.def)}]`), `default of ${spec.key}`);
      }
    }
    assert.ok(help.includes('--config <file>') && help.includes('--check'));
  });

  it('every file a setting names is checked: a missing or non-PEM file is an error naming the setting', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-settings-files-'));
    const notPem = join(dir, 'not.pem');
    writeFileSync(notPem, 'hello');
    let e = err(() =>
      checkSettingFiles(
        parseControllerSettings({ ...base, flags: { ...base.flags, bbsClientCert: '/nonexistent.crt' } }),
      ),
    );
    assert.equal(e.context.setting, 'bbsClientCert');
    assert.match(
      e.message,
      /bbsClientCert \(--bbs-client-cert \/ CFNET_BBS_CLIENT_CERT\).*\/nonexistent\.crt/,
    );
    e = err(() =>
      checkSettingFiles(
        parseControllerSettings({ ...base, flags: { ...base.flags, policyServerCaCert: notPem } }),
      ),
    );
    assert.equal(e.context.setting, 'policyServerCaCert');
  });
});
