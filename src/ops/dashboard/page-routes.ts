/**
 * The dashboard's pages besides the live convergence page: a cell's page (and its JSON), the
 * explain form, the charts (with their history API and uPlot's files from node_modules), and the
 * script that limits bull-board's buttons. Registered inside the authenticated scope (index.ts).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Redis } from 'ioredis';
import type { ReconcileJobData } from '../../controller/reconcile/queue.js';
import { CfnetError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { type Keys, validateCellId } from '../../state/keys.js';
import type { RuleSetStore } from '../../state/ruleset-store.js';
import { cellDetail } from '../cell-detail.js';
import { NotFoundError } from '../errors.js';
import { explainNamed } from '../explain-named.js';
import type { Journal } from '../journal.js';
import { BULL_BOARD_LIMITS_PATH } from './bull-board.js';
import { BULL_BOARD_LIMITS_SCRIPT } from './bull-board-limits.js';
import { cellNotFoundPage, cellPage } from './cell-page.js';
import { CHARTS_SCRIPT, chartsPage } from './charts-page.js';
import { type ExplainOutcome, explainPage, explainQueryOf } from './explain-page.js';
import type { History } from './history.js';
import type { DashboardSnapshot } from './snapshot.js';

export interface PageDeps {
  redis: Redis;
  keys: Keys;
  store: RuleSetStore;
  journal: Journal;
  queue: Queue<ReconcileJobData>;
  logger: Logger;
  history: History;
  historyIntervalMs: number;
  snapshot(): Promise<DashboardSnapshot>;
}

export const PAGE_CSP = "default-src 'self'; style-src 'self'; img-src 'self' data:";

/** uPlot's browser build and stylesheet, read once from node_modules (pinned in package.json). */
function uplotFiles(): { js: string; css: string } {
  const require = createRequire(import.meta.url);
  const dist = (f: string) => readFileSync(require.resolve(`uplot/dist/${f}`), 'utf8');
  return { js: dist('uPlot.iife.min.js'), css: dist('uPlot.min.css') };
}

function sendPage(reply: FastifyReply, status: number, text: string) {
  return reply
    .code(status)
    .type('text/html; charset=utf-8')
    .header('content-security-policy', PAGE_CSP)
    .header('cache-control', 'no-store')
    .send(text);
}

export async function registerPageRoutes(scope: FastifyInstance, deps: PageDeps): Promise<void> {
  let files: { js: string; css: string } | null = null;
  const uplot = () => {
    files ??= uplotFiles();
    return files;
  };
  const asset = (type: string, body: () => string) => async (_req: unknown, reply: FastifyReply) =>
    reply.type(`${type}; charset=utf-8`).header('cache-control', 'no-cache').send(body());
  /** Cells in dry-run for the banner; a page still renders when the snapshot cannot be taken. */
  const dryRunCells = async (): Promise<string[]> => {
    try {
      return (await deps.snapshot()).dryRunCells;
    } catch (err) {
      deps.logger.warn({ err }, 'dashboard snapshot failed: the dry-run banner is left out');
      return [];
    }
  };
  const detailSource = {
    redis: deps.redis,
    keys: deps.keys,
    store: deps.store,
    journal: deps.journal,
    queue: deps.queue,
  };

  scope.get<{ Params: { cellId: string } }>('/dashboard/api/cells/:cellId', async (req, reply) => {
    const cellId = validateCellId(req.params.cellId, 'cellId');
    return reply.header('cache-control', 'no-store').send(await cellDetail(detailSource, cellId));
  });
  scope.get<{ Params: { cellId: string } }>('/dashboard/cells/:cellId', async (req, reply) => {
    const dry = await dryRunCells();
    const now = Date.now();
    try {
      const cellId = validateCellId(req.params.cellId, 'cellId');
      return sendPage(reply, 200, cellPage(await cellDetail(detailSource, cellId, now), now, dry));
    } catch (err) {
      if (err instanceof NotFoundError)
        return sendPage(reply, 404, cellNotFoundPage(req.params.cellId, err.message, dry));
      if (err instanceof CfnetError && err.code === 'CFNET_INVALID')
        return sendPage(reply, 400, cellNotFoundPage(req.params.cellId, err.message, dry));
      throw err;
    }
  });

  scope.get('/dashboard/explain', async (req, reply) => {
    const q = explainQueryOf((req.query ?? {}) as Record<string, unknown>);
    let outcome: ExplainOutcome = null;
    if (q) {
      try {
        outcome = { ok: await explainNamed(deps, q) };
      } catch (err) {
        // the CLI's typed errors are answers to show; anything else is the dashboard's own failure
        if (!(err instanceof CfnetError)) deps.logger.error({ err }, 'dashboard explain failed');
        outcome = { error: err };
      }
    }
    return sendPage(
      reply,
      outcome && 'error' in outcome ? 400 : 200,
      explainPage(q, outcome, await dryRunCells()),
    );
  });
  scope.get('/dashboard/api/explain', async (req, reply) => {
    const q = explainQueryOf((req.query ?? {}) as Record<string, unknown>);
    if (!q) throw new CfnetError('CFNET_INVALID', 'give from, to and port (and protocol), as cfnet explain');
    return reply.header('cache-control', 'no-store').send(await explainNamed(deps, q));
  });

  scope.get('/dashboard/charts', async (_req, reply) =>
    sendPage(reply, 200, chartsPage(await dryRunCells())),
  );
  scope.get('/dashboard/api/history', async (_req, reply) =>
    reply.header('cache-control', 'no-store').send({
      intervalMs: deps.historyIntervalMs,
      capacity: deps.history.capacity,
      samples: deps.history.samples(),
    }),
  );
  scope.get(
    '/dashboard/assets/charts.js',
    asset('text/javascript', () => CHARTS_SCRIPT),
  );
  scope.get(
    '/dashboard/assets/uplot.js',
    asset('text/javascript', () => uplot().js),
  );
  scope.get(
    '/dashboard/assets/uplot.css',
    asset('text/css', () => uplot().css),
  );
  scope.get(
    BULL_BOARD_LIMITS_PATH,
    asset('text/javascript', () => BULL_BOARD_LIMITS_SCRIPT),
  );
}
