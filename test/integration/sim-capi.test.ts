/**
 * Simulated UAA, Cloud Controller (v3, v2, config endpoints, v2 disabled) and CC's internal mTLS
 * endpoint, exercised with plain node:https: token flow and expiry, v3 paging and 422s (security
 * groups; orgs, spaces and apps), v2
 * relative next_url and the >50 inline omission, 429 Retry-After, asg_latest_update.
 */
import assert from 'node:assert/strict';
import https from 'node:https';
import { after, before, describe, it } from 'node:test';
import { type SimHandle, type SimTls, startSimulator } from '../../src/sim/index.js';

let sharedTls: SimTls | undefined;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read loosely-typed CC/UAA JSON
  json: () => any;
}

function request(
  sim: SimHandle,
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string; mtls?: boolean } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method: opts.method ?? 'GET',
        ca: sim.tls.caCert,
        ...(opts.mtls ? { cert: sim.tls.clientCert, key: sim.tls.clientKey } : {}),
        servername: 'localhost',
        headers: {
          ...(opts.body !== undefined ? { 'Content-Length': String(Buffer.byteLength(opts.body)) } : {}),
          ...opts.headers,
        },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: () => JSON.parse(text) });
        });
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

async function token(
  sim: SimHandle,
  client = sim.uaaClient,
  how: 'basic' | 'form' = 'basic',
): Promise<string> {
  const r = await request(sim, `${sim.urls.uaa}/oauth/token`, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/x-www-form-urlencoded',
      Accept: 'application/json',
      ...(how === 'basic'
        ? { Authorization: `Basic ${Buffer.from(`${client.id}:${client.secret}`).toString('base64')}` }
        : {}),
    },
    body:
      how === 'basic'
        ? 'grant_type=client_credentials'
        : `grant_type=client_credentials&client_id=${client.id}&client_secret=${client.secret}`,
  });
  assert.equal(r.status, 200, r.text);
  return r.json().access_token;
}

describe('simulated UAA and Cloud Controller', () => {
  let sim: SimHandle;
  let tok: string;
  const get = (path: string, t = tok) =>
    request(sim, `${sim.urls.capi}${path}`, { headers: { Authorization: `bearer ${t}` } });

  before(async () => {
    sim = await startSimulator({ seed: 5, size: 'small', tokenTtlSeconds: 120 });
    sharedTls = sim.tls;
    tok = await token(sim);
  });
  after(() => sim.stop());

  it('UAA: client_credentials by Basic or form, OAuth2 errors with 401', async () => {
    const r = await request(sim, `${sim.urls.uaa}/oauth/token`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: `grant_type=client_credentials&client_id=${sim.uaaClient.id}&client_secret=${sim.uaaClient.secret}`,
    });
    assert.equal(r.status, 200);
    const body = r.json();
    assert.equal(body.token_type, 'bearer');
    assert.equal(body.expires_in, 120);
    assert.ok(body.scope.split(' ').includes('cloud_controller.admin_read_only'));
    assert.match(body.jti, /^[0-9a-f]{32}$/);
    assert.equal(body.access_token.split('.').length, 3, 'a JWT');
    const claims = JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url').toString());
    assert.equal(claims.client_id, sim.uaaClient.id);
    assert.ok(claims.aud.includes('cloud_controller'));

    const bad = await request(sim, `${sim.urls.uaa}/oauth/token`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Authorization: `Basic ${Buffer.from(`${sim.uaaClient.id}:wrong`).toString('base64')}`,
      },
      body: 'grant_type=client_credentials',
    });
    assert.equal(bad.status, 401);
    assert.deepEqual(Object.keys(bad.json()).sort(), ['error', 'error_description']);
    assert.equal(bad.json().error, 'unauthorized');
    const none = await request(sim, `${sim.urls.uaa}/oauth/token`, {
      method: 'POST',
      body: 'grant_type=client_credentials',
    });
    assert.equal(none.status, 401);
    assert.ok(await token(sim, sim.uaaClient, 'form'));
  });

  it('CAPI: bearer required (case-insensitive), 401 after expireTokens, fresh token works', async () => {
    const anon = await request(sim, `${sim.urls.capi}/v3/security_groups`);
    assert.equal(anon.status, 401);
    assert.equal(anon.json().errors[0].title, 'CF-NotAuthenticated');
    const upper = await request(sim, `${sim.urls.capi}/v3/security_groups`, {
      headers: { Authorization: `BEARER ${tok}` },
    });
    assert.equal(upper.status, 200);
    const t = await token(sim);
    sim.faults.expireTokens();
    const expired = await get('/v3/security_groups', t);
    assert.equal(expired.status, 401);
    assert.equal(expired.json().errors[0].title, 'CF-InvalidAuthToken');
    assert.match(String(expired.headers['www-authenticate']), /invalid_token/);
    const v2expired = await get('/v2/security_groups', t);
    assert.equal(v2expired.status, 401);
    assert.equal(v2expired.json().error_code, 'CF-InvalidAuthToken');
    tok = await token(sim);
    assert.equal((await get('/v3/security_groups')).status, 200);
  });

  it('GET / and /v2/info advertise UAA and v2', async () => {
    const root = (await request(sim, `${sim.urls.capi}/`)).json();
    assert.equal(root.links.uaa.href, sim.urls.uaa);
    assert.equal(root.links.login.href, sim.urls.uaa);
    assert.equal(root.links.cloud_controller_v3.href, `${sim.urls.capi}/v3`);
    assert.equal(root.links.cloud_controller_v2.href, `${sim.urls.capi}/v2`);
    const info = (await request(sim, `${sim.urls.capi}/v2/info`)).json();
    assert.equal(info.token_endpoint, sim.urls.uaa);
    assert.notEqual(info.api_version, '');
  });

  it('v3: pages with absolute next.href until null; filters; 422 on unknown params and bad per_page', async () => {
    const seen: string[] = [];
    let next: string | null = `${sim.urls.capi}/v3/security_groups?per_page=2`;
    let pages = 0;
    while (next) {
      assert.ok(next.startsWith(`${sim.urls.capi}/v3/security_groups?`), next);
      const r = await request(sim, next, { headers: { Authorization: `bearer ${tok}` } });
      assert.equal(r.status, 200);
      const body = r.json();
      assert.equal(body.pagination.total_results, sim.world.securityGroups.size);
      for (const g of body.resources) seen.push(g.guid);
      next = body.pagination.next?.href ?? null;
      pages++;
    }
    assert.equal(pages, Math.ceil(sim.world.securityGroups.size / 2));
    assert.deepEqual([...seen].sort(), [...sim.world.securityGroups.keys()].sort());

    const one = (await get('/v3/security_groups?per_page=5000')).json();
    const res = one.resources[0];
    const w = sim.world.securityGroups.get(res.guid);
    assert.ok(w);
    assert.deepEqual(res.rules, w.rules);
    assert.deepEqual(res.globally_enabled, { running: w.runningDefault, staging: w.stagingDefault });
    assert.deepEqual(
      res.relationships.running_spaces.data.map((d: { guid: string }) => d.guid).sort(),
      [...w.runningSpaces].sort(),
    );
    assert.equal(res.links.self.href, `${sim.urls.capi}/v3/security_groups/${res.guid}`);

    const globals = (await get('/v3/security_groups?globally_enabled_running=true')).json();
    assert.deepEqual(
      globals.resources.map((g: { guid: string }) => g.guid).sort(),
      [...sim.world.securityGroups.values()]
        .filter((g) => g.runningDefault)
        .map((g) => g.guid)
        .sort(),
    );
    const space = [...sim.world.spaces.keys()][0] as string;
    const bound = (await get(`/v3/security_groups?running_space_guids=${space}`)).json();
    assert.ok(
      bound.resources.every((g: { relationships: { running_spaces: { data: { guid: string }[] } } }) =>
        g.relationships.running_spaces.data.some((d) => d.guid === space),
      ),
    );
    const byName = (await get('/v3/security_groups?names=dns')).json();
    assert.equal(byName.resources.length, 1);

    for (const q of ['per_page=5001', 'per_page=0', 'page=0', 'foo=bar', 'order_by=name']) {
      const r = await get(`/v3/security_groups?${q}`);
      assert.equal(r.status, 422, q);
      assert.equal(r.json().errors[0].title, 'CF-UnprocessableEntity');
      assert.equal(r.json().errors[0].code, 10008);
    }
    assert.equal((await get('/v3/security_groups/nope')).status, 404);
  });

  it('v3 orgs, spaces and apps: paged with names and parents; newest first by updated_at; 422s', async () => {
    const all = async (first: string) => {
      const out: Array<Record<string, unknown>> = [];
      let next: string | null = `${sim.urls.capi}${first}`;
      while (next) {
        const r = await request(sim, next, { headers: { Authorization: `bearer ${tok}` } });
        assert.equal(r.status, 200, r.text);
        out.push(...r.json().resources);
        next = r.json().pagination.next?.href ?? null;
      }
      return out;
    };
    const orgs = await all('/v3/organizations?per_page=1');
    assert.deepEqual(
      orgs.map((o) => [o.guid, o.name]).sort(),
      [...sim.world.orgs.values()].map((o) => [o.guid, o.name]).sort(),
    );
    const spaces = await all('/v3/spaces?per_page=2');
    assert.equal(spaces.length, sim.world.spaces.size);
    for (const s of spaces) {
      const w = sim.world.spaces.get(s.guid as string)!;
      assert.equal(s.name, w.name);
      assert.deepEqual(s.relationships, {
        organization: { data: { guid: w.orgGuid } },
        quota: { data: null },
      });
    }
    const apps = await all('/v3/apps?per_page=3');
    assert.equal(apps.length, sim.world.apps.size);
    for (const a of apps) {
      const w = sim.world.apps.get(a.guid as string)!;
      assert.equal(a.name, w.name);
      assert.equal((a.relationships as { space: { data: { guid: string } } }).space.data.guid, w.spaceGuid);
    }
    const newest = (await get('/v3/apps?per_page=1&order_by=-updated_at')).json();
    assert.equal(newest.pagination.total_results, sim.world.apps.size);
    const maxUpdated = [...sim.world.apps.values()]
      .map((a) => a.updatedAt)
      .sort()
      .at(-1);
    assert.equal(newest.resources[0].updated_at, maxUpdated);
    for (const q of ['per_page=5001', 'foo=bar', 'order_by=state']) {
      assert.equal((await get(`/v3/apps?${q}`)).status, 422, q);
    }
  });

  it('v2: relative next_url; inline-relations-depth=1 omits relations with more than 50 spaces', async () => {
    const spaces = await sim.apply({ kind: 'space-create', count: 60, name: 'bulk' });
    const big = await sim.apply({
      kind: 'asg-create',
      name: 'wide',
      rules: [{ protocol: 'tcp', destination: '10.9.0.0/16', ports: '443' }],
      runningSpaces: spaces.result.spaceGuids as string[],
      stagingSpaces: [(spaces.result.spaceGuids as string[])[0] as string],
    });
    const seen: string[] = [];
    let path: string | null = '/v2/security_groups?results-per-page=2&inline-relations-depth=1';
    // biome-ignore lint/suspicious/noExplicitAny: a v2 resource as parsed JSON
    let wide: any;
    while (path) {
      assert.ok(path.startsWith('/v2/security_groups?'), `relative next_url: ${path}`);
      const r = await get(path);
      assert.equal(r.status, 200);
      const body = r.json();
      for (const g of body.resources) {
        seen.push(g.metadata.guid);
        assert.equal(g.metadata.url, `/v2/security_groups/${g.metadata.guid}`);
        assert.equal(g.entity.spaces_url, `/v2/security_groups/${g.metadata.guid}/spaces`);
        if (g.metadata.guid === big.result.guid) wide = g;
        else assert.ok(Array.isArray(g.entity.spaces), 'small relations are inlined');
      }
      if (body.next_url)
        assert.match(
          body.next_url,
          /inline-relations-depth=1&order-direction=asc&page=\d+&results-per-page=2$/,
        );
      path = body.next_url;
    }
    assert.deepEqual([...seen].sort(), [...sim.world.securityGroups.keys()].sort());
    assert.ok(wide);
    assert.equal('spaces' in wide.entity, false, '61 spaces > 50: omitted');
    assert.equal(wide.entity.staging_spaces.length, 1, 'one staging space: inlined');
    assert.equal(wide.entity.staging_spaces[0].entity.name, 'bulk-1');

    // The fallback: page the spaces relation.
    const spaceGuids: string[] = [];
    let sp: string | null = `${wide.entity.spaces_url}?results-per-page=25`;
    while (sp) {
      const body = (await get(sp)).json();
      for (const s of body.resources) spaceGuids.push(s.metadata.guid);
      sp = body.next_url;
    }
    assert.deepEqual(spaceGuids.sort(), [...(spaces.result.spaceGuids as string[])].sort());

    const over = await get('/v2/security_groups?results-per-page=101');
    assert.equal(over.status, 400);
    assert.equal(over.json().error_code, 'CF-BadQueryParameter');
    const named = (await get('/v2/security_groups?q=name:wide')).json();
    assert.equal(named.total_results, 1);

    const running = (await get('/v2/config/running_security_groups')).json();
    const expected = [...sim.world.securityGroups.values()].filter((g) => g.runningDefault);
    assert.equal(running.total_results, expected.length);
    for (const g of running.resources) {
      assert.equal(g.metadata.url, `/v2/config/running_security_groups/${g.metadata.guid}`);
      assert.equal('spaces_url' in g.entity, false);
    }
  });

  it('429 with Retry-After, and a failed request with the CF error body', async () => {
    sim.faults.rateLimitNext('capi', 1, 7);
    const limited = await get('/v3/security_groups');
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['retry-after'], '7');
    assert.equal(limited.json().errors[0].title, 'CF-RateLimitExceeded');
    sim.faults.rateLimitNext('capi', 1, 3);
    const limited2 = await get('/v2/security_groups');
    assert.equal(limited2.status, 429);
    assert.equal(limited2.headers['retry-after'], '3');
    assert.equal(limited2.headers['x-ratelimit-remaining-v2-api'], '0');
    sim.faults.failNext('capi', 1, 502);
    assert.equal((await get('/v3/security_groups')).status, 502);
    sim.faults.corruptNext('capi', 1);
    const corrupt = await get('/v3/security_groups');
    assert.equal(corrupt.status, 200);
    assert.throws(() => corrupt.json(), SyntaxError);
    assert.equal((await get('/v3/security_groups')).status, 200);
    const before = sim.faults.requests.capi;
    await get('/v3/security_groups');
    assert.equal(sim.faults.requests.capi, before + 1);
  });

  it('asg_latest_update: mTLS only, 9 fractional digits, moves on v3 writes and not on v2 writes', async () => {
    const read = async () => {
      const r = await request(sim, `${sim.urls.ccInternal}/internal/v4/asg_latest_update`, { mtls: true });
      assert.equal(r.status, 200);
      const v = r.json().last_update as string;
      assert.match(v, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+00:00$/);
      return v;
    };
    await assert.rejects(request(sim, `${sim.urls.ccInternal}/internal/v4/asg_latest_update`));
    const t0 = await read();
    const admin = await token(sim, sim.uaaAdminClient);
    const auth = { Authorization: `bearer ${admin}`, 'Content-Type': 'application/json' };
    const created = await request(sim, `${sim.urls.capi}/v3/security_groups`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        name: 'via-v3',
        rules: [{ protocol: 'udp', destination: '10.1.0.0/16', ports: '53' }],
      }),
    });
    assert.equal(created.status, 201, created.text);
    const t1 = await read();
    assert.ok(t1 > t0, `${t1} > ${t0}`);
    const guid = created.json().guid;
    const put = await request(sim, `${sim.urls.capi}/v2/config/staging_security_groups/${guid}`, {
      method: 'PUT',
      headers: auth,
    });
    assert.equal(put.status, 200);
    assert.equal(sim.world.securityGroups.get(guid)?.stagingDefault, true);
    assert.equal(await read(), t1, 'v2 writes do not renew asg_latest_update');
    const space = [...sim.world.spaces.keys()][0] as string;
    const bind = await request(
      sim,
      `${sim.urls.capi}/v3/security_groups/${guid}/relationships/running_spaces`,
      {
        method: 'POST',
        headers: auth,
        body: JSON.stringify({ data: [{ guid: space }] }),
      },
    );
    assert.equal(bind.status, 200);
    const t2 = await read();
    assert.ok(t2 > t1);
    const invalid = await request(sim, `${sim.urls.capi}/v3/security_groups`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        name: 'bad',
        rules: [{ protocol: 'tcp', destination: '10.0.0.1', ports: '70000' }],
      }),
    });
    assert.equal(invalid.status, 422);
    const readOnly = await request(sim, `${sim.urls.capi}/v3/security_groups/${guid}`, {
      method: 'DELETE',
      headers: { Authorization: `bearer ${tok}` },
    });
    assert.equal(readOnly.status, 403, 'admin_read_only cannot write');
    const del = await request(sim, `${sim.urls.capi}/v3/security_groups/${guid}`, {
      method: 'DELETE',
      headers: auth,
    });
    assert.equal(del.status, 202);
    assert.match(String(del.headers.location), /\/v3\/jobs\//);
    assert.equal(sim.world.securityGroups.has(guid), false);
    assert.ok((await read()) > t2);
  });
});

describe('simulated Cloud Controller with v2 disabled', () => {
  let sim: SimHandle;
  before(async () => {
    // Reuse the first suite's CA and certificates: no RSA key generation.
    sim = await startSimulator({ seed: 5, capiV2: false, tls: sharedTls });
  });
  after(() => sim.stop());

  it('GET / has no cloud_controller_v2 link; /v2/* is the nginx 404 except /v2/info', async () => {
    const root = (await request(sim, `${sim.urls.capi}/`)).json();
    assert.equal('cloud_controller_v2' in root.links, false);
    assert.ok(root.links.cloud_controller_v3);
    const tok = await token(sim);
    const v2 = await request(sim, `${sim.urls.capi}/v2/security_groups`, {
      headers: { Authorization: `bearer ${tok}` },
    });
    assert.equal(v2.status, 404);
    assert.equal(v2.text, 'V2 endpoints disabled');
    const info = await request(sim, `${sim.urls.capi}/v2/info`);
    assert.equal(info.status, 200);
    assert.equal(info.json().api_version, '');
    assert.equal(info.json().support, 'CF API v2 is disabled');
    const v3 = await request(sim, `${sim.urls.capi}/v3/security_groups`, {
      headers: { Authorization: `bearer ${tok}` },
    });
    assert.equal(v3.status, 200);
  });
});
