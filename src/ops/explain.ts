/**
 * "Can app A reach B on port P?" answered the way the dataplane decides it, from the world the
 * controller's leader wrote into Redis and the rule sets it stored:
 *
 * - to an app (c2c): allowed exactly when a c2c policy from A to B covers the protocol and port
 *   (default deny), or when B's cells have `disable_container_network_policy` on (every overlay
 *   source is accepted). The source cell marks A's packets with A's policy tag; the destination cell
 *   accepts marked packets to B's container addresses listed in its c2c entries. So the decision
 *   is enforced on B's cells (their c2c entries) and A's cells (the tag of A's containers).
 * - to an address (egress): an address a container holds is c2c (explained as such); otherwise the
 *   packet walks the cell's decision steps (src/dataplane/decision-order.ts, the steps the nft
 *   layout is rendered from): to an address of the cell itself (its underlay or VTEP address, the
 *   containers' gateway, a link-local DNS server or host service) the input path decides: DNS servers on port 53, host
 *   services, else deny; ASGs do not apply there. To any other address the forward path: overlay
 *   addresses leave the cell (the destination cell decides), the deny networks beat everything,
 *   then the container's ASG rules (the shared rule list its rule set names), else deny. Matching
 *   rules are attributed to the security groups that carry them.
 *
 * Each cell involved is reported with its stored rule-set version, whether the stored rules agree
 * with the decision, and the version its agent applied (enforced = applied the stored version).
 * A container without an address yet (a task before its agent reports one) is "not yet addressed":
 * no rule set can hold it, so it is neither a disagreement nor a denial.
 *
 * Longer than ~400 lines: one decision procedure that walks a packet through the cell's rule set in
 * the dataplane's order and explains each step.
 */

import type { Redis } from 'ioredis';
import {
  type CellAddresses,
  c2cAllows,
  type DecisionChain,
  decide,
  localDestination,
  ruleMatches,
} from '../dataplane/decision-order.js';
import { ValidationError } from '../lib/errors.js';
import { isIp, parseIp, rangeToString } from '../model/ip.js';
import type { AppPath } from '../model/names.js';
import { portRangesToString } from '../model/ports.js';
import type { C2CPolicy, CellRuleSet, EgressRule } from '../model/types.js';
import { lifecycleOf } from '../rules/indexes.js';
import type { Keys } from '../state/keys.js';
import { LeaseManager } from '../state/lease-store.js';
import type { RuleSetStore } from '../state/ruleset-store.js';
import { ControllerUnavailableError, NotFoundError } from './errors.js';
import type { RedisWorld, WorldContainer } from './world-reader.js';

/** An app as the operator may name it (a guid, a name, `org/space/app`; ops/names.ts resolves it). */
const APP_REF = /^[^\p{Cc}]{1,512}$/u;

export type ExplainProtocol = 'tcp' | 'udp' | 'icmp';

export interface ExplainQuery {
  /** The source app (its guid once resolved, see ops/names.ts). */
  from: string;
  /** An app (its guid once resolved), or an IPv4/IPv6 address. */
  to: string;
  /** Required for tcp/udp; ignored for icmp. */
  port?: number;
  protocol: ExplainProtocol;
}

/** Validated query: bad input is a ValidationError naming the option. */
export function parseExplainQuery(input: {
  from?: string;
  to?: string;
  port?: string | number;
  protocol?: string;
}): ExplainQuery {
  const from = input.from ?? '';
  if (!APP_REF.test(from)) throw new ValidationError('from', input.from, 'must be an app name or guid');
  const to = input.to ?? '';
  if (!APP_REF.test(to) && !isIp(to))
    throw new ValidationError('to', input.to, 'must be an app name or guid, or an IP address');
  const protocol = (input.protocol ?? 'tcp').toLowerCase();
  if (protocol !== 'tcp' && protocol !== 'udp' && protocol !== 'icmp') {
    throw new ValidationError('protocol', input.protocol, 'must be tcp, udp or icmp');
  }
  if (protocol === 'icmp') {
    if (!isIp(to))
      throw new ValidationError('protocol', protocol, 'icmp applies to addresses (ASGs), not to apps');
    return { from, to, protocol };
  }
  const port = typeof input.port === 'number' ? input.port : Number(input.port);
  if (input.port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ValidationError('port', input.port, 'must be a port number 1-65535');
  }
  return { from, to, port, protocol };
}

export interface CellEnforcement {
  cellId: string;
  /** destination: enforces the c2c entries / egress rules; source: marks packets with the tag. */
  role: 'destination' | 'source';
  containers: string[];
  /** Stored rule-set version (0 = none) and the version its agent applied (0 = none reported). */
  storedVersion: number;
  appliedVersion: number;
  /** The stored rule set agrees with the decision (entries present iff allowed; tags set). */
  agrees: boolean;
  /** The agent applied the stored version (so what it enforces is what was checked). */
  enforced: boolean;
  /** Containers without an address yet: no rule set holds them, agreement is judged without them. */
  notAddressed: string[];
  detail: string;
}

export interface PolicyRef {
  source: string;
  destination: string;
  protocol: 'tcp' | 'udp';
  ports: string;
}

export interface C2CExplanation {
  kind: 'c2c';
  query: ExplainQuery;
  /** The source and destination apps by guid and (where the controller has them) by name. */
  from: AppPath;
  to: AppPath;
  allowed: boolean;
  reason: string;
  sourceTag: number | null;
  /** Policies from A to B that cover the protocol and port. */
  policies: PolicyRef[];
  /** Policies from A to B for other protocols or ports. */
  otherPolicies: PolicyRef[];
  sourceContainers: number;
  destinationContainers: number;
  cells: CellEnforcement[];
  /** Every involved cell's stored rules agree with the decision. */
  consistent: boolean;
  /** Set when the query named an address that belongs to a container of `query.to`. */
  resolvedFrom?: string;
}

export interface EgressRuleRef {
  rule: string;
  /** Security groups (name and guid) whose rules include it, for the container's space. */
  groups: Array<{ guid: string; name: string }>;
}

export interface EgressDecision {
  cellId: string;
  handle: string;
  workload: string;
  allowed: boolean;
  /**
   * The decision step (decision-order.ts): deny-network:<always|running|staging>, dns,
   * host-service, asg, overlay (leaves the cell; the destination cell decides), default-deny; or
   * no-rules (the cell's rule set does not hold the container); or not-yet-addressed (the container
   * has no address yet, so nothing is decided for it: `allowed` is false and it counts in no verdict).
   */
  by: string;
  /** The cell's chains the packet goes through, hook first (empty for no-rules). */
  chains: DecisionChain[];
  /** Why the destination is an address of the cell (the input path decides), or null (forward). */
  local: string | null;
  rules: EgressRuleRef[];
  /** The container's egress rules came from the current ASGs (else: CC's snapshot at desire time). */
  fromCurrentAsgs: boolean;
}

export interface EgressExplanation {
  kind: 'egress';
  query: ExplainQuery;
  /** The source app by guid and (where the controller has it) by name. */
  from: AppPath;
  /** Every container of the app may reach the address (true), none (false), or it depends (null). */
  allowed: boolean | null;
  reason: string;
  decisions: EgressDecision[];
  cells: CellEnforcement[];
  consistent: boolean;
}

export type Explanation = C2CExplanation | EgressExplanation;

function policyRef(p: C2CPolicy): PolicyRef {
  const r = p.destination.ports;
  return {
    source: p.source.appGuid,
    destination: p.destination.appGuid,
    protocol: p.destination.protocol,
    ports: r.start === r.end ? String(r.start) : `${r.start}-${r.end}`,
  };
}

/** The `by` of a container without an address yet. */
export const NOT_YET_ADDRESSED = 'not-yet-addressed';

const addressed = (c: WorldContainer) => c.ip !== '';

function byCell(containers: readonly WorldContainer[]): Map<string, WorldContainer[]> {
  const m = new Map<string, WorldContainer[]>();
  for (const c of containers) {
    const list = m.get(c.cellId);
    if (list) list.push(c);
    else m.set(c.cellId, [c]);
  }
  return new Map([...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

interface CellRules {
  rs: CellRuleSet | null;
  applied: number;
}

async function loadCells(store: RuleSetStore, cells: Iterable<string>): Promise<Map<string, CellRules>> {
  const out = new Map<string, CellRules>();
  await Promise.all(
    [...new Set(cells)].map(async (c) => {
      const [rs, st] = await Promise.all([store.get(c), store.status(c)]);
      out.set(c, { rs, applied: st?.appliedVersion ?? 0 });
    }),
  );
  return out;
}

function enforcement(
  cellId: string,
  role: CellEnforcement['role'],
  containers: readonly WorldContainer[],
  cr: CellRules | undefined,
  agrees: boolean,
  detail: string,
): CellEnforcement {
  const stored = cr?.rs?.version ?? 0;
  const applied = cr?.applied ?? 0;
  const notAddressed = containers.filter((c) => !addressed(c)).map((c) => c.handle);
  const waiting = notAddressed.length > 0 ? `; ${notAddressed.length} not yet addressed` : '';
  return {
    cellId,
    role,
    containers: containers.map((c) => c.handle),
    storedVersion: stored,
    appliedVersion: applied,
    agrees,
    enforced: stored > 0 && applied === stored,
    notAddressed,
    detail: (stored === 0 ? 'no rule set stored for the cell' : detail) + waiting,
  };
}

/** Throws ControllerUnavailableError (exit 4) unless a leader wrote the world into the namespace. */
export function requireWorld(world: RedisWorld): void {
  if (!world.ready) {
    throw new ControllerUnavailableError(
      'no controller leader has written the world into this namespace (is the controller running, and is --redis-namespace right?)',
      { leader: world.leader },
    );
  }
}

/**
 * Explain a query against the world and the stored rule sets. `addresses` gives each cell's own
 * addresses (leaseAddresses); without it only the containers' gateway and link-local DNS servers
 * and host services count as local to a cell.
 */
export async function explain(
  world: RedisWorld,
  store: RuleSetStore,
  q: ExplainQuery,
  addresses?: CellAddressLookup,
): Promise<Explanation> {
  requireWorld(world);
  if (!isIp(q.to)) return explainC2C(world, store, q);
  const holder = world.containersOf().find((c) => c.ip === parseIp(q.to).text);
  if (holder && q.protocol !== 'icmp') {
    const out = await explainC2C(world, store, { ...q, to: holder.appGuid });
    return { ...out, resolvedFrom: q.to };
  }
  return explainEgress(world, store, q, addresses);
}

async function explainC2C(world: RedisWorld, store: RuleSetStore, q: ExplainQuery): Promise<C2CExplanation> {
  const proto = q.protocol as 'tcp' | 'udp';
  const port = q.port!;
  const pol = world.policies();
  const src = world.containersOf(q.from);
  const dst = world.containersOf(q.to);
  const between = pol.from(q.from).filter((p) => p.destination.appGuid === q.to);
  if (src.length === 0 && pol.from(q.from).length === 0 && pol.to(q.from).length === 0) {
    throw new NotFoundError(
      'app',
      world.names.appLabel(q.from),
      'no container of it is known and no policy names it',
    );
  }
  if (dst.length === 0 && pol.to(q.to).length === 0 && pol.from(q.to).length === 0) {
    throw new NotFoundError(
      'app',
      world.names.appLabel(q.to),
      'no container of it is known and no policy names it',
    );
  }
  const matching = between.filter(
    (p) =>
      p.destination.protocol === proto &&
      port >= p.destination.ports.start &&
      port <= p.destination.ports.end,
  );
  const tag = pol.tagOf(q.from);
  const srcCells = byCell(src);
  const dstCells = byCell(dst);
  const rules = await loadCells(store, [...srcCells.keys(), ...dstCells.keys()]);
  // disable_container_network_policy: the destination cells accept every overlay source (c2c-open)
  const openOn = (cellId: string) => rules.get(cellId)?.rs?.config.disableContainerNetworkPolicy === true;
  const open = dstCells.size > 0 && [...dstCells.keys()].every(openOn);
  const allowed = matching.length > 0 || open;
  const cells: CellEnforcement[] = [];
  for (const [cellId, list] of dstCells) {
    const cr = rules.get(cellId);
    const rs = cr?.rs;
    const withIp = list.filter(addressed);
    let present = 0;
    for (const c of withIp) {
      // the destination cell's c2c steps (ctr_in), for a packet carrying A's tag
      if (rs && (openOn(cellId) || c2cAllows(rs, tag, c.ip, proto, port))) present++;
    }
    const agrees = allowed ? present === withIp.length : present === 0;
    const detail = openOn(cellId)
      ? 'c2c open to every overlay source (disable_container_network_policy)'
      : allowed
        ? `c2c allow for tag ${tag} to ${present}/${withIp.length} containers`
        : present > 0
          ? `${present}/${withIp.length} containers still have an allow entry`
          : 'no allow entry: denied (default deny)';
    cells.push(enforcement(cellId, 'destination', list, cr, agrees, detail));
  }
  for (const [cellId, list] of srcCells) {
    const cr = rules.get(cellId);
    const withIp = list.filter(addressed);
    const marked = withIp.filter(
      (c) => cr?.rs?.containers.find((x) => x.handle === c.handle)?.tag === tag,
    ).length;
    // with c2c open the destination needs no tag
    const agrees = !allowed || open || marked === withIp.length;
    const detail =
      tag === null
        ? 'app has no policy tag: packets unmarked'
        : `${marked}/${withIp.length} containers marked with tag ${tag}`;
    cells.push(enforcement(cellId, 'source', list, cr, agrees, detail));
  }
  const what = `${proto} port ${port}`;
  const from = world.names.appLabel(q.from);
  const to = world.names.appLabel(q.to);
  const reason = open
    ? `allowed: disable_container_network_policy is on, every container accepts c2c from every overlay source${matching.length > 0 ? '' : ' (no policy needed)'}`
    : allowed
      ? `allowed by c2c policy ${matching.map((p) => `${policyRef(p).protocol} ${policyRef(p).ports}`).join(', ')} from ${from} to ${to}`
      : between.length > 0
        ? `denied: the policies from ${from} to ${to} cover ${between.map((p) => `${policyRef(p).protocol} ${policyRef(p).ports}`).join(', ')}, not ${what}`
        : `denied: no c2c policy from ${from} to ${to} (default deny)`;
  return {
    kind: 'c2c',
    query: q,
    from: world.names.appPath(q.from),
    to: world.names.appPath(q.to),
    allowed,
    reason,
    sourceTag: tag,
    policies: matching.map(policyRef),
    otherPolicies: between.filter((p) => !matching.includes(p)).map(policyRef),
    sourceContainers: src.length,
    destinationContainers: dst.length,
    cells,
    consistent: cells.every((c) => c.agrees),
  };
}

/** Does one egress rule let (protocol, address, port) out? (The ASG step's own matching.) */
export { ruleMatches };

export function ruleText(r: EgressRule): string {
  const dest = r.destinations.map(rangeToString).join(',');
  if (r.protocol === 'tcp' || r.protocol === 'udp')
    return `${r.protocol} ${dest} ports ${portRangesToString(r.ports)}`;
  if (r.protocol === 'icmp' || r.protocol === 'icmpv6') {
    const i = r.icmp ?? { type: -1, code: -1 };
    return `${r.protocol} ${dest} type ${i.type} code ${i.code}`;
  }
  return `all ${dest}`;
}

/** A cell's own addresses (from its subnet lease), for deciding which destinations are local. */
export type CellAddressLookup = (cellId: string) => Promise<CellAddresses | null>;

/** The lease table as the lookup: underlay address and overlay subnet (VTEP) of each cell. */
export function leaseAddresses(redis: Redis, keys: Keys): CellAddressLookup {
  const leases = new LeaseManager(redis, keys);
  return async (cellId) => {
    const l = await leases.get(cellId);
    return l ? { underlayIp: l.underlayIp, subnet: l.subnet } : null;
  };
}

export type ContainerDecision = Pick<EgressDecision, 'allowed' | 'by' | 'chains' | 'local'> & {
  matched: EgressRule[];
};

const NO_RULES: ContainerDecision = { allowed: false, by: 'no-rules', chains: [], local: null, matched: [] };

/**
 * The cell's decision for a new connection from one of its containers to the query's address: the
 * decision steps walked from the input hook when the destination is local to the cell (`own`: its
 * lease's addresses), else from the forward hook. no-rules when the rule set lacks the container
 * or its egress rule list. Pure.
 */
export function containerDecision(
  rs: CellRuleSet,
  handle: string,
  q: ExplainQuery,
  own: CellAddresses | null,
): ContainerDecision {
  const src = rs.containers.find((x) => x.handle === handle);
  if (!src || !Object.hasOwn(rs.asgSets, src.egress)) return NO_RULES;
  const local = localDestination(q.to, rs, own);
  const packet = { src, dst: q.to, protocol: q.protocol, ...(q.port !== undefined ? { port: q.port } : {}) };
  const d = decide(packet, rs, local !== null);
  return { allowed: d.allowed, by: d.step, chains: d.chains, local, matched: d.matched };
}

async function explainEgress(
  world: RedisWorld,
  store: RuleSetStore,
  q: ExplainQuery,
  addresses: CellAddressLookup | undefined,
): Promise<EgressExplanation> {
  const src = world.containersOf(q.from);
  if (src.length === 0)
    throw new NotFoundError(
      'app',
      world.names.appLabel(q.from),
      'no container of it is known to the controller',
    );
  const cellsOf = byCell(src);
  const rules = await loadCells(store, cellsOf.keys());
  const own = new Map<string, CellAddresses | null>();
  await Promise.all([...cellsOf.keys()].map(async (c) => own.set(c, addresses ? await addresses(c) : null)));
  const asg = world.asgs();
  const decisions: EgressDecision[] = [];
  const cells: CellEnforcement[] = [];
  for (const [cellId, list] of cellsOf) {
    const cr = rules.get(cellId);
    const rs = cr?.rs;
    let mismatch = 0;
    for (const c of list) {
      // a container the rule set cannot decide for: no address yet, or no rules for it
      const undecided = (by: EgressDecision['by']): EgressDecision => {
        const { matched: _none, ...none } = NO_RULES;
        return {
          cellId,
          handle: c.handle,
          workload: c.workload,
          ...none,
          by,
          rules: [],
          fromCurrentAsgs: false,
        };
      };
      if (!addressed(c)) {
        decisions.push(undecided(NOT_YET_ADDRESSED));
        continue;
      }
      const inRules = rs?.containers.find((x) => x.handle === c.handle);
      const d = rs ? containerDecision(rs, c.handle, q, own.get(cellId) ?? null) : NO_RULES;
      if (!inRules || d.by === 'no-rules') {
        decisions.push(undecided(NO_RULES.by));
        mismatch++;
        continue;
      }
      const lifecycle = lifecycleOf(c.workload);
      const groups = asg
        ? [
            ...(lifecycle === 'staging' ? asg.globalStaging : asg.globalRunning),
            ...asg.spaceGroups(c.spaceGuid, lifecycle),
          ]
        : [];
      decisions.push({
        cellId,
        handle: c.handle,
        workload: c.workload,
        allowed: d.allowed,
        by: d.by,
        chains: d.chains,
        local: d.local,
        rules: d.matched.map((r) => ({
          rule: ruleText(r),
          groups: [
            ...new Map(
              groups
                .filter((g) => g.rules.some((gr) => ruleMatches(gr, q.protocol, q.to, q.port)))
                .map((g) => [g.guid, { guid: g.guid, name: g.name }]),
            ).values(),
          ],
        })),
        fromCurrentAsgs: asg !== null && asg.effective(c.spaceGuid, lifecycle).hash === inRules.egress,
      });
    }
    const mine = decisions.filter((d) => d.cellId === cellId && d.by !== NOT_YET_ADDRESSED);
    cells.push(
      enforcement(
        cellId,
        'source',
        list,
        cr,
        mismatch === 0,
        `${mine.filter((d) => d.allowed).length}/${mine.length} containers allowed`,
      ),
    );
  }
  const judged = decisions.filter((d) => d.by !== NOT_YET_ADDRESSED);
  const allowedCount = judged.filter((d) => d.allowed).length;
  const allowed =
    judged.length === 0 ? null : allowedCount === judged.length ? true : allowedCount === 0 ? false : null;
  const bys = [...new Set(judged.map((d) => d.by))];
  const groupNames = [
    ...new Set(decisions.flatMap((d) => d.rules.flatMap((r) => r.groups.map((g) => g.name)))),
  ];
  const what =
    (q.protocol === 'icmp' ? `icmp to ${q.to}` : `${q.protocol} ${q.to} port ${q.port}`) +
    (bys.includes('overlay') ? ' (an overlay address: the cell holding it decides by its c2c entries)' : '');
  const reason =
    judged.length === 0
      ? `not yet addressed: no container of ${world.names.appLabel(q.from)} has an address yet (its agent reports one once the container is networked): ${what}`
      : allowed === true
        ? `allowed (${bys.join(', ')})${groupNames.length > 0 ? ` by security group ${groupNames.join(', ')}` : ''}: ${what}`
        : allowed === false
          ? `denied (${bys.join(', ')}): ${what}`
          : `depends on the container: ${allowedCount}/${judged.length} allowed (${bys.join(', ')}): ${what}`;
  return {
    kind: 'egress',
    query: q,
    from: world.names.appPath(q.from),
    allowed,
    reason,
    decisions,
    cells,
    consistent: cells.every((c) => c.agrees),
  };
}
