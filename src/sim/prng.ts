/**
 * A tiny seeded PRNG (mulberry32) and helpers, so a (seed, size) pair always generates the same
 * foundation and a seeded churn run always makes the same choices.
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    // Mix the seed so that small consecutive seeds give unrelated streams.
    let s = (seed ^ 0x9e3779b9) >>> 0;
    s = Math.imul(s ^ (s >>> 16), 0x85ebca6b) >>> 0;
    s = Math.imul(s ^ (s >>> 13), 0xc2b2ae35) >>> 0;
    this.state = (s ^ (s >>> 16)) >>> 0;
  }

  /** Next uint32. */
  u32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Float in [0, 1). */
  next(): number {
    return this.u32() / 4294967296;
  }

  /** Integer in [min, max] (inclusive). */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  bool(p = 0.5): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)] as T;
  }

  /** `n` distinct items (or all of them when n ≥ length), in random order. */
  sample<T>(items: readonly T[], n: number): T[] {
    const copy = items.slice();
    const k = Math.min(n, copy.length);
    for (let i = 0; i < k; i++) {
      const j = i + Math.floor(this.next() * (copy.length - i));
      const tmp = copy[i] as T;
      copy[i] = copy[j] as T;
      copy[j] = tmp;
    }
    return copy.slice(0, k);
  }

  hex(chars: number): string {
    let out = '';
    while (out.length < chars) out += hex32(this.u32());
    return out.length === chars ? out : out.slice(0, chars);
  }

  /** A version-4-shaped UUID (36 chars). */
  uuid(): string {
    const a = hex32(this.u32());
    const b = hex32(this.u32());
    const c = hex32(this.u32());
    const d = hex32(this.u32());
    const variant = HEX_DIGITS[(Number.parseInt(c[0] as string, 16) & 0x3) | 0x8];
    return `${a}-${b.slice(0, 4)}-4${b.slice(5, 8)}-${variant}${c.slice(1, 4)}-${c.slice(4)}${d}`;
  }

  /** A Diego instance guid / Garden handle: 8-4-4-4-4 hex (28 chars). */
  instanceGuid(): string {
    const a = hex32(this.u32());
    const b = hex32(this.u32());
    const c = hex32(this.u32());
    return `${a}-${b.slice(0, 4)}-${b.slice(4)}-${c.slice(0, 4)}-${c.slice(4)}`;
  }
}

const HEX_DIGITS = '0123456789abcdef';
const BYTE_HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

function hex32(v: number): string {
  return (
    (BYTE_HEX[v >>> 24] as string) +
    (BYTE_HEX[(v >>> 16) & 255] as string) +
    (BYTE_HEX[(v >>> 8) & 255] as string) +
    (BYTE_HEX[v & 255] as string)
  );
}
