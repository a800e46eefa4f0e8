/**
 * Overlay subnet leases (Silk's silk-controller; docs/silk.md, "Leases and the overlay"): every cell gets one subnet
 * of `subnetPrefixLength` from the overlay network (default 10.255.0.0/16 with /24; e.g.
 * 10.32.0.0/11 with /22 for 2,000+ cells). The first subnet is never handed out (Silk reserves it).
 *
 * In Redis: `lease:cells` (hash cell → Lease JSON), `lease:subnets` (hash subnet → owning cell) and
 * `lease:expiry` (sorted set cell → expiry ms). A lease lives `ttlMs` after its last renewal. A cell
 * keeps its record after expiry, so a returning cell gets its old subnet back unless it was given
 * away meanwhile: a new cell takes the lowest free subnet, and only when none is free the subnet of
 * the cell lease that expired longest ago. Routers' single-address leases (single-ip-lease.ts) live
 * in the same hashes, inside the reserved first subnet; a cell never takes one over. Claims are Lua compare-and-set, so concurrent acquires never
 * hand out one subnet twice.
 *
 * Redis is a cache here: the ground truth of a lease is the cell that holds it (its VXLAN device and
 * its containers' addresses). After Redis lost its data the table is rebuilt from the agents' claims:
 * - an agent acquires with `claim` = the subnet it holds; the claim is granted when no other cell
 *   holds that subnet with an unexpired lease, and refused with `CFNET_LEASE_CONFLICT` (409) when one
 *   does — the claimant is never moved silently;
 * - fresh subnets (cells without a claim) are handed out only once the recovery window has passed
 *   since the table was found empty (`lease:recovery` holds the time they open), so every live cell
 *   has had time to claim its subnet back first; until then such acquires get
 *   `CFNET_LEASE_RECOVERING` (503, with the time left). A table that still holds leases opens at once.
 * - `lease:released` keeps a tombstone of each release for one TTL, so agents can drop a released
 *   peer at once; every other peer stays programmed until its lease expires.
 * - an operator can force a cell onto a new subnet (`cfnet leases move`): `lease:move` names the
 *   cells whose next claim is answered with a fresh subnet (marked `moved`).
 *
 * Longer than ~400 lines: one Redis contract: leases, claims after state loss, the recovery window,
 * release tombstones and operator moves share one hash and its scripts.
 */
import type { Redis } from 'ioredis';
import { CfnetError, ValidationError } from '../lib/errors.js';
import { bigIntToIp, parseCidr, parseIp } from '../model/ip.js';
import type { Keys } from './keys.js';
import { defineStateScripts } from './scripts.js';

export interface Lease {
  cellId: string;
  /** e.g. 10.255.7.0/24 */
  subnet: string;
  underlayIp: string;
  /** MAC of the cell's VTEP, `ee:ee:` + the subnet's first four octets (Silk's scheme) unless given. */
  vtepMac: string;
  acquiredAt: number;
  renewedAt: number;
  expiresAt: number;
  /** Set on the answer that moves a cell to a new subnet because an operator asked for it. */
  moved?: 'operator';
  /** A router's single-address lease (`<addr>/32` of the reserved first subnet): single-ip-lease.ts. */
  kind?: 'single-ip';
  /** The router's policy tag (single-address leases only): cells accept it to app ports. */
  tag?: number;
}

/** A release, kept for one TTL so that agents drop the released peer at once. */
export interface ReleasedLease {
  cellId: string;
  subnet: string;
  releasedAt: number;
}

/** The overlay network cell subnets are leased from (Silk's `network`). */
export const DEFAULT_OVERLAY_NETWORK = '10.255.0.0/16';
/** Prefix length of each cell subnet (Silk's `subnet_prefix_length`). */
export const DEFAULT_SUBNET_PREFIX_LENGTH = 24;
/** Hours a lease lives after its last renewal (Silk's `subnet_lease_expiration_hours`). */
export const DEFAULT_LEASE_TTL_HOURS = 168;

export interface LeaseOptions {
  /** @defaultValue {@link DEFAULT_OVERLAY_NETWORK} */
  overlayNetwork?: string;
  /** @defaultValue {@link DEFAULT_SUBNET_PREFIX_LENGTH} */
  subnetPrefixLength?: number;
  /** @defaultValue {@link DEFAULT_LEASE_TTL_HOURS} in ms */
  ttlMs?: number;
  /**
   * After the lease table was found empty (a new foundation, or Redis lost its data), fresh subnets
   * are handed out only this long after, so that cells holding a subnet claim it back first.
   * @defaultValue {@link DEFAULT_LEASE_RECOVERY_WINDOW_MS} (agents retry at least every 30 s by default)
   */
  recoveryWindowMs?: number;
}

export const DEFAULT_LEASE_RECOVERY_WINDOW_MS = 90_000;

export type LeaseErrorCode =
  | 'CFNET_LEASE_EXHAUSTED'
  | 'CFNET_LEASE_MISMATCH'
  | 'CFNET_LEASE_UNKNOWN'
  | 'CFNET_LEASE_CONFLICT'
  | 'CFNET_LEASE_RECOVERING';

export class LeaseError extends CfnetError {
  constructor(
    code: LeaseErrorCode,
    message: string,
    readonly status: number,
    context: Record<string, unknown> = {},
  ) {
    super(code, message, context);
  }
}

interface LeaseRedis extends Redis {
  cfnetLeaseClaim(...args: string[]): Promise<number>;
  cfnetLeaseRenew(...args: string[]): Promise<number>;
  cfnetLeaseRelease(...args: string[]): Promise<number>;
  cfnetLeaseRecovery(...args: string[]): Promise<string>;
}

/**
 * The overlay network cut into cell subnets; throws a ValidationError naming the field when the
 * network is not IPv4 or the prefix length does not fit (settings validate with it too).
 */
export function subnetPlan(opts: Pick<LeaseOptions, 'overlayNetwork' | 'subnetPrefixLength'>): {
  network: string;
  prefixLength: number;
  base: bigint;
  count: number;
} {
  const net = parseCidr(opts.overlayNetwork ?? DEFAULT_OVERLAY_NETWORK, 'overlay_network');
  if (net.family !== 4) throw new ValidationError('overlay_network', opts.overlayNetwork, 'must be IPv4');
  const len = opts.subnetPrefixLength ?? DEFAULT_SUBNET_PREFIX_LENGTH;
  if (!Number.isInteger(len) || len <= net.prefix || len > 30) {
    throw new ValidationError(
      'subnet_prefix_length',
      len,
      `must be an integer greater than the overlay prefix (/${net.prefix}) and at most 30`,
    );
  }
  return {
    network: `${net.network}/${net.prefix}`,
    prefixLength: len,
    base: parseIp(net.network).value,
    count: 2 ** (len - net.prefix),
  };
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export class LeaseManager {
  readonly network: string;
  readonly prefixLength: number;
  readonly ttlMs: number;
  readonly recoveryWindowMs: number;
  private readonly base: bigint;
  private readonly count: number;
  private readonly redis: LeaseRedis;

  constructor(
    redis: Redis,
    private readonly keys: Keys,
    opts: LeaseOptions = {},
  ) {
    const plan = subnetPlan(opts);
    this.network = plan.network;
    this.prefixLength = plan.prefixLength;
    this.base = plan.base;
    this.count = plan.count;
    this.ttlMs = opts.ttlMs ?? DEFAULT_LEASE_TTL_HOURS * 3600_000;
    this.recoveryWindowMs = opts.recoveryWindowMs ?? DEFAULT_LEASE_RECOVERY_WINDOW_MS;
    this.redis = redis as LeaseRedis;
    defineStateScripts(this.redis);
  }

  /** The first subnet: never a cell's, routers' single addresses come from it. */
  get reserved(): string {
    return this.subnetAt(0);
  }

  /** Subnets that can be handed out (all but the first). */
  get capacity(): number {
    return this.count - 1;
  }

  subnetAt(index: number): string {
    const size = 2n ** BigInt(32 - this.prefixLength);
    return `${bigIntToIp(this.base + BigInt(index) * size, 4)}/${this.prefixLength}`;
  }

  static vtepMacFor(subnet: string): string {
    const octets = subnet
      .split('/')[0]!
      .split('.')
      .map((o) => Number(o).toString(16).padStart(2, '0'));
    return `ee:ee:${octets.join(':')}`;
  }

  private keyArgs(): string[] {
    return [this.keys.leases, this.keys.leaseSubnets, this.keys.leaseExpiry];
  }

  private lease(
    cellId: string,
    subnet: string,
    underlayIp: string,
    vtepMac: string | undefined,
    acquiredAt: number,
    now: number,
  ): Lease {
    return {
      cellId,
      subnet,
      underlayIp,
      vtepMac: vtepMac ?? LeaseManager.vtepMacFor(subnet),
      acquiredAt,
      renewedAt: now,
      expiresAt: now + this.ttlMs,
    };
  }

  private validate(underlayIp: string, vtepMac?: string): void {
    const ip = parseIp(underlayIp, 'underlayIp');
    if (ip.family !== 4) throw new ValidationError('underlayIp', underlayIp, 'must be an IPv4 address');
    if (vtepMac !== undefined && !MAC_RE.test(vtepMac)) {
      throw new ValidationError('vtepMac', vtepMac, 'must be a lower-case MAC like ee:ee:0a:ff:01:00');
    }
  }

  async get(cellId: string): Promise<Lease | null> {
    const json = await this.redis.hget(this.keys.leases, cellId);
    return json ? (JSON.parse(json) as Lease) : null;
  }

  /**
   * The time (ms) from which fresh subnets may be handed out. Sets it on the first call after the
   * table was found empty (now + recovery window), or to now when the table still holds leases.
   */
  async recoveryOpensAt(now = Date.now()): Promise<number> {
    return Number(
      await this.redis.cfnetLeaseRecovery(
        this.keys.leaseRecovery,
        this.keys.leases,
        String(now),
        String(this.recoveryWindowMs),
      ),
    );
  }

  /**
   * A subnet as a claim: one of the plan's subnets, not the reserved first one. Throws a
   * ValidationError naming `subnet` otherwise.
   */
  checkClaim(subnet: string): string {
    const c = parseCidr(subnet, 'subnet');
    const size = 2n ** BigInt(32 - this.prefixLength);
    const offset = c.family === 4 ? parseIp(c.network).value - this.base : -1n;
    const index = offset >= 0n && offset % size === 0n ? Number(offset / size) : -1;
    if (
      c.prefix !== this.prefixLength ||
      index < 1 ||
      index >= this.count ||
      this.subnetAt(index) !== subnet
    ) {
      throw new ValidationError(
        'subnet',
        subnet,
        `must be one of the /${this.prefixLength} subnets of ${this.network} other than the first`,
      );
    }
    return this.subnetAt(index);
  }

  /**
   * Acquire (or re-acquire) the cell's lease.
   * - `claim` (the subnet the agent holds): granted unless another cell holds it with an unexpired
   *   lease (`CFNET_LEASE_CONFLICT`, 409); an operator's pending move answers with a fresh subnet.
   * - no claim: the cell's recorded subnet when it still owns it, else a fresh subnet — only once
   *   the recovery window is over (`CFNET_LEASE_RECOVERING`, 503, before).
   */
  async acquire(
    cellId: string,
    underlayIp: string,
    vtepMac?: string,
    claim?: string,
    now = Date.now(),
  ): Promise<Lease> {
    this.validate(underlayIp, vtepMac);
    const claimed = claim === undefined ? undefined : this.checkClaim(claim);
    const opensAt = await this.recoveryOpensAt(now);
    if (claimed !== undefined) {
      if (await this.redis.sismember(this.keys.leaseMoves, cellId)) {
        const l = await this.acquireFresh(cellId, underlayIp, vtepMac, opensAt, now, claimed);
        await this.redis.srem(this.keys.leaseMoves, cellId);
        return { ...l, moved: 'operator' };
      }
      return this.claimSubnet(cellId, claimed, underlayIp, vtepMac, now);
    }
    for (let attempt = 0; attempt < 20; attempt++) {
      const prev = await this.get(cellId);
      if (!prev || prev.kind !== undefined) break;
      if ((await this.redis.hget(this.keys.leaseSubnets, prev.subnet)) !== cellId) break;
      const l = this.lease(cellId, prev.subnet, underlayIp, vtepMac, prev.acquiredAt, now);
      const ok = await this.redis.cfnetLeaseRenew(
        ...this.keyArgs(),
        cellId,
        prev.subnet,
        JSON.stringify(l),
        String(l.expiresAt),
      );
      if (Number(ok) === 1) return l;
    }
    return this.acquireFresh(cellId, underlayIp, vtepMac, opensAt, now);
  }

  /**
   * Writes `l` if its subnet is still free, the cell's own, or held by `victim` with an expired
   * lease (CLAIM, compare-and-set); false when another acquire came first.
   */
  private async writeClaim(l: Lease, victim: string, now: number): Promise<boolean> {
    const ok = await this.redis.cfnetLeaseClaim(
      ...this.keyArgs(),
      l.cellId,
      l.subnet,
      JSON.stringify(l),
      String(l.expiresAt),
      victim,
      String(now),
    );
    return Number(ok) === 1;
  }

  /** The cell's claim of `subnet`: granted when free, its own, or held by an expired lease. */
  private async claimSubnet(
    cellId: string,
    subnet: string,
    underlayIp: string,
    vtepMac: string | undefined,
    now: number,
  ): Promise<Lease> {
    for (let attempt = 0; attempt < 20; attempt++) {
      const [owner, prevJson] = await Promise.all([
        this.redis.hget(this.keys.leaseSubnets, subnet),
        this.redis.hget(this.keys.leases, cellId),
      ]);
      let victim = '';
      if (owner && owner !== cellId) {
        const exp = await this.redis.zscore(this.keys.leaseExpiry, owner);
        if (exp !== null && Number(exp) > now) {
          throw new LeaseError(
            'CFNET_LEASE_CONFLICT',
            `cell ${cellId} claims ${subnet}, which cell ${owner} holds until ${new Date(Number(exp)).toISOString()}`,
            409,
            { cellId, subnet, holder: owner, holderExpiresAt: Number(exp) },
          );
        }
        victim = owner;
      }
      const prev = prevJson ? (JSON.parse(prevJson) as Lease) : null;
      const acquiredAt = prev && prev.subnet === subnet ? prev.acquiredAt : now;
      const l = this.lease(cellId, subnet, underlayIp, vtepMac, acquiredAt, now);
      if (await this.writeClaim(l, victim, now)) return l;
    }
    throw new LeaseError(
      'CFNET_LEASE_EXHAUSTED',
      `could not claim ${subnet} for cell ${cellId} (contention)`,
      503,
      {
        cellId,
        subnet,
      },
    );
  }

  /** A subnet the cell did not hold: the lowest free one, else the one expired longest ago. */
  private async acquireFresh(
    cellId: string,
    underlayIp: string,
    vtepMac: string | undefined,
    opensAt: number,
    now: number,
    avoid?: string,
  ): Promise<Lease> {
    if (now < opensAt) {
      throw new LeaseError(
        'CFNET_LEASE_RECOVERING',
        `the lease table is being rebuilt from the cells' claims; new subnets are handed out in ${opensAt - now} ms`,
        503,
        { cellId, retryAfterMs: opensAt - now },
      );
    }
    for (let attempt = 0; attempt < 20; attempt++) {
      const taken = new Set(Object.keys(await this.redis.hgetall(this.keys.leaseSubnets)));
      if (avoid) taken.add(avoid);
      let subnet: string | null = null;
      for (let i = 1; i < this.count && subnet === null; i++) {
        const s = this.subnetAt(i);
        if (!taken.has(s)) subnet = s;
      }
      let victim = '';
      if (subnet === null) {
        // the cell lease that expired longest ago (a router's expired address is no cell subnet)
        const expired = await this.redis.zrangebyscore(this.keys.leaseExpiry, '-inf', String(now));
        let v: string | undefined;
        let vl: Lease | null = null;
        for (const e of expired) {
          const l = await this.get(e);
          if (l && l.kind === undefined) {
            v = e;
            vl = l;
            break;
          }
        }
        if (!v || !vl) {
          throw new LeaseError(
            'CFNET_LEASE_EXHAUSTED',
            `no free overlay subnet in ${this.network} for cell ${cellId}`,
            503,
            {
              cellId,
              network: this.network,
            },
          );
        }
        victim = v;
        subnet = vl.subnet;
      }
      const l = this.lease(cellId, subnet, underlayIp, vtepMac, now, now);
      if (await this.writeClaim(l, victim, now)) return l;
    }
    throw new LeaseError(
      'CFNET_LEASE_EXHAUSTED',
      `could not claim a subnet for cell ${cellId} (contention)`,
      503,
      {
        cellId,
      },
    );
  }

  /** Renew: the subnet must be the cell's current lease (409 otherwise, like Silk's mismatch). */
  async renew(
    cellId: string,
    subnet: string,
    underlayIp: string,
    vtepMac?: string,
    now = Date.now(),
  ): Promise<Lease> {
    this.validate(underlayIp, vtepMac);
    await this.recoveryOpensAt(now);
    if (await this.redis.sismember(this.keys.leaseMoves, cellId)) {
      throw new LeaseError('CFNET_LEASE_MISMATCH', `an operator moves cell ${cellId} to a new subnet`, 409, {
        cellId,
        subnet,
      });
    }
    const prev = await this.get(cellId);
    if (!prev) throw new LeaseError('CFNET_LEASE_UNKNOWN', `cell ${cellId} holds no lease`, 404, { cellId });
    const l: Lease = {
      ...this.lease(cellId, subnet, underlayIp, vtepMac, prev.acquiredAt, now),
      // a router's lease stays one (its kind and tag are the acquire's)
      ...(prev.kind ? { kind: prev.kind } : {}),
      ...(prev.tag !== undefined ? { tag: prev.tag } : {}),
    };
    const ok = Number(
      await this.redis.cfnetLeaseRenew(
        ...this.keyArgs(),
        cellId,
        subnet,
        JSON.stringify(l),
        String(l.expiresAt),
      ),
    );
    if (ok === 1) return l;
    if (ok === 0)
      throw new LeaseError('CFNET_LEASE_UNKNOWN', `cell ${cellId} holds no lease`, 404, { cellId });
    throw new LeaseError(
      'CFNET_LEASE_MISMATCH',
      `cell ${cellId} does not hold ${subnet} (it holds ${prev.subnet})`,
      409,
      {
        cellId,
        subnet,
        held: prev.subnet,
      },
    );
  }

  async release(cellId: string, now = Date.now()): Promise<boolean> {
    return (
      Number(
        await this.redis.cfnetLeaseRelease(...this.keyArgs(), this.keys.leaseReleased, cellId, String(now)),
      ) === 1
    );
  }

  /**
   * Operator: move the cell to a fresh subnet at its next lease request (its containers on the old
   * subnet lose overlay connectivity: only for a cell that must leave a conflicting subnet).
   */
  async requestMove(cellId: string): Promise<void> {
    await this.redis.sadd(this.keys.leaseMoves, cellId);
  }

  /** Every lease not expired at `now`. */
  async list(now = Date.now()): Promise<Lease[]> {
    const cells = await this.redis.zrangebyscore(this.keys.leaseExpiry, String(now), '+inf');
    if (cells.length === 0) return [];
    const jsons = await this.redis.hmget(this.keys.leases, ...cells);
    return jsons
      .filter((j): j is string => j !== null)
      .map((j) => JSON.parse(j) as Lease)
      .sort((a, b) => (a.cellId < b.cellId ? -1 : a.cellId > b.cellId ? 1 : 0));
  }

  /** Releases of the last TTL (older tombstones are removed here). */
  async released(now = Date.now()): Promise<ReleasedLease[]> {
    const all = await this.redis.hgetall(this.keys.leaseReleased);
    const out: ReleasedLease[] = [];
    const old: string[] = [];
    for (const [cell, json] of Object.entries(all)) {
      const r = JSON.parse(json) as ReleasedLease;
      if (r.releasedAt + this.ttlMs < now) old.push(cell);
      else out.push(r);
    }
    if (old.length > 0) await this.redis.hdel(this.keys.leaseReleased, ...old);
    return out.sort((a, b) => (a.cellId < b.cellId ? -1 : a.cellId > b.cellId ? 1 : 0));
  }
}
