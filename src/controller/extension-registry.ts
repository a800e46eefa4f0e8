/**
 * Which extensions a controller gets: those of its config, else the ones registered for every
 * controller of this process (the `cfnet` executable registers the operator tools). Light on
 * purpose: registering must not load the controller.
 */
import type { Logger } from '../lib/log.js';
import type { ControllerConfig } from './config.js';
import type { ControllerExtension } from './extensions.js';

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

/** Runs a hook on every extension; failures (thrown or rejected) are logged, never raised. */
export function callExtensions(
  extensions: readonly ControllerExtension[],
  log: Logger,
  fn: (e: ControllerExtension) => unknown,
): void {
  for (const e of extensions) {
    try {
      void Promise.resolve(fn(e)).catch((err) =>
        log.warn({ err, extension: e.name }, 'extension hook failed'),
      );
    } catch (err) {
      log.warn({ err, extension: e.name }, 'extension hook failed');
    }
  }
}
