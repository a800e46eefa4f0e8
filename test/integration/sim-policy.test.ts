/**
 * Simulated policy server internal API (mTLS) and the simulator's admin API, with plain node:https
 * and fetch: tags, the id filter, policies_last_updated above 2^53, security_groups with rules as
 * a JSON string, from/limit/next, PUT tags; the change API, summary, churn and faults over HTTP.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

describe('simulated policy server (internal API over mTLS)', () => {
  let sim: SimHandle;
  before(async () => {
    sim = await startSimulator({ seed: 9, size: 'small' });
  });
  after(() => sim.stop());

  function call(path: string, opts: { method?: string; body?: string; mtls?: boolean } = {}): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        `${sim.urls.policyServer}${path}`,
        {
          method: opts.method ?? 'GET',
          ca: sim.tls.caCert,
          ...(opts.mtls === false ? {} : { cert: sim.tls.clientCert, key: sim.tls.clientKey }),
          servername: 'policy-server.service.cf.internal',
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              text: Buffer.concat(chunks).toString(),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(opts.body);
    });
  }

  it('requires a client certificate; its server certificate is policy-server.service.cf.internal', async () => {
    await assert.rejects(call('/networking/v1/internal/policies', { mtls: false }));
    const cert = await new Promise<string>((resolve, reject) => {
      const req = https.request(
        `${sim.urls.policyServer}/networking/v1/internal/policies`,
        {
          ca: sim.tls.caCert,
          cert: sim.tls.clientCert,
          key: sim.tls.clientKey,
          servername: 'localhost',
          agent: false,
        },
        (res) => {
          const peer = (res.socket as import('node:tls').TLSSocket).getPeerCertificate();
          res.resume();
          resolve(String(peer.subject.CN));
        },
      );
      req.on('error', reject);
      req.end();
    });
    assert.equal(cert, 'policy-server.service.cf.internal');
  });

  it('policies carry upper-case 4-digit hex tags; id= matches source OR destination', async () => {
    const r = await call('/networking/v1/internal/policies');
    assert.equal(r.status, 200);
    const body = JSON.parse(r.text);
    assert.equal(body.total_policies, sim.world.policies.length);
    assert.equal(body.policies.length, sim.world.policies.length);
    for (const p of body.policies) {
      assert.match(p.source.tag, /^[0-9A-F]{4}$/);
      assert.match(p.destination.tag, /^[0-9A-F]{4}$/);
      assert.equal(Number.parseInt(p.source.tag, 16), sim.world.tags.get(p.source.id)?.tag);
      assert.ok(['tcp', 'udp'].includes(p.destination.protocol));
      assert.ok(p.destination.ports.start <= p.destination.ports.end);
    }
    const id = body.policies[0].destination.id as string;
    const filtered = JSON.parse((await call(`/networking/v0/internal/policies?id=${id}`)).text);
    const expected = sim.world.policies.filter((p) => p.sourceId === id || p.destinationId === id);
    assert.equal(filtered.total_policies, expected.length);
    assert.ok(
      filtered.policies.some((p: { source: { id: string } }) => p.source.id !== id),
      'destination matches too',
    );
  });

  it('policies_last_updated is a bare integer above 2^53, exact, and moves with a policy change', async () => {
    const r = await call('/networking/v1/internal/policies_last_updated');
    assert.match(r.text, /^\d+$/);
    const before = BigInt(r.text);
    assert.equal(before, sim.world.policiesLastUpdated);
    assert.ok(before > 2n ** 53n);
    const [a, b] = [...sim.world.apps.keys()] as [string, string];
    const applied = await sim.apply({ kind: 'policy-add', source: a, destination: b, port: 7777 });
    const after = BigInt((await call('/networking/v1/internal/policies_last_updated')).text);
    assert.ok(after > before);
    assert.ok(after >= BigInt(applied.triggeredAt) * 1_000_000n - 1_000_000n);
    const all = JSON.parse((await call(`/networking/v1/internal/policies?id=${a}`)).text);
    assert.ok(
      all.policies.some(
        (p: { destination: { ports: { start: number } } }) => p.destination.ports.start === 7777,
      ),
    );
  });

  it('security_groups: globals without spaces; rules as a JSON string with 7 keys; from/limit/next by id', async () => {
    const globals = JSON.parse((await call('/networking/v1/internal/security_groups')).text);
    assert.equal(globals.next, 0);
    const expectedGlobals = [...sim.world.securityGroups.values()].filter(
      (g) => g.runningDefault || g.stagingDefault,
    );
    assert.deepEqual(
      globals.security_groups.map((g: { guid: string }) => g.guid),
      expectedGlobals.sort((x, y) => x.id - y.id).map((g) => g.guid),
    );
    for (const g of globals.security_groups) {
      assert.equal(typeof g.rules, 'string');
      const rules = JSON.parse(g.rules);
      for (const rule of rules) {
        assert.deepEqual(Object.keys(rule).sort(), [
          'code',
          'description',
          'destination',
          'log',
          'ports',
          'protocol',
          'type',
        ]);
      }
      assert.ok(Array.isArray(g.running_space_guids) && Array.isArray(g.staging_space_guids));
    }
    const spaces = [...sim.world.spaces.keys()].join(',');
    const everything = [...sim.world.securityGroups.values()].sort((x, y) => x.id - y.id);
    const got: string[] = [];
    let from = 0;
    let pages = 0;
    for (;;) {
      const page = JSON.parse(
        (await call(`/networking/v1/internal/security_groups?space_guids=${spaces}&from=${from}&limit=2`))
          .text,
      );
      pages++;
      assert.ok(page.security_groups.length <= 2);
      got.push(...page.security_groups.map((g: { guid: string }) => g.guid));
      if (page.next === 0) break;
      assert.equal(page.next, everything.find((g) => g.guid === everything[got.length]?.guid)?.id);
      from = page.next;
    }
    assert.deepEqual(
      got,
      everything.map((g) => g.guid),
    );
    assert.equal(pages, Math.ceil(everything.length / 2));
    const bad = await call('/networking/v1/internal/security_groups?from=abc');
    assert.equal(bad.status, 500);
    assert.deepEqual(JSON.parse(bad.text), { error: "invalid value for 'from' parameter" });
    assert.equal((await call('/networking/v1/internal/security_groups?limit=x')).status, 500);
  });

  it('PUT tags is idempotent; a new type for an existing id fails with 500', async () => {
    const put = (body: unknown) =>
      call('/networking/v1/internal/tags', { method: 'PUT', body: JSON.stringify(body) });
    const first = JSON.parse((await put({ id: 'INGRESS_ROUTER', type: 'router' })).text);
    assert.equal(first.id, 'INGRESS_ROUTER');
    assert.equal(first.type, 'router');
    assert.match(first.tag, /^[0-9A-F]{4}$/);
    const again = JSON.parse((await put({ id: 'INGRESS_ROUTER', type: 'router' })).text);
    assert.equal(again.tag, first.tag);
    const conflict = await put({ id: 'INGRESS_ROUTER', type: 'app' });
    assert.equal(conflict.status, 500);
    assert.ok(JSON.parse(conflict.text).error);
  });

  it('faults: corrupt body, failures in the policy server error format, request counters', async () => {
    sim.faults.corruptNext('policy', 1);
    const corrupt = await call('/networking/v1/internal/policies');
    assert.equal(corrupt.status, 200);
    assert.throws(() => JSON.parse(corrupt.text), SyntaxError);
    sim.faults.failNext('policy', 2, 503);
    const failed = await call('/networking/v1/internal/policies_last_updated');
    assert.equal(failed.status, 503);
    assert.ok(JSON.parse(failed.text).error);
    assert.equal((await call('/networking/v1/internal/policies_last_updated')).status, 503);
    assert.equal((await call('/networking/v1/internal/policies_last_updated')).status, 200);
    sim.faults.delayNext('policy', 1, 150);
    const t0 = Date.now();
    await call('/networking/v1/internal/policies_last_updated');
    assert.ok(Date.now() - t0 >= 140);
    const n = sim.faults.requests.policy;
    await call('/networking/v1/internal/policies');
    assert.equal(sim.faults.requests.policy, n + 1);
  });
});

describe('simulator admin API', () => {
  let sim: SimHandle;
  before(async () => {
    sim = await startSimulator({ seed: 4, adminToken: 'admin-secret' });
  });
  after(() => sim.stop());

  const admin = (path: string, init: RequestInit = {}) =>
    fetch(`${sim.urls.admin}${path}`, {
      ...init,
      headers: { Authorization: 'Bearer admin-secret', 'Content-Type': 'application/json', ...init.headers },
    });

  it('POST /v1/changes applies a named change and returns triggeredAt and affected cells', async () => {
    assert.equal((await fetch(`${sim.urls.admin}/v1/world/summary`)).status, 401, 'token required');
    const before = Date.now();
    const res = await admin('/v1/changes', {
      method: 'POST',
      body: JSON.stringify({ kind: 'app-start', instances: 2 }),
    });
    assert.equal(res.status, 200);
    const applied = (await res.json()) as {
      id: string;
      kind: string;
      triggeredAt: number;
      affectedCells: string[];
      result: { appGuid: string };
    };
    assert.equal(applied.kind, 'app-start');
    assert.ok(applied.triggeredAt >= before && applied.triggeredAt <= Date.now());
    assert.ok(applied.affectedCells.length >= 1);
    assert.equal(sim.world.apps.get(applied.result.appGuid)?.state, 'STARTED');

    const bad = await admin('/v1/changes', {
      method: 'POST',
      body: JSON.stringify({ kind: 'app-scale', appGuid: 'nope', instances: 1 }),
    });
    assert.equal(bad.status, 422);
    assert.equal(((await bad.json()) as { field: string }).field, 'appGuid');
    const unknown = await admin('/v1/changes', { method: 'POST', body: JSON.stringify({ kind: 'explode' }) });
    assert.equal(unknown.status, 422);
    const notJson = await admin('/v1/changes', { method: 'POST', body: '{' });
    assert.equal(notJson.status, 400);
  });

  it('GET /v1/world/summary counts the world; churn runs through the API; faults through the API', async () => {
    const summary = (await (await admin('/v1/world/summary')).json()) as {
      counts: { actualLrps: number; cells: number };
    };
    assert.equal(summary.counts.actualLrps, sim.world.actualLrps.size);
    assert.equal(summary.counts.cells, 3);
    const churn = await admin('/v1/churn', {
      method: 'POST',
      body: JSON.stringify({ rate: 200, durationMs: 300, seed: 3, wait: true }),
    });
    assert.equal(churn.status, 200);
    const result = (await churn.json()) as {
      applied: number;
      failed: number;
      byKind: Record<string, number>;
    };
    assert.ok(result.applied >= 20, `applied ${result.applied}`);
    assert.equal(result.failed, 0);
    assert.ok(Object.keys(result.byKind).length >= 4);
    const fault = await admin('/v1/faults/fail', {
      method: 'POST',
      body: JSON.stringify({ service: 'uaa', count: 1, status: 503 }),
    });
    assert.equal(fault.status, 200);
    const tokenRes = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        `${sim.urls.uaa}/oauth/token`,
        { method: 'POST', ca: sim.tls.caCert, servername: 'localhost', agent: false },
        (r) => {
          r.resume();
          resolve(r.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end('grant_type=client_credentials');
    });
    assert.equal(tokenRes, 503);
  });

  it("same seed → same world hash across simulator instances (reusing the first one's certificates)", async () => {
    const t0 = Date.now();
    const other = await startSimulator({ seed: 4, tls: sim.tls });
    const third = await startSimulator({ seed: 5, tls: sim.tls });
    const fresh = await startSimulator({ seed: 4, tls: sim.tls });
    try {
      assert.ok(Date.now() - t0 < 3000, 'no key generation when certificates are given');
      assert.equal(other.hash(), fresh.hash());
      assert.notEqual(other.hash(), third.hash());
      assert.equal(other.tls.caCert, sim.tls.caCert);
      const ping = await new Promise<number>((resolve, reject) => {
        const req = https.request(
          `${other.urls.bbs}/v1/ping`,
          {
            method: 'POST',
            ca: sim.tls.caCert,
            cert: sim.tls.clientCert,
            key: sim.tls.clientKey,
            servername: 'localhost',
            agent: false,
          },
          (r) => {
            r.resume();
            resolve(r.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
      assert.equal(ping, 200);
    } finally {
      await Promise.all([other.stop(), third.stop(), fresh.stop()]);
    }
  });
});
