/**
 * Admission of a rule set, container by container, before it is rendered: a container the
 * dataplane cannot enforce (a handle or address it does not accept, an address or handle already
 * taken, a reference to a missing or unrenderable ASG rule set) is refused by itself and reported,
 * a NetIn mapping whose host port another container holds is left out, an invalid c2c entry is
 * left out; the rest of the rule set is applied. Only an invalid cell config refuses everything
 * (there is nothing per-container about it). Pure.
 *
 * The controller validates and resolves all of this already (src/controller/ingest, compute.ts);
 * this is what keeps a cell working when something still gets through (an older controller, a
 * CNI-time container, a stale saved state).
 */
import { ValidationError } from '../lib/errors.js';
import { validationReason } from '../model/errors.js';
import { containerIpv4 } from '../model/identifiers.js';
import type { C2CAllow, CellContainer, CellRuleSet } from '../model/types.js';
import { addC2CTo, asgChainMemo, emptyState, validateConfig, validateContainer } from './desired.js';

export interface Refusal {
  /** The container's handle, or `c2c[i]` for a c2c entry. */
  handle: string;
  reason: string;
}

export interface Admission {
  ruleSet: CellRuleSet;
  refused: Refusal[];
}

function reasonOf(err: unknown): string {
  const text = err instanceof ValidationError ? `${err.field}: ${validationReason(err)}` : String(err);
  return text.slice(0, 1000);
}

function handleText(c: unknown, i: number): string {
  const h = (c as { handle?: unknown } | null)?.handle;
  return typeof h === 'string' ? h.slice(0, 128) : `containers[${i}]`;
}

/** Splits `rs` into what can be enforced and what is refused (throws only for an invalid config). */
export function admitRuleSet(rs: CellRuleSet): Admission {
  validateConfig(rs.config);
  const refused: Refusal[] = [];
  const asgSets = rs.asgSets ?? {};
  const renderable = new Map<string, boolean>();
  const byIp = new Map<string, string>();
  const handles = new Set<string>();
  const ports = new Map<number, string>();
  const containers: CellContainer[] = [];
  (Array.isArray(rs.containers) ? rs.containers : []).forEach((c, i) => {
    const field = `containers[${i}]`;
    try {
      validateContainer(field, c);
      const ip = containerIpv4(c.ip)!;
      const owner = byIp.get(ip);
      if (owner !== undefined)
        throw new ValidationError(`${field}.ip`, c.ip, `address already used by ${owner}`);
      if (handles.has(c.handle)) throw new ValidationError(`${field}.handle`, c.handle, 'duplicate handle');
      if (!Object.hasOwn(asgSets, c.egress)) {
        throw new ValidationError(`${field}.egress`, c.egress, 'no such entry in asgSets');
      }
      if (!renderable.has(c.egress)) {
        try {
          asgChainMemo(c.egress, asgSets[c.egress]!, rs.config, `asgSets[${JSON.stringify(c.egress)}]`);
          renderable.set(c.egress, true);
        } catch (err) {
          renderable.set(c.egress, false);
          throw err;
        }
      } else if (!renderable.get(c.egress)) {
        throw new ValidationError(`${field}.egress`, c.egress, 'its ASG rule set cannot be rendered');
      }
      byIp.set(ip, c.handle);
      handles.add(c.handle);
      const netIn = c.netIn.filter((m) => {
        const holder = ports.get(m.hostPort);
        if (holder === undefined) {
          ports.set(m.hostPort, c.handle);
          return true;
        }
        refused.push({ handle: c.handle, reason: `host port ${m.hostPort} already mapped for ${holder}` });
        return false;
      });
      containers.push(netIn.length === c.netIn.length ? c : { ...c, netIn });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      refused.push({ handle: handleText(c, i), reason: reasonOf(err) });
    }
  });
  const c2c: C2CAllow[] = [];
  (Array.isArray(rs.c2c) ? rs.c2c : []).forEach((a, i) => {
    try {
      addC2CTo(emptyState(), { ...rs, c2c: [a] });
      c2c.push(a);
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      refused.push({ handle: `c2c[${i}]`, reason: reasonOf(err).replace(/^c2c\[0\]/, `c2c[${i}]`) });
    }
  });
  if (refused.length === 0) return { ruleSet: rs, refused };
  return { ruleSet: { ...rs, containers, c2c }, refused };
}
