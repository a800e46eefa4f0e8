/**
 * The settings engine: a table of settings (spec.ts) drives the flags, the environment variables,
 * the config-file keys, coercion and validation (coerce.ts, zod), the merge of the sources
 * (resolve.ts: default < file < environment < flag), redacted descriptions (describe.ts) and the
 * `--help` text (help.ts). Each program declares its table and turns the values into its config once.
 */
export { type Listen, schemaOf } from './coerce.js';
export { describeSettings } from './describe.js';
export { SettingsError } from './errors.js';
export { addSettingOptions, flagValues, HELP_WIDTH, settingOption, wrapText } from './help.js';
export {
  invalid,
  type Resolved,
  readSettingsFile,
  required,
  resolveSettings,
  type SettingsSources,
  withSetting,
} from './resolve.js';
export {
  camelKey,
  defaultOf,
  envNameOf,
  flagName,
  type SettingDefault,
  type SettingKind,
  type SettingSpec,
  type SettingsTable,
  settingLabel,
  snakeKey,
} from './spec.js';
