/**
 * Policy-server internal client against the simulator (mTLS): policies_last_updated as an exact
 * bigint, policies with tags and the `id` filter, security groups paged with from/limit/next, and
 * typed errors for invalid JSON, invalid rules, 5xx and missing client certificates.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CfConnectionError,
  CfHttpStatusError,
  CfInvalidSecurityGroupError,
  CfMalformedResponseError,
  CfTimeoutError,
} from '../../src/cf/errors.js';
import { PolicyServerClient } from '../../src/cf/policy-client.js';
import { writePem } from '../../src/lib/tls.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';

describe('policy server internal client against the simulator', () => {
  let sim: SimHandle;
  let policy: PolicyServerClient;

  before(async () => {
    sim = await startSimulator({ seed: 3, size: 'small' });
    policy = new PolicyServerClient({
      url: sim.urls.policyServer,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      backoff: { initialMs: 10, maxMs: 50 },
    });
  });
  after(async () => {
    policy.close();
    await sim.stop();
  });

  it('policies_last_updated is exact above 2^53 and moves with policy changes', async () => {
    const t = await policy.policiesLastUpdated();
    assert.equal(typeof t, 'bigint');
    assert.equal(t, sim.world.policiesLastUpdated);
    assert.ok(t > 2n ** 53n);
    const [a, b] = [...sim.world.apps.keys()];
    await sim.apply({
      kind: 'policy-add',
      source: a!,
      destination: b!,
      protocol: 'tcp',
      ports: { start: 7000, end: 7001 },
    });
    const t2 = await policy.policiesLastUpdated();
    assert.ok(t2 > t);
    assert.equal(t2, sim.world.policiesLastUpdated);
  });

  it('all policies, with numeric tags; the id filter matches source OR destination', async () => {
    const all = await policy.policies();
    assert.equal(all.length, sim.world.policies.length);
    for (const p of all) {
      assert.equal(p.source.tag, sim.world.tags.get(p.source.appGuid)?.tag);
      assert.equal(p.destination.tag, sim.world.tags.get(p.destination.appGuid)?.tag);
      assert.ok(p.source.tag > 0);
    }
    const app = all[0]!.destination.appGuid;
    const some = await policy.policies([app]);
    const want = sim.world.policies.filter((p) => p.sourceId === app || p.destinationId === app);
    assert.equal(some.length, want.length);
    assert.ok(some.every((p) => p.source.appGuid === app || p.destination.appGuid === app));
    assert.deepEqual(await policy.policies([]), []);
  });

  it('a long id list is split over several requests and de-duplicated', async () => {
    const small = new PolicyServerClient({
      url: sim.urls.policyServer,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      maxQueryLength: 120,
    });
    const ids = [...sim.world.apps.keys()];
    const before = sim.faults.requests.policy;
    const got = await small.policies(ids);
    assert.ok(sim.faults.requests.policy - before >= 3, 'several requests');
    assert.equal(got.length, sim.world.policies.length);
    small.close();
  });

  it("createOrGetTag: Silk's router group gets a tag of its own, the same on every call, distinct from apps' tags", async () => {
    const tag = await policy.createOrGetTag('INGRESS_ROUTER', 'router');
    assert.ok(tag > 0 && tag <= 0xffff);
    assert.equal(await policy.createOrGetTag('INGRESS_ROUTER', 'router'), tag, 'idempotent');
    assert.equal(sim.world.tags.get('INGRESS_ROUTER')?.type, 'router');
    const appTags = [...sim.world.tags.entries()]
      .filter(([id]) => id !== 'INGRESS_ROUTER')
      .map(([, t]) => t.tag);
    assert.ok(!appTags.includes(tag), "no app's tag");
    await assert.rejects(
      policy.createOrGetTag('INGRESS_ROUTER', 'app'),
      CfHttpStatusError,
      'another type is refused',
    );
  });

  it('security groups: globals only without spaces; with spaces, every page via from/limit/next', async () => {
    const globals = await policy.securityGroups();
    const wantGlobals = [...sim.world.securityGroups.values()].filter(
      (g) => g.runningDefault || g.stagingDefault,
    );
    assert.deepEqual(globals.map((g) => g.guid).sort(), wantGlobals.map((g) => g.guid).sort());
    const spaces = [...sim.world.spaces.keys()];
    const before = sim.faults.requests.policy;
    const paged = await policy.securityGroups({ spaceGuids: spaces, pageSize: 1 });
    const want = [...sim.world.securityGroups.values()].filter(
      (g) =>
        g.runningDefault ||
        g.stagingDefault ||
        spaces.some((s) => g.runningSpaces.has(s) || g.stagingSpaces.has(s)),
    );
    assert.deepEqual(paged.map((g) => g.guid).sort(), want.map((g) => g.guid).sort());
    assert.equal(sim.faults.requests.policy - before, want.length, 'one request per page of 1');
    const g = paged.find((x) => x.rules.length > 0)!;
    const simG = sim.world.securityGroups.get(g.guid)!;
    assert.equal(g.rules.length, simG.rules.length);
    assert.deepEqual([...g.runningSpaces].sort(), [...simG.runningSpaces].sort());
  });

  it('invalid JSON → CfMalformedResponseError; invalid rule → CfInvalidSecurityGroupError naming the group', async () => {
    sim.faults.corruptNext('policy', 1);
    await assert.rejects(policy.policies(), CfMalformedResponseError);
    sim.faults.corruptNext('policy', 1);
    await assert.rejects(policy.policiesLastUpdated(), CfMalformedResponseError);
    const space = [...sim.world.spaces.keys()][0]!;
    const created = await sim.apply({
      kind: 'asg-create',
      name: 'bad-cidr',
      rules: [{ protocol: 'udp', destination: '10.0.0.0/33', ports: '53' }],
      runningSpaces: [space],
      validate: false,
    });
    const guid = String(created.result.guid);
    try {
      await assert.rejects(policy.securityGroups({ spaceGuids: [space] }), (e: unknown) => {
        assert.ok(e instanceof CfInvalidSecurityGroupError);
        assert.equal(e.guid, guid);
        assert.equal(e.context.service, 'policy');
        assert.match(String(e.context.field), /rules\[0\]\.destination/);
        return true;
      });
    } finally {
      await sim.apply({ kind: 'asg-delete', guid });
    }
  });

  it('TLS material can be given as file paths (ca_cert, client_cert, client_key)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-cf-tls-'));
    try {
      const files = writePem(dir, {
        'ca.crt': sim.tls.caCert,
        'client.crt': sim.tls.clientCert,
        'client.key': sim.tls.clientKey,
      });
      const fromFiles = new PolicyServerClient({
        url: sim.urls.policyServer,
        tls: { caFile: files['ca.crt'], certFile: files['client.crt'], keyFile: files['client.key'] },
      });
      assert.equal(await fromFiles.policiesLastUpdated(), sim.world.policiesLastUpdated);
      fromFiles.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('5xx is retried; past the limit it is a typed error with context; no client certificate is refused', async () => {
    sim.faults.failNext('policy', 2, 500);
    const t = await policy.policiesLastUpdated();
    assert.equal(t, sim.world.policiesLastUpdated);
    const once = new PolicyServerClient({
      url: sim.urls.policyServer,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      retries: 1,
      backoff: { initialMs: 10, maxMs: 10 },
    });
    sim.faults.failNext('policy', 2, 503);
    await assert.rejects(once.policies(), (e: unknown) => {
      assert.ok(e instanceof CfHttpStatusError);
      assert.equal(e.status, 503);
      assert.deepEqual(
        { service: e.context.service, method: e.context.method, path: e.context.path },
        { service: 'policy', method: 'GET', path: '/networking/v1/internal/policies' },
      );
      return true;
    });
    once.close();
    const anon = new PolicyServerClient({
      url: sim.urls.policyServer,
      tls: { ca: sim.tls.caCert },
      retries: 0,
    });
    await assert.rejects(anon.policies(), CfConnectionError);
    anon.close();
  });

  it('timeouts are retried; past the limit they are CfTimeoutError, given at the deadline', async () => {
    const quick = new PolicyServerClient({
      url: sim.urls.policyServer,
      tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      timeoutMs: 300,
      retries: 1,
      backoff: { initialMs: 10, maxMs: 10 },
    });
    try {
      sim.faults.delayNext('policy', 1, 1000);
      assert.equal(await quick.policiesLastUpdated(), sim.world.policiesLastUpdated);
      assert.equal(quick.stats.retries, 1);
      sim.faults.delayNext('policy', 2, 1000);
      const t0 = Date.now();
      await assert.rejects(
        quick.policies(),
        (e: unknown) => e instanceof CfTimeoutError && e.context.timeoutMs === 300 && e.service === 'policy',
      );
      assert.ok(Date.now() - t0 < 1000, 'gave up at the deadline, not when the server answered');
    } finally {
      quick.close();
    }
  });
});
