/**
 * The operator dashboard on the controller's operator port (registered through the dashboard
 * extension, ops/extension.ts). Everything under /dashboard needs the operator token (auth.ts);
 * without a configured token the dashboard only says it is disabled.
 *
 * - GET  /dashboard                 convergence page (cells by lag, latency, failed jobs, journal)
 * - GET  /dashboard/login           login form; POST /dashboard/login {token, next} → session cookie
 * - GET|POST /dashboard/logout      end the session
 * - GET  /dashboard/api/snapshot    what the page shows, as JSON
 * - GET  /dashboard/api/stream      the same as Server-Sent Events (`snapshot` every interval)
 * - GET  /dashboard/api/jobs/:id    one job in detail; POST /dashboard/api/jobs/:id/retry
 * - GET  /dashboard/cells/:cellId   a cell's page (apps by name, ASGs, c2c, NetIn, versions, errors);
 *   /dashboard/api/cells/:cellId its JSON (page-routes.ts)
 * - GET  /dashboard/explain         the explain form (`cfnet explain`); /dashboard/api/explain as JSON
 * - GET  /dashboard/charts          lag and reconcile backlog over time; /dashboard/api/history
 *   (history.ts: sampled from the shared snapshot every sample interval, bounded)
 * - /dashboard/queues/…             bull-board over the reconcile queue; only actions that cannot
 *   corrupt state are allowed (retry, promote, pause/resume, cleaning finished jobs): adding or
 *   editing jobs, emptying or obliterating the queue are refused with 403.
 *
 * Abuse resistance: a request that changes anything (not GET/HEAD/OPTIONS) must come from the
 * dashboard's own origin: `Sec-Fetch-Site` same-origin/none and `Origin` equal to the Host it was
 * sent to, when the client sends them (browsers always do; scripts with a Bearer token need not);
 * 403 `CFNET_CROSS_ORIGIN` otherwise, whatever cookie comes along (another port of the same host
 * is same-site, so SameSite alone would not do). Wrong tokens and sessions are throttled per client
 * address (lib/auth-throttle.ts: 10, then 1 per second; 429 with Retry-After), logged without the
 * credential and counted.
 */
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { ReconcileJobData } from '../../controller/reconcile/queue.js';
import { AuthThrottle } from '../../lib/auth-throttle.js';
import { CfnetError, type ErrorCode, errorMessage, ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import type { Registry } from '../../lib/metrics.js';
import { closeRedis, createRedis, type RedisAuth } from '../../lib/redis.js';
import { Keys } from '../../state/keys.js';
import { RuleSetStore } from '../../state/ruleset-store.js';
import { NotFoundError } from '../errors.js';
import { Journal } from '../journal.js';
import { QueueAdmin } from '../queue-admin.js';
import { MIN_TOKEN_LENGTH, OperatorAuth } from './auth.js';
import { registerBullBoard } from './bull-board.js';
import { HISTORY_INTERVAL_MS, History, sampleOf } from './history.js';
import { PAGE_CSP, registerPageRoutes } from './page-routes.js';
import { CSS, convergencePage, loginPage, SCRIPT } from './pages.js';
import { type DashboardSnapshot, takeSnapshot } from './snapshot.js';

export interface DashboardDeps {
  redisUrl: string;
  redisAuth?: RedisAuth;
  namespace?: string;
  /** The operator token; null or empty = dashboard disabled. */
  token: string | null;
  queue: Queue<ReconcileJobData>;
  logger: Logger;
  /** Where failed authentications are counted. */
  registry?: Registry;
  /** Failed-authentication budget per client (tests). */
  throttle?: { burst?: number; perSecond?: number };
  /** Snapshot interval of the live stream (default 2 s). */
  intervalMs?: number;
  /** Sample interval of the charts' history (default 10 s, history.ts). */
  historyIntervalMs?: number;
}

export interface Dashboard {
  enabled: boolean;
  close(): Promise<void>;
}

const JOB_ID = /^[A-Za-z0-9:_-]{1,128}$/;

function apiError(reply: FastifyReply, status: number, code: ErrorCode, message: string) {
  return reply.code(status).send({ error: { code, message } });
}

/** `next` after login: only a path inside the dashboard (no open redirect). */
function safeNext(next: unknown): string {
  return typeof next === 'string' && /^\/dashboard(\/[A-Za-z0-9/_.?=&%-]*)?$/.test(next)
    ? next
    : '/dashboard';
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Why a state-changing request is not from the dashboard's own origin, or null when it is. */
export function crossOriginReason(req: FastifyRequest): string | null {
  if (SAFE_METHODS.has(req.method)) return null;
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && site !== 'same-origin' && site !== 'none') return `Sec-Fetch-Site: ${site}`;
  const origin = req.headers.origin;
  if (typeof origin === 'string') {
    const own = `${req.protocol}://${req.headers.host ?? ''}`;
    if (origin !== own) return `Origin ${origin} is not ${own}`;
  }
  return null;
}

function wantsHtml(req: FastifyRequest): boolean {
  return req.method === 'GET' && /text\/html/.test(req.headers.accept ?? '');
}

export async function registerDashboard(app: FastifyInstance, deps: DashboardDeps): Promise<Dashboard> {
  const token = deps.token ?? '';
  if (token === '') {
    const disabled = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply
        .code(503)
        .type('text/html; charset=utf-8')
        .send(loginPage({ next: '/dashboard', disabled: true }));
    app.get('/dashboard', disabled);
    app.get('/dashboard/*', disabled);
    app.get('/dashboard/assets/app.css', async (_req, reply) => reply.type('text/css').send(CSS));
    deps.logger.info('dashboard disabled: no operator token configured');
    return { enabled: false, close: async () => {} };
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new ValidationError(
      'operatorToken',
      '[redacted]',
      `must be at least ${MIN_TOKEN_LENGTH} characters`,
    );
  }
  const auth = new OperatorAuth(token);
  const throttle = new AuthThrottle({
    logger: deps.logger,
    ...(deps.registry ? { registry: deps.registry } : {}),
    ...deps.throttle,
  });
  const refuseCrossOrigin = async (req: FastifyRequest, reply: FastifyReply) => {
    const reason = crossOriginReason(req);
    if (reason === null) return;
    deps.logger.warn(
      { event: 'cross_origin_refused', client: req.ip, url: req.url, reason },
      'cross-origin request refused',
    );
    return apiError(
      reply,
      403,
      'CFNET_CROSS_ORIGIN',
      'state-changing requests must come from the dashboard itself',
    );
  };
  const throttled = (req: FastifyRequest, reply: FastifyReply) => {
    if (throttle.admit(req.ip, 'dashboard')) return false;
    reply.header('retry-after', String(throttle.retryAfterSeconds(req.ip)));
    apiError(reply, 429, 'CFNET_THROTTLED', 'too many failed authentications; retry later');
    return true;
  };
  const keys = new Keys(deps.namespace);
  const redis: Redis = createRedis(deps.redisUrl, {
    name: 'cfnet-controller-dashboard',
    ...(deps.redisAuth ? { auth: deps.redisAuth } : {}),
  });
  redis.on('error', () => {});
  const journal = new Journal(redis, keys);
  const store = new RuleSetStore(redis, keys);
  const admin = new QueueAdmin(deps.queue);
  const intervalMs = deps.intervalMs ?? 2000;
  const historyIntervalMs = deps.historyIntervalMs ?? HISTORY_INTERVAL_MS;
  const history = new History();

  // One snapshot shared by every viewer, at most one per interval.
  let cached: { at: number; value: Promise<DashboardSnapshot> } | null = null;
  const snapshot = (): Promise<DashboardSnapshot> => {
    const now = Date.now();
    if (!cached || now - cached.at >= intervalMs / 2) {
      const value = takeSnapshot({ redis, keys, queue: deps.queue, journal }, now);
      value.catch(() => {
        cached = null;
      });
      cached = { at: now, value };
    }
    return cached.value;
  };
  const refresh = () => {
    cached = null;
  };

  // The charts' history: one sample per sample interval, also while no page is open. It takes the
  // snapshot a page asked for within the last half interval, else its own, which it does not
  // share: a page asking right after a sample sees what is in Redis now, not what was.
  const sample = () =>
    void (
      cached && Date.now() - cached.at < intervalMs / 2
        ? cached.value
        : takeSnapshot({ redis, keys, queue: deps.queue, journal })
    ).then(
      (s) => history.add(sampleOf(s)),
      (err: unknown) => deps.logger.warn({ err }, 'dashboard history sample failed'),
    );
  const sampler = setInterval(sample, historyIntervalMs);
  sampler.unref();
  sample();

  const streams = new Set<{ end(): void }>();
  app.addHook('preClose', async () => {
    clearInterval(sampler);
    for (const s of streams) s.end();
  });

  // Public: login, logout, assets.
  await app.register(async (pub) => {
    pub.addHook('onRequest', refuseCrossOrigin);
    pub.addContentTypeParser(
      'application/x-www-form-urlencoded',
      { parseAs: 'string', bodyLimit: 4096 },
      (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
    );
    pub.get('/dashboard/assets/app.css', async (_req, reply) =>
      reply.type('text/css; charset=utf-8').header('cache-control', 'no-cache').send(CSS),
    );
    pub.get('/dashboard/login', async (req, reply) => {
      const next = safeNext((req.query as Record<string, unknown>).next);
      return reply.type('text/html; charset=utf-8').send(loginPage({ next }));
    });
    pub.post('/dashboard/login', async (req, reply) => {
      const body = (req.body ?? {}) as Record<string, unknown>;
      const next = safeNext(body.next);
      if (throttled(req, reply)) return reply;
      if (!auth.checkToken(body.token)) {
        throttle.fail(req.ip, 'dashboard', 'wrong operator token at login');
        return reply
          .code(401)
          .type('text/html; charset=utf-8')
          .send(loginPage({ next, error: 'Wrong operator token.' }));
      }
      deps.logger.info({ ip: req.ip }, 'dashboard login');
      return reply.header('set-cookie', auth.sessionCookie(req.protocol === 'https')).redirect(next, 303);
    });
    const logout = async (_req: FastifyRequest, reply: FastifyReply) =>
      reply.header('set-cookie', OperatorAuth.clearCookie()).redirect('/dashboard/login', 303);
    pub.get('/dashboard/logout', logout);
    pub.post('/dashboard/logout', logout);
  });

  // Everything else: the token or a session.
  await app.register(async (priv) => {
    priv.addHook('onRequest', refuseCrossOrigin);
    priv.addHook('onRequest', async (req, reply) => {
      const presented = auth.presented(req);
      if (presented !== null && throttled(req, reply)) return reply;
      if (auth.authorized(req)) return;
      if (presented !== null) throttle.fail(req.ip, 'dashboard', `wrong operator ${presented}`);
      if (wantsHtml(req)) {
        return reply.redirect(`/dashboard/login?next=${encodeURIComponent(safeNext(req.url))}`, 303);
      }
      return apiError(
        reply,
        401,
        'CFNET_UNAUTHENTICATED',
        'the operator token is required (log in, or Authorization: Bearer <token>)',
      );
    });
    priv.setErrorHandler((err, _req, reply) => {
      if (err instanceof NotFoundError) return apiError(reply, 404, err.code, err.message);
      if (err instanceof ValidationError || (err instanceof CfnetError && err.code === 'CFNET_INVALID'))
        return apiError(reply, 400, err.code, err.message);
      if (err instanceof CfnetError) return apiError(reply, 500, err.code, err.message);
      const status = (err as { statusCode?: number }).statusCode ?? 500;
      if (status < 500) return apiError(reply, status, 'CFNET_BAD_REQUEST', errorMessage(err));
      deps.logger.error({ err }, 'dashboard error');
      return apiError(reply, 500, 'CFNET_INTERNAL', errorMessage(err));
    });

    priv.get('/dashboard', async (_req, reply) =>
      reply
        .type('text/html; charset=utf-8')
        .header('content-security-policy', PAGE_CSP)
        .header('cache-control', 'no-store')
        .send(convergencePage()),
    );
    priv.get('/dashboard/assets/app.js', async (_req, reply) =>
      reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(SCRIPT),
    );
    priv.get('/dashboard/api/snapshot', async (_req, reply) =>
      reply.header('cache-control', 'no-store').send(await snapshot()),
    );
    priv.get('/dashboard/api/stream', async (req, reply) => {
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-store',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      let open = true;
      const stream = {
        end: () => {
          if (!open) return;
          open = false;
          clearInterval(timer);
          streams.delete(stream);
          res.end();
        },
      };
      streams.add(stream);
      const send = async () => {
        try {
          const s = await snapshot();
          if (open) res.write(`event: snapshot\ndata: ${JSON.stringify(s)}\n\n`);
        } catch (err) {
          if (open) res.write(`event: problem\ndata: ${JSON.stringify({ message: errorMessage(err) })}\n\n`);
        }
      };
      const timer = setInterval(() => void send(), intervalMs);
      req.raw.on('close', stream.end);
      res.write('retry: 3000\n\n');
      await send();
    });
    priv.get<{ Params: { id: string } }>('/dashboard/api/jobs/:id', async (req, reply) => {
      if (!JOB_ID.test(req.params.id)) throw new ValidationError('jobId', req.params.id, 'not a job id');
      return reply.send(await admin.show(req.params.id));
    });
    priv.post<{ Params: { id: string } }>('/dashboard/api/jobs/:id/retry', async (req, reply) => {
      if (!JOB_ID.test(req.params.id)) throw new ValidationError('jobId', req.params.id, 'not a job id');
      await admin.retry(req.params.id);
      deps.logger.info({ jobId: req.params.id }, 'job retried from the dashboard');
      refresh();
      return reply.send({ retried: req.params.id });
    });

    await registerPageRoutes(priv, {
      redis,
      keys,
      store,
      journal,
      queue: deps.queue,
      logger: deps.logger,
      history,
      historyIntervalMs,
      snapshot,
    });
    await registerBullBoard(priv, deps.queue, deps.logger);
  });

  return {
    enabled: true,
    async close() {
      clearInterval(sampler);
      for (const s of streams) s.end();
      await closeRedis(redis);
    },
  };
}
