/**
 * Coercion and validation of one setting's value (zod): strings from the environment and flags
 * become the kind's type, JSON values from a config file are checked as they are.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { SettingSpec } from './spec.js';

export interface Listen {
  host: string;
  port: number;
}

const DEFAULT_PROTOCOLS = ['http:', 'https:', 'redis:', 'rediss:', 'redis+sentinel:', 'rediss+sentinel:'];
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;
const BOOLS: Record<string, boolean> = {
  true: true,
  false: false,
  '1': true,
  '0': false,
  yes: true,
  no: false,
};

function intSchema(spec: SettingSpec): z.ZodType {
  const { min, max } = spec;
  const range =
    max !== undefined ? `must be in ${min ?? Number.MIN_SAFE_INTEGER}..${max}` : `must be at least ${min}`;
  return z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v),
    z
      .number({ error: 'must be an integer' })
      .int('must be an integer')
      .refine((n) => (min === undefined || n >= min) && (max === undefined || n <= max), range),
  );
}

function listSchema(spec: SettingSpec): z.ZodType {
  return z.preprocess(
    (v) => {
      const items = typeof v === 'string' ? v.split(',') : v;
      return Array.isArray(items)
        ? items.map((x) => (typeof x === 'string' ? x.trim() : x)).filter((x) => x !== '')
        : items;
    },
    z
      .array(z.string({ error: 'must be a list of strings' }), { error: 'must be a comma-separated list' })
      .refine((l) => l.length >= (spec.min ?? 0), 'must name at least one value')
      .refine((l) => !l.some((x) => x.includes('\0')), 'must not contain NUL'),
  );
}

const boolSchema = z.preprocess(
  (v) => (typeof v === 'string' && v.toLowerCase() in BOOLS ? BOOLS[v.toLowerCase()] : v),
  z.boolean({ error: 'must be true or false' }),
);

const listenSchema = z.string({ error: 'must be host:port or "off"' }).transform((v, ctx) => {
  if (v === 'off' || v === '') return null;
  const m = /^(.*):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) {
    ctx.addIssue({ code: 'custom', message: 'must be host:port (port 0-65535) or "off"' });
    return z.NEVER;
  }
  return { host: m[1]!.replace(/^\[|\]$/g, '') || '0.0.0.0', port } satisfies Listen;
});

/** Checks of a non-empty string by kind; returns the reason it is wrong, or the value to keep. */
function checkString(spec: SettingSpec, s: string): { ok: string } | { reason: string } {
  switch (spec.kind) {
    case 'url': {
      let u: URL;
      try {
        u = new URL(s);
      } catch {
        return { reason: 'must be an absolute URL' };
      }
      const protocols = spec.protocols ?? DEFAULT_PROTOCOLS;
      if (!protocols.includes(u.protocol)) {
        return { reason: `must be an absolute URL (${protocols.map((p) => `${p}//`).join(', ')})` };
      }
      // a base URL: paths are appended to it
      return { ok: /^https?:$/.test(u.protocol) ? s.replace(/\/+$/, '') : s };
    }
    case 'path':
      if (s.includes('\0') || (spec.absolute && !s.startsWith('/'))) {
        return { reason: spec.absolute ? 'must be an absolute path' : 'must be a path' };
      }
      return { ok: s };
    case 'ip':
      return isIP(s) === 4 ? { ok: s } : { reason: 'must be an IPv4 address' };
    case 'ifname':
      return IFNAME.test(s) ? { ok: s } : { reason: 'must be an interface name (1-15 of [A-Za-z0-9_.-])' };
    case 'enum':
      return spec.choices?.includes(s) ? { ok: s } : { reason: `must be one of ${spec.choices?.join(', ')}` };
    default:
      return { ok: s };
  }
}

function stringSchema(spec: SettingSpec): z.ZodType {
  // a secret is taken byte for byte; anything else loses surrounding blanks (env files, YAML)
  const trim = spec.kind !== 'secret';
  return z.string({ error: 'must be a string' }).transform((v, ctx) => {
    const s = trim ? v.trim() : v;
    if (s === '') {
      if (spec.emptyOk) return '';
      ctx.addIssue({ code: 'custom', message: 'must not be empty' });
      return z.NEVER;
    }
    const r = checkString(spec, s);
    if ('ok' in r) return r.ok;
    ctx.addIssue({ code: 'custom', message: r.reason });
    return z.NEVER;
  });
}

/** The zod schema of one setting (built once per table entry). */
export function schemaOf(spec: SettingSpec): z.ZodType {
  switch (spec.kind) {
    case 'int':
      return intSchema(spec);
    case 'bool':
      return boolSchema;
    case 'list':
      return listSchema(spec);
    case 'listen':
      return listenSchema;
    default:
      return stringSchema(spec);
  }
}
