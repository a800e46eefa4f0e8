/**
 * Overlay ingress for routers (Silk's `enable_overlay_ingress_rules`), on a cell: packets carrying
 * a router's tag — the VXLAN GBP id every router sets on its overlay packets — are let in to the
 * containers' app ports and to nothing else. As Silk: TCP only, one entry per exposed container
 * port (the container ports of the container's NetIn mappings: what Garden exposes and the routers
 * route to). The entries are ordinary c2c allows with the router's tag as the source, so the
 * dataplane enforces them with the c2c sets, and a router's packet to any other port or address
 * ends in the c2c default deny. The routers' tags come from their single-address leases, which the
 * cell lists as overlay peers anyway. Pure.
 */
import { c2cKey } from '../model/ruleset.js';
import type { C2CAllow, CellContainer, CellRuleSet } from '../model/types.js';
import type { OverlayLease } from './client.js';

/** The distinct tags of the routers among `leases`, ascending. */
export function routerTags(leases: readonly OverlayLease[]): number[] {
  const tags = new Set<number>();
  for (const l of leases) if (l.kind === 'single-ip' && l.tag !== undefined) tags.add(l.tag);
  return [...tags].sort((a, b) => a - b);
}

/** The allows of one container: per router tag, per exposed container port (TCP). */
export function routerIngressFor(
  c: Pick<CellContainer, 'ip' | 'netIn'>,
  tags: readonly number[],
): C2CAllow[] {
  const ports = [...new Set(c.netIn.map((m) => m.containerPort))].sort((a, b) => a - b);
  return tags.flatMap((tag) =>
    ports.map((port) => ({
      srcTag: tag,
      dstIp: c.ip,
      protocol: 'tcp' as const,
      ports: { start: port, end: port },
    })),
  );
}

/** `rs` with an allow per (router tag, container, exposed TCP port); `rs` itself when no router. */
export function withRouterIngress(rs: CellRuleSet, tags: readonly number[]): CellRuleSet {
  if (tags.length === 0) return rs;
  const extra = rs.containers.flatMap((c) => routerIngressFor(c, tags));
  if (extra.length === 0) return rs;
  // a policy from an app whose tag equals a router's would give the same entry: keep one
  const seen = new Set(rs.c2c.map(c2cKey));
  const added = extra.filter((e) => !seen.has(c2cKey(e)));
  return { ...rs, c2c: [...rs.c2c, ...added] };
}
