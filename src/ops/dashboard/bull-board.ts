/**
 * bull-board over the reconcile queue at /dashboard/queues, with its state-changing actions limited
 * to those that cannot corrupt anything: a reconcile job only says "recompute cell X", so retrying,
 * promoting, pausing/resuming and removing finished jobs are safe; adding or editing jobs (they
 * could name a cell that does not exist), emptying or obliterating the queue, changing its
 * concurrency or rate limit, or removing a job that has not run yet (a lost reconcile) are refused.
 * The board's pages get a script that hides the buttons of refused actions (bull-board-limits.ts).
 */
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Job, type Queue } from 'bullmq';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ReconcileJobData } from '../../controller/reconcile/queue.js';
import type { Logger } from '../../lib/log.js';
import { withLimitsScript } from './bull-board-limits.js';

export const BULL_BOARD_PATH = '/dashboard/queues';
/** The script that hides refused actions' buttons (served by index.ts). */
export const BULL_BOARD_LIMITS_PATH = '/dashboard/assets/bull-board-limits.js';

/** Mutating bull-board API routes (method and path under the board) that are allowed. */
const ALLOWED: ReadonlyArray<[string, RegExp]> = [
  ['PUT', /^\/api\/queues\/(pause|resume)$/],
  ['PUT', /^\/api\/queues\/:queueName\/(pause|resume|promote)$/],
  ['PUT', /^\/api\/queues\/:queueName\/retry\/:queueStatus$/],
  ['PUT', /^\/api\/queues\/:queueName\/clean\/:queueStatus$/],
  ['PUT', /^\/api\/queues\/:queueName\/:jobId\/(retry|promote|clean)$/],
];

const FINISHED = new Set(['completed', 'failed']);

/**
 * A refusal in bull-board's own error shape: its UI shows `error` as a toast's title and `message`
 * as its text (cfnet's `{error: {code, message}}` gave an empty toast).
 */
function refuse(reply: FastifyReply, message: string) {
  return reply.code(403).send({ error: 'Refused by cfnet', message, code: 'CFNET_FORBIDDEN' });
}

/** Why a bull-board request may not run, or null when it may. */
export async function bullBoardRefusal(
  req: FastifyRequest,
  queue: Queue<ReconcileJobData>,
): Promise<string | null> {
  const method = req.method.toUpperCase();
  if (method === 'GET' || method === 'HEAD') return null;
  const route = (req.routeOptions.url ?? '').slice(BULL_BOARD_PATH.length);
  if (!ALLOWED.some(([m, re]) => m === method && re.test(route))) {
    return `${method} ${route} is not allowed from the cfnet dashboard (it could lose or corrupt reconcile jobs)`;
  }
  const params = (req.params ?? {}) as Record<string, string>;
  if (route.includes('/clean/') && !FINISHED.has(params.queueStatus ?? '')) {
    return 'only completed and failed jobs can be cleaned (a waiting job is a reconcile still to run)';
  }
  if (route.endsWith('/:jobId/clean')) {
    const job = params.jobId ? await Job.fromId(queue, params.jobId) : undefined;
    const state = job ? await job.getState() : 'unknown';
    if (!FINISHED.has(state)) return `job ${params.jobId} is ${state}: only finished jobs can be removed`;
  }
  return null;
}

export async function registerBullBoard(
  scope: FastifyInstance,
  queue: Queue<ReconcileJobData>,
  logger: Logger,
): Promise<void> {
  const serverAdapter = new FastifyAdapter();
  serverAdapter.setBasePath(BULL_BOARD_PATH);
  createBullBoard({
    queues: [new BullMQAdapter(queue, { description: 'reconcile jobs: "recompute cell X"' })],
    // @bull-board/fastify 9.10.1 carries its own copy of @bull-board/api's types (9.10.1 vs 9.10.2):
    // the same interface at run time.
    serverAdapter: serverAdapter as unknown as Parameters<typeof createBullBoard>[0]['serverAdapter'],
    options: {
      uiConfig: {
        boardTitle: 'cfnet queues',
        // the labels bull-board-limits.ts hides are the en-US ones
        locale: { lng: 'en-US' },
        hideDocsLink: true,
        miscLinks: [
          { text: 'Convergence', url: '/dashboard' },
          { text: 'Charts', url: '/dashboard/charts' },
          { text: 'Explain', url: '/dashboard/explain' },
          { text: 'Log out', url: '/dashboard/logout' },
        ],
      },
    },
  });
  await scope.register(
    async (board) => {
      board.addHook('preHandler', async (req, reply) => {
        const why = await bullBoardRefusal(req, queue);
        if (why) {
          logger.warn({ method: req.method, url: req.url }, 'bull-board action refused');
          return refuse(reply, why);
        }
        if (req.method !== 'GET') logger.info({ method: req.method, url: req.url }, 'bull-board action');
      });
      board.addHook('onSend', async (_req, reply, payload) => {
        const type = String(reply.getHeader('content-type') ?? '');
        if (!type.startsWith('text/html') || typeof payload !== 'string') return payload;
        return withLimitsScript(payload, BULL_BOARD_LIMITS_PATH);
      });
      await board.register(serverAdapter.registerPlugin());
    },
    { prefix: BULL_BOARD_PATH },
  );
}
