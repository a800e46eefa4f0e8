/**
 * What an identifier, a port or a container address may be: the one source of truth shared by the
 * controller's ingest (BBS, CAPI, policy server, agent reports), the agent API, the agent and the
 * dataplane. A value accepted here can reach nft text (comments, log prefixes, element keys) and
 * Redis keys without escaping; anything else is refused where it enters, item by item.
 *
 * - handle (Garden handle = ActualLRP instance guid = task guid = CNI ContainerID): 1..128
 *   characters of [A-Za-z0-9_.:-], starting alphanumeric (the CNI spec's ContainerID rule, bounded,
 *   plus `:`: an attachment on an interface other than eth0 is `<container ID>:<ifname>`,
 *   src/cni/attachment.ts; `:` is safe in nft's quoted comments and log prefixes);
 * - cell id (Diego cell id, BOSH instance name): 1..128 characters of [A-Za-z0-9_.-], starting
 *   alphanumeric (it is part of Redis keys and certificate names);
 * - guid (app, space, org, process guid, policy server id): 1..128 characters of [A-Za-z0-9_.-]
 *   (CF's guids are UUIDs; the bound keeps one record from bloating every rule set);
 * - port: integer 1..65535 (0..65535 where Garden allows 0); port range: start <= end;
 * - container address: IPv4 in canonical dotted-quad text (containers are IPv4 only);
 * - policy tag: 1..0xffff (it travels in the 16-bit VXLAN GBP id).
 * CIDRs and destination lists are parsed by ip.ts (parseCidr, parseDestinations).
 */
import { ValidationError } from '../lib/errors.js';
import { isCanonicalIpv4 } from './ip.js';
import { MAX_PORT, MIN_PORT } from './ports.js';

export const MAX_IDENTIFIER_LENGTH = 128;
export const HANDLE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
export const CELL_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
export const GUID_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
export const MAX_TAG = 0xffff;

const HANDLE_RULE = '1-128 characters of [A-Za-z0-9_.:-], starting alphanumeric';
const CELL_ID_RULE = '1-128 characters of [A-Za-z0-9_.-], starting alphanumeric';

function describe(v: unknown): string {
  if (typeof v !== 'string') return `a ${v === null ? 'null' : typeof v}`;
  if (v.length > MAX_IDENTIFIER_LENGTH) return `${v.length} characters`;
  return '';
}

export function isHandle(v: unknown): v is string {
  return typeof v === 'string' && HANDLE_PATTERN.test(v);
}

/** A container handle; throws ValidationError naming `field`. */
export function checkHandle(field: string, v: unknown): string {
  if (!isHandle(v)) {
    const what = describe(v);
    throw new ValidationError(field, v, `handle must be ${HANDLE_RULE}${what ? ` (got ${what})` : ''}`);
  }
  return v;
}

export function isCellId(v: unknown): v is string {
  return typeof v === 'string' && CELL_ID_PATTERN.test(v);
}

export function checkCellId(field: string, v: unknown): string {
  if (!isCellId(v)) throw new ValidationError(field, v, `cell id must be ${CELL_ID_RULE}`);
  return v;
}

export function isGuid(v: unknown): v is string {
  return typeof v === 'string' && GUID_PATTERN.test(v);
}

/** An app/space/org/process guid or policy server id. `optional`: '' is accepted (unknown). */
export function checkGuid(field: string, v: unknown, optional = false): string {
  if (optional && v === '') return v;
  if (!isGuid(v)) throw new ValidationError(field, v, 'guid must be 1-128 characters of [A-Za-z0-9_.-]');
  return v;
}

export function isPort(v: unknown, min = MIN_PORT): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= MAX_PORT;
}

/** A port number `min`..65535 (min is 1 for CF sources; Garden allows 0). */
export function checkPort(field: string, v: unknown, min = MIN_PORT): number {
  if (!isPort(v, min)) throw new ValidationError(field, v, `must be an integer in ${min}..${MAX_PORT}`);
  return v;
}

export function isTag(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_TAG;
}

export function checkTag(field: string, v: unknown): number {
  if (!isTag(v)) throw new ValidationError(field, v, `policy tag must be an integer in 1..${MAX_TAG}`);
  return v;
}

/** Canonical text of a container address (IPv4), or null. */
export function containerIpv4(v: unknown): string | null {
  // every accepted IPv4 text is canonical already (parseIp refuses leading zeros)
  return typeof v === 'string' && isCanonicalIpv4(v) ? v : null;
}

export function isContainerIp(v: unknown): v is string {
  return containerIpv4(v) !== null;
}

/** A container address: canonical IPv4 text; throws ValidationError naming `field`. */
export function checkContainerIp(field: string, v: unknown): string {
  const ip = containerIpv4(v);
  if (ip === null) throw new ValidationError(field, v, 'not an IPv4 address');
  return ip;
}
