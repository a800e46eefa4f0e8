import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { Controller } from '../../src/controller/controller.js';
import { controllerConfig } from '../../src/controller/settings.js';
import { deleteKeys } from '../../src/lib/redis.js';
import { type CertificateAuthority, createCa, issueCert } from '../../src/lib/tls.js';
import { applyPatch, ruleSetsEqual } from '../../src/model/ruleset.js';
import { type CellRuleSet, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { ruleSetOfHandles } from '../helpers/fixtures.js';
import { waitUntil } from '../helpers/wait.js';
import { REDIS_URL, testNamespace } from './controller-helpers.js';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
  ms: number;
}

function call(
  url: string,
  method: string,
  path: string,
  tls: { ca: string; cert?: string; key?: string },
  body?: unknown,
): Promise<Res> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const u = new URL(path, url);
    const req = httpsRequest(
      {
        method,
        hostname: u.hostname,
        port: u.port,
        path: `${u.pathname}${u.search}`,
        ca: tls.ca,
        ...(tls.cert ? { cert: tls.cert, key: tls.key } : {}),
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
            body: text ? JSON.parse(text) : null,
            ms: Date.now() - t0,
          });
        });
      },
    );
    req.on('error', reject);
    if (body !== undefined) req.write(JSON.stringify(body));
    req.end();
  });
}

const rs = (cell: string, handles: string[]) => ruleSetOfHandles(cell, handles, 'e');

describe('agent API (mTLS, long-poll, status, leases)', () => {
  const ns = testNamespace('api');
  let ca: CertificateAuthority;
  let server: { cert: string; key: string };
  let cell1: { cert: string; key: string };
  let cell2: { cert: string; key: string };
  let ctl: Controller;
  let url: string;

  before(async () => {
    ca = createCa({ cn: 'cfnet test CA' });
    server = issueCert(ca, { cn: 'cfnet-controller', sans: ['localhost', '127.0.0.1'] });
    cell1 = issueCert(ca, { cn: 'cell-1', usage: 'client' });
    cell2 = issueCert(ca, { cn: 'ignored-cn', sans: { dns: ['cell-2.cell.cfnet'] }, usage: 'client' });
    ctl = new Controller(
      controllerConfig({
        redisUrl: REDIS_URL,
        namespace: ns,
        campaign: false,
        cellConfig: DEFAULT_CELL_CONFIG,
        api: {
          host: '127.0.0.1',
          port: 0,
          tls: { ca: ca.cert, cert: server.cert, key: server.key },
          maxWaitSeconds: 5,
        },
        operator: { host: '127.0.0.1', port: 0 },
        leases: {
          overlayNetwork: '10.255.0.0/22',
          subnetPrefixLength: 24,
          ttlMs: 60_000,
          recoveryWindowMs: 0,
        },
      }),
    );
    await ctl.start();
    url = ctl.apiUrl!;
  });

  after(async () => {
    await ctl.stop();
    const { createRedis, closeRedis } = await import('../../src/lib/redis.js');
    const r = createRedis(REDIS_URL);
    await deleteKeys(r, `${ns}:*`);
    await closeRedis(r);
  });

  const as = (c: { cert: string; key: string }) => ({ ca: ca.cert, cert: c.cert, key: c.key });

  it('refuses a client without a certificate (401) and a request for another cell (403)', async () => {
    const anon = await call(url, 'GET', '/v1/cells/cell-1/rules', { ca: ca.cert });
    assert.equal(anon.status, 401);
    assert.equal((anon.body as { error: { code: string } }).error.code, 'CFNET_UNAUTHENTICATED');
    const other = await call(url, 'GET', '/v1/cells/cell-2/rules', as(cell1));
    assert.equal(other.status, 403);
    const other2 = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell2), { appliedVersion: 1 });
    assert.equal(other2.status, 403, 'the SAN names cell-2, not cell-1');
    // every per-cell route: reading, reporting and leasing for another cell is refused
    for (const [method, path, body] of [
      ['GET', '/v1/cells/cell-2/rules?since=0&wait=5', undefined],
      ['PUT', '/v1/cells/cell-2/status', { appliedVersion: 1, containers: [] }],
      ['POST', '/v1/cells/cell-2/lease/acquire', { underlayIp: '192.0.2.9' }],
      ['POST', '/v1/cells/cell-2/lease/renew', { subnet: '10.255.1.0/24', underlayIp: '192.0.2.9' }],
      ['POST', '/v1/cells/cell-2/lease/release', {}],
    ] as const) {
      const r = await call(url, method, path, as(cell1), body);
      assert.equal(r.status, 403, `${method} ${path}`);
      const e = (r.body as { error: { code: string; message: string } }).error;
      assert.equal(e.code, 'CFNET_FORBIDDEN');
      assert.match(e.message, /certificate of cell cell-1 may not access cell cell-2/);
      assert.ok(r.ms < 2000, 'refused at once, no long-poll');
    }
    // and nothing was changed on cell-2's behalf
    const leases = await call(url, 'GET', '/v1/leases', as(cell1));
    assert.deepEqual(leases.body, { leases: [], released: [] });
    assert.equal(await ctl.ruleSetStore.status('cell-2'), null);
    // a certificate from a foreign CA is not accepted either
    const foreign = issueCert(createCa(), { cn: 'cell-1', usage: 'client' });
    const f = await call(url, 'GET', '/v1/cells/cell-1/rules', {
      ca: ca.cert,
      cert: foreign.cert,
      key: foreign.key,
    });
    assert.equal(f.status, 401);
  });

  it('keeps the handshake identity for the life of a connection: TLS renegotiation is refused', async () => {
    const u = new URL(url);
    const answer = async (renegotiate: boolean): Promise<string> => {
      const socket = connectTls({
        host: u.hostname,
        port: Number(u.port),
        ca: ca.cert,
        cert: cell1.cert,
        key: cell1.key,
        servername: 'localhost',
        maxVersion: 'TLSv1.2',
      });
      await once(socket, 'secureConnect');
      let text = '';
      socket.on('data', (d: Buffer) => {
        text += d.toString('latin1');
      });
      // (an 'error' rejects events.once: wait for 'close', which follows it)
      socket.on('error', () => {});
      const closed = new Promise((resolve) => socket.once('close', resolve));
      if (renegotiate) socket.renegotiate({ rejectUnauthorized: true }, () => {});
      socket.write(`GET /v1/leases HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      await closed;
      return text;
    };
    assert.match(
      await answer(false),
      /^HTTP\/1\.1 200 /,
      'the same request without renegotiation is answered',
    );
    // a renegotiation could present another certificate on a connection whose identity is cached
    assert.equal(await answer(true), '', 'the connection is closed without an answer');
  });

  it('long-polls: snapshot, 304 after the wait, patch when a new version is published', async () => {
    const store = ctl.ruleSetStore;
    // nothing stored yet: 304 after the wait
    const empty = await call(url, 'GET', '/v1/cells/cell-1/rules?since=0&wait=0.3', as(cell1));
    assert.equal(empty.status, 304);
    assert.equal(empty.headers['x-cfnet-version'], '0');

    const v1 = await store.write(rs('cell-1', ['h1']), null);
    const snap = await call(url, 'GET', '/v1/cells/cell-1/rules?since=0', as(cell1));
    assert.equal(snap.status, 200);
    const sb = snap.body as { kind: string; ruleSet: CellRuleSet };
    assert.equal(sb.kind, 'snapshot');
    assert.equal(sb.ruleSet.version, v1);
    assert.equal(snap.headers['x-cfnet-version'], String(v1));

    const idle = await call(url, 'GET', `/v1/cells/cell-1/rules?since=${v1}&wait=1`, as(cell1));
    assert.equal(idle.status, 304);
    assert.ok(idle.ms >= 900 && idle.ms < 3000, `waited ${idle.ms} ms`);

    // a change published while the agent waits answers at once with a patch
    const pending = call(url, 'GET', `/v1/cells/cell-1/rules?since=${v1}&wait=5`, as(cell1));
    await new Promise((r) => setTimeout(r, 200));
    const prev = (await store.get('cell-1'))!;
    const v2 = await store.write(rs('cell-1', ['h1', 'h2']), prev);
    const got = await pending;
    assert.equal(got.status, 200);
    assert.ok(got.ms < 2000, `answered after ${got.ms} ms`);
    const pb = got.body as { kind: string; patch: Parameters<typeof applyPatch>[1] };
    assert.equal(pb.kind, 'patch');
    assert.equal(pb.patch.from, v1);
    assert.equal(pb.patch.to, v2);
    assert.ok(ruleSetsEqual(applyPatch(sb.ruleSet, pb.patch), (await store.get('cell-1'))!));

    // a future version (the store lost it) is never answered with older content: 304, and the
    // cell is recomputed above it
    const ahead = await call(url, 'GET', `/v1/cells/cell-1/rules?since=${v2 + 99}&wait=1`, as(cell1));
    assert.equal(ahead.status, 304);
    const again = await store.write((await store.get('cell-1'))!, (await store.get('cell-1'))!);
    assert.ok(again > v2 + 99, 'the next write, even of equal content, goes above the agent');
    const bad = await call(url, 'GET', '/v1/cells/cell-1/rules?since=abc', as(cell1));
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { error: { field: string } }).error.field, 'since');
  });

  it('records status, stores a changed inventory and enqueues the cell', async () => {
    const body = {
      appliedVersion: 42,
      error: '',
      containers: [
        {
          handle: 'task-1',
          ip: '10.255.1.9',
          metadata: {
            policy_group_id: 'app-x',
            space_id: 'space-x',
            org_id: 'org-x',
            container_workload: 'task',
          },
        },
      ],
    };
    const r1 = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), body);
    assert.equal(r1.status, 200);
    assert.deepEqual(r1.body, { inventoryChanged: true });
    const r2 = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), body);
    assert.deepEqual(r2.body, { inventoryChanged: false });
    assert.deepEqual(await ctl.worldState.inventory('cell-1'), [
      {
        handle: 'task-1',
        ip: '10.255.1.9',
        appGuid: 'app-x',
        spaceGuid: 'space-x',
        orgGuid: 'org-x',
        workload: 'task',
      },
    ]);
    assert.equal((await ctl.ruleSetStore.status('cell-1'))!.appliedVersion, 42);
    const jobs = await ctl.reconcileQueue.queue.getJobs([
      'waiting',
      'active',
      'completed',
      'delayed',
      'failed',
    ]);
    assert.ok(jobs.some((j) => j.data.cellId === 'cell-1' && j.data.triggers[0]?.kind === 'inventory'));
    // invalid entries are left out one by one: the report and the other entries are kept
    const mixed = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), {
      appliedVersion: 43,
      containers: [
        { handle: 'x; drop table', ip: '10.0.0.1' },
        { handle: 'bad/handle', ip: '10.0.0.2' },
        { handle: 'h', ip: '300.1.1.1' },
        ...body.containers,
      ],
    });
    assert.equal(mixed.status, 200);
    assert.deepEqual(mixed.body, { inventoryChanged: false }, 'the valid entry is unchanged');
    assert.deepEqual(
      (await ctl.worldState.inventory('cell-1')).map((e) => e.handle),
      ['task-1'],
    );
    assert.equal((await ctl.ruleSetStore.status('cell-1'))!.appliedVersion, 43);
    const malformed = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), {
      appliedVersion: -1,
      containers: [],
    });
    assert.equal(malformed.status, 400, 'the report itself is still validated');
    // containers the agent's dataplane refused are recorded per container
    const refused = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), {
      appliedVersion: 43,
      refused: [{ handle: 'task-1', reason: 'containers[0].egress: no such entry in asgSets' }],
    });
    assert.equal(refused.status, 200);
    // overlay health and dry run are stored with the report; an impossible overlay report is refused
    const health = { expectedPeers: 4, missingPeers: 1, leaseHeld: true };
    const withHealth = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), {
      appliedVersion: 43,
      overlay: health,
      dryRun: true,
    });
    assert.equal(withHealth.status, 200);
    const st = (await ctl.ruleSetStore.status('cell-1'))!;
    assert.deepEqual([st.overlay, st.dryRun], [health, true]);
    for (const overlay of [
      { expectedPeers: 1, missingPeers: 2, leaseHeld: true },
      { expectedPeers: -1, missingPeers: 0, leaseHeld: true },
      { expectedPeers: 1, missingPeers: 0, leaseHeld: 'yes' },
      { expectedPeers: 1, missingPeers: 0 },
    ]) {
      const bad = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), {
        appliedVersion: 43,
        overlay,
      });
      assert.equal(bad.status, 400, JSON.stringify(overlay));
    }
    const badDry = await call(url, 'PUT', '/v1/cells/cell-1/status', as(cell1), {
      appliedVersion: 43,
      dryRun: 'no',
    });
    assert.equal(badDry.status, 400);
    assert.deepEqual(
      (await ctl.ruleSetStore.status('cell-1'))!.overlay,
      health,
      'refused reports change nothing',
    );
    const metrics = await (await fetch(`${ctl.operatorUrl}/metrics`)).text();
    assert.match(
      metrics,
      /cfnet_controller_rejected_total\{[^}]*source="agent"[^}]*reason="invalid-handle"[^}]*\} 2/,
    );
    assert.match(
      metrics,
      /cfnet_controller_rejected_total\{[^}]*source="agent"[^}]*reason="refused-by-agent"[^}]*\} 1/,
    );
  });

  it('hands out overlay subnet leases: stable per cell, distinct, renew mismatch 409, list', async () => {
    const a1 = await call(url, 'POST', '/v1/cells/cell-1/lease/acquire', as(cell1), {
      underlayIp: '10.0.16.1',
    });
    assert.equal(a1.status, 200);
    const l1 = a1.body as { subnet: string; vtepMac: string; underlayIp: string };
    assert.equal(l1.subnet, '10.255.1.0/24', 'the first subnet is reserved');
    assert.equal(l1.vtepMac, 'ee:ee:0a:ff:01:00');
    const again = await call(url, 'POST', '/v1/cells/cell-1/lease/acquire', as(cell1), {
      underlayIp: '10.0.16.1',
    });
    assert.equal((again.body as { subnet: string }).subnet, l1.subnet);
    const a2 = await call(url, 'POST', '/v1/cells/cell-2/lease/acquire', as(cell2), {
      underlayIp: '10.0.16.2',
    });
    assert.equal((a2.body as { subnet: string }).subnet, '10.255.2.0/24');
    const mismatch = await call(url, 'POST', '/v1/cells/cell-1/lease/renew', as(cell1), {
      subnet: '10.255.2.0/24',
      underlayIp: '10.0.16.1',
    });
    assert.equal(mismatch.status, 409);
    const ok = await call(url, 'POST', '/v1/cells/cell-1/lease/renew', as(cell1), {
      subnet: l1.subnet,
      underlayIp: '10.0.16.1',
    });
    assert.equal(ok.status, 200);
    const list = await call(url, 'GET', '/v1/leases', as(cell2));
    assert.deepEqual(
      (list.body as { leases: Array<{ cellId: string; subnet: string; underlayIp: string }> }).leases.map(
        (l) => [l.cellId, l.subnet, l.underlayIp],
      ),
      [
        ['cell-1', '10.255.1.0/24', '10.0.16.1'],
        ['cell-2', '10.255.2.0/24', '10.0.16.2'],
      ],
    );
    const badIp = await call(url, 'POST', '/v1/cells/cell-1/lease/acquire', as(cell1), {
      underlayIp: 'nope',
    });
    assert.equal(badIp.status, 400);
    const rel = await call(url, 'POST', '/v1/cells/cell-2/lease/release', as(cell2), {});
    assert.deepEqual(rel.body, { released: true });
  });

  it('exposes metrics and readiness on the operator port', async () => {
    await waitUntil('operator', () => ctl.operatorUrl, 10_000, 25);
    const m = await fetch(`${ctl.operatorUrl}/metrics`);
    const text = await m.text();
    assert.match(text, /cfnet_controller_api_requests_total\{/);
    assert.match(text, /cfnet_controller_queue_jobs\{state="waiting"/);
    const h = await fetch(`${ctl.operatorUrl}/healthz`);
    assert.equal(h.status, 200);
    const r = await fetch(`${ctl.operatorUrl}/readyz`);
    assert.equal(r.status, 503, 'no leader was elected (campaign off)');
  });
});
