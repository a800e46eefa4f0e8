/**
 * What a settings table is made of. One entry per setting; its command-line flag, environment
 * variable and config-file key are derived from `key` here and nowhere else.
 */

export type SettingKind =
  | 'string'
  | 'secret'
  | 'url'
  | 'path'
  | 'int'
  | 'bool'
  | 'list'
  | 'listen'
  | 'enum'
  | 'ip'
  | 'ifname';

export type SettingDefault = string | number | boolean | readonly string[];

export interface SettingSpec<K extends string = string> {
  /** camelCase: the config-file key (snake_case also accepted), the flag and the variable derive from it. */
  key: K;
  kind: SettingKind;
  /** Built-in default; undefined = unset (or, with `required`, an error). */
  def?: SettingDefault;
  /** No default: a value must come from a source. */
  required?: boolean;
  describe: string;
  /** Section of the help text and of the README table. */
  group?: string;
  /** Smallest accepted value (int) or number of items (list). */
  min?: number;
  /** Largest accepted value (int). */
  max?: number;
  /** '' is a value of its own (meaning "detect" or "off", as `describe` says). */
  emptyOk?: boolean;
  /** The accepted values of an `enum` setting. */
  choices?: readonly string[];
  /** The accepted schemes of a `url` setting (with the colon); default http, https and the Redis ones. */
  protocols?: readonly string[];
  /** A `path` setting must be absolute. */
  absolute?: boolean;
}

export interface SettingsTable<K extends string = string> {
  /** Prefix of every environment variable, e.g. `CFNET_` or `CFNET_AGENT_`. */
  envPrefix: string;
  settings: readonly SettingSpec<K>[];
  /**
   * What an empty environment variable means: `unset` (the next source decides) or `value` (the
   * empty string, e.g. "detect" for an `emptyOk` setting).
   */
  emptyEnv: 'unset' | 'value';
}

/** `redisUrl` → `--redis-url`. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** `redisUrl` with prefix `CFNET_` → `CFNET_REDIS_URL`. */
export function envNameOf(prefix: string, key: string): string {
  return `${prefix}${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** `redis_url` → `redisUrl` (config files may use either). */
export function camelKey(key: string): string {
  return key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** `subnetFile` → `subnet_file` (the JSON key of a snake_case format such as a CNI config). */
export function snakeKey(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** `setting (--flag / ENV)`: how every message names a setting. */
export function settingLabel(table: SettingsTable, key: string): string {
  return `${key} (${flagName(key)} / ${envNameOf(table.envPrefix, key)})`;
}

/** The default of `key` as written in the table (the one place it is written). */
export function defaultOf<T extends SettingDefault>(table: SettingsTable, key: string): T {
  const spec = table.settings.find((s) => s.key === key);
  if (spec?.def === undefined) throw new Error(`setting ${key} has no default`);
  return spec.def as T;
}
