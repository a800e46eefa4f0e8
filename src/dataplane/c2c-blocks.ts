/**
 * c2c port ranges as aligned power-of-two blocks: a block of 2^k ports starting at a multiple of
 * 2^k is one element (its first port) of a hash set whose rule masks the packet's port with the
 * block's mask (`meta mark . ip daddr . tcp dport & 0xfffc @c2c_tcp_4`), so 8090-8095 is two
 * elements (8090/2, 8092/4) instead of six. Pure.
 *
 * Why: a c2c policy change costs nft's parser ~6-9 µs per element and per key field, which
 * dominates the agent's c2c churn (docs/benchmarks.md, 2026-12-08). Why these sizes: each size is
 * one set and one lookup per new c2c connection of its protocol (only new connections reach
 * `ctr_in`), so the sizes stop at 32: every range of up to 32 ports is at most 8 blocks, CF's
 * usual policies (one port, a few app ports) 1-3. Wider ranges whose blocks would exceed
 * C2C_BLOCK_BUDGET go to the interval set c2c_range as one element (1-65535 would be 2,052 blocks
 * of at most 32 ports; docs/dataplane.md has the figures).
 */
import type { PortRange } from '../model/types.js';

/** Block sizes, one hash set per size and protocol; 1 is the plain single-port set. */
export const C2C_BLOCK_SIZES = [1, 2, 4, 8, 16, 32] as const;

export type C2CBlockSize = (typeof C2C_BLOCK_SIZES)[number];

/**
 * At most this many blocks for one range, else it is one c2c_range element. A pipapo (concatenated
 * interval set) deletion costs the kernel ~0.4-0.6 ms, as much as ~50-75 hash element updates, and
 * every transaction refetches an interval set's elements; 32 keeps the budget the former rule had
 * (ranges of up to 32 ports, one hash element per port) while covering ranges of up to ~1,000 ports.
 */
export const C2C_BLOCK_BUDGET = 32;

const LARGEST = C2C_BLOCK_SIZES[C2C_BLOCK_SIZES.length - 1]!;

/** One aligned block: ports `start` … `start + size - 1`, `start` a multiple of `size`. */
export interface PortBlock {
  start: number;
  size: C2CBlockSize;
}

/** The hash set of one protocol and block size: `c2c_tcp` (single ports), `c2c_tcp_2`, … */
export function c2cBlockSet(proto: 'tcp' | 'udp', size: C2CBlockSize): string {
  return size === 1 ? `c2c_${proto}` : `c2c_${proto}_${size}`;
}

/** The port mask of a block size as nft reads it (`0xfffc` for 4), '' for single ports. */
export function c2cBlockMask(size: C2CBlockSize): string {
  return size === 1 ? '' : `0x${(0xffff & ~(size - 1)).toString(16)}`;
}

/**
 * The fewest aligned blocks of the sizes above covering exactly `r` (greedy from the low end: the
 * largest block that starts at the current port, is aligned to it and does not pass the end).
 * Null when more than `budget` blocks would be needed.
 */
export function portBlocks(r: PortRange, budget = C2C_BLOCK_BUDGET): PortBlock[] | null {
  const out: PortBlock[] = [];
  let p = r.start;
  while (p <= r.end) {
    if (out.length === budget) return null;
    let size: number = LARGEST;
    while (size > 1 && (p % size !== 0 || p + size - 1 > r.end)) size >>= 1;
    out.push({ start: p, size: size as C2CBlockSize });
    p += size;
  }
  return out;
}
