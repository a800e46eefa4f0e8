/** Plain-text rendering and parsing for the operator CLI: tables, durations, times. Pure functions. */
import { ValidationError } from '../lib/errors.js';

export { table } from '../lib/text-table.js';

/** `text` cut to `max` characters with an ellipsis. */
export function truncate(text: string, max: number): string {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length <= max ? t : `${t.slice(0, Math.max(0, max - 1))}…`;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `250ms`, `30s`, `10m`, `1h`, `7d`, `1h30m` → milliseconds. */
export function parseDuration(text: string, field = 'duration'): number {
  const t = text.trim();
  if (!/^(\d+(ms|s|m|h|d))+$/.test(t)) {
    throw new ValidationError(field, text, 'must be a duration like 30s, 10m, 1h, 2d or 1h30m');
  }
  let ms = 0;
  for (const m of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return ms;
}

/**
 * A point in time for `--since` / `--until`: a duration ago (`10m`, `1h30m`), an ISO-8601 time
 * (`2024-05-01T10:02:00Z`, a date alone is midnight UTC) or epoch milliseconds.
 */
export function parseTime(text: string, field = 'time', now = Date.now()): number {
  const t = text.trim();
  if (/^(\d+(ms|s|m|h|d))+$/.test(t)) return now - parseDuration(t, field);
  if (/^\d{10,16}$/.test(t)) return Number(t);
  if (/^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return ms;
  }
  throw new ValidationError(
    field,
    text,
    'must be a duration ago (10m, 1h30m), an ISO-8601 time (2024-05-01T10:02:00Z) or epoch milliseconds',
  );
}

/** 1234 → `1.2s`, 61000 → `1m1s`, 0 → `0`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  if (ms < 1000) return ms <= 0 ? '0' : `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const s = Math.round(ms / 1000);
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? `${s % 60}s` : ''}`;
  const m = Math.round(s / 60);
  if (m < 1440) return `${Math.floor(m / 60)}h${m % 60 ? `${m % 60}m` : ''}`;
  return `${Math.floor(m / 1440)}d${Math.floor((m % 1440) / 60)}h`;
}

/** Epoch ms → ISO-8601 with ms, '' for 0 / undefined. */
export function isoTime(ms: number | undefined | null): string {
  return ms ? new Date(ms).toISOString() : '';
}

/**
 * A rule-set version as people read it. A version is the Redis time (ms) of its write
 * (src/state/lua/ruleset-write.lua), a 13-digit number no one reads: tables show its time, UTC,
 * to the millisecond — `18:00:13.243Z` within a day of `now`, `2026-12-06 18:00:13.243Z` before.
 * Two versions of one cell compare as their times do. `-` for none (0); JSON keeps the number.
 */
export function versionText(version: number | undefined | null, now = Date.now()): string {
  if (!version) return '-';
  const iso = new Date(version).toISOString();
  return Math.abs(now - version) < 86_400_000 ? iso.slice(11) : iso.replace('T', ' ');
}

/** Epoch ms → `12s ago`, '' for 0 / undefined. */
export function ago(ms: number | undefined | null, now = Date.now()): string {
  return ms ? `${formatDuration(Math.max(0, now - ms))} ago` : '';
}

/** A positive integer option. */
export function parsePositiveInt(text: string, field: string): number {
  const n = Number(text);
  if (!/^\s*\d+\s*$/.test(text) || !Number.isSafeInteger(n) || n < 1) {
    throw new ValidationError(field, text, 'must be a positive integer');
  }
  return n;
}
