/**
 * `--help` from a settings table: one option per setting (flag, placeholder, description with the
 * config-file key, the environment variable and the default), wrapped at 80 columns.
 */
import type { Command } from 'commander';
import { envNameOf, flagName, type SettingKind, type SettingSpec, type SettingsTable } from './spec.js';

/** Width of the help text, whatever the terminal: it is also pasted into docs and tickets. */
export const HELP_WIDTH = 80;

const PLACEHOLDERS: Record<SettingKind, string> = {
  string: '<value>',
  secret: '<secret>',
  url: '<url>',
  path: '<path>',
  int: '<n>',
  bool: '[bool]',
  list: '<a,b,…>',
  listen: '<host:port|off>',
  enum: '<value>',
  ip: '<ip>',
  ifname: '<name>',
};

function shownDefault(spec: SettingSpec): string {
  if (spec.def === undefined) return spec.required ? ' [required]' : '';
  const d = Array.isArray(spec.def) ? spec.def.join(',') : String(spec.def);
  return ` [default: ${d === '' ? '""' : d}]`;
}

/**
 * `text` wrapped at `width` columns on spaces (each paragraph separately); a word longer than the
 * width, e.g. a URL, stays whole on its own line.
 */
export function wrapText(text: string, width = HELP_WIDTH): string {
  return text
    .split('\n')
    .map((para) => {
      const lines: string[] = [];
      let line = '';
      for (const word of para.split(' ')) {
        if (line !== '' && line.length + 1 + word.length > width) {
          lines.push(line);
          line = word;
        } else {
          line = line === '' ? word : `${line} ${word}`;
        }
      }
      lines.push(line);
      return lines.join('\n');
    })
    .join('\n');
}

/** The commander flags and description of one setting. */
export function settingOption(
  table: SettingsTable,
  spec: SettingSpec,
): { flags: string; description: string } {
  return {
    flags: `${flagName(spec.key)} ${PLACEHOLDERS[spec.kind]}`,
    description: `${spec.describe} (${spec.key}; env ${envNameOf(table.envPrefix, spec.key)})${shownDefault(spec)}`,
  };
}

/** Adds every setting of the table as an option of `cmd`, and wraps the help at HELP_WIDTH. */
export function addSettingOptions(cmd: Command, table: SettingsTable): void {
  for (const spec of table.settings) {
    const { flags, description } = settingOption(table, spec);
    cmd.option(flags, description);
  }
  cmd.configureHelp({ helpWidth: HELP_WIDTH });
}

/** The values of the table's settings among commander's parsed options (set ones only). */
export function flagValues(table: SettingsTable, opts: Record<string, unknown>): Record<string, unknown> {
  const flags: Record<string, unknown> = {};
  for (const s of table.settings) if (opts[s.key] !== undefined) flags[s.key] = opts[s.key];
  return flags;
}
