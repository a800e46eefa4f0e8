// Cell identity without a shared CA key (docs/security.md): the controller signs a cell's CSR only
// for the cell BBS places at the request's source address, authenticated by the cell's own
// bootstrap token or its current certificate; leases are held to the cell's own address; wrong
// tokens are throttled. Cells are told apart by their loopback source addresses (127.0.0.11, .12…),
// which the simulated BBS gives as their rep addresses.
import assert from 'node:assert/strict';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { cellBootstrapToken } from '../../src/controller/identity/bootstrap-token.js';
import { makeCsr } from '../../src/lib/csr.js';
import { createLogger } from '../../src/lib/log.js';
import { createRegistry, exposition } from '../../src/lib/metrics.js';
import { type CertificateAuthority, generateRsaKey, issueCert } from '../../src/lib/tls.js';
import { type IdentityFoundation, startIdentityFoundation } from './identity-helpers.js';

const SECRET = 'test-bootstrap-secret-0123456789';
const A = { id: 'cell-a', ip: '127.0.0.11' };
const B = { id: 'cell-b', ip: '127.0.0.12' };

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: { error?: { code: string; message: string } } & Record<string, unknown>;
}

function call(
  url: string,
  method: string,
  path: string,
  opts: {
    ca: string;
    cert?: string;
    key?: string;
    from: string;
    body?: unknown;
    headers?: Record<string, string>;
  },
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, url);
    const req = httpsRequest(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: u.pathname,
        ca: opts.ca,
        ...(opts.cert ? { cert: opts.cert, key: opts.key } : {}),
        localAddress: opts.from,
        servername: 'localhost',
        headers: { 'content-type': 'application/json', ...opts.headers },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text ? JSON.parse(text) : {} });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body !== undefined ? JSON.stringify(opts.body) : undefined);
  });
}

describe('cell identity: certificates only for the cell at the requesting address', () => {
  const logLines: Record<string, unknown>[] = [];
  const registry = createRegistry({ processMetrics: false });
  let f: IdentityFoundation;
  let ca: CertificateAuthority;
  let url: string;
  const key = generateRsaKey();

  before(async () => {
    f = await startIdentityFoundation({
      label: 'identity',
      cells: [A, B],
      ttlMs: 3600_000,
      bootstrapSecret: SECRET,
      maxWaitSeconds: 2,
      registry,
      logger: createLogger(
        'ctl',
        { level: 'info' },
        { write: (s: string) => void logLines.push(JSON.parse(s)) },
      ),
    });
    ca = f.ca;
    url = f.url;
  });

  after(() => f.stop());

  const csrFor = (cn: string) => makeCsr(key, cn);
  const ask = (
    cell: string,
    from: string,
    body: Record<string, unknown>,
    tls: { cert?: string; key?: string } = {},
  ) => call(url, 'POST', `/v1/cells/${cell}/certificate`, { ca: ca.cert, ...tls, from, body });

  it("signs a cell's CSR with its token from its own address: CN, SANs and lifetime from what was verified", async () => {
    const res = await ask(A.id, A.ip, { csr: csrFor(A.id), token: cellBootstrapToken(SECRET, A.id) });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const x = new X509Certificate(res.body.certificate as string);
    assert.match(x.subject, /CN=cell-a/);
    assert.equal(x.subjectAltName, 'DNS:cell-a.cell.cfnet, IP Address:127.0.0.11');
    assert.ok(x.checkIssued(new X509Certificate(ca.cert)));
    const lifeH = (Date.parse(x.validTo) - Date.now()) / 3600_000;
    assert.ok(lifeH > 0.95 && lifeH <= 1, `valid ${lifeH} h`);
    assert.ok(x.checkPrivateKey(createPrivateKey(key)), "it certifies the cell's own key");
    // the certificate opens cell-a's API and nothing of cell-b's
    const tls = { cert: res.body.certificate as string, key };
    const own = await call(url, 'GET', `/v1/cells/${A.id}/rules`, { ca: ca.cert, ...tls, from: A.ip });
    assert.equal(own.status, 304, 'authenticated: nothing stored for the cell yet');
    const other = await call(url, 'GET', `/v1/cells/${B.id}/rules`, { ca: ca.cert, ...tls, from: A.ip });
    assert.equal(other.status, 403);
    // the certificate and its key copied elsewhere are of no use
    const copied = await call(url, 'GET', `/v1/cells/${A.id}/rules`, {
      ca: ca.cert,
      ...tls,
      from: '127.0.0.99',
    });
    assert.equal(copied.status, 403);
    assert.equal(copied.body.error?.code, 'CFNET_IDENTITY_ADDRESS_MISMATCH');
  });

  it('a CSR asking for another name still gets only the verified cell (the CSR subject is ignored)', async () => {
    const res = await ask(A.id, A.ip, { csr: csrFor(B.id), token: cellBootstrapToken(SECRET, A.id) });
    assert.equal(res.status, 200);
    const x = new X509Certificate(res.body.certificate as string);
    assert.match(x.subject, /CN=cell-a/);
    assert.doesNotMatch(x.subjectAltName ?? '', /cell-b/);
  });

  it("refuses another cell's certificate to a cell: own token (401), stolen token from the wrong address (403), own certificate (403)", async () => {
    const ownToken = await ask(B.id, A.ip, { csr: csrFor(B.id), token: cellBootstrapToken(SECRET, A.id) });
    assert.equal(ownToken.status, 401);
    assert.equal(ownToken.body.error?.code, 'CFNET_IDENTITY_UNAUTHENTICATED');
    // a cell that lies about its address: B's token, B's id, but the packets come from A
    const lying = await ask(
      B.id,
      A.ip,
      { csr: csrFor(B.id), token: cellBootstrapToken(SECRET, B.id), underlayIp: B.ip },
      {},
    );
    assert.equal(lying.status, 403);
    assert.equal(lying.body.error?.code, 'CFNET_IDENTITY_ADDRESS_MISMATCH');
    const forwarded = await call(url, 'POST', `/v1/cells/${B.id}/certificate`, {
      ca: ca.cert,
      from: A.ip,
      headers: { 'x-forwarded-for': B.ip, forwarded: `for=${B.ip}` },
      body: { csr: csrFor(B.id), token: cellBootstrapToken(SECRET, B.id) },
    });
    assert.equal(
      forwarded.body.error?.code,
      'CFNET_IDENTITY_ADDRESS_MISMATCH',
      'forwarding headers are not believed',
    );
    const a = await ask(A.id, A.ip, { csr: csrFor(A.id), token: cellBootstrapToken(SECRET, A.id) });
    const withCert = await ask(
      B.id,
      B.ip,
      { csr: csrFor(B.id) },
      { cert: a.body.certificate as string, key },
    );
    assert.equal(withCert.status, 403);
    const mismatches = logLines.filter((l) => l.event === 'identity_refused' && l.cellId === B.id);
    assert.ok(mismatches.some((l) => l.client === A.ip && l.expected === B.ip));
  });

  it('renews with the current certificate (no token) only from the cell’s address; unknown cells get nothing', async () => {
    const first = await ask(A.id, A.ip, { csr: csrFor(A.id), token: cellBootstrapToken(SECRET, A.id) });
    const tls = { cert: first.body.certificate as string, key };
    const renewed = await ask(A.id, A.ip, { csr: csrFor(A.id) }, tls);
    assert.equal(renewed.status, 200);
    assert.notEqual(renewed.body.serial, first.body.serial);
    const elsewhere = await ask(A.id, '127.0.0.13', { csr: csrFor(A.id) }, tls);
    assert.equal(elsewhere.body.error?.code, 'CFNET_IDENTITY_ADDRESS_MISMATCH');
    const noToken = await ask(A.id, A.ip, { csr: csrFor(A.id) });
    assert.equal(noToken.status, 401);
    const ghost = await ask('ghost', '127.0.0.1', {
      csr: csrFor('ghost'),
      token: cellBootstrapToken(SECRET, 'ghost'),
    });
    assert.equal(ghost.body.error?.code, 'CFNET_IDENTITY_UNKNOWN_CELL');
  });

  it("refuses a lease for a foreign underlayIp (typed error); the cell's own address is fine", async () => {
    const a = await ask(A.id, A.ip, { csr: csrFor(A.id), token: cellBootstrapToken(SECRET, A.id) });
    const tls = { ca: ca.cert, cert: a.body.certificate as string, key, from: A.ip };
    const foreign = await call(url, 'POST', `/v1/cells/${A.id}/lease/acquire`, {
      ...tls,
      body: { underlayIp: B.ip },
    });
    assert.equal(foreign.status, 403);
    assert.equal(foreign.body.error?.code, 'CFNET_LEASE_FOREIGN_UNDERLAY');
    const own = await call(url, 'POST', `/v1/cells/${A.id}/lease/acquire`, {
      ...tls,
      body: { underlayIp: A.ip },
    });
    assert.equal(own.status, 200, JSON.stringify(own.body));
    const renewForeign = await call(url, 'POST', `/v1/cells/${A.id}/lease/renew`, {
      ...tls,
      body: { subnet: own.body.subnet, underlayIp: B.ip },
    });
    assert.equal(renewForeign.body.error?.code, 'CFNET_LEASE_FOREIGN_UNDERLAY');
    // certificates made outside the authority (no IP SAN) are held to the cell's BBS address
    const staticB = issueCert(ca, { cn: B.id, usage: 'client' });
    const asB = { ca: ca.cert, cert: staticB.cert, key: staticB.key, from: '127.0.0.1' };
    const bForeign = await call(url, 'POST', `/v1/cells/${B.id}/lease/acquire`, {
      ...asB,
      body: { underlayIp: A.ip },
    });
    assert.equal(bForeign.body.error?.code, 'CFNET_LEASE_FOREIGN_UNDERLAY');
    const staticGhost = issueCert(ca, { cn: 'ghost', usage: 'client' });
    const ghost = await call(url, 'POST', '/v1/cells/ghost/lease/acquire', {
      ca: ca.cert,
      cert: staticGhost.cert,
      key: staticGhost.key,
      from: '127.0.0.1',
      body: { underlayIp: B.ip },
    });
    assert.equal(ghost.body.error?.code, 'CFNET_IDENTITY_UNKNOWN_CELL');
  });

  it('throttles a bootstrap-token guessing loop per client: 10 refusals, then 429 for the rest', async () => {
    const guesser = '127.0.0.21';
    const refusedMetric = async () =>
      Number(
        /cfnet_controller_auth_failures_total\{surface="cell-bootstrap",outcome="refused"\} (\d+)/.exec(
          (await exposition(registry)).body,
        )?.[1] ?? 0,
      );
    const before = await refusedMetric();
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) => ask(A.id, guesser, { csr: csrFor(A.id), token: `guess-${i}` })),
    );
    const elapsedS = (Date.now() - started) / 1000;
    const refused = answers.filter((r) => r.status === 401).length;
    const throttled = answers.filter((r) => r.status === 429);
    // budget 10, refilled at 1/s: at most 10 + elapsed seconds guesses were even compared
    assert.ok(refused >= 10 && refused <= 10 + Math.ceil(elapsedS), `${refused} refused in ${elapsedS}s`);
    assert.equal(refused + throttled.length, 40);
    assert.ok(Number(throttled[0]!.headers['retry-after']) >= 1);
    // another client is not affected by the guesser
    const honest = await ask(B.id, B.ip, { csr: csrFor(B.id), token: cellBootstrapToken(SECRET, B.id) });
    assert.equal(honest.status, 200);
    const failures = logLines.filter((l) => l.event === 'auth_failed' && l.client === guesser);
    assert.equal(failures.length, refused);
    assert.equal(failures[0]!.surface, 'cell-bootstrap');
    assert.ok(!JSON.stringify(failures).includes('guess-'), 'the guessed token is never logged');
    assert.equal((await refusedMetric()) - before, refused);
    assert.match(
      (await exposition(registry)).body,
      /cfnet_controller_auth_failures_total\{surface="cell-bootstrap",outcome="throttled"\} [1-9]/,
    );
  });
});
