/**
 * The simulator's admin API (plain HTTP, meant for loopback): apply named changes, read the world
 * summary and hash, run churn, inject faults. Optional bearer token.
 */
import { timingSafeEqual } from 'node:crypto';
import { CfnetError, ValidationError } from '../lib/errors.js';
import type { ChangeEngine, SimChange } from './changes.js';
import { CHANGE_KINDS } from './changes.js';
import { type ChurnOptions, type ChurnRun, runChurn } from './churn.js';
import { type FaultState, SIM_SERVICES, type SimService } from './faults.js';
import { type Ctx, parseJsonBody, Router, type RunningService, sendJson, startService } from './http.js';
import { summarize, worldHash } from './summary.js';
import type { SimWorld } from './world.js';

export interface AdminOptions {
  host: string;
  port: number;
  world: SimWorld;
  engine: ChangeEngine;
  faults: FaultState;
  token?: string;
  info: () => unknown;
  churns: Map<string, ChurnRun>;
  extraSummary: () => Record<string, unknown>;
}

function errorReply(ctx: Ctx, err: unknown): void {
  if (err instanceof ValidationError) {
    sendJson(ctx, 422, { error: err.message, code: err.code, field: err.field, value: err.value });
  } else if (err instanceof SyntaxError) {
    sendJson(ctx, 400, { error: `invalid JSON body: ${err.message}`, code: 'CFNET_INVALID' });
  } else if (err instanceof CfnetError) {
    sendJson(ctx, 500, { error: err.message, code: err.code });
  } else {
    sendJson(ctx, 500, { error: err instanceof Error ? err.message : String(err) });
  }
}

function body(ctx: Ctx): Record<string, unknown> {
  const b = parseJsonBody(ctx) ?? {};
  if (typeof b !== 'object' || Array.isArray(b) || b === null)
    throw new ValidationError('body', b, 'must be a JSON object');
  return b as Record<string, unknown>;
}

function service(v: unknown): SimService {
  if (typeof v !== 'string' || !SIM_SERVICES.includes(v as SimService)) {
    throw new ValidationError('service', v, `must be one of ${SIM_SERVICES.join(', ')}`);
  }
  return v as SimService;
}

function count(v: unknown, field = 'count'): number {
  const n = v === undefined ? 1 : Number(v);
  if (!Number.isInteger(n) || n < 1) throw new ValidationError(field, v, 'must be a positive integer');
  return n;
}

export function startAdmin(opts: AdminOptions): Promise<RunningService> {
  const { world, engine, faults, churns } = opts;
  const router = new Router();
  const guard = (fn: (ctx: Ctx) => unknown) => async (ctx: Ctx) => {
    try {
      await fn(ctx);
    } catch (err) {
      errorReply(ctx, err);
    }
  };

  router.on('GET', '/v1/info', (ctx) => sendJson(ctx, 200, opts.info()));
  router.on('GET', '/v1/world/summary', (ctx) =>
    sendJson(ctx, 200, { ...summarize(world), ...opts.extraSummary() }),
  );
  router.on('GET', '/v1/world/hash', (ctx) => sendJson(ctx, 200, { hash: worldHash(world) }));
  router.on('GET', '/v1/changes/kinds', (ctx) => sendJson(ctx, 200, { kinds: CHANGE_KINDS }));
  router.on(
    'POST',
    '/v1/changes',
    guard(async (ctx) => {
      const b = body(ctx);
      if (typeof b.kind !== 'string' || !CHANGE_KINDS.includes(b.kind as SimChange['kind'])) {
        throw new ValidationError('kind', b.kind, `must be one of ${CHANGE_KINDS.join(', ')}`);
      }
      sendJson(ctx, 200, await engine.apply(b as unknown as SimChange));
    }),
  );
  router.on(
    'POST',
    '/v1/churn',
    guard(async (ctx) => {
      const b = body(ctx);
      const run = runChurn(world, engine, {
        rate: Number(b.rate ?? 1),
        durationMs: b.durationMs === undefined ? undefined : Number(b.durationMs),
        seed: b.seed === undefined ? undefined : Number(b.seed),
        kinds: b.kinds as ChurnOptions['kinds'],
        maxChanges: b.maxChanges === undefined ? undefined : Number(b.maxChanges),
      });
      churns.set(run.id, run);
      void run.done.finally(() => setTimeout(() => churns.delete(run.id), 600_000).unref());
      if (b.wait === true) sendJson(ctx, 200, await run.done);
      else sendJson(ctx, 202, { id: run.id, status: run.status() });
    }),
  );
  router.on('GET', '/v1/churn/:id', (ctx) => {
    const run = churns.get(ctx.params.id ?? '');
    if (!run) return sendJson(ctx, 404, { error: 'no such churn run' });
    sendJson(ctx, 200, run.status());
  });
  router.on(
    'DELETE',
    '/v1/churn/:id',
    guard(async (ctx) => {
      const run = churns.get(ctx.params.id ?? '');
      if (!run) return sendJson(ctx, 404, { error: 'no such churn run' });
      run.stop();
      sendJson(ctx, 200, await run.done);
    }),
  );

  // Faults
  router.on(
    'POST',
    '/v1/faults/:fault',
    guard((ctx) => {
      const b = body(ctx);
      switch (ctx.params.fault) {
        case 'fail':
          faults.failNext(
            service(b.service),
            count(b.count),
            b.status === undefined ? 500 : Number(b.status),
            b.body as string | undefined,
          );
          break;
        case 'delay':
          faults.delayNext(service(b.service), count(b.count), Number(b.ms ?? 1000));
          break;
        case 'rate-limit':
          faults.rateLimitNext('capi', count(b.count), Number(b.retryAfterSeconds ?? 1));
          break;
        case 'corrupt':
          faults.corruptNext(service(b.service), count(b.count));
          break;
        case 'expire-tokens':
          faults.expireTokens();
          break;
        case 'drop-streams':
          return sendJson(ctx, 200, { dropped: faults.dropEventStreams() });
        case 'inject-event': {
          const stream = b.stream === 'task' ? 'task' : 'lrp';
          return sendJson(ctx, 200, {
            delivered: faults.injectEvent(stream, {
              name: String(b.name ?? ''),
              dataBase64: String(b.dataBase64 ?? ''),
            }),
          });
        }
        case 'reset':
          faults.reset();
          break;
        default:
          throw new ValidationError('fault', ctx.params.fault, 'unknown fault');
      }
      sendJson(ctx, 200, { ok: true, requests: faults.requests });
    }),
  );
  router.on('GET', '/v1/faults/requests', (ctx) => sendJson(ctx, 200, faults.requests));

  return startService({
    name: 'admin',
    host: opts.host,
    port: opts.port,
    router,
    before: (ctx) => {
      if (!opts.token) return false;
      const m = /^bearer\s+(.+)$/i.exec(ctx.req.headers.authorization ?? '');
      const got = Buffer.from(m?.[1] ?? '');
      const want = Buffer.from(opts.token);
      if (got.length === want.length && timingSafeEqual(got, want)) return false;
      sendJson(ctx, 401, { error: 'admin token required' });
      return true;
    },
    notFound: (ctx, methodMismatch) =>
      sendJson(ctx, methodMismatch ? 405 : 404, {
        error: methodMismatch ? 'method not allowed' : 'not found',
      }),
  });
}
