/**
 * The CF policy server's internal API responses (docs/cf-interfaces.md, "Policy server internal API") parsed into domain types:
 * - `GET /networking/v1/internal/policies` → `C2CPolicy[]`
 * - `GET /networking/v1/internal/policies_last_updated` → bigint (UnixNano, above 2^53)
 * - `GET /networking/v1/internal/security_groups` → `{ next, groups: SecurityGroup[] }`
 * Each accepts the raw response text or an already-decoded value (except policies_last_updated,
 * which must be the raw text: a JSON number that large loses precision in JSON.parse).
 */
import { ValidationError } from '../lib/errors.js';
import { parsePolicyServerRules, type RuleListOptions } from './asg-rule.js';
import { checkGuid, checkTag } from './identifiers.js';
import { parsePortRangeObject } from './ports.js';
import type { C2CPolicy, SecurityGroup } from './types.js';

function decode(json: unknown, field: string): unknown {
  if (typeof json !== 'string') return json;
  try {
    return JSON.parse(json);
  } catch (err) {
    throw new ValidationError(
      field,
      json.length > 80 ? `${json.slice(0, 80)}…` : json,
      `not valid JSON (${(err as Error).message})`,
    );
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function requireString(obj: Record<string, unknown>, key: string, field: string): string {
  const v = obj[key];
  if (typeof v !== 'string' || v === '')
    throw new ValidationError(field, v, `${key} must be a non-empty string`);
  return v;
}

/**
 * A policy-server tag: hex digits (the server writes upper case, `tag_length`×2 digits, e.g. "0001").
 * Case-insensitive; 1..8 digits; 0 is rejected (it would be "no mark" in the packet).
 */
export function parseTag(value: unknown, field = 'tag'): number {
  if (typeof value !== 'string' || !/^[0-9A-Fa-f]{1,8}$/.test(value)) {
    throw new ValidationError(field, value, 'tag must be a string of 1 to 8 hex digits');
  }
  const n = Number.parseInt(value, 16);
  if (n === 0) throw new ValidationError(field, value, 'tag 0 is not a valid policy tag');
  return n;
}

/** Tag as the policy server writes it: upper-case hex, zero-padded to `bytes`×2 digits. */
export function formatTag(tag: number, bytes = 2): string {
  return tag
    .toString(16)
    .toUpperCase()
    .padStart(bytes * 2, '0');
}

export interface PolicyListOptions {
  /**
   * Leave an invalid policy out by itself (reported here) instead of failing the whole listing:
   * one bad policy must not freeze c2c for the whole foundation.
   */
  onInvalid?: (err: ValidationError, index: number, raw: unknown) => void;
}

/** Body of `GET /networking/v1/internal/policies` (text or decoded). */
export function parseInternalPolicies(json: unknown, opts: PolicyListOptions = {}): C2CPolicy[] {
  const body = decode(json, 'policies');
  if (!isPlainObject(body))
    throw new ValidationError('policies', body, 'response must be an object {policies: [...]}');
  const list = body.policies ?? [];
  if (!Array.isArray(list)) throw new ValidationError('policies', list, 'policies must be an array');
  const out: C2CPolicy[] = [];
  list.forEach((p, i) => {
    try {
      out.push(parsePolicy(p, i));
    } catch (err) {
      if (!(err instanceof ValidationError) || !opts.onInvalid) throw err;
      opts.onInvalid(err, i, p);
    }
  });
  return out;
}

function parsePolicy(p: unknown, i: number): C2CPolicy {
  const at = `policies[${i}]`;
  if (!isPlainObject(p)) throw new ValidationError(at, p, 'a policy must be an object');
  const src = p.source;
  const dst = p.destination;
  if (!isPlainObject(src)) throw new ValidationError(`${at}.source`, src, 'source must be an object');
  if (!isPlainObject(dst))
    throw new ValidationError(`${at}.destination`, dst, 'destination must be an object');
  const protocol = dst.protocol;
  if (protocol !== 'tcp' && protocol !== 'udp') {
    throw new ValidationError(`${at}.destination.protocol`, protocol, 'protocol must be tcp or udp');
  }
  return {
    source: {
      appGuid: checkGuid(`${at}.source.id`, requireString(src, 'id', `${at}.source.id`)),
      tag: checkTag(`${at}.source.tag`, parseTag(src.tag, `${at}.source.tag`)),
    },
    destination: {
      appGuid: checkGuid(`${at}.destination.id`, requireString(dst, 'id', `${at}.destination.id`)),
      tag: checkTag(`${at}.destination.tag`, parseTag(dst.tag, `${at}.destination.tag`)),
      protocol,
      ports: parsePortRangeObject(dst.ports, `${at}.destination.ports`, 1),
    },
  };
}

/** Body of `GET /networking/v1/internal/policies_last_updated`: a bare integer (UnixNano). */
export function parsePoliciesLastUpdated(text: string): bigint {
  if (typeof text !== 'string') {
    throw new ValidationError(
      'policies_last_updated',
      text,
      'must be the raw response text (never a parsed number)',
    );
  }
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed)) {
    throw new ValidationError('policies_last_updated', text, 'must be a non-negative integer');
  }
  return BigInt(trimmed);
}

export interface InternalSecurityGroupsPage {
  /** Id of the first group not returned; 0 when there are no more. */
  next: number;
  groups: SecurityGroup[];
}

function stringList(v: unknown, field: string): string[] {
  if (v === undefined || v === null) return []; // a Go nil slice marshals as null
  if (!Array.isArray(v) || v.some((s) => typeof s !== 'string')) {
    throw new ValidationError(field, v, 'must be an array of strings');
  }
  return [...(v as string[])];
}

function bool(v: unknown, field: string): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new ValidationError(field, v, 'must be a boolean');
  return v;
}

/**
 * Body of `GET /networking/v1/internal/security_groups` (text or decoded). `rules` in each group is
 * a JSON-encoded string (decoded here). `opts.onInvalidRule` lets a caller skip bad rules instead of
 * failing the page.
 */
export function parseInternalSecurityGroups(
  json: unknown,
  opts: { onInvalidRule?: (err: ValidationError, group: string, index: number) => void } = {},
): InternalSecurityGroupsPage {
  const body = decode(json, 'security_groups');
  if (!isPlainObject(body)) {
    throw new ValidationError('security_groups', body, 'response must be an object {next, security_groups}');
  }
  const next = body.next ?? 0;
  if (typeof next !== 'number' || !Number.isSafeInteger(next) || next < 0) {
    throw new ValidationError('next', next, 'next must be a non-negative integer');
  }
  const list = body.security_groups ?? [];
  if (!Array.isArray(list))
    throw new ValidationError('security_groups', list, 'security_groups must be an array');
  const groups = list.map((g, i): SecurityGroup => {
    const at = `security_groups[${i}]`;
    if (!isPlainObject(g)) throw new ValidationError(at, g, 'a security group must be an object');
    const guid = requireString(g, 'guid', `${at}.guid`);
    const name = g.name ?? '';
    if (typeof name !== 'string') throw new ValidationError(`${at}.name`, name, 'name must be a string');
    const ruleOpts: RuleListOptions = { path: `${at}.rules` };
    const onInvalid = opts.onInvalidRule;
    if (onInvalid) ruleOpts.onInvalid = (err, index) => onInvalid(err, guid, index);
    return {
      guid,
      name,
      rules: parsePolicyServerRules(g.rules ?? '', ruleOpts),
      runningDefault: bool(g.running_default, `${at}.running_default`),
      stagingDefault: bool(g.staging_default, `${at}.staging_default`),
      runningSpaces: stringList(g.running_space_guids, `${at}.running_space_guids`),
      stagingSpaces: stringList(g.staging_space_guids, `${at}.staging_space_guids`),
    };
  });
  return { next, groups };
}
