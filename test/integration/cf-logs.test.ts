/**
 * No secret in any log line of the CF clients: UAA, CAPI (+ CC internal), policy server and BBS
 * (calls and event stream) log through the project's logger (`createLogger`, pino with redaction) at
 * trace level while they go through success, token refresh, retry, rate-limit, timeout, decode and
 * failure paths against the simulator, and the typed errors they raise are logged too. None of the
 * UAA client secrets, the tokens UAA issued, the Basic credentials or the TLS private keys may
 * appear. A second test shows the redaction itself hiding the secret-bearing fields.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { BbsClient } from '../../src/cf/bbs-client.js';
import { CapiClient } from '../../src/cf/capi-client.js';
import { CfAuthError, CfConnectionError, CfTimeoutError } from '../../src/cf/errors.js';
import { PolicyServerClient } from '../../src/cf/policy-client.js';
import { UaaClient } from '../../src/cf/uaa-client.js';
import { createLogger, type Logger } from '../../src/lib/log.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { waitUntil } from '../helpers/wait.js';

/** Lines of a PEM key's body: any one of them in a log would be a leak. */
function pemBody(pem: string | undefined): string[] {
  if (!pem) return [];
  return pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
}

describe('no secret in any CF client log line', () => {
  let sim: SimHandle;
  let logger: Logger;
  const lines: string[] = [];
  const closers: { close(): void }[] = [];

  before(async () => {
    sim = await startSimulator({ seed: 21, size: 'small', capiV2: true });
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    logger = createLogger('cf-test', { level: 'trace' }, sink);
  });
  after(async () => {
    for (const c of closers) c.close();
    await sim.stop();
  });

  function track<T extends { close(): void }>(c: T): T {
    closers.push(c);
    return c;
  }

  it('every client, through success, refresh, retry, rate-limit, timeout, decode and failure paths', async () => {
    const tokens = new Set<string>();
    let now = Date.now();
    const uaa = track(
      new UaaClient({
        url: sim.urls.uaa,
        clientId: sim.uaaClient.id,
        clientSecret: sim.uaaClient.secret,
        tls: { ca: sim.tls.caCert },
        retries: 0,
        logger: logger.child({ client: 'uaa' }),
        now: () => now,
      }),
    );
    const mtls = { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey };
    const capiConfig = {
      url: sim.urls.capi,
      tls: { ca: sim.tls.caCert },
      auth: uaa,
      internal: { url: sim.urls.ccInternal, tls: mtls },
      backoff: { initialMs: 10, maxMs: 20 },
      logger: logger.child({ client: 'capi' }),
    };
    const capi = track(new CapiClient(capiConfig));

    // UAA + CAPI: listing, token expiry → 401 → refresh, 5xx retry, 429, timeout retry
    tokens.add(await uaa.token());
    await capi.info();
    await capi.listSecurityGroups({ version: 'v3' });
    await capi.listSecurityGroups({ version: 'v2' });
    await capi.asgLatestUpdate();
    sim.faults.expireTokens();
    await capi.listSecurityGroups({ version: 'v3' });
    tokens.add(await uaa.token());
    sim.faults.failNext('capi', 1, 502);
    await capi.listSecurityGroups({ version: 'v3' });
    sim.faults.rateLimitNext('capi', 1, 0);
    await capi.listSecurityGroups({ version: 'v3' });
    const slow = track(new CapiClient({ ...capiConfig, timeoutMs: 300, retries: 1 }));
    sim.faults.delayNext('capi', 1, 800);
    await slow.listSecurityGroups({ version: 'v3' });
    sim.faults.delayNext('capi', 2, 800);
    const timeout = await slow.listSecurityGroups({ version: 'v3' }).catch((e: unknown) => e);
    assert.ok(timeout instanceof CfTimeoutError);
    logger.error({ err: timeout }, 'security group listing failed');
    // a refresh that fails while the cached token is still valid
    now += 3_600_000 * 0.9;
    sim.faults.failNext('uaa', 1, 503);
    tokens.add(await uaa.token());
    now += 3_600_000 * 0.2;
    tokens.add(await uaa.token());
    // wrong secret: a typed error, logged the way a caller logs it
    const badSecret = `${sim.uaaClient.secret}-wrong`;
    const bad = track(
      new UaaClient({
        url: sim.urls.uaa,
        clientId: sim.uaaClient.id,
        clientSecret: badSecret,
        tls: { ca: sim.tls.caCert },
        logger: logger.child({ client: 'uaa-bad' }),
      }),
    );
    const authErr = await bad.token().catch((e: unknown) => e);
    assert.ok(authErr instanceof CfAuthError);
    logger.error({ err: authErr }, 'cannot get a token');

    // policy server: mTLS with the client key, retry, refusal without a certificate
    const policy = track(
      new PolicyServerClient({
        url: sim.urls.policyServer,
        tls: mtls,
        backoff: { initialMs: 10, maxMs: 20 },
        logger: logger.child({ client: 'policy' }),
      }),
    );
    await policy.policiesLastUpdated();
    await policy.policies();
    sim.faults.failNext('policy', 1, 500);
    await policy.securityGroups({ spaceGuids: [...sim.world.spaces.keys()] });
    const anon = track(
      new PolicyServerClient({
        url: sim.urls.policyServer,
        tls: { ca: sim.tls.caCert },
        retries: 0,
        logger: logger.child({ client: 'policy-anon' }),
      }),
    );
    const refused = await anon.policies().catch((e: unknown) => e);
    assert.ok(refused instanceof CfConnectionError);
    logger.error({ err: refused }, 'policy server unreachable');

    // BBS: calls, a corrupt body, and an event stream with a bad event and a dropped connection
    const bbs = track(
      new BbsClient({ url: sim.urls.bbs, tls: mtls, logger: logger.child({ client: 'bbs' }) }),
    );
    await bbs.ping();
    await bbs.actualLrps();
    sim.faults.corruptNext('bbs', 1);
    const decodeErr = await bbs.desiredLrps().catch((e: unknown) => e);
    assert.ok(decodeErr instanceof Error);
    logger.error({ err: decodeErr }, 'desired LRP listing failed');
    const stream = track(bbs.eventStream('lrp', { backoff: { initialMs: 20, maxMs: 50 } }));
    stream.start();
    await stream.waitOpen();
    sim.faults.injectEvent('lrp', { name: 'actual_lrp_crashed', dataBase64: 'not*base64' });
    await waitUntil('the bad event', () => stream.counters.decodeErrors === 1, 5000, 10);
    sim.faults.dropEventStreams();
    await waitUntil('reconnect', () => stream.counters.reconnects === 1, 5000, 10);
    stream.close();

    logger.flush();
    const text = lines.join('');
    for (const expected of [
      'obtained a client-credentials token',
      'token refused, refreshing it once',
      'server error, retrying',
      'rate limited, waiting for Retry-After',
      'request failed, retrying',
      'token refresh failed; using the cached token until it expires',
      'undecodable bbs event skipped',
      'event stream lost, reconnecting',
      '"msg":"request"',
      '"msg":"bbs call"',
      'CFNET_CF_AUTH',
      'CFNET_CF_CONNECTION',
    ]) {
      assert.ok(text.includes(expected), `the log has ${JSON.stringify(expected)}`);
    }
    assert.ok(tokens.size >= 3, `distinct tokens seen: ${tokens.size}`);
    const basic = (id: string, secret: string) =>
      Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64');
    const secrets: [string, string][] = [
      ['UAA client secret', sim.uaaClient.secret],
      ['UAA admin client secret', sim.uaaAdminClient.secret],
      ['wrong secret', badSecret],
      ['Basic credentials', basic(sim.uaaClient.id, sim.uaaClient.secret)],
      ['wrong Basic credentials', basic(sim.uaaClient.id, badSecret)],
      ...[...tokens].flatMap((t, i): [string, string][] => [
        [`token ${i}`, t],
        [`token ${i} signature`, t.split('.')[2] as string],
      ]),
      ...pemBody(sim.tls.clientKey).map((l, i): [string, string] => [`client key line ${i}`, l]),
      ...pemBody(sim.tls.caKey).map((l, i): [string, string] => [`CA key line ${i}`, l]),
    ];
    for (const [what, secret] of secrets) {
      assert.ok(secret.length >= 8, what);
      assert.ok(!text.includes(secret), `${what} reached the log`);
    }
  });

  it('redaction hides the secret-bearing fields a config, a request or a token response carries', () => {
    const start = lines.length;
    const secret = 'S3CRET-value-never-logged';
    logger.info(
      {
        clientSecret: secret,
        client_secret: secret,
        token: secret,
        access_token: secret,
        uaa: { clientId: 'cfnet', clientSecret: secret },
        oauth: { access_token: secret },
        headers: { authorization: `bearer ${secret}` },
        request: { headers: { Authorization: `Basic ${secret}` } },
        tls: { ca: 'public', key: secret },
        policy: { privateKey: secret },
      },
      'settings',
    );
    logger.flush();
    const line = lines.slice(start).join('');
    assert.ok(line.includes('"msg":"settings"'));
    assert.ok(!line.includes(secret), line);
    assert.equal(line.split('[redacted]').length - 1, 10, 'each of the ten fields is censored');
    assert.ok(line.includes('"clientId":"cfnet"') && line.includes('"ca":"public"'), 'the rest stays');
  });
});
