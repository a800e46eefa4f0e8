/**
 * Single-address leases (Silk's `single_ip_only`): a router that is no Diego cell (gorouter, an
 * Istio ingress VM) joins the overlay with one address, `<addr>/32`, from the overlay's first
 * subnet — the subnet cells never get (lease-store.ts skips it). The VTEP of such a lease is the
 * address itself and its MAC `ee:ee:` + its four octets, so cells program it like any peer.
 *
 * The records share the cell leases' hashes (`lease:cells`, `lease:subnets`, `lease:expiry`): renew,
 * release, listing and expiry work unchanged, and the peers' listing carries routers too. What
 * differs is the choice of the address, made in one Lua step (lease-claim-single.lua) so that two
 * routers acquiring at once never share an address; an expired router's address is given away
 * only when no address is free. A lease records `kind: 'single-ip'` and the router `tag` the
 * controller obtained from the policy server, which cells read from the listing.
 */
import type { Redis } from 'ioredis';
import { ValidationError } from '../lib/errors.js';
import { parseIp } from '../model/ip.js';
import type { Keys } from './keys.js';
import { type Lease, LeaseError } from './lease-store.js';
import { defineStateScripts } from './scripts.js';

interface SingleIpRedis extends Redis {
  cfnetLeaseClaimSingle(...args: string[]): Promise<[number, string?]>;
}

/** What the single-address leases need of the lease manager's plan. */
export interface SingleIpPlan {
  /** The reserved subnet, e.g. 10.255.0.0/24 (the plan's first subnet). */
  reserved: string;
  ttlMs: number;
}

/** The lease kind routers hold. */
export const SINGLE_IP_KIND = 'single-ip';

export interface SingleIpRequest {
  cellId: string;
  underlayIp: string;
  /** The router's tag (the policy server's, type `router`); recorded on the lease. */
  tag: number;
  /** The address the router holds (`a.b.c.d/32`), claimed back after the controller lost it. */
  claim?: string;
  now?: number;
}

export class SingleIpLeases {
  private readonly redis: SingleIpRedis;
  private readonly base: bigint;
  private readonly size: bigint;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    private readonly plan: SingleIpPlan,
  ) {
    this.redis = redis as SingleIpRedis;
    defineStateScripts(this.redis);
    const [net, len] = plan.reserved.split('/') as [string, string];
    this.base = parseIp(net).value;
    this.size = 2n ** BigInt(32 - Number(len));
  }

  /** Addresses a router may get: all of the reserved subnet but its first and last. */
  get capacity(): number {
    return Number(this.size) - 2;
  }

  /** An address as a claim: `a.b.c.d/32` inside the reserved subnet (not its first or last). */
  checkClaim(claim: string): string {
    const m = /^(\d{1,3}(?:\.\d{1,3}){3})\/32$/.exec(claim);
    const off = m ? parseIp(m[1]!).value - this.base : -1n;
    if (!m || off < 1n || off > this.size - 2n) {
      throw new ValidationError(
        'subnet',
        claim,
        `must be an address /32 of ${this.plan.reserved} (routers' subnet)`,
      );
    }
    return claim;
  }

  /** Acquires (or re-acquires, or claims back) the router's single-address lease. */
  async acquire(req: SingleIpRequest): Promise<Lease> {
    const now = req.now ?? Date.now();
    const claim = req.claim === undefined ? '' : this.checkClaim(req.claim);
    const ip = parseIp(req.underlayIp, 'underlayIp');
    if (ip.family !== 4) throw new ValidationError('underlayIp', req.underlayIp, 'must be an IPv4 address');
    if (!Number.isInteger(req.tag) || req.tag < 1 || req.tag > 0xffff) {
      throw new ValidationError('tag', req.tag, 'must be a policy tag of 1..65535 (a VXLAN GBP id)');
    }
    const prev = await this.redis.hget(this.keys.leases, req.cellId);
    const prevLease = prev ? (JSON.parse(prev) as Lease) : null;
    const template: Lease = {
      cellId: req.cellId,
      subnet: '__SUBNET__',
      underlayIp: req.underlayIp,
      vtepMac: '__MAC__',
      acquiredAt: prevLease?.kind === SINGLE_IP_KIND ? prevLease.acquiredAt : now,
      renewedAt: now,
      expiresAt: now + this.plan.ttlMs,
      kind: SINGLE_IP_KIND,
      tag: req.tag,
    };
    const [code, detail] = await this.redis.cfnetLeaseClaimSingle(
      this.keys.leases,
      this.keys.leaseSubnets,
      this.keys.leaseExpiry,
      req.cellId,
      String(this.base),
      '1',
      String(this.size - 2n),
      JSON.stringify(template),
      String(template.expiresAt),
      String(now),
      claim,
    );
    if (Number(code) === 1) {
      const subnet = String(detail);
      const octets = subnet
        .split('/')[0]!
        .split('.')
        .map((o) => Number(o).toString(16).padStart(2, '0'));
      return { ...template, subnet, vtepMac: `ee:ee:${octets.join(':')}` };
    }
    if (Number(code) === -1) {
      throw new LeaseError(
        'CFNET_LEASE_CONFLICT',
        `router ${req.cellId} claims ${claim}, which ${detail} holds`,
        409,
        {
          cellId: req.cellId,
          subnet: claim,
          holder: detail,
        },
      );
    }
    throw new LeaseError(
      'CFNET_LEASE_EXHAUSTED',
      `no free router address in ${this.plan.reserved} for ${req.cellId}`,
      503,
      { cellId: req.cellId, network: this.plan.reserved },
    );
  }
}
