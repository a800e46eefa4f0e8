/**
 * What an operator-side extension of a controller replica is (the event journal and the web
 * dashboard of `src/ops`). The controller calls them at these points and otherwise knows nothing
 * about them:
 * - `onEnqueued`: after every enqueue of reconcile jobs (world changes, resyncs, agent inventory
 *   changes, operator replays) with the job ids BullMQ returned (a deduplicated request gets the id
 *   of the job that absorbed it) and the security groups and policies that write carried;
 * - `onStatus`: after an agent's status report was stored;
 * - `onRejected`: input left out by the ingest gate, the computation or the agent (distinct ones);
 * - `operatorRoutes`: extra routes on the operator port, registered before it listens.
 * Extensions must not throw from the hooks (errors are logged and ignored by the controller).
 *
 * Each hook gets an `ExtensionHost`: the few things of the controller an extension may use, so
 * that extensions depend on this narrow interface, never on the Controller class. Which
 * extensions a controller gets is extension-registry.ts's business.
 */
import type { Queue } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Logger } from '../lib/log.js';
import type { Registry } from '../lib/metrics.js';
import type { Trigger, World } from '../rules/world.js';
import type { AgentStatus } from '../state/ruleset-store.js';
import type { ReconcileJobData, WrittenState } from './reconcile/queue.js';
import type { Rejection } from './sources/rejections.js';

export interface EnqueuedJob {
  cellId: string;
  triggers: readonly Trigger[];
  jobId: string;
}

/** What a controller lends its extensions. */
export interface ExtensionHost {
  /** The replica's metrics registry (extensions add their own series). */
  readonly registry: Registry;
  /** The replica's logger. */
  readonly logger: Logger;
  /** The leader's in-memory world as it is now (null on standbys); read it at hook time. */
  world(): World | null;
  /** The BullMQ queue of reconcile jobs (the dashboard shows it). */
  jobQueue(): Queue<ReconcileJobData>;
}

export interface ControllerExtension {
  readonly name: string;
  onEnqueued?(jobs: readonly EnqueuedJob[], host: ExtensionHost, written: WrittenState): void | Promise<void>;
  onStatus?(
    cellId: string,
    status: Omit<AgentStatus, 'reportedAt'>,
    host: ExtensionHost,
  ): void | Promise<void>;
  /** Input left out (invalid records, per-cell conflicts, agent refusals), each distinct once. */
  onRejected?(items: readonly Rejection[], host: ExtensionHost): void | Promise<void>;
  operatorRoutes?(app: FastifyInstance, host: ExtensionHost): Promise<void>;
  close?(): Promise<void>;
}
