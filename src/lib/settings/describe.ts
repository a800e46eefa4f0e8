/** Settings for logs and `--check`: every value, secrets and URL credentials redacted. */
import { redactUrlCredentials } from '../redact.js';
import type { SettingsTable } from './spec.js';

export function describeSettings(table: SettingsTable, values: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of table.settings) {
    const v = (values as Record<string, unknown>)[spec.key];
    if (v === undefined) continue;
    out[spec.key] =
      spec.kind === 'secret'
        ? '[redacted]'
        : spec.kind === 'url' && typeof v === 'string'
          ? redactUrlCredentials(v)
          : v;
  }
  return out;
}
