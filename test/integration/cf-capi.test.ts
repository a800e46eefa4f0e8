/**
 * UAA + CAPI clients against the simulator: v3 and v2 listings (paging, relative next_url, the >50
 * spaces fallback), invalid groups, token expiry and refresh, 429/5xx/timeouts, asg_latest_update
 * and the stable listing. That no secret reaches the logs: cf-logs.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { CapiClient, type CapiClientConfig, type SecurityGroupListing } from '../../src/cf/capi-client.js';
import {
  CapiUnstableListError,
  CfAuthError,
  CfHttpStatusError,
  CfInvalidSecurityGroupError,
  CfMalformedResponseError,
  CfRateLimitedError,
  CfTimeoutError,
} from '../../src/cf/errors.js';
import { UaaClient } from '../../src/cf/uaa-client.js';
import { ValidationError } from '../../src/lib/errors.js';
import { parseCapiRules } from '../../src/model/asg-rule.js';
import type { SecurityGroup } from '../../src/model/types.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';

function norm(groups: SecurityGroup[]): SecurityGroup[] {
  return [...groups]
    .map((g) => ({
      ...g,
      runningSpaces: [...g.runningSpaces].sort(),
      stagingSpaces: [...g.stagingSpaces].sort(),
    }))
    .sort((a, b) => a.guid.localeCompare(b.guid));
}

/** What the listing must return: the simulator's groups, rules parsed by the model. */
function expected(sim: SimHandle, skip: Set<string> = new Set()): SecurityGroup[] {
  const out: SecurityGroup[] = [];
  for (const g of sim.world.securityGroups.values()) {
    if (skip.has(g.guid)) continue;
    out.push({
      guid: g.guid,
      name: g.name,
      rules: parseCapiRules(g.rules),
      runningDefault: g.runningDefault,
      stagingDefault: g.stagingDefault,
      runningSpaces: [...g.runningSpaces],
      stagingSpaces: [...g.stagingSpaces],
    });
  }
  return norm(out);
}

describe('CAPI and UAA clients against the simulator', () => {
  let sim: SimHandle;
  let uaa: UaaClient;
  const clients: { close(): void }[] = [];

  function capi(extra: Partial<CapiClientConfig> = {}): CapiClient {
    const c = new CapiClient({
      url: sim.urls.capi,
      tls: { ca: sim.tls.caCert },
      auth: uaa,
      internal: {
        url: sim.urls.ccInternal,
        tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      },
      backoff: { initialMs: 10, maxMs: 50 },
      ...extra,
    });
    clients.push(c);
    return c;
  }

  function newUaa(extra: Partial<ConstructorParameters<typeof UaaClient>[0]> = {}): UaaClient {
    const u = new UaaClient({
      url: sim.urls.uaa,
      clientId: sim.uaaClient.id,
      clientSecret: sim.uaaClient.secret,
      tls: { ca: sim.tls.caCert },
      ...extra,
    });
    clients.push(u);
    return u;
  }

  before(async () => {
    sim = await startSimulator({ seed: 11, size: 'small', capiV2: true });
    uaa = newUaa();
  });
  after(async () => {
    for (const c of clients) c.close();
    await sim.stop();
  });

  it('detects v2 and v3 from GET /; without v2 it lists from v3, and asking for v2 is a typed 404', async () => {
    const info = await capi().info();
    assert.equal(info.v2, true);
    assert.equal(info.v3, true);
    assert.equal((await capi().listSecurityGroups()).source, 'v3', 'v3 preferred when both are served');
    const noV2 = await startSimulator({ seed: 11, size: 'small', capiV2: false, tls: sim.tls });
    try {
      const u = newUaa({
        url: noV2.urls.uaa,
        clientId: noV2.uaaClient.id,
        clientSecret: noV2.uaaClient.secret,
      });
      const c = capi({ url: noV2.urls.capi, auth: u, internal: undefined });
      assert.deepEqual(
        { ...(await c.info()), uaaUrl: undefined, loginUrl: undefined },
        {
          v2: false,
          v3: true,
          uaaUrl: undefined,
          loginUrl: undefined,
        },
      );
      const l = await c.listSecurityGroups();
      assert.equal(l.source, 'v3');
      assert.equal(l.groups.length, noV2.world.securityGroups.size);
      await assert.rejects(
        c.listSecurityGroups({ version: 'v2' }),
        (e: unknown) =>
          e instanceof CfHttpStatusError && e.status === 404 && /V2 endpoints disabled/.test(e.body),
      );
    } finally {
      await noV2.stop();
    }
  });

  it('v3: full listing in one page equals the foundation', async () => {
    const l = await capi().listSecurityGroups({ version: 'v3' });
    assert.equal(l.source, 'v3');
    assert.deepEqual(l.invalid, []);
    assert.equal(l.requests, 1);
    assert.ok(l.groups.length >= 5);
    assert.deepEqual(norm(l.groups), expected(sim));
  });

  it('v3: pages through next.href', async () => {
    const before = sim.faults.requests.capi;
    const l = await capi({ perPageV3: 2 }).listSecurityGroups({ version: 'v3' });
    const n = sim.world.securityGroups.size;
    assert.equal(l.requests, Math.ceil(n / 2));
    assert.equal(sim.faults.requests.capi - before, Math.ceil(n / 2));
    assert.deepEqual(norm(l.groups), expected(sim));
  });

  it('v2: follows the relative next_url and gives the same groups as v3', async () => {
    const l = await capi({ perPageV2: 2 }).listSecurityGroups({ version: 'v2' });
    assert.equal(l.source, 'v2');
    assert.deepEqual(l.invalid, []);
    const n = sim.world.securityGroups.size;
    assert.ok(l.requests >= Math.ceil(n / 2) + 2, `requests ${l.requests}`);
    assert.deepEqual(norm(l.groups), expected(sim));
  });

  it('v2: pages /v2/security_groups/:guid/spaces when CC omits a list of more than 50 spaces', async () => {
    const spaces = await sim.apply({ kind: 'space-create', count: 60 });
    const spaceGuids = spaces.result.spaceGuids as string[];
    assert.equal(spaceGuids.length, 60);
    const created = await sim.apply({
      kind: 'asg-create',
      name: 'many-spaces',
      rules: [{ protocol: 'tcp', destination: '192.168.0.0/24', ports: '8080' }],
      runningSpaces: spaceGuids,
      stagingSpaces: spaceGuids.slice(0, 55),
    });
    const guid = created.result.guid as string;
    try {
      const v2 = await capi({ perPageV2: 20 }).listSecurityGroups({ version: 'v2' });
      const g = v2.groups.find((x) => x.guid === guid);
      assert.ok(g, 'group listed');
      assert.deepEqual([...g.runningSpaces].sort(), [...spaceGuids].sort());
      assert.deepEqual([...g.stagingSpaces].sort(), spaceGuids.slice(0, 55).sort());
      // 3 pages of 20 running + 3 of 20 staging spaces on top of the group pages and config endpoints
      const v2Small = await capi({ perPageV2: 100 }).listSecurityGroups({ version: 'v2' });
      assert.ok(v2.requests >= v2Small.requests + 4, `${v2.requests} vs ${v2Small.requests}`);
      assert.deepEqual(norm(v2.groups), expected(sim));
      const v3 = await capi().listSecurityGroups({ version: 'v3' });
      assert.deepEqual(norm(v3.groups), norm(v2.groups));
    } finally {
      await sim.apply({ kind: 'asg-delete', guid });
    }
  });

  it('an invalid rule makes its group invalid (typed, with the field); the others are listed', async () => {
    const created = await sim.apply({
      kind: 'asg-create',
      name: 'reversed-range',
      rules: [
        { protocol: 'tcp', destination: '10.1.0.0/16', ports: '443' },
        { protocol: 'tcp', destination: '10.2.0.0/16', ports: '9000-8000' },
      ],
      validate: false,
    });
    const guid = created.result.guid as string;
    try {
      for (const version of ['v3', 'v2'] as const) {
        const l: SecurityGroupListing = await capi().listSecurityGroups({ version });
        assert.equal(l.invalid.length, 1, version);
        const bad = l.invalid[0]!;
        assert.ok(bad instanceof CfInvalidSecurityGroupError);
        assert.equal(bad.guid, guid);
        assert.equal(bad.context.name, 'reversed-range');
        assert.match(String(bad.context.field), /rules\[1\]\.ports$/);
        assert.ok(bad.cause instanceof ValidationError);
        assert.ok(!l.groups.some((g) => g.guid === guid));
        assert.deepEqual(norm(l.groups), expected(sim, new Set([guid])));
      }
    } finally {
      await sim.apply({ kind: 'asg-delete', guid });
    }
  });

  it('token: cached, one shared request for concurrent callers, refreshed at 80% of expires_in', async () => {
    let now = Date.now();
    const u = newUaa({ now: () => now });
    const before = sim.faults.requests.uaa;
    const tokens = await Promise.all(Array.from({ length: 10 }, () => u.token()));
    assert.equal(new Set(tokens).size, 1);
    assert.equal(u.fetches, 1);
    assert.equal(sim.faults.requests.uaa - before, 1);
    assert.equal(await u.token(), tokens[0]);
    assert.equal(u.fetches, 1);
    // the simulator's tokens live tokenTtlSeconds (default ≥ 60 s); jump past 80% of it
    const payload = JSON.parse(Buffer.from(tokens[0]!.split('.')[1]!, 'base64url').toString()) as {
      iat: number;
      exp: number;
    };
    now += (payload.exp - payload.iat) * 1000 * 0.81;
    const t2 = await u.token();
    assert.equal(u.fetches, 2);
    assert.notEqual(t2, tokens[0]);
  });

  it('token: a failed refresh keeps using the cached token until it expires', async () => {
    let now = Date.now();
    const u = newUaa({ now: () => now, retries: 0 });
    const t1 = await u.token();
    const payload = JSON.parse(Buffer.from(t1.split('.')[1]!, 'base64url').toString()) as {
      iat: number;
      exp: number;
    };
    const ttlMs = (payload.exp - payload.iat) * 1000;
    now += ttlMs * 0.9; // due for refresh, still valid
    sim.faults.failNext('uaa', 1, 503);
    assert.equal(await u.token(), t1);
    assert.equal(u.fetches, 2);
    now += ttlMs * 0.2; // expired: a failure is an error now
    sim.faults.failNext('uaa', 1, 503);
    await assert.rejects(u.token(), (e: unknown) => e instanceof CfHttpStatusError && e.status === 503);
    const t3 = await u.token();
    assert.notEqual(t3, t1);
  });

  it('token expiry: one 401 → one refresh → success', async () => {
    const c = capi();
    await c.listSecurityGroups({ version: 'v3' });
    const fetches = uaa.fetches;
    const unauthorized = c.stats.unauthorized;
    const uaaRequests = sim.faults.requests.uaa;
    sim.faults.expireTokens();
    const l = await c.listSecurityGroups({ version: 'v3' });
    assert.deepEqual(norm(l.groups), expected(sim));
    assert.equal(c.stats.unauthorized - unauthorized, 1);
    assert.equal(uaa.fetches - fetches, 1);
    assert.equal(sim.faults.requests.uaa - uaaRequests, 1);
  });

  it('bad client secret → CfAuthError (401 from UAA), not retried', async () => {
    const u = newUaa({ clientSecret: 'wrong' });
    const before = sim.faults.requests.uaa;
    await assert.rejects(u.token(), (e: unknown) => e instanceof CfAuthError && e.status === 401);
    assert.equal(sim.faults.requests.uaa - before, 1);
  });

  it('429 honours Retry-After, then gives up with CfRateLimitedError', async () => {
    const c = capi({ rateLimitWaits: 2 });
    await c.info();
    sim.faults.rateLimitNext('capi', 1, 1);
    const t0 = Date.now();
    await c.listSecurityGroups({ version: 'v3' });
    assert.ok(Date.now() - t0 >= 950, `waited ${Date.now() - t0} ms`);
    assert.equal(c.stats.rateLimited, 1);
    sim.faults.rateLimitNext('capi', 3, 0);
    await assert.rejects(
      c.listSecurityGroups({ version: 'v3' }),
      (e: unknown) =>
        e instanceof CfRateLimitedError && e.status === 429 && e.context.path === '/v3/security_groups',
    );
  });

  it('5xx is retried with backoff; past the limit it is a typed error with context', async () => {
    const c = capi({ retries: 3 });
    await c.info();
    sim.faults.failNext('capi', 2, 502);
    const l = await c.listSecurityGroups({ version: 'v3' });
    assert.equal(l.groups.length, expected(sim).length);
    assert.equal(c.stats.retries, 2);
    sim.faults.failNext('capi', 4, 500);
    await assert.rejects(c.listSecurityGroups({ version: 'v3' }), (e: unknown) => {
      assert.ok(e instanceof CfHttpStatusError);
      assert.equal(e.status, 500);
      assert.deepEqual(
        { service: e.context.service, method: e.context.method, path: e.context.path },
        { service: 'capi', method: 'GET', path: '/v3/security_groups' },
      );
      return true;
    });
  });

  it('timeouts are retried; past the limit they are CfTimeoutError', async () => {
    const c = capi({ timeoutMs: 400, retries: 1 });
    await c.info();
    sim.faults.delayNext('capi', 1, 1200);
    const l = await c.listSecurityGroups({ version: 'v3' });
    assert.equal(l.groups.length, expected(sim).length);
    sim.faults.delayNext('capi', 2, 1200);
    const t0 = Date.now();
    await assert.rejects(
      c.listSecurityGroups({ version: 'v3' }),
      (e: unknown) => e instanceof CfTimeoutError && e.context.timeoutMs === 400,
    );
    assert.ok(Date.now() - t0 < 1200, 'gave up at the deadline, not when the server answered');
  });

  it('a body that is not JSON → CfMalformedResponseError (CAPI and UAA); the next call works', async () => {
    const c = capi();
    await c.info();
    sim.faults.corruptNext('capi', 1);
    await assert.rejects(c.listSecurityGroups({ version: 'v3' }), CfMalformedResponseError);
    assert.equal((await c.listSecurityGroups({ version: 'v3' })).groups.length, expected(sim).length);
    const u = newUaa();
    sim.faults.corruptNext('uaa', 1);
    await assert.rejects(
      u.token(),
      (e: unknown) => e instanceof CfMalformedResponseError && e.context.path === '/oauth/token',
    );
    assert.ok((await u.token()).length > 0);
  });

  it('asg_latest_update: exact nanoseconds over mTLS, advances on v3 writes, 404 → zero', async () => {
    const c = capi();
    const a = await c.asgLatestUpdate();
    assert.equal(a.nanos, sim.world.asgLatestUpdate);
    assert.match(a.raw, /\.\d{9}/);
    const g = [...sim.world.securityGroups.values()][0]!;
    await sim.apply({ kind: 'asg-update', guid: g.guid, name: `${g.name}-renamed` });
    const b = await c.asgLatestUpdate();
    assert.ok(b.nanos > a.nanos);
    assert.equal(b.nanos, sim.world.asgLatestUpdate);
    sim.faults.failNext('ccInternal', 1, 404);
    assert.deepEqual(await c.asgLatestUpdate(), { raw: '', nanos: 0n });
  });

  it('stable listing: a change while paging restarts the pass; changes on every pass → CapiUnstableListError', async () => {
    const c = capi({ perPageV3: 2 });
    const quiet = await c.listSecurityGroupsStable();
    assert.equal(quiet.tries, 1);
    assert.equal(quiet.lastUpdate.nanos, sim.world.asgLatestUpdate);

    const g = [...sim.world.securityGroups.values()][0]!;
    sim.faults.delayNext('capi', 1, 300);
    const p = c.listSecurityGroupsStable();
    await new Promise((r) => setTimeout(r, 100));
    await sim.apply({ kind: 'asg-update', guid: g.guid, name: `${g.name}-x` });
    const once = await p;
    assert.equal(once.tries, 2);
    assert.equal(once.lastUpdate.nanos, sim.world.asgLatestUpdate);
    assert.deepEqual(norm(once.groups), expected(sim));

    sim.faults.delayNext('capi', 6, 150);
    let n = 0;
    const timer = setInterval(() => {
      void sim.apply({ kind: 'asg-update', guid: g.guid, name: `${g.name}-${n++}` });
    }, 40);
    try {
      await assert.rejects(
        c.listSecurityGroupsStable(),
        (e: unknown) => e instanceof CapiUnstableListError && e.context.tries === 3,
      );
    } finally {
      clearInterval(timer);
    }
  });
});
