/**
 * Merging the sources of a settings table. Precedence, later wins: built-in default < JSON config
 * file < environment < command-line flag. Every value, defaults included, passes its setting's
 * schema; the first problem is a SettingsError naming the setting and where the value came from.
 */
import { readFileSync } from 'node:fs';
import type { z } from 'zod';
import { ValidationError } from '../errors.js';
import { schemaOf } from './coerce.js';
import { SettingsError } from './errors.js';
import { camelKey, envNameOf, flagName, type SettingSpec, type SettingsTable, settingLabel } from './spec.js';

export interface SettingsSources {
  /** Command-line values by key (commander's camelCase). */
  flags?: Record<string, unknown>;
  /** The environment (variables named by the table's prefix). */
  env?: Record<string, string | undefined>;
  /** Parsed JSON config file (keys camelCase or snake_case). */
  file?: Record<string, unknown>;
}

/** The values by key (unset optional settings absent) and where each came from. */
export interface Resolved {
  values: Record<string, unknown>;
  from: Record<string, string>;
}

const schemas = new WeakMap<SettingSpec, z.ZodType>();

function schema(spec: SettingSpec): z.ZodType {
  let s = schemas.get(spec);
  if (!s) {
    s = schemaOf(spec);
    schemas.set(spec, s);
  }
  return s;
}

/** Read a JSON config file: an object of settings. */
export function readSettingsFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SettingsError(`cannot read config file ${path}: ${(err as Error).message}`, { path });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new SettingsError(`config file ${path} is not valid JSON: ${(err as Error).message}`, { path });
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new SettingsError(`config file ${path} must hold a JSON object`, { path });
  }
  return json as Record<string, unknown>;
}

/** How a value is shown in an error: secrets never; an integer as the number it was read as. */
function shown(spec: SettingSpec, value: unknown): string {
  if (spec.kind === 'secret') return '[redacted]';
  if (spec.kind === 'int' && typeof value === 'string' && /^\s*-?\d+\s*$/.test(value))
    return String(Number(value));
  return JSON.stringify(value);
}

/** Merge the sources and coerce every value; table-wide checks are the caller's (see `withSetting`). */
export function resolveSettings(table: SettingsTable, sources: SettingsSources): Resolved {
  const byKey = new Map(table.settings.map((s) => [s.key as string, s]));
  const raw = new Map<string, { value: unknown; from: string }>();
  for (const [k, v] of Object.entries(sources.file ?? {})) {
    const key = camelKey(k);
    if (!byKey.has(key)) {
      throw new SettingsError(`unknown setting "${k}" in the config file`, { setting: k, from: 'file' });
    }
    if (v !== null && v !== undefined) raw.set(key, { value: v, from: 'config file' });
  }
  for (const spec of table.settings) {
    const env = envNameOf(table.envPrefix, spec.key);
    const e = sources.env?.[env];
    if (e !== undefined && (e !== '' || table.emptyEnv === 'value'))
      raw.set(spec.key, { value: e, from: `env ${env}` });
    const f = sources.flags?.[spec.key];
    // commander gives `true` for a flag written without its value
    if (f !== undefined) {
      raw.set(spec.key, {
        value: f === true && spec.kind !== 'bool' ? '' : f,
        from: `flag ${flagName(spec.key)}`,
      });
    }
  }
  const values: Record<string, unknown> = {};
  const from: Record<string, string> = {};
  for (const spec of table.settings) {
    const given = raw.get(spec.key);
    const value = given ? given.value : Array.isArray(spec.def) ? [...spec.def] : spec.def;
    const source = given?.from ?? 'default';
    if (value === undefined) {
      if (spec.required) {
        throw new SettingsError(
          `setting ${settingLabel(table, spec.key)} is required (or "${spec.key}" in the config file)`,
          {
            setting: spec.key,
          },
        );
      }
      continue;
    }
    const r = schema(spec).safeParse(value);
    if (!r.success) {
      throw new SettingsError(
        `invalid setting ${settingLabel(table, spec.key)} ${shown(spec, value)} from ${source}: ${r.error.issues[0]?.message}`,
        { setting: spec.key, from: source },
      );
    }
    values[spec.key] = r.data;
    from[spec.key] = source;
  }
  return { values, from };
}

/**
 * Run a table-wide check of `key` (e.g. a parser of the model): its ValidationError becomes a
 * SettingsError naming the setting and the value's source.
 */
export function withSetting<T>(table: SettingsTable, resolved: Resolved, key: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ValidationError)
      throw invalid(table, resolved, key, err.message, { field: err.field });
    throw err;
  }
}

/** A SettingsError for `key` found wrong by a table-wide check. */
export function invalid(
  table: SettingsTable,
  resolved: Resolved,
  key: string,
  reason: string,
  context: Record<string, unknown> = {},
): SettingsError {
  const source = resolved.from[key] ?? 'default';
  return new SettingsError(`invalid setting ${settingLabel(table, key)} from ${source}: ${reason}`, {
    ...context,
    setting: key,
    from: source,
  });
}

/** A SettingsError: `key` must be set because of another setting. */
export function required(table: SettingsTable, key: string, because: string): SettingsError {
  return new SettingsError(`setting ${settingLabel(table, key)} is required ${because}`, { setting: key });
}
