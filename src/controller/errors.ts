/** Errors of the controller process itself (stable codes). */

/** A setting is invalid (names the setting and where it came from): the settings engine's error. */
export { SettingsError } from '../lib/settings/errors.js';
