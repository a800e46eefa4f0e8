/**
 * The overlay's kernel state, as pure data: for every other cell's lease a route
 * `<subnet> via <its VTEP address> dev <vtep> onlink`, a permanent neighbour entry (VTEP address →
 * VTEP MAC) and a permanent FDB entry (VTEP MAC → underlay IP), as Silk's daemon keeps them
 * (docs/silk.md, "Leases and the overlay"). Unlike Silk, the agent diffs desired against current and sends only the
 * difference, in one `ip -batch` and one `bridge -batch` process; nothing runs when nothing changed.
 */
import { ipv4ToInt } from '../model/ip.js';
import type { OverlayLease, ReleasedLease } from './client.js';

/** Kernel overlay entries on the VTEP device. */
export interface OverlayState {
  /** route destination (CIDR) → gateway (the remote VTEP address) */
  routes: Map<string, string>;
  /** neighbour address → MAC */
  neighs: Map<string, string>;
  /** FDB MAC → remote underlay IP */
  fdb: Map<string, string>;
}

export function emptyOverlay(): OverlayState {
  return { routes: new Map(), neighs: new Map(), fdb: new Map() };
}

export function cloneOverlay(s: OverlayState): OverlayState {
  return { routes: new Map(s.routes), neighs: new Map(s.neighs), fdb: new Map(s.fdb) };
}

/** The VTEP address of a lease: the subnet's first address (Silk's scheme, e.g. 10.255.7.0). */
export function vtepIpOf(subnet: string): string {
  return subnet.split('/')[0]!;
}

/** The VTEP MAC of a lease: `ee:ee:` + the four octets of the VTEP address. */
export function vtepMacOf(subnet: string): string {
  return `ee:ee:${vtepIpOf(subnet)
    .split('.')
    .map((o) => Number(o).toString(16).padStart(2, '0'))
    .join(':')}`;
}

export interface PeerLeases {
  leases: OverlayLease[];
  /** Cells kept from what the agent knew although the controller did not list them. */
  retained: string[];
}

/**
 * The peers to program: every lease the controller lists, plus every lease the agent knew that the
 * listing lacks, until that lease expires. Removals are level-based on expiry, never on one short
 * listing (after Redis lost its data the controller lists only the cells that claimed back so
 * far). A known lease is dropped earlier only when the controller reports its release (newer than
 * its last renewal) or lists another cell on an overlapping subnet.
 */
export function mergePeerLeases(
  known: readonly OverlayLease[],
  listed: readonly OverlayLease[],
  released: readonly ReleasedLease[],
  now: number,
): PeerLeases {
  const listedCells = new Set(listed.map((l) => l.cellId));
  const listedRanges = listed.map((l) => subnetRange(l.subnet));
  const releasedAt = new Map(released.map((r) => [r.cellId, r]));
  const leases = [...listed];
  const retained: string[] = [];
  for (const k of known) {
    if (listedCells.has(k.cellId)) continue;
    if ((k.expiresAt ?? 0) <= now) continue;
    const r = releasedAt.get(k.cellId);
    if (r && r.subnet === k.subnet && r.releasedAt >= (k.renewedAt ?? 0)) continue;
    const [s, e] = subnetRange(k.subnet);
    if (listedRanges.some(([ls, le]) => s <= le && ls <= e)) continue;
    leases.push(k);
    retained.push(k.cellId);
  }
  return { leases, retained: retained.sort() };
}

export interface DesiredOverlay {
  state: OverlayState;
  /** Leases left out (own, duplicate subnet, address clash), with the reason. */
  skipped: { cellId: string; reason: string }[];
}

function subnetRange(cidr: string): [number, number] {
  const [ip, len] = cidr.split('/') as [string, string];
  const size = 2 ** (32 - Number(len));
  const start = ipv4ToInt(ip) - (ipv4ToInt(ip) % size);
  return [start, start + size - 1];
}

/**
 * Entries for every lease but the cell's own. A lease whose subnet overlaps the own subnet or an
 * earlier lease, or whose underlay IP is the own one, is skipped (it would misroute traffic).
 * Leases are taken newest renewal first, so a subnet that moved to another cell follows it.
 */
export function desiredOverlay(
  leases: readonly OverlayLease[],
  own: { cellId: string; subnet: string | null; underlayIp: string },
): DesiredOverlay {
  const state = emptyOverlay();
  const skipped: DesiredOverlay['skipped'] = [];
  const taken: [number, number][] = [];
  if (own.subnet) taken.push(subnetRange(own.subnet));
  const ordered = [...leases].sort(
    (a, b) =>
      (b.renewedAt ?? 0) - (a.renewedAt ?? 0) || (a.cellId < b.cellId ? -1 : a.cellId > b.cellId ? 1 : 0),
  );
  const seenCells = new Set<string>();
  for (const l of ordered) {
    if (l.cellId === own.cellId) continue;
    if (seenCells.has(l.cellId)) {
      skipped.push({ cellId: l.cellId, reason: 'duplicate lease for the cell' });
      continue;
    }
    seenCells.add(l.cellId);
    if (l.underlayIp === own.underlayIp) {
      skipped.push({ cellId: l.cellId, reason: `underlay IP ${l.underlayIp} is this cell's` });
      continue;
    }
    const [s, e] = subnetRange(l.subnet);
    if (taken.some(([ts, te]) => s <= te && ts <= e)) {
      skipped.push({ cellId: l.cellId, reason: `subnet ${l.subnet} overlaps another lease` });
      continue;
    }
    const mac = l.vtepMac.toLowerCase();
    if (state.fdb.has(mac)) {
      skipped.push({ cellId: l.cellId, reason: `VTEP MAC ${mac} is used by another lease` });
      continue;
    }
    taken.push([s, e]);
    const gw = vtepIpOf(l.subnet);
    state.routes.set(l.subnet, gw);
    state.neighs.set(gw, mac);
    state.fdb.set(mac, l.underlayIp);
  }
  return { state, skipped };
}

/**
 * The peers of `desired` (by subnet, sorted) whose route, neighbour or FDB entry `kernel` lacks or
 * holds with another value: the cells this one cannot reach through its overlay.
 */
export function missingPeers(desired: OverlayState, kernel: OverlayState): string[] {
  const out: string[] = [];
  for (const [subnet, gw] of desired.routes) {
    const mac = desired.neighs.get(gw);
    const ok =
      kernel.routes.get(subnet) === gw &&
      mac !== undefined &&
      kernel.neighs.get(gw) === mac &&
      kernel.fdb.get(mac) === desired.fdb.get(mac);
    if (!ok) out.push(subnet);
  }
  return out.sort();
}

export interface OverlayDiff {
  /** `ip -batch` lines (routes, neighbours): deletions first, then additions/replacements. */
  ip: string[];
  /** `bridge -batch` lines to run BEFORE the ip lines (FDB additions/replacements). */
  bridgeBefore: string[];
  /** `bridge -batch` lines to run AFTER the ip lines (FDB deletions). */
  bridgeAfter: string[];
  changes: number;
}

/** The commands turning `current` into `desired` on device `dev`. Empty when they are equal. */
export function diffOverlay(current: OverlayState, desired: OverlayState, dev: string): OverlayDiff {
  const ipDel: string[] = [];
  const ipAdd: string[] = [];
  const bridgeBefore: string[] = [];
  const bridgeAfter: string[] = [];
  const sorted = (m: Map<string, string>) => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  for (const [dst] of sorted(current.routes)) {
    if (!desired.routes.has(dst)) ipDel.push(`route del ${dst} dev ${dev}`);
  }
  for (const [ip] of sorted(current.neighs)) {
    if (!desired.neighs.has(ip)) ipDel.push(`neigh del ${ip} dev ${dev}`);
  }
  for (const [ip, mac] of sorted(desired.neighs)) {
    if (current.neighs.get(ip) !== mac)
      ipAdd.push(`neigh replace ${ip} lladdr ${mac} dev ${dev} nud permanent`);
  }
  for (const [dst, gw] of sorted(desired.routes)) {
    if (current.routes.get(dst) !== gw) ipAdd.push(`route replace ${dst} via ${gw} dev ${dev} onlink`);
  }
  for (const [mac, dst] of sorted(desired.fdb)) {
    if (current.fdb.get(mac) !== dst)
      bridgeBefore.push(`fdb replace ${mac} dev ${dev} dst ${dst} self permanent`);
  }
  for (const [mac] of sorted(current.fdb)) {
    if (!desired.fdb.has(mac)) bridgeAfter.push(`fdb del ${mac} dev ${dev} self`);
  }
  const ip = [...ipDel, ...ipAdd];
  return { ip, bridgeBefore, bridgeAfter, changes: ip.length + bridgeBefore.length + bridgeAfter.length };
}

// ------------------------------------------------------------------ parsing `ip -j` / `bridge -j`

type Json = Record<string, unknown>;

function list(json: unknown): Json[] {
  return Array.isArray(json) ? (json.filter((x) => typeof x === 'object' && x !== null) as Json[]) : [];
}

/** `ip -j route show dev <vtep>`: routes with a gateway (ours are all `via … onlink`). */
export function parseRoutes(json: unknown): Map<string, string> {
  const out = new Map<string, string>();
  for (const r of list(json)) {
    if (typeof r.dst !== 'string') continue;
    const dst = r.dst.includes('/') ? r.dst : `${r.dst}/32`;
    out.set(dst, typeof r.gateway === 'string' ? r.gateway : '');
  }
  return out;
}

/** `ip -j neigh show dev <vtep>`: permanent entries only (others are the kernel's to age out). */
export function parseNeighs(json: unknown): Map<string, string> {
  const out = new Map<string, string>();
  for (const n of list(json)) {
    const state = Array.isArray(n.state) ? n.state.map(String) : [];
    if (!state.includes('PERMANENT')) continue;
    if (typeof n.dst !== 'string' || typeof n.lladdr !== 'string') continue;
    out.set(n.dst, n.lladdr.toLowerCase());
  }
  return out;
}

/** `bridge -j fdb show dev <vtep>`: entries with a remote (`dst`). */
export function parseFdb(json: unknown): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of list(json)) {
    if (typeof f.mac !== 'string' || typeof f.dst !== 'string') continue;
    if (f.mac === '00:00:00:00:00:00') continue;
    out.set(f.mac.toLowerCase(), f.dst);
  }
  return out;
}

export function overlayEqual(a: OverlayState, b: OverlayState): boolean {
  return diffOverlay(a, b, 'x').changes === 0;
}
