/**
 * The simulator's model of a CF foundation: orgs, spaces, apps, Diego DesiredLRPs / ActualLRPs /
 * Tasks / cells, CAPI security groups, policy-server policies and tags. Records are treated as
 * immutable: a change replaces a record with a new object, so encoders can cache by identity.
 *
 * Longer than ~400 lines: the simulator's record types and the one store that keeps them with their
 * indexes; mostly declarations.
 */
import { intToIpv4, ipv4ToInt } from '../model/ip.js';

export type FoundationSize = 'small' | 'medium' | 'large';

export interface SizeSpec {
  cells: number;
  containers: number;
  apps: number;
  spaces: number;
  asgs: number;
  asgRules: number;
  policies: number;
  orgs: number;
  tasks: number;
}

/** docs/architecture.md, "Foundation sizes"; orgs and tasks are the simulator's own choice. */
export const FOUNDATION_SIZES: Record<FoundationSize, SizeSpec> = {
  small: {
    cells: 3,
    containers: 30,
    apps: 10,
    spaces: 3,
    asgs: 5,
    asgRules: 20,
    policies: 10,
    orgs: 1,
    tasks: 2,
  },
  medium: {
    cells: 100,
    containers: 10_000,
    apps: 1_000,
    spaces: 100,
    asgs: 200,
    asgRules: 2_000,
    policies: 5_000,
    orgs: 10,
    tasks: 20,
  },
  large: {
    cells: 2_500,
    containers: 250_000,
    apps: 25_000,
    spaces: 2_500,
    asgs: 1_000,
    asgRules: 20_000,
    policies: 50_000,
    orgs: 100,
    tasks: 100,
  },
};

export interface SimCell {
  id: string;
  index: number;
  /** Underlay (host) IP: ActualLRPNetInfo.address. */
  address: string;
  zone: string;
  /** Overlay subnet of the cell's containers, e.g. 10.255.1.0/24. */
  subnet: string;
  repAddress: string;
  repUrl: string;
  capacity: { memoryMb: number; diskMb: number; containers: number };
}

export interface SimOrg {
  guid: string;
  name: string;
  createdAt: string;
}

export interface SimSpace {
  guid: string;
  name: string;
  orgGuid: string;
  createdAt: string;
  updatedAt: string;
}

export interface SimApp {
  guid: string;
  name: string;
  spaceGuid: string;
  /** Web process guid (= app guid). */
  processGuid: string;
  /** Current process version (uuid); the DesiredLRP is `<processGuid>-<version>`. */
  version: string;
  instances: number;
  ports: number[];
  state: 'STARTED' | 'STOPPED';
  createdAt: string;
  updatedAt: string;
}

/** A rule as CC stores it (v2/v3 JSON; keys only when given). */
export interface CcRule {
  protocol: 'tcp' | 'udp' | 'icmp' | 'icmpv6' | 'all';
  destination: string;
  ports?: string;
  type?: number;
  code?: number;
  log?: boolean;
  description?: string;
}

/** A rule as CC compiles it into DesiredLRP/Task egress_rules (BBS SecurityGroupRule). */
export interface BbsEgressRule {
  protocol: string;
  destinations: string[];
  ports?: number[];
  portRange?: { start: number; end: number };
  icmpInfo?: { type: number; code: number };
  log?: boolean;
  annotations: string[];
}

export interface SimSecurityGroup {
  guid: string;
  /** The policy server's internal row id (ordering and `from`/`next` of its security_groups API). */
  id: number;
  name: string;
  createdAt: string;
  updatedAt: string;
  rules: CcRule[];
  runningDefault: boolean;
  stagingDefault: boolean;
  runningSpaces: ReadonlySet<string>;
  stagingSpaces: ReadonlySet<string>;
}

export interface ModificationTag {
  epoch: string;
  index: number;
}

export interface SimDesiredLrp {
  processGuid: string;
  appGuid: string;
  spaceGuid: string;
  orgGuid: string;
  processType: string;
  domain: string;
  instances: number;
  ports: number[];
  rootFs: string;
  memoryMb: number;
  diskMb: number;
  maxPids: number;
  cpuWeight: number;
  startTimeoutMs: number;
  annotation: string;
  /** Snapshot of the compiled running ASGs at desire time (shared between LRPs of a space). */
  egressRules: readonly BbsEgressRule[];
  network: Readonly<Record<string, string>>;
  routes: Readonly<Record<string, unknown>>;
  modificationTag: ModificationTag;
  placementTags: string[];
}

export type ActualState = 'UNCLAIMED' | 'CLAIMED' | 'RUNNING' | 'CRASHED';

export interface SimPortMapping {
  containerPort: number;
  hostPort: number;
  containerTlsProxyPort?: number;
  hostTlsProxyPort?: number;
}

export interface SimActualLrp {
  processGuid: string;
  index: number;
  domain: string;
  instanceGuid: string;
  cellId: string;
  address: string;
  instanceAddress: string;
  ports: SimPortMapping[];
  state: ActualState;
  crashCount: number;
  crashReason: string;
  placementError: string;
  /** ns since epoch. */
  since: bigint;
  modificationTag: ModificationTag;
  routable: boolean;
  availabilityZone: string;
}

export type TaskState = 'Pending' | 'Running' | 'Completed' | 'Resolving';

export interface SimTask {
  taskGuid: string;
  domain: string;
  appGuid: string;
  spaceGuid: string;
  orgGuid: string;
  name: string;
  state: TaskState;
  cellId: string;
  createdAt: bigint;
  updatedAt: bigint;
  firstCompletedAt: bigint;
  failed: boolean;
  failureReason: string;
  result: string;
  rootFs: string;
  memoryMb: number;
  diskMb: number;
  egressRules: readonly BbsEgressRule[];
  network: Readonly<Record<string, string>>;
}

export interface SimPolicy {
  sourceId: string;
  destinationId: string;
  protocol: 'tcp' | 'udp';
  start: number;
  end: number;
}

export interface SimTag {
  id: string;
  tag: number;
  type: string;
}

export const BASE_TIME_MS = Date.UTC(2024, 0, 1);

export function nsFromMs(ms: number): bigint {
  return BigInt(Math.round(ms)) * 1_000_000n;
}

let lastNow = 0n;
/** Current time in ns, strictly increasing within this process. */
export function nowNs(): bigint {
  const ms = BigInt(Date.now()) * 1_000_000n;
  const sub = process.hrtime.bigint() % 1_000_000n;
  let t = ms + sub;
  if (t <= lastNow) t = lastNow + 1n;
  lastNow = t;
  return t;
}

export function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}

export function actualKey(processGuid: string, index: number): string {
  return `${processGuid}/${index}`;
}

interface CellAlloc {
  base: number;
  hosts: number;
  next: number;
  /** 1: up from the bottom of the subnet; -1: down from the top (a leased subnet, see setCellSubnet). */
  step: 1 | -1;
  used: Set<number>;
  nextPort: number;
  usedPorts: Set<number>;
}

/** An empty pool of container addresses in `subnet` (IPv4 CIDR; host bits ignored). */
function addressPool(
  subnet: string,
  step: 1 | -1 = 1,
): Pick<CellAlloc, 'base' | 'hosts' | 'next' | 'step' | 'used'> {
  const [net, bits] = subnet.split('/');
  const hostBits = 32 - Number(bits);
  const hosts = 2 ** hostBits;
  const base = (ipv4ToInt(net ?? '0.0.0.0') & ~(hosts - 1)) >>> 0;
  return { base, hosts, next: step === 1 ? 2 : hosts - 2, step, used: new Set() };
}

/** The live foundation. Callers must treat it as read-only; the simulator mutates it. */
export class SimWorld {
  readonly seed: number;
  readonly size: FoundationSize;
  /** Overlay network containing every cell subnet. */
  overlayNetwork = '10.255.0.0/16';
  readonly cells = new Map<string, SimCell>();
  readonly orgs = new Map<string, SimOrg>();
  readonly spaces = new Map<string, SimSpace>();
  readonly apps = new Map<string, SimApp>();
  /** By process guid (73 chars). */
  readonly desiredLrps = new Map<string, SimDesiredLrp>();
  /** By `<process guid>/<index>`. */
  readonly actualLrps = new Map<string, SimActualLrp>();
  readonly tasks = new Map<string, SimTask>();
  readonly securityGroups = new Map<string, SimSecurityGroup>();
  readonly policies: SimPolicy[] = [];
  /** Policy-server tags by id (app guid, or e.g. INGRESS_ROUTER). */
  readonly tags = new Map<string, SimTag>();
  /** CC `asg_latest_update` in ns since epoch. */
  asgLatestUpdate = 0n;
  /** Policy server `policies_last_updated` in ns since epoch. */
  policiesLastUpdated = 0n;
  /** Bumped on every change of the respective collection (encoders cache whole lists by it). */
  readonly versions = { actual: 0, desired: 0, task: 0, asg: 0, policy: 0, cell: 0 };
  nextSecurityGroupId = 1;

  private readonly byProcess = new Map<string, Map<number, SimActualLrp>>();
  private readonly appsBySpace = new Map<string, Set<string>>();
  private readonly alloc = new Map<string, CellAlloc>();
  private readonly egressCache = new Map<string, readonly BbsEgressRule[]>();

  constructor(seed: number, size: FoundationSize) {
    this.seed = seed;
    this.size = size;
  }

  // ---- cells and addresses ----

  addCell(cell: SimCell): void {
    this.cells.set(cell.id, cell);
    this.alloc.set(cell.id, {
      ...addressPool(cell.subnet),
      nextPort: 61000,
      usedPorts: new Set(),
    });
    this.versions.cell++;
  }

  /**
   * Put the cell on another overlay subnet (the one its agent leased: in CF the container addresses
   * come from the cell's lease, not from Diego). Container addresses are allocated from it from now
   * on, from the top down: the cell's real containers (CNI, in the lab) take theirs from the bottom
   * of the same subnet, so the two meet only when it is full. The caller re-addresses the instances
   * outside it (ChangeEngine's `cell-subnet`).
   */
  setCellSubnet(cellId: string, subnet: string): void {
    const cell = this.cells.get(cellId);
    const a = this.alloc.get(cellId);
    if (!cell || !a) throw new Error(`unknown cell ${cellId}`);
    this.cells.set(cellId, { ...cell, subnet });
    this.alloc.set(cellId, { ...a, ...addressPool(subnet, -1) });
    this.versions.cell++;
  }

  /** Whether `ip` is a container address of the cell's subnet (not its network, gateway or broadcast). */
  inCellSubnet(cellId: string, ip: string): boolean {
    const a = this.alloc.get(cellId);
    if (!a || !ip) return false;
    const host = ipv4ToInt(ip) - a.base;
    return host >= 2 && host < a.hosts - 1;
  }

  private cellAlloc(cellId: string): CellAlloc {
    const a = this.alloc.get(cellId);
    if (!a) throw new Error(`unknown cell ${cellId}`);
    return a;
  }

  /** Next free container IP on the cell (.1 is the cell's gateway, the last is broadcast). */
  allocateIp(cellId: string): string {
    const a = this.cellAlloc(cellId);
    for (let tries = 0; tries < a.hosts; tries++) {
      const host = a.next;
      if (a.step === 1) a.next = a.next + 1 >= a.hosts - 1 ? 2 : a.next + 1;
      else a.next = a.next - 1 < 2 ? a.hosts - 2 : a.next - 1;
      if (!a.used.has(host)) {
        a.used.add(host);
        return intToIpv4(a.base + host);
      }
    }
    throw new Error(`cell ${cellId} has no free container IP`);
  }

  /** Mark an externally chosen IP as used (lrp-place); ignored when outside the cell subnet. */
  claimIp(cellId: string, ip: string): void {
    const a = this.alloc.get(cellId);
    if (!a) return;
    const host = ipv4ToInt(ip) - a.base;
    if (host > 0 && host < a.hosts) a.used.add(host);
  }

  releaseIp(cellId: string, ip: string): void {
    const a = this.alloc.get(cellId);
    if (!a || !ip) return;
    a.used.delete(ipv4ToInt(ip) - a.base);
  }

  allocateHostPort(cellId: string): number {
    const a = this.cellAlloc(cellId);
    for (let tries = 0; tries < 4000; tries++) {
      const p = a.nextPort;
      a.nextPort = a.nextPort >= 64999 ? 61000 : a.nextPort + 1;
      if (!a.usedPorts.has(p)) {
        a.usedPorts.add(p);
        return p;
      }
    }
    throw new Error(`cell ${cellId} has no free host port`);
  }

  claimHostPort(cellId: string, port: number): void {
    this.alloc.get(cellId)?.usedPorts.add(port);
  }

  releaseHostPort(cellId: string, port: number): void {
    this.alloc.get(cellId)?.usedPorts.delete(port);
  }

  // ---- apps ----

  putApp(app: SimApp): void {
    const prev = this.apps.get(app.guid);
    if (prev && prev.spaceGuid !== app.spaceGuid) this.appsBySpace.get(prev.spaceGuid)?.delete(app.guid);
    this.apps.set(app.guid, app);
    let set = this.appsBySpace.get(app.spaceGuid);
    if (!set) {
      set = new Set();
      this.appsBySpace.set(app.spaceGuid, set);
    }
    set.add(app.guid);
  }

  deleteApp(guid: string): void {
    const app = this.apps.get(guid);
    if (!app) return;
    this.apps.delete(guid);
    this.appsBySpace.get(app.spaceGuid)?.delete(guid);
  }

  appsInSpace(spaceGuid: string): string[] {
    return [...(this.appsBySpace.get(spaceGuid) ?? [])];
  }

  // ---- LRPs ----

  putDesired(d: SimDesiredLrp): void {
    this.desiredLrps.set(d.processGuid, d);
    this.versions.desired++;
  }

  deleteDesired(processGuid: string): void {
    if (this.desiredLrps.delete(processGuid)) this.versions.desired++;
  }

  /** The current DesiredLRP of an app (its process guid starts with the app's web process guid). */
  desiredOfApp(appGuid: string): SimDesiredLrp | undefined {
    const app = this.apps.get(appGuid);
    if (!app) return undefined;
    return this.desiredLrps.get(`${app.processGuid}-${app.version}`);
  }

  putActual(a: SimActualLrp): void {
    this.actualLrps.set(actualKey(a.processGuid, a.index), a);
    let m = this.byProcess.get(a.processGuid);
    if (!m) {
      m = new Map();
      this.byProcess.set(a.processGuid, m);
    }
    m.set(a.index, a);
    this.versions.actual++;
  }

  deleteActual(processGuid: string, index: number): SimActualLrp | undefined {
    const key = actualKey(processGuid, index);
    const a = this.actualLrps.get(key);
    if (!a) return undefined;
    this.actualLrps.delete(key);
    const m = this.byProcess.get(processGuid);
    m?.delete(index);
    if (m && m.size === 0) this.byProcess.delete(processGuid);
    this.versions.actual++;
    return a;
  }

  actualsOf(processGuid: string): SimActualLrp[] {
    const m = this.byProcess.get(processGuid);
    if (!m) return [];
    return [...m.values()].sort((x, y) => x.index - y.index);
  }

  actualAt(processGuid: string, index: number): SimActualLrp | undefined {
    return this.byProcess.get(processGuid)?.get(index);
  }

  /** Cells running (any state with a cell) instances of the given apps. */
  cellsOfApps(appGuids: Iterable<string>): Set<string> {
    const cells = new Set<string>();
    for (const guid of appGuids) {
      const app = this.apps.get(guid);
      if (!app) continue;
      for (const [pg, m] of this.byProcess) {
        if (!pg.startsWith(app.processGuid)) continue;
        for (const a of m.values()) if (a.cellId) cells.add(a.cellId);
      }
      for (const t of this.tasks.values()) if (t.appGuid === guid && t.cellId) cells.add(t.cellId);
    }
    return cells;
  }

  /** Cells with an instance (or task) of any app in the given spaces. */
  cellsOfSpaces(spaceGuids: Iterable<string>): Set<string> {
    const spaces = new Set(spaceGuids);
    const cells = new Set<string>();
    for (const d of this.desiredLrps.values()) {
      if (!spaces.has(d.spaceGuid)) continue;
      const m = this.byProcess.get(d.processGuid);
      if (m) for (const a of m.values()) if (a.cellId) cells.add(a.cellId);
    }
    for (const t of this.tasks.values()) if (spaces.has(t.spaceGuid) && t.cellId) cells.add(t.cellId);
    return cells;
  }

  // ---- tasks ----

  putTask(t: SimTask): void {
    this.tasks.set(t.taskGuid, t);
    this.versions.task++;
  }

  deleteTask(guid: string): void {
    if (this.tasks.delete(guid)) this.versions.task++;
  }

  // ---- security groups ----

  putSecurityGroup(g: SimSecurityGroup): void {
    this.securityGroups.set(g.guid, g);
    this.egressCache.clear();
    this.versions.asg++;
  }

  deleteSecurityGroup(guid: string): void {
    if (this.securityGroups.delete(guid)) {
      this.egressCache.clear();
      this.versions.asg++;
    }
  }

  /** Groups in effect for a space and lifecycle (bound, or globally enabled), in id order. */
  groupsForSpace(spaceGuid: string, lifecycle: 'running' | 'staging'): SimSecurityGroup[] {
    const out: SimSecurityGroup[] = [];
    for (const g of this.securityGroups.values()) {
      const global = lifecycle === 'running' ? g.runningDefault : g.stagingDefault;
      const bound = lifecycle === 'running' ? g.runningSpaces.has(spaceGuid) : g.stagingSpaces.has(spaceGuid);
      if (global || bound) out.push(g);
    }
    return out.sort((a, b) => a.id - b.id);
  }

  /** Compiled egress rules of a space (cached until the next ASG change), as CC desires them. */
  egressRulesFor(spaceGuid: string, lifecycle: 'running' | 'staging'): readonly BbsEgressRule[] {
    const key = `${lifecycle}:${spaceGuid}`;
    let rules = this.egressCache.get(key);
    if (!rules) {
      rules = Object.freeze(compileEgressRules(this.groupsForSpace(spaceGuid, lifecycle)));
      this.egressCache.set(key, rules);
    }
    return rules;
  }

  // ---- policies ----

  private maxTag = 0;
  private readonly freedTags: number[] = [];

  /** The tag of `id`, allocating the lowest free one (the policy server reuses freed group rows). */
  allocateTag(id: string, type: string): SimTag {
    const existing = this.tags.get(id);
    if (existing) return existing;
    let tag: number;
    if (this.freedTags.length > 0) {
      this.freedTags.sort((a, b) => a - b);
      tag = this.freedTags.shift() as number;
    } else {
      tag = ++this.maxTag;
    }
    if (tag > 0xffff) throw new Error('policy server tag space exhausted');
    const t = { id, tag, type };
    this.tags.set(id, t);
    return t;
  }

  /** Free an app's tag (when it is in no policy any more). */
  releaseTag(id: string): void {
    const t = this.tags.get(id);
    if (!t) return;
    this.tags.delete(id);
    this.freedTags.push(t.tag);
  }
}

/** A tag as the policy server prints it: upper-case hex, 2×tag_length (4) digits. */
export function tagHex(tag: number): string {
  return tag.toString(16).toUpperCase().padStart(4, '0');
}

function parsePorts(ports: string): { ports?: number[]; portRange?: { start: number; end: number } } {
  const trimmed = ports.trim();
  if (trimmed.includes('-')) {
    const [a, b] = trimmed.split('-');
    return { portRange: { start: Number((a ?? '').trim()), end: Number((b ?? '').trim()) } };
  }
  return { ports: trimmed.split(',').map((p) => Number(p.trim())) };
}

/** CC's `EgressRules#transform_rule` for one stored rule (A.6). */
export function transformRule(rule: CcRule): Omit<BbsEgressRule, 'annotations'> {
  const out: Omit<BbsEgressRule, 'annotations'> = {
    protocol: rule.protocol,
    destinations: [rule.destination],
  };
  if ((rule.protocol === 'tcp' || rule.protocol === 'udp') && rule.ports !== undefined) {
    Object.assign(out, parsePorts(rule.ports));
  }
  if (rule.protocol === 'icmp') out.icmpInfo = { type: rule.type ?? 0, code: rule.code ?? 0 };
  if (rule.log === true) out.log = true;
  return out;
}

/**
 * Compile groups into egress rules the way CC does: identical rules from several groups are merged
 * with sorted `security_group_id:<guid>` annotations, and log rules are ordered last.
 */
export function compileEgressRules(groups: readonly SimSecurityGroup[]): BbsEgressRule[] {
  const merged = new Map<string, BbsEgressRule>();
  for (const g of groups) {
    const annotation = `security_group_id:${g.guid}`;
    for (const rule of g.rules) {
      const { key, transformed } = transformedOf(rule);
      const have = merged.get(key);
      if (have) {
        if (!have.annotations.includes(annotation)) have.annotations.push(annotation);
      } else {
        merged.set(key, { ...transformed, annotations: [annotation] });
      }
    }
  }
  const all = [...merged.values()];
  for (const r of all) r.annotations.sort();
  return [...all.filter((r) => !r.log), ...all.filter((r) => r.log)];
}

const transformCache = new WeakMap<
  CcRule,
  { key: string; transformed: Omit<BbsEgressRule, 'annotations'> }
>();

function transformedOf(rule: CcRule): { key: string; transformed: Omit<BbsEgressRule, 'annotations'> } {
  let hit = transformCache.get(rule);
  if (!hit) {
    const t = transformRule(rule);
    const key = JSON.stringify([t.protocol, t.destinations, t.ports, t.portRange, t.icmpInfo, t.log]);
    hit = { key, transformed: t };
    transformCache.set(rule, hit);
  }
  return hit;
}
