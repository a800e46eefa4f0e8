/**
 * Overlay subnet leases (Silk's silk-controller, silk-behaviour.md §4): every cell gets one subnet
 * of `subnetPrefixLength` from the overlay network (default 10.255.0.0/16 with /24; e.g.
 * 10.32.0.0/11 with /22 for 2,000+ cells). The first subnet is never handed out (Silk reserves it).
 *
 * In Redis: `lease:cells` (hash cell → Lease JSON), `lease:subnets` (hash subnet → owning cell) and
 * `lease:expiry` (sorted set cell → expiry ms). A lease lives `ttlMs` after its last renewal. A cell
 * keeps its record after expiry, so a returning cell gets its old subnet back unless it was given
 * away meanwhile: a new cell takes the lowest free subnet, and only when none is free the subnet of
 * the lease that expired longest ago. Claims are Lua compare-and-set, so concurrent acquires never
 * hand out one subnet twice.
 */
import type { Redis } from 'ioredis';
import { CfnetError, ValidationError } from '../../lib/errors.js';
import { bigIntToIp, parseCidr, parseIp } from '../../model/ip.js';
import type { Keys } from '../keys.js';

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
}

export interface LeaseOptions {
  overlayNetwork?: string;
  subnetPrefixLength?: number;
  /** Default 168 h (Silk's `subnet_lease_expiration_hours`). */
  ttlMs?: number;
}

export class LeaseError extends CfnetError {
  constructor(
    code: 'CFNET_LEASE_EXHAUSTED' | 'CFNET_LEASE_MISMATCH' | 'CFNET_LEASE_UNKNOWN',
    message: string,
    readonly status: number,
    context: Record<string, unknown> = {},
  ) {
    super(code, message, context);
  }
}

const CLAIM = `
-- KEYS: cells, subnets, expiry; ARGV: cell, subnet, leaseJson, expiresAt, victim ('' = free subnet), now
local owner = redis.call('HGET', KEYS[2], ARGV[2])
if ARGV[5] == '' then
  if owner then return 0 end
else
  if owner ~= ARGV[5] then return 0 end
  local exp = redis.call('ZSCORE', KEYS[3], ARGV[5])
  if exp and tonumber(exp) > tonumber(ARGV[6]) then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[5])
  redis.call('ZREM', KEYS[3], ARGV[5])
end
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local prev = cjson.decode(old)
  if prev.subnet ~= ARGV[2] and redis.call('HGET', KEYS[2], prev.subnet) == ARGV[1] then
    redis.call('HDEL', KEYS[2], prev.subnet)
  end
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
`;

const RENEW = `
-- KEYS: cells, subnets, expiry; ARGV: cell, subnet, leaseJson, expiresAt
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local prev = cjson.decode(old)
if prev.subnet ~= ARGV[2] then return -1 end
if redis.call('HGET', KEYS[2], ARGV[2]) ~= ARGV[1] then return -1 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[1])
return 1
`;

const RELEASE = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
if not old then return 0 end
local prev = cjson.decode(old)
if redis.call('HGET', KEYS[2], prev.subnet) == ARGV[1] then redis.call('HDEL', KEYS[2], prev.subnet) end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
`;

interface LeaseRedis extends Redis {
  cfnetLeaseClaim(...args: string[]): Promise<number>;
  cfnetLeaseRenew(...args: string[]): Promise<number>;
  cfnetLeaseRelease(...args: string[]): Promise<number>;
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
  const net = parseCidr(opts.overlayNetwork ?? '10.255.0.0/16', 'overlay_network');
  if (net.family !== 4) throw new ValidationError('overlay_network', opts.overlayNetwork, 'must be IPv4');
  const len = opts.subnetPrefixLength ?? 24;
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
    this.ttlMs = opts.ttlMs ?? 168 * 3600 * 1000;
    this.redis = redis as LeaseRedis;
    const r = this.redis as unknown as Record<string, unknown>;
    if (!r.cfnetLeaseClaim) {
      this.redis.defineCommand('cfnetLeaseClaim', { numberOfKeys: 3, lua: CLAIM });
      this.redis.defineCommand('cfnetLeaseRenew', { numberOfKeys: 3, lua: RENEW });
      this.redis.defineCommand('cfnetLeaseRelease', { numberOfKeys: 3, lua: RELEASE });
    }
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

  /** Acquire (or re-acquire) the cell's lease: its old subnet when it still owns it. */
  async acquire(cellId: string, underlayIp: string, vtepMac?: string, now = Date.now()): Promise<Lease> {
    this.validate(underlayIp, vtepMac);
    for (let attempt = 0; attempt < 20; attempt++) {
      const prev = await this.get(cellId);
      if (prev) {
        const owner = await this.redis.hget(this.keys.leaseSubnets, prev.subnet);
        if (owner === cellId) {
          const l = this.lease(cellId, prev.subnet, underlayIp, vtepMac, prev.acquiredAt, now);
          const ok = await this.redis.cfnetLeaseRenew(
            ...this.keyArgs(),
            cellId,
            prev.subnet,
            JSON.stringify(l),
            String(l.expiresAt),
          );
          if (Number(ok) === 1) return l;
          continue;
        }
      }
      const taken = new Set(Object.keys(await this.redis.hgetall(this.keys.leaseSubnets)));
      let subnet: string | null = null;
      for (let i = 1; i < this.count && subnet === null; i++) {
        const s = this.subnetAt(i);
        if (!taken.has(s)) subnet = s;
      }
      let victim = '';
      if (subnet === null) {
        const expired = await this.redis.zrangebyscore(
          this.keys.leaseExpiry,
          '-inf',
          String(now),
          'LIMIT',
          0,
          1,
        );
        const v = expired[0];
        const vl = v ? await this.get(v) : null;
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
      const ok = await this.redis.cfnetLeaseClaim(
        ...this.keyArgs(),
        cellId,
        subnet,
        JSON.stringify(l),
        String(l.expiresAt),
        victim,
        String(now),
      );
      if (Number(ok) === 1) return l;
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
    const prev = await this.get(cellId);
    if (!prev) throw new LeaseError('CFNET_LEASE_UNKNOWN', `cell ${cellId} holds no lease`, 404, { cellId });
    const l = this.lease(cellId, subnet, underlayIp, vtepMac, prev.acquiredAt, now);
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

  async release(cellId: string): Promise<boolean> {
    return Number(await this.redis.cfnetLeaseRelease(...this.keyArgs(), cellId)) === 1;
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
}
