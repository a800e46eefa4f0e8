/**
 * Operator commands: `cfnet queue …`, `cfnet events`, `cfnet rules`, `cfnet cells`,
 * `cfnet explain`. They talk to the controller's Redis (the same `--redis-url` and
 * `--redis-namespace` as the controller; `--config` reads them from the controller's JSON config
 * file), print human tables or `--json`, and exit with 0 (ok), 1 (error), 2 (invalid input),
 * 3 (Redis unreachable), 4 (no controller: world not written, no worker), 5 (not found).
 * Registering them also registers the operator extensions of `cfnet controller` (event journal,
 * dashboard). Heavy modules (BullMQ, the dataplane renderer) load only when a command runs.
 */
import type { Command } from 'commander';
import type { ControllerConfig } from '../controller/controller.js';
import { registerControllerExtensions } from '../controller/extension-registry.js';
import { opsExtensions } from '../ops/extension.js';
import { registerCells } from './ops/cells.js';
import { type OpsIo, processIo } from './ops/common.js';
import { registerEvents } from './ops/events.js';
import { registerExplain } from './ops/explain.js';
import { registerLeases } from './ops/leases.js';
import { registerQueue } from './ops/queue.js';
import { registerRules } from './ops/rules.js';

export { connectionOf, type OpsIo, processIo } from './ops/common.js';

/** Register the operator commands, and the operator extensions every controller of this process gets. */
export function registerOpsCommands(program: Command, io: OpsIo = processIo): void {
  registerControllerExtensions(opsExtensionFactory);
  registerQueue(program, io);
  registerEvents(program, io);
  registerRules(program, io);
  registerCells(program, io);
  registerExplain(program, io);
  registerLeases(program, io);
}

/** The controller extension factory (a module-level function, so registering twice is a no-op). */
function opsExtensionFactory(config: ControllerConfig) {
  return opsExtensions(config);
}
