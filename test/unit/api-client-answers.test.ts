/**
 * The agent's client validates every answer with the wire contract's schemas (src/api): a fake
 * controller (fastify over HTTPS with mutual TLS) answers each route with a body of the wrong shape,
 * and the client throws its typed error — ControllerRequestError, code CFNET_AGENT_CONTROLLER,
 * apiCode BAD_ANSWER — instead of handing the agent something it would act on.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { ControllerClient, ControllerRequestError } from '../../src/agent/client.js';
import { BAD_ANSWER } from '../../src/api/errors.js';
import { ROUTES } from '../../src/api/routes.js';
import { isPatchShape, isRuleSetShape } from '../../src/api/rules.js';
import { createCa, issueCert } from '../../src/lib/tls.js';
import { diffRuleSets } from '../../src/model/ruleset.js';
import { ruleSetOfHandles } from '../helpers/fixtures.js';

const GOOD_LEASE = {
  cellId: 'cell-1',
  subnet: '10.255.1.0/24',
  underlayIp: '198.51.100.1',
  vtepMac: 'EE:EE:0A:FF:01:00',
  acquiredAt: 1,
  renewedAt: 2,
  expiresAt: 3,
};

/** What the fake answers per route (route name → status and body); set by each test. */
type Script = Partial<Record<keyof typeof ROUTES, { status: number; body: unknown }>>;

describe("the agent's client refuses answers that do not match the contract", () => {
  const ca = createCa();
  const server = issueCert(ca, { cn: 'controller', sans: ['127.0.0.1'] });
  const cell = issueCert(ca, { cn: 'cell-1', usage: 'client' });
  let app: FastifyInstance;
  let client: ControllerClient;
  let script: Script = {};

  before(async () => {
    app = Fastify({ https: { ca: ca.cert, cert: server.cert, key: server.key, requestCert: true } });
    for (const [name, route] of Object.entries(ROUTES) as [
      keyof typeof ROUTES,
      (typeof ROUTES)[keyof typeof ROUTES],
    ][]) {
      app.route({
        method: route.method,
        url: route.path,
        handler: async (_req, reply) => {
          const a = script[name] ?? {
            status: 500,
            body: { error: { code: 'CFNET_INTERNAL', message: 'unscripted' } },
          };
          return reply.code(a.status).send(a.body);
        },
      });
    }
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    client = new ControllerClient({
      baseUrl: `https://127.0.0.1:${port}`,
      cellId: 'cell-1',
      tls: { ca: ca.cert, cert: cell.cert, key: cell.key },
    });
  });

  after(async () => {
    await client.close();
    await app.close();
  });

  const badAnswer = (path: string) => (e: unknown) => {
    assert.ok(e instanceof ControllerRequestError, String(e));
    assert.equal(e.code, 'CFNET_AGENT_CONTROLLER');
    assert.equal(e.apiCode, BAD_ANSWER);
    assert.equal(e.status, 200);
    assert.equal(e.context.path, path, 'the first mismatch is named');
    return true;
  };

  it('a malformed lease (acquire, renew) is BAD_ANSWER naming the field', async () => {
    script = {
      leaseAcquire: { status: 200, body: { ...GOOD_LEASE, subnet: 'not-a-cidr' } },
      leaseRenew: { status: 200, body: { ...GOOD_LEASE, vtepMac: 'xx' } },
    };
    await assert.rejects(client.acquireLease('198.51.100.1'), badAnswer('subnet'));
    await assert.rejects(client.renewLease('10.255.1.0/24', '198.51.100.1'), badAnswer('vtepMac'));
    script.leaseAcquire = { status: 200, body: { ...GOOD_LEASE, extra: 'ignored' } };
    assert.deepEqual(
      await client.acquireLease('198.51.100.1'),
      { ...GOOD_LEASE, vtepMac: 'ee:ee:0a:ff:01:00' },
      'a good lease: unknown fields dropped, the MAC in lower case',
    );
  });

  it('a rules answer of another kind or shape is BAD_ANSWER; a good one is handed over as it came', async () => {
    const v1 = { ...ruleSetOfHandles('cell-1', ['h1']), version: 1 };
    const v2 = { ...ruleSetOfHandles('cell-1', ['h1', 'h2']), version: 2 };
    script = { rules: { status: 200, body: { kind: 'everything' } } };
    await assert.rejects(client.rules(0, 0), badAnswer('kind'));
    script.rules = { status: 200, body: { kind: 'snapshot', ruleSet: { ...v1, containers: {} } } };
    await assert.rejects(client.rules(0, 0), badAnswer('ruleSet'));
    script.rules = { status: 200, body: { kind: 'patch', patch: { ...diffRuleSets(v1, v2), to: -1 } } };
    await assert.rejects(client.rules(1, 0), badAnswer('patch'));
    script.rules = { status: 200, body: null };
    await assert.rejects(client.rules(0, 0), badAnswer(''));
    script.rules = { status: 200, body: { kind: 'patch', patch: diffRuleSets(v1, v2) } };
    assert.deepEqual(await client.rules(1, 0), { kind: 'patch', patch: diffRuleSets(v1, v2) });
    script.rules = { status: 200, body: { kind: 'snapshot', ruleSet: v2 } };
    assert.deepEqual(await client.rules(0, 0), { kind: 'snapshot', ruleSet: v2 });
  });

  it('status, release and certificate answers are checked too', async () => {
    script = {
      status: { status: 200, body: { inventoryChanged: 'yes' } },
      leaseRelease: { status: 200, body: {} },
      certificate: { status: 200, body: { certificate: 'PEM', ca: '', notAfter: 'x', serial: '1' } },
    };
    await assert.rejects(client.putStatus({ appliedVersion: 1 }), badAnswer('inventoryChanged'));
    await assert.rejects(client.releaseLease(), badAnswer('released'));
    await assert.rejects(client.requestCertificate('CSR'), badAnswer('ca'));
  });

  it('a lease listing drops a malformed entry by itself and refuses a listing without leases', async () => {
    script = {
      leases: {
        status: 200,
        body: {
          leases: [GOOD_LEASE, { cellId: 'bad', subnet: 'nope', underlayIp: '1.2.3.4', vtepMac: 'x' }],
          released: [{ cellId: 'gone', subnet: '10.255.9.0/24', releasedAt: 5 }, { cellId: 'bad' }],
        },
      },
    };
    const listing = await client.leases();
    assert.deepEqual(
      listing.leases.map((l) => l.cellId),
      ['cell-1'],
    );
    assert.deepEqual(listing.released, [{ cellId: 'gone', subnet: '10.255.9.0/24', releasedAt: 5 }]);
    script.leases = { status: 200, body: { leases: [GOOD_LEASE] } };
    assert.deepEqual((await client.leases()).released, [], 'no releases field: none');
    script.leases = { status: 200, body: { released: [] } };
    await assert.rejects(client.leases(), badAnswer('leases'));
  });

  it("an error answer keeps the controller's code; one of another shape keeps the HTTP status", async () => {
    script = {
      leaseAcquire: {
        status: 409,
        body: { error: { code: 'CFNET_LEASE_CONFLICT', message: 'held by cell-9' } },
      },
      leaseRenew: { status: 502, body: '<html>bad gateway</html>' },
    };
    await assert.rejects(
      client.acquireLease('198.51.100.1', undefined, '10.255.1.0/24'),
      (e: unknown) =>
        e instanceof ControllerRequestError && e.status === 409 && e.apiCode === 'CFNET_LEASE_CONFLICT',
    );
    await assert.rejects(
      client.renewLease('10.255.1.0/24', '198.51.100.1'),
      (e: unknown) => e instanceof ControllerRequestError && e.status === 502 && e.apiCode === 'HTTP_502',
    );
  });

  it('the rule-set shape checks look at the shape only, not at every item', () => {
    const rs = ruleSetOfHandles('cell-1', ['h1', 'h2']);
    assert.ok(isRuleSetShape(rs));
    assert.ok(isRuleSetShape({ ...rs, tags: { app: 1 } }));
    assert.ok(!isRuleSetShape({ ...rs, tags: [] }));
    assert.ok(!isRuleSetShape({ ...rs, version: 1.5 }));
    assert.ok(!isRuleSetShape({ ...rs, config: null }));
    const patch = diffRuleSets(rs, { ...ruleSetOfHandles('cell-1', ['h1']), version: 3 });
    assert.ok(isPatchShape(patch));
    assert.ok(!isPatchShape({ ...patch, c2c: { add: [] } }));
    assert.ok(!isPatchShape({ ...patch, tags: { upsert: {} } }));
    // items are the dataplane's business (admitted at apply time): a bad container passes the shape
    assert.ok(isRuleSetShape({ ...rs, containers: [{ handle: 42 }] }));
  });
});
