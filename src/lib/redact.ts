/**
 * Credentials inside URLs (`redis://user:secret@host`, `https://token@host`) are never printed:
 * logs, `--check` output and error messages go through `redactUrlCredentials`. Field-level secrets
 * (passwords, tokens, keys) are pino's `redact` paths in log.ts.
 */

/** scheme://userinfo@ — the userinfo is what we hide (any scheme: redis, rediss, https, …). */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@"'?#]*)@/gi;

/**
 * `redis://user:secret@h` → `redis://user:***@h`; `redis://:secret@h` → `redis://:***@h`;
 * `https://token@h` → `https://***@h`. Text without credentials is returned as it is.
 */
export function redactUrlCredentials(text: string): string {
  if (!text.includes('@')) return text;
  return text.replace(URL_USERINFO, (_m, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    return colon >= 0 ? `${scheme}${userinfo.slice(0, colon)}:***@` : `${scheme}***@`;
  });
}
