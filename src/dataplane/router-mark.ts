/**
 * A router's own small nft table (router mode of the agent): every packet the router sends out of
 * its VXLAN device carries the routers' tag as its mark, which the VXLAN device puts into the Group
 * Policy header (Silk's single-IP daemon marks its overlay traffic alike). Only locally sent
 * packets (the output hook): a router VM originates its connections to the containers. The table
 * is replaced whole in one transaction, so the mark never disappears while it changes. Pure.
 */
import { ValidationError } from '../lib/errors.js';
import { checkTable } from './layout.js';

const DEVICE = /^[A-Za-z0-9_.-]{1,15}$/;

/** The chain the mark rule lives in (read back to check it is in force). */
export const ROUTER_MARK_CHAIN = 'router_mark';

/** The nft script putting `tag` on every packet leaving through `vtep`. */
export function routerMarkScript(table: string, vtep: string, tag: number): string {
  const t = checkTable(table);
  if (!DEVICE.test(vtep)) throw new ValidationError('vtepName', vtep, 'must be an interface name');
  if (!Number.isInteger(tag) || tag < 1 || tag > 0xffff) {
    throw new ValidationError('tag', tag, 'must be a tag of 1..65535 (a VXLAN GBP id)');
  }
  return [
    `table inet ${t} {}`,
    `delete table inet ${t}`,
    `table inet ${t} {`,
    `  chain ${ROUTER_MARK_CHAIN} {`,
    '    type filter hook output priority mangle; policy accept;',
    `    oifname "${vtep}" meta mark set 0x${tag.toString(16).padStart(8, '0')}`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** The tag the kernel's copy of the chain sets (`nft -j list chain` output), or null. */
export function markedTag(json: unknown): number | null {
  const items = (json as { nftables?: unknown[] } | null)?.nftables;
  if (!Array.isArray(items)) return null;
  for (const it of items) {
    const exprs = (it as { rule?: { expr?: unknown[] } }).rule?.expr;
    if (!Array.isArray(exprs)) continue;
    for (const e of exprs) {
      const m = (e as { mangle?: { key?: { meta?: { key?: string } }; value?: unknown } }).mangle;
      if (m?.key?.meta?.key === 'mark' && typeof m.value === 'number') return m.value;
    }
  }
  return null;
}
