/**
 * The overlay subnet leases: `POST /v1/cells/{cell}/lease/acquire|renew|release` and
 * `GET /v1/leases`.
 *
 * - acquire `{underlayIp, vtepMac?, subnet?, singleIp?}` → 200 Lease. `subnet` is the agent's claim
 *   of the subnet it holds (409 `CFNET_LEASE_CONFLICT` when another live cell holds it; without a
 *   claim 503 `CFNET_LEASE_RECOVERING` with `retry-after` while the lease table is being rebuilt).
 *   `singleIp` (Silk's `single_overlay_ip`): a router's single address `<addr>/32` from the reserved
 *   first subnet, answered with `kind: 'single-ip'` and the router `tag` the controller got from the
 *   policy server (503 `CFNET_ROUTER_TAG_UNAVAILABLE` while it cannot).
 * - renew `{subnet, underlayIp, vtepMac?}` → 200 Lease; 404 `CFNET_LEASE_UNKNOWN`, 409
 *   `CFNET_LEASE_MISMATCH`.
 * - release (body ignored; the agent sends `{}`) → 200 `{released}`.
 * - leases → 200 `{leases: Lease[], released: ReleasedLease[]}`: every live lease (the agent's
 *   VXLAN peers) and the releases of the last TTL. A client drops a malformed entry by itself and
 *   keeps the rest: one bad peer must not cost the cell its whole overlay.
 * Any lease request: 403 `CFNET_LEASE_FOREIGN_UNDERLAY` when `underlayIp` is not the caller's own.
 */
import { z } from 'zod';

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const CIDR4 = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IP4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export const AcquireBody = z.object({
  underlayIp: z.string(),
  vtepMac: z.string().optional(),
  /** The subnet the agent holds and claims back. */
  subnet: z.string().optional(),
  /** A router's single-address lease rather than a cell subnet. */
  singleIp: z.boolean().optional(),
});
export type AcquireBody = z.infer<typeof AcquireBody>;

export const RenewBody = z.object({
  subnet: z.string(),
  underlayIp: z.string(),
  vtepMac: z.string().optional(),
});
export type RenewBody = z.infer<typeof RenewBody>;

/** An overlay subnet lease as the controller hands it out (Silk's lease plus the cell id). */
export const LeaseAnswer = z.object({
  cellId: z.string().min(1),
  /** e.g. 10.255.7.0/24 */
  subnet: z.string().regex(CIDR4),
  underlayIp: z.string().regex(IP4),
  /** Compared and programmed in lower case. */
  vtepMac: z
    .string()
    .transform((s) => s.toLowerCase())
    .pipe(z.string().regex(MAC)),
  acquiredAt: z.number().optional(),
  renewedAt: z.number().optional(),
  expiresAt: z.number().optional(),
  /** Set when an operator moved the cell to this (new) subnet. */
  moved: z.literal('operator').optional(),
  /** A router's single-address lease (`subnet` is `<addr>/32`). */
  kind: z.literal('single-ip').optional(),
  /** The router's tag (single-address leases): the VXLAN GBP id of its overlay packets. */
  tag: z.number().int().min(1).max(0xffff).optional(),
});
/** A lease as a client holds it (after validation). */
export type OverlayLease = z.output<typeof LeaseAnswer>;

/** A lease an agent released (the controller keeps these for one lease TTL). */
export const ReleasedLease = z.object({
  cellId: z.string(),
  subnet: z.string().regex(CIDR4),
  releasedAt: z.number(),
});
export type ReleasedLease = z.output<typeof ReleasedLease>;

export const ReleaseAnswer = z.object({ released: z.boolean() });
export type ReleaseAnswer = z.infer<typeof ReleaseAnswer>;

/** A list whose malformed entries are dropped one by one (see the module comment). */
function eachValid<T extends z.ZodType>(item: T) {
  return z
    .array(item.nullable().catch(null))
    .transform((list) => list.filter((x): x is NonNullable<typeof x> => x !== null));
}

export const LeaseListingAnswer = z.object({
  leases: eachValid(LeaseAnswer),
  /** Absent from controllers older than release tombstones: no releases. */
  released: eachValid(ReleasedLease)
    .optional()
    .transform((r) => r ?? []),
});
export type LeaseListing = z.output<typeof LeaseListingAnswer>;
