/**
 * Deterministic names and link-layer addresses of one attachment, so a fresh process (DEL, GC,
 * CHECK) finds what ADD made without any state: the host veth is named from a hash of the handle,
 * MACs are derived from the container address (locally administered, unicast).
 */
import { createHash } from 'node:crypto';

/** Host-side veth names: `cfn` + 12 hex digits of sha256(handle) = 15 characters (IFNAMSIZ - 1). */
export const HOST_IF_PREFIX = 'cfn';
export const HOST_IF = /^cfn[0-9a-f]{12}$/;

export function hostIfName(handle: string): string {
  return HOST_IF_PREFIX + createHash('sha256').update(handle).digest('hex').slice(0, 12);
}

/** The gateway every container routes through (onlink), as silk-cni. */
export const GATEWAY = '169.254.0.1';

function macFrom(first: string, ip: string): string {
  const octets = ip.split('.').map((o) => Number(o).toString(16).padStart(2, '0'));
  return [first, first, ...octets].join(':');
}

/** Container-side MAC: `ee:ee:<ip octets>`. */
export function containerMac(ip: string): string {
  return macFrom('ee', ip);
}

/** Host-side MAC: `aa:aa:<ip octets>`. */
export function hostMac(ip: string): string {
  return macFrom('aa', ip);
}
