/**
 * Every route and header of the controller's agent API, in one place: the controller registers
 * these paths (fastify patterns, `:cell` a parameter), the agent fills them in with `cellPath`.
 * The bodies and answers of each route are in the module of its group (rules, status, lease,
 * certificate); the error body every route shares is in errors.ts.
 */

export const ROUTES = {
  /** Long-poll of the cell's rule set: rules.ts. */
  rules: { method: 'GET', path: '/v1/cells/:cell/rules' },
  /** The agent's status report: status.ts. */
  status: { method: 'PUT', path: '/v1/cells/:cell/status' },
  /** Overlay subnet lease of the cell: lease.ts. */
  leaseAcquire: { method: 'POST', path: '/v1/cells/:cell/lease/acquire' },
  leaseRenew: { method: 'POST', path: '/v1/cells/:cell/lease/renew' },
  leaseRelease: { method: 'POST', path: '/v1/cells/:cell/lease/release' },
  /** Every live lease and the recent releases (not per cell: VXLAN peers): lease.ts. */
  leases: { method: 'GET', path: '/v1/leases' },
  /** The cell's next certificate: certificate.ts. */
  certificate: { method: 'POST', path: '/v1/cells/:cell/certificate' },
} as const satisfies Record<string, { method: 'GET' | 'PUT' | 'POST'; path: `/v1/${string}` }>;

export type RouteName = keyof typeof ROUTES;

/** Headers the API defines (lower case, as node:http hands them over). */
export const HEADERS = {
  /** On every rules answer (200 and 304): the cell's current version, 0 when nothing is stored. */
  version: 'x-cfnet-version',
  /** On 503 `CFNET_LEASE_RECOVERING` and 429 `CFNET_IDENTITY_THROTTLED`: seconds to wait. */
  retryAfter: 'retry-after',
  /** `no-store` on a certificate answer. */
  cacheControl: 'cache-control',
} as const;

/** The path of a route for one cell (`:cell` replaced by the encoded cell id). */
export function cellPath(path: string, cellId: string): string {
  return path.replace(':cell', encodeURIComponent(cellId));
}
