// The agent API's wire contract (src/api) against a real controller: every route's answer, and the
// error answers, parse with the schema the agent's client validates them with — and lose nothing
// when parsed (the schemas name every field the server sends). Then the agent's client itself goes
// through every route. The controller signs certificates, so the certificate route is covered too;
// the cell is told apart by its loopback source address (the simulated BBS places it there).
import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import type { z } from 'zod';
import { ControllerClient } from '../../src/agent/client.js';
import { CertificateAnswer } from '../../src/api/certificate.js';
import { ErrorAnswer } from '../../src/api/errors.js';
import { LeaseAnswer, LeaseListingAnswer, ReleaseAnswer } from '../../src/api/lease.js';
import { cellPath, HEADERS, ROUTES, type RouteName } from '../../src/api/routes.js';
import { RulesChangeAnswer, rulesQueryString, versionOfHeader } from '../../src/api/rules.js';
import { StatusAnswer } from '../../src/api/status.js';
import { cellBootstrapToken } from '../../src/controller/identity/bootstrap-token.js';
import { makeCsr } from '../../src/lib/csr.js';
import { ERROR_CODES } from '../../src/lib/error-codes.js';
import { createLogger } from '../../src/lib/log.js';
import { generateRsaKey } from '../../src/lib/tls.js';
import { ruleSetOfHandles } from '../helpers/fixtures.js';
import { type IdentityFoundation, startIdentityFoundation } from './identity-helpers.js';

const SECRET = 'api-contract-test-secret-0123456';
const CELL = { id: 'cell-api', ip: '127.0.0.41' };
const OTHER = { id: 'cell-api-2', ip: '127.0.0.42' };

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  json: unknown;
}

describe('agent API wire contract: what the controller answers is what the client accepts', () => {
  let f: IdentityFoundation;
  const key = generateRsaKey();
  let cert = '';

  /** One request as the cell, from the cell's address, with its certificate once it has one. */
  function call(method: string, path: string, body?: unknown): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const u = new URL(path, f.url);
      const req = httpsRequest(
        {
          method,
          hostname: u.hostname,
          port: u.port,
          path: `${u.pathname}${u.search}`,
          ca: f.ca.cert,
          ...(cert ? { cert, key } : {}),
          localAddress: CELL.ip,
          servername: 'localhost',
          headers: body !== undefined ? { 'content-type': 'application/json' } : {},
          agent: false,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              json: text ? JSON.parse(text) : null,
            });
          });
        },
      );
      req.on('error', reject);
      req.end(body !== undefined ? JSON.stringify(body) : undefined);
    });
  }

  const covered = new Set<RouteName>();
  /** The answer of `route` (200) parses with `schema` and comes out equal: no field is unknown to it. */
  function conforms<T extends z.ZodType>(route: RouteName, schema: T, a: Answer): z.output<T> {
    assert.equal(a.status, 200, `${route}: ${JSON.stringify(a.json)}`);
    const parsed = schema.safeParse(a.json);
    assert.ok(parsed.success, `${route}: ${parsed.error?.message}`);
    assert.deepEqual(parsed.data, a.json, `${route}: the schema keeps every field the server sends`);
    covered.add(route);
    return parsed.data;
  }
  /** An error answer parses with the shared error schema and carries a code of the table. */
  function refused(a: Answer, status: number, code: string): void {
    assert.equal(a.status, status, JSON.stringify(a.json));
    const parsed = ErrorAnswer.safeParse(a.json);
    assert.ok(parsed.success, `error body: ${JSON.stringify(a.json)}`);
    assert.equal(parsed.data.error.code, code);
    assert.ok(code in ERROR_CODES, `${code} is in src/lib/error-codes.ts`);
  }

  const path = (route: RouteName, cellId = CELL.id) => cellPath(ROUTES[route].path, cellId);

  before(async () => {
    f = await startIdentityFoundation({
      label: 'api-contract',
      cells: [CELL, OTHER],
      ttlMs: 3600_000,
      bootstrapSecret: SECRET,
      maxWaitSeconds: 2,
      logger: createLogger('ctl', { level: 'silent' }),
    });
  });

  after(() => f.stop());

  it('every route answers in the shape of its schema, and refusals in the error shape', async () => {
    // certificate: the bootstrap request (token), then one with the certificate it got
    refused(
      await call(ROUTES.certificate.method, path('certificate'), {
        csr: makeCsr(key, CELL.id),
        token: 'wrong',
      }),
      401,
      'CFNET_IDENTITY_UNAUTHENTICATED',
    );
    const boot = await call(ROUTES.certificate.method, path('certificate'), {
      csr: makeCsr(key, CELL.id),
      token: cellBootstrapToken(SECRET, CELL.id),
    });
    assert.equal(boot.headers[HEADERS.cacheControl], 'no-store');
    cert = conforms('certificate', CertificateAnswer, boot).certificate;

    // rules: 304 with the version header, then a snapshot, then a patch
    const store = f.ctl.ruleSetStore;
    const idle = await call(
      ROUTES.rules.method,
      `${path('rules')}${rulesQueryString({ since: 0, wait: 0.2 })}`,
    );
    assert.equal(idle.status, 304);
    assert.equal(idle.json, null, '304 has no body');
    assert.equal(versionOfHeader(idle.headers[HEADERS.version]), 0);
    const v1 = await store.write(ruleSetOfHandles(CELL.id, ['h1']), null);
    const snap = await call(
      ROUTES.rules.method,
      `${path('rules')}${rulesQueryString({ since: 0, wait: 0 })}`,
    );
    const s = conforms('rules', RulesChangeAnswer, snap);
    assert.equal(s.kind, 'snapshot');
    assert.equal(versionOfHeader(snap.headers[HEADERS.version]), v1);
    const v2 = await store.write(ruleSetOfHandles(CELL.id, ['h1', 'h2']), (await store.get(CELL.id))!);
    const patch = await call(
      ROUTES.rules.method,
      `${path('rules')}${rulesQueryString({ since: v1, wait: 0 })}`,
    );
    const p = conforms('rules', RulesChangeAnswer, patch);
    assert.equal(p.kind, 'patch');
    assert.equal(p.kind === 'patch' ? p.patch.to : 0, v2);
    assert.equal(versionOfHeader(patch.headers[HEADERS.version]), v2);
    const unchanged = await call(
      ROUTES.rules.method,
      `${path('rules')}${rulesQueryString({ since: v2, wait: 0.2 })}`,
    );
    assert.equal(unchanged.status, 304);
    assert.equal(versionOfHeader(unchanged.headers[HEADERS.version]), v2);
    const badQuery = await call(ROUTES.rules.method, `${path('rules')}?since=abc`);
    refused(badQuery, 400, 'CFNET_INVALID');
    assert.equal(ErrorAnswer.parse(badQuery.json).error.field, 'since');
    refused(await call(ROUTES.rules.method, `${path('rules', OTHER.id)}?since=0`), 403, 'CFNET_FORBIDDEN');

    // status
    conforms(
      'status',
      StatusAnswer,
      await call(ROUTES.status.method, path('status'), { appliedVersion: v2, containers: [] }),
    );
    refused(await call(ROUTES.status.method, path('status'), { appliedVersion: -1 }), 400, 'CFNET_INVALID');

    // leases: acquire, renew, list (with a release tombstone), release
    const lease = conforms(
      'leaseAcquire',
      LeaseAnswer,
      await call(ROUTES.leaseAcquire.method, path('leaseAcquire'), { underlayIp: CELL.ip }),
    );
    refused(
      await call(ROUTES.leaseAcquire.method, path('leaseAcquire'), { underlayIp: OTHER.ip }),
      403,
      'CFNET_LEASE_FOREIGN_UNDERLAY',
    );
    conforms(
      'leaseRenew',
      LeaseAnswer,
      await call(ROUTES.leaseRenew.method, path('leaseRenew'), { subnet: lease.subnet, underlayIp: CELL.ip }),
    );
    refused(
      await call(ROUTES.leaseRenew.method, path('leaseRenew'), {
        subnet: '10.255.3.0/24',
        underlayIp: CELL.ip,
      }),
      409,
      'CFNET_LEASE_MISMATCH',
    );
    const released = conforms(
      'leaseRelease',
      ReleaseAnswer,
      await call(ROUTES.leaseRelease.method, path('leaseRelease'), {}),
    );
    assert.equal(released.released, true);
    refused(
      await call(ROUTES.leaseRenew.method, path('leaseRenew'), { subnet: lease.subnet, underlayIp: CELL.ip }),
      404,
      'CFNET_LEASE_UNKNOWN',
    );
    await call(ROUTES.leaseAcquire.method, path('leaseAcquire'), { underlayIp: CELL.ip });
    const listing = conforms(
      'leases',
      LeaseListingAnswer,
      await call(ROUTES.leases.method, ROUTES.leases.path),
    );
    assert.deepEqual(
      listing.leases.map((l) => l.cellId),
      [CELL.id],
    );
    assert.deepEqual(
      listing.released.map((r) => r.cellId),
      [CELL.id],
      'the release tombstone is in the listing',
    );

    assert.deepEqual([...covered].sort(), Object.keys(ROUTES).sort(), 'every route of the contract answered');
  });

  it("the agent's client goes through every route against the real server", async () => {
    const client = new ControllerClient({
      baseUrl: f.url,
      cellId: OTHER.id,
      tls: { ca: f.ca.cert, cert: '', key: '', servername: 'localhost' },
      localAddress: OTHER.ip,
    });
    try {
      const signed = await client.requestCertificate(
        makeCsr(key, OTHER.id),
        cellBootstrapToken(SECRET, OTHER.id),
      );
      client.useCertificate(signed.certificate, key, signed.ca);
      assert.deepEqual(await client.rules(0, 0.2), { kind: 'unchanged', version: 0 });
      const v = await f.ctl.ruleSetStore.write(ruleSetOfHandles(OTHER.id, ['h9']), null);
      const snap = await client.rules(0, 0);
      assert.equal(snap.kind === 'snapshot' ? snap.ruleSet.version : -1, v);
      assert.deepEqual(await client.putStatus({ appliedVersion: v, containers: [] }), {
        inventoryChanged: false,
      });
      const lease = await client.acquireLease(OTHER.ip);
      assert.equal(lease.underlayIp, OTHER.ip);
      const renewed = await client.renewLease(lease.subnet, OTHER.ip);
      assert.deepEqual(
        [renewed.cellId, renewed.subnet, renewed.vtepMac],
        [OTHER.id, lease.subnet, lease.vtepMac],
      );
      assert.ok(
        (await client.leases()).leases.some((l) => l.cellId === OTHER.id && l.subnet === lease.subnet),
      );
      assert.equal(await client.releaseLease(), true);
    } finally {
      await client.destroy();
    }
  });
});
