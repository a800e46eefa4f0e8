/** Errors of the controller process itself (stable codes). */
import { CfnetError } from '../lib/errors.js';

/** A setting is invalid (names the setting and where it came from). */
export class SettingsError extends CfnetError {
  constructor(message: string, context: Record<string, unknown> = {}) {
    super('CFNET_SETTINGS', message, context);
  }
}
