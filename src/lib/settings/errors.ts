/** The one error of the settings engine: a stable code and the setting it is about. */
import { CfnetError } from '../errors.js';

/**
 * A setting is unknown, missing or invalid, or a file of settings cannot be read. `key` names the
 * setting (absent for a whole-file problem); `context.from` says where the value came from.
 */
export class SettingsError extends CfnetError {
  readonly key: string | undefined;

  constructor(message: string, context: Record<string, unknown> = {}) {
    super('CFNET_SETTINGS', message, context);
    this.key = typeof context.setting === 'string' ? context.setting : undefined;
  }
}
