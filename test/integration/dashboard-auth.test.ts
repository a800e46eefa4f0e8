// The dashboard's defences (src/ops/dashboard/index.ts): state-changing requests from another
// origin are refused whatever cookie comes along (another port of the same host included), and a
// guessing loop is throttled per client, logged without the token and counted.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { ReconcileQueue } from '../../src/controller/reconcile/queue.js';
import { createLogger } from '../../src/lib/log.js';
import { createRegistry, exposition } from '../../src/lib/metrics.js';
import { registerDashboard } from '../../src/ops/dashboard/index.js';
import { openTestRedis, REDIS_URL, type TestRedis } from './controller-helpers.js';

const TOKEN = 'dashboard-test-token-0123456789';

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function call(
  base: string,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
) {
  return new Promise<Res>((resolve, reject) => {
    const req = request(new URL(path, base), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString(),
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('dashboard: cross-origin refusal and failed-authentication throttling', () => {
  let t: TestRedis;
  let queue: ReconcileQueue;
  let app: FastifyInstance;
  let base: string;
  let host: string;
  let close: () => Promise<void>;
  const logLines: Record<string, unknown>[] = [];
  const registry = createRegistry({ processMetrics: false });

  before(async () => {
    t = await openTestRedis('dashboard-auth');
    queue = new ReconcileQueue(t.redis, { prefix: t.keys.ns });
    app = Fastify();
    const d = await registerDashboard(app, {
      redisUrl: REDIS_URL,
      namespace: t.ns,
      token: TOKEN,
      queue: queue.queue,
      registry,
      throttle: { burst: 5, perSecond: 2 },
      logger: createLogger(
        'dash',
        { level: 'info' },
        { write: (s: string) => void logLines.push(JSON.parse(s)) },
      ),
    });
    close = d.close;
    await app.listen({ host: '127.0.0.1', port: 0 });
    const addr = app.server.address() as { port: number };
    host = `127.0.0.1:${addr.port}`;
    base = `http://${host}`;
  });

  after(async () => {
    await close();
    await app.close();
    await queue.close();
    await t.cleanup();
  });

  async function session(): Promise<string> {
    const res = await call(
      base,
      'POST',
      '/dashboard/login',
      { 'content-type': 'application/x-www-form-urlencoded', origin: base, 'sec-fetch-site': 'same-origin' },
      `token=${TOKEN}&next=/dashboard`,
    );
    assert.equal(res.status, 303);
    return String(res.headers['set-cookie']).split(';')[0]!;
  }

  it('refuses a cross-origin POST that carries the session cookie (403 CFNET_CROSS_ORIGIN)', async () => {
    const cookie = await session();
    const attempts: Record<string, string>[] = [
      { origin: 'http://evil.example' },
      // another port of the same host: same site, not same origin
      { origin: 'http://127.0.0.1:1' },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site', origin: base },
    ];
    for (const h of attempts) {
      const res = await call(base, 'POST', '/dashboard/api/jobs/12/retry', {
        cookie,
        'content-type': 'text/plain',
        ...h,
      });
      assert.equal(res.status, 403, JSON.stringify(h));
      assert.equal(JSON.parse(res.body).error.code, 'CFNET_CROSS_ORIGIN');
    }
    // bull-board's actions and the login form are covered too
    const board = await call(base, 'PUT', '/dashboard/queues/api/queues/reconcile/pause', {
      cookie,
      origin: 'http://evil.example',
    });
    assert.equal(board.status, 403);
    assert.equal(JSON.parse(board.body).error.code, 'CFNET_CROSS_ORIGIN');
    const login = await call(
      base,
      'POST',
      '/dashboard/login',
      { 'content-type': 'application/x-www-form-urlencoded', origin: 'http://evil.example' },
      `token=${TOKEN}`,
    );
    assert.equal(login.status, 403);
    // the same request from the dashboard's own origin passes the check (no such job: 404)
    const own = await call(base, 'POST', '/dashboard/api/jobs/12/retry', { cookie, origin: base });
    assert.equal(own.status, 404);
    // a script with the token and no browser headers is not a cross-origin request
    const script = await call(base, 'POST', '/dashboard/api/jobs/12/retry', {
      authorization: `Bearer ${TOKEN}`,
    });
    assert.equal(script.status, 404);
    // reads are not state changes
    const read = await call(base, 'GET', '/dashboard/api/snapshot', {
      cookie,
      origin: 'http://evil.example',
    });
    assert.equal(read.status, 200);
    assert.ok(logLines.some((l) => l.event === 'cross_origin_refused' && l.client === '127.0.0.1'));
  });

  it('bull-board refuses what cfnet forbids in the error shape its UI shows (title, text, code)', async () => {
    const cookie = await session();
    const res = await call(base, 'PUT', '/dashboard/queues/api/queues/reconcile/empty', {
      cookie,
      origin: base,
    });
    assert.equal(res.status, 403);
    const body = JSON.parse(res.body) as { error: unknown; message: unknown; code: unknown };
    assert.equal(body.error, 'Refused by cfnet', 'the toast title is a string');
    assert.match(
      String(body.message),
      /^PUT \/api\/queues\/:queueName\/empty is not allowed from the cfnet dashboard/,
    );
    assert.equal(body.code, 'CFNET_FORBIDDEN');
  });

  it('throttles a guessing loop per client: budget 5 then 2/s, 429 with Retry-After, logged and counted', async () => {
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        call(base, 'GET', '/dashboard/api/snapshot', {
          authorization: `Bearer wrong-guess-${i}-xxxxxxxxxxxx`,
        }),
      ),
    );
    const seconds = (Date.now() - started) / 1000;
    const refused = answers.filter((r) => r.status === 401).length;
    const throttled = answers.filter((r) => r.status === 429);
    assert.equal(refused + throttled.length, 60);
    assert.ok(
      refused >= 5 && refused <= 5 + Math.ceil(2 * seconds),
      `${refused} guesses compared in ${seconds}s`,
    );
    assert.ok(Number(throttled[0]!.headers['retry-after']) >= 1);
    // while throttled even the right token is not looked at
    const right = await call(base, 'GET', '/dashboard/api/snapshot', { authorization: `Bearer ${TOKEN}` });
    assert.equal(right.status, 429);
    const failed = logLines.filter((l) => l.event === 'auth_failed' && l.surface === 'dashboard');
    assert.equal(failed.length, refused);
    assert.equal(failed[0]!.client, '127.0.0.1');
    assert.ok(!JSON.stringify(logLines).includes('wrong-guess'), 'no guessed token in the log');
    const m = (await exposition(registry)).body;
    assert.match(
      m,
      new RegExp(
        `cfnet_controller_auth_failures_total\\{surface="dashboard",outcome="refused"\\} ${refused}\\n`,
      ),
    );
    const throttledCount = Number(/surface="dashboard",outcome="throttled"\} (\d+)/.exec(m)?.[1]);
    assert.equal(throttledCount, throttled.length + 1);
    // the budget refills: after a second the right token works again
    await new Promise((r) => setTimeout(r, 1100));
    const later = await call(base, 'GET', '/dashboard/api/snapshot', { authorization: `Bearer ${TOKEN}` });
    assert.equal(later.status, 200);
  });
});
