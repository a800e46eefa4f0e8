/**
 * Registration point for operator-side extensions of a controller replica (the event journal and
 * the web dashboard, `src/ops/dashboard`). The controller calls them at three
 * points and otherwise knows nothing about them:
 * - `onEnqueued`: after every enqueue of reconcile jobs (world changes, resyncs, agent inventory
 *   changes, operator replays) with the job ids BullMQ returned (a deduplicated request gets the id
 *   of the job that absorbed it);
 * - `onStatus`: after an agent's status report was stored;
 * - `onRejected`: input left out by the ingest gate, the computation or the agent (distinct ones);
 * - `operatorRoutes`: extra routes on the operator port, registered before it listens.
 * Extensions must not throw from the hooks (errors are logged and ignored by the controller).
 */
import type { FastifyInstance } from 'fastify';
import type { Trigger } from '../rules/world.js';
import type { AgentStatus } from '../state/ruleset-store.js';
import type { Controller, ControllerConfig } from './controller.js';
import type { Rejection } from './sources/rejections.js';

export interface EnqueuedJob {
  cellId: string;
  triggers: readonly Trigger[];
  jobId: string;
}

export interface ControllerExtension {
  readonly name: string;
  onEnqueued?(jobs: readonly EnqueuedJob[], controller: Controller): void | Promise<void>;
  onStatus?(
    cellId: string,
    status: Omit<AgentStatus, 'reportedAt'>,
    controller: Controller,
  ): void | Promise<void>;
  /** Input left out (invalid records, per-cell conflicts, agent refusals), each distinct once. */
  onRejected?(items: readonly Rejection[], controller: Controller): void | Promise<void>;
  operatorRoutes?(app: FastifyInstance, controller: Controller): Promise<void>;
  close?(): Promise<void>;
}

export type ControllerExtensionFactory = (config: ControllerConfig) => ControllerExtension[];

const factories = new Set<ControllerExtensionFactory>();

/**
 * Extensions every Controller of this process gets when its config has no `extensions` (the
 * `cfnet` executable registers the operator tools here). Registering the same factory twice is a
 * no-op.
 */
export function registerControllerExtensions(factory: ControllerExtensionFactory): void {
  factories.add(factory);
}

/** The extensions of a controller: `config.extensions` when given, else the registered ones. */
export function extensionsFor(config: ControllerConfig): ControllerExtension[] {
  if (config.extensions) return [...config.extensions];
  return [...factories].flatMap((f) => f(config));
}
