/**
 * CAPI v3 security group resources (docs/cf-interfaces.md, "Security groups in Cloud Controller") parsed into `SecurityGroup`.
 * The v2 shape is not parsed here: its space lists may be omitted (more than 50 members) and must
 * be paged separately, which is the CAPI client's job.
 */
import { ValidationError } from '../lib/errors.js';
import { parseCapiRules, type RuleListOptions } from './asg-rule.js';
import type { SecurityGroup } from './types.js';

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function relationshipGuids(rel: unknown, field: string): string[] {
  if (rel === undefined || rel === null) return [];
  if (!isPlainObject(rel) || !Array.isArray(rel.data)) {
    throw new ValidationError(field, rel, 'must be an object {data: [{guid}]}');
  }
  return rel.data.map((d, i) => {
    if (!isPlainObject(d) || typeof d.guid !== 'string' || d.guid === '') {
      throw new ValidationError(
        `${field}.data[${i}].guid`,
        isPlainObject(d) ? d.guid : d,
        'must be a non-empty string',
      );
    }
    return d.guid;
  });
}

/** One `GET /v3/security_groups` resource. Errors name e.g. `rules[2].ports`. */
export function parseCapiV3SecurityGroup(
  resource: unknown,
  opts: Omit<RuleListOptions, 'path'> & { path?: string } = {},
): SecurityGroup {
  const base = opts.path;
  const f = (k: string) => (base ? `${base}.${k}` : k);
  if (!isPlainObject(resource))
    throw new ValidationError(base || 'security_group', resource, 'must be an object');
  const { guid, name } = resource;
  if (typeof guid !== 'string' || guid === '')
    throw new ValidationError(f('guid'), guid, 'guid must be a non-empty string');
  if (typeof name !== 'string') throw new ValidationError(f('name'), name, 'name must be a string');
  const ge = resource.globally_enabled ?? {};
  if (!isPlainObject(ge))
    throw new ValidationError(f('globally_enabled'), ge, 'must be an object {running, staging}');
  for (const k of ['running', 'staging'] as const) {
    if (ge[k] !== undefined && typeof ge[k] !== 'boolean') {
      throw new ValidationError(f(`globally_enabled.${k}`), ge[k], 'must be a boolean');
    }
  }
  const rels = resource.relationships ?? {};
  if (!isPlainObject(rels)) throw new ValidationError(f('relationships'), rels, 'must be an object');
  return {
    guid,
    name,
    rules: parseCapiRules(resource.rules ?? [], { ...opts, path: f('rules') }),
    runningDefault: ge.running === true,
    stagingDefault: ge.staging === true,
    runningSpaces: relationshipGuids(rels.running_spaces, f('relationships.running_spaces')),
    stagingSpaces: relationshipGuids(rels.staging_spaces, f('relationships.staging_spaces')),
  };
}
