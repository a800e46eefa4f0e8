/**
 * Canonical forms: a JSON serialisation with sorted keys (equal values → equal text), normalised
 * rule lists (order-free, duplicate-free) and their content hash, used as the key of shared ASG
 * rule sets (`CellRuleSet.asgSets`).
 */
import { createHash } from 'node:crypto';
import { mergeRanges } from './ip.js';
import { mergePortRanges } from './ports.js';
import type { EgressRule } from './types.js';

/**
 * JSON with object keys sorted (recursively) and no whitespace. Like JSON.stringify, undefined
 * object members are omitted and undefined array items become null. Non-finite numbers, bigints,
 * functions and symbols are rejected (they have no faithful JSON form).
 */
export function canonicalJson(value: unknown): string {
  return write(value, true);
}

function write(value: unknown, top: boolean): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonicalJson: non-finite number ${value}`);
      return JSON.stringify(value);
    case 'undefined':
      if (top) throw new TypeError('canonicalJson: undefined has no JSON form');
      return 'null';
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => write(v, false)).join(',')}]`;
      const obj = value as Record<string, unknown>;
      if (typeof (obj as { toJSON?: unknown }).toJSON === 'function') {
        return write((obj as { toJSON: () => unknown }).toJSON(), top);
      }
      const keys = Object.keys(obj)
        .filter((k) => obj[k] !== undefined)
        .sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${write(obj[k], false)}`).join(',')}}`;
    }
    default:
      throw new TypeError(`canonicalJson: cannot serialise a ${typeof value}`);
  }
}

/** One rule in normal form: destinations and ports merged, fixed key set (icmp only when set). */
export function normalizeRule(rule: EgressRule): EgressRule {
  const out: EgressRule = {
    protocol: rule.protocol,
    destinations: mergeRanges(rule.destinations),
    ports: mergePortRanges(rule.ports),
    log: rule.log === true,
  };
  if (rule.icmp) out.icmp = { type: rule.icmp.type, code: rule.icmp.code };
  return out;
}

/**
 * canonicalJson of a rule in normal form, written directly (the generic writer is the hot spot of
 * hashing large rule lists). Equal to `canonicalJson(rule)`; address texts and protocols need no
 * escaping.
 */
function ruleJson(r: EgressRule): string {
  const dests = r.destinations
    .map((d) => `{"end":"${d.end}","family":${d.family},"start":"${d.start}"}`)
    .join(',');
  const ports = r.ports.map((p) => `{"end":${p.end},"start":${p.start}}`).join(',');
  const icmp = r.icmp ? `"icmp":{"code":${r.icmp.code},"type":${r.icmp.type}},` : '';
  return `{"destinations":[${dests}],${icmp}"log":${r.log},"ports":[${ports}],"protocol":"${r.protocol}"}`;
}

function normalizedWithKeys(rules: readonly EgressRule[]): { key: string; rule: EgressRule }[] {
  const keyed = rules.map((r) => {
    const n = normalizeRule(r);
    return { key: ruleJson(n), rule: n };
  });
  keyed.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const out: { key: string; rule: EgressRule }[] = [];
  for (const k of keyed) {
    if (out.length === 0 || out[out.length - 1]!.key !== k.key) out.push(k);
  }
  return out;
}

/**
 * Normal form of a rule list: each rule normalised, sorted by canonical JSON, exact duplicates
 * removed. Rules are allow rules, so order and multiplicity never change what they allow.
 */
export function normalizeRules(rules: readonly EgressRule[]): EgressRule[] {
  return normalizedWithKeys(rules).map((k) => k.rule);
}

/** First 16 hex digits of sha256 over `text`. */
export function shortHash(text: string): string {
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/**
 * Content hash of a rule list: sha256 prefix of `canonicalJson(normalizeRules(rules))`. Equal lists
 * in any order (or with duplicates) → equal hash.
 */
export function ruleSetHash(rules: readonly EgressRule[]): string {
  return shortHash(
    `[${normalizedWithKeys(rules)
      .map((k) => k.key)
      .join(',')}]`,
  );
}
