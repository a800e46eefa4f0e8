/**
 * Container MTU: the configured `mtu`, or the underlay's MTU minus the VXLAN overhead (50 bytes),
 * the underlay being `underlay_interface` or the interface of the default route in this netns.
 */
import { CNI_ERR, CniError } from './errors.js';
import { defaultRouteInterface, interfaceMtu } from './link.js';

export const VXLAN_OVERHEAD = 50;

/** Remembers detected MTUs for a short while (the executor serves many ADDs per second). */
export class MtuCache {
  private readonly ttlMs: number;
  private entry: { key: string; mtu: number; at: number } | null = null;

  constructor(ttlMs = 5000) {
    this.ttlMs = ttlMs;
  }

  get(key: string): number | null {
    const e = this.entry;
    return e && e.key === key && Date.now() - e.at < this.ttlMs ? e.mtu : null;
  }

  set(key: string, mtu: number): void {
    this.entry = { key, mtu, at: Date.now() };
  }
}

export async function containerMtu(
  cfg: { mtu: number | null; underlayInterface: string | null },
  cache?: MtuCache,
): Promise<number> {
  if (cfg.mtu !== null) return cfg.mtu;
  const ifname = cfg.underlayInterface ?? (await defaultRouteInterface());
  if (ifname === null) {
    throw new CniError(
      CNI_ERR.INTERNAL,
      'cannot detect the underlay MTU: no IPv4 default route in the cell namespace; set "mtu" or "underlay_interface"',
    );
  }
  const cached = cache?.get(ifname);
  if (cached != null) return cached;
  const underlay = await interfaceMtu(ifname);
  if (underlay === null) {
    throw new CniError(CNI_ERR.INTERNAL, `cannot detect the underlay MTU: interface ${ifname} not found`);
  }
  const mtu = Math.max(68, underlay - VXLAN_OVERHEAD);
  cache?.set(ifname, mtu);
  return mtu;
}
