/**
 * CC's v3 security-group rule validation (docs/cf-interfaces.md, "Security groups in Cloud Controller"), used by the simulated v3 write routes and
 * the change API (which may skip it to store invalid rules on purpose).
 */
import { isIPv4 } from 'node:net';
import { ValidationError } from '../lib/errors.js';
import { ipv4ToInt } from '../model/ip.js';
import type { CcRule } from './world.js';

const KEYS = new Set(['protocol', 'destination', 'ports', 'type', 'code', 'log', 'description']);
const PROTOCOLS = new Set(['tcp', 'udp', 'icmp', 'all']);

function ipv4Value(s: string): number | null {
  if (!isIPv4(s)) return null;
  const parts = s.split('.');
  if (parts.some((p) => p.length > 1 && p.startsWith('0'))) return null;
  return ipv4ToInt(s);
}

function validDestination(d: string): boolean {
  if (/\s/.test(d) || d.length === 0) return false;
  if (d.includes('-')) {
    const [a, b, ...rest] = d.split('-');
    if (rest.length > 0) return false;
    const x = ipv4Value(a ?? '');
    const y = ipv4Value(b ?? '');
    return x !== null && y !== null && x <= y;
  }
  if (d.includes('/')) {
    const [ip, bits, ...rest] = d.split('/');
    if (rest.length > 0 || !/^\d{1,2}$/.test(bits ?? '')) return false;
    return ipv4Value(ip ?? '') !== null && Number(bits) <= 32;
  }
  return ipv4Value(d) !== null;
}

function validPorts(ports: string): boolean {
  const port = (s: string) => /^\d+$/.test(s.trim()) && Number(s) >= 1 && Number(s) <= 65535;
  if (ports.includes('-')) {
    const parts = ports.split('-');
    if (parts.length !== 2) return false;
    const [a, b] = parts as [string, string];
    return port(a) && port(b) && Number(a) < Number(b);
  }
  return ports.split(',').every(port);
}

/** Throw a ValidationError naming `rules[i].<field>` for the first invalid rule. */
export function validateRules(rules: unknown): asserts rules is CcRule[] {
  if (!Array.isArray(rules)) throw new ValidationError('rules', rules, 'must be an array');
  rules.forEach((raw, i) => {
    const at = `rules[${i}].`;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw new ValidationError(`rules[${i}]`, raw, 'must be an object');
    }
    const r = raw as Record<string, unknown>;
    const unknown = Object.keys(r).filter((k) => !KEYS.has(k));
    if (unknown.length > 0)
      throw new ValidationError(`rules[${i}]`, unknown, `unknown field(s): ${unknown.join(', ')}`);
    if (typeof r.protocol !== 'string' || !PROTOCOLS.has(r.protocol)) {
      throw new ValidationError(`${at}protocol`, r.protocol, 'protocol must be tcp, udp, icmp, or all');
    }
    if (typeof r.destination !== 'string' || !validDestination(r.destination)) {
      throw new ValidationError(
        `${at}destination`,
        r.destination,
        'destination must be a valid CIDR, IP address, or IP address range',
      );
    }
    if (r.protocol === 'tcp' || r.protocol === 'udp') {
      if (typeof r.ports !== 'string' || !validPorts(r.ports)) {
        throw new ValidationError(
          `${at}ports`,
          r.ports,
          'ports must be a valid single port, comma separated list of ports, or range of ports',
        );
      }
    } else if (r.ports !== undefined) {
      throw new ValidationError(
        `${at}ports`,
        r.ports,
        `ports are not allowed for protocols of type ${r.protocol}`,
      );
    }
    if (r.protocol === 'icmp') {
      for (const k of ['type', 'code'] as const) {
        const v = r[k];
        if (!Number.isInteger(v) || (v as number) < -1 || (v as number) > 255) {
          throw new ValidationError(
            `${at}${k}`,
            v,
            `${k} is required for protocols of type ICMP and must be -1..255`,
          );
        }
      }
    } else {
      for (const k of ['type', 'code'] as const) {
        if (r[k] !== undefined)
          throw new ValidationError(`${at}${k}`, r[k], `${k} is allowed only for protocols of type ICMP`);
      }
    }
    if (r.log !== undefined && typeof r.log !== 'boolean')
      throw new ValidationError(`${at}log`, r.log, 'log must be a boolean');
    if (r.description !== undefined && typeof r.description !== 'string') {
      throw new ValidationError(`${at}description`, r.description, 'description must be a string');
    }
  });
}
