/**
 * Deterministic foundation generation from (seed, size): the same inputs always give the same
 * world, timestamps included (they are derived from BASE_TIME_MS, not the wall clock).
 *
 * Longer than ~400 lines: one deterministic pass that generates every record kind of a foundation
 * from a seed.
 */
import { intToIpv4, ipv4ToInt } from '../model/ip.js';
import { Prng } from './prng.js';
import {
  BASE_TIME_MS,
  type CcRule,
  FOUNDATION_SIZES,
  type FoundationSize,
  isoSeconds,
  nsFromMs,
  type SimActualLrp,
  type SimApp,
  type SimCell,
  type SimDesiredLrp,
  type SimSecurityGroup,
  type SimTask,
  SimWorld,
  type SizeSpec,
} from './world.js';

export type SizeOverrides = Partial<SizeSpec>;

const WORDS = [
  'checkout',
  'catalog',
  'billing',
  'search',
  'auth',
  'gateway',
  'orders',
  'inventory',
  'payments',
  'ledger',
  'reports',
  'notify',
  'profile',
  'cart',
  'shipping',
  'pricing',
  'audit',
  'metrics',
  'backend',
  'frontend',
];

export const APP_DOMAIN = 'apps.sim.internal';
export const LRP_DOMAIN = 'cf-apps';
export const TASK_DOMAIN = 'cf-tasks';
export const ROOT_FS = 'preloaded:cflinuxfs4';
export const APP_PORT = 8080;
export const SSH_PORT = 2222;

/** Cell overlay subnets: /24s of 10.255.0.0/16 up to 254 cells, /23s of 10.32.0.0/11 above. */
export function cellSubnet(index: number, cellCount: number): { overlay: string; subnet: string } {
  if (cellCount <= 254) return { overlay: '10.255.0.0/16', subnet: `10.255.${index + 1}.0/24` };
  if (index + 1 >= 4096) throw new Error('at most 4095 cells are supported');
  const base = (10 << 24) + (32 << 16) + (index + 1) * 512;
  return { overlay: '10.32.0.0/11', subnet: `${intToIpv4(base >>> 0)}/23` };
}

export function cellAddress(index: number): string {
  return `10.0.${16 + Math.floor(index / 250)}.${(index % 250) + 1}`;
}

export function makeCell(index: number, cellCount: number, zones = 3): SimCell {
  const id = `cell-${String(index).padStart(cellCount > 1000 ? 4 : 3, '0')}`;
  const address = cellAddress(index);
  const { subnet } = cellSubnet(index, cellCount);
  return {
    id,
    index,
    address,
    zone: `z${(index % zones) + 1}`,
    subnet,
    repAddress: `http://${address}:1800`,
    repUrl: `https://${id}.cell.service.cf.internal:1801`,
    capacity: { memoryMb: 65536, diskMb: 131072, containers: 250 },
  };
}

// ---- rules ----

function randomExternalIp(rng: Prng): string {
  const kind = rng.int(0, 3);
  if (kind === 0) return `10.${rng.int(0, 15)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
  if (kind === 1) return `172.${rng.int(16, 31)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
  if (kind === 2) return `192.168.${rng.int(0, 255)}.${rng.int(1, 254)}`;
  return `${rng.int(11, 99)}.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}`;
}

function randomDestination(rng: Prng): string {
  const kind = rng.int(0, 9);
  const ip = randomExternalIp(rng);
  if (kind <= 3) return ip;
  if (kind <= 7) {
    const bits = rng.pick([16, 20, 24, 24, 28, 32]);
    const n = ipv4ToInt(ip);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    return `${intToIpv4((n & mask) >>> 0)}/${bits}`;
  }
  const parts = ip.split('.');
  const last = Number(parts[3]);
  const end = Math.min(254, last + rng.int(1, 40));
  return `${parts.slice(0, 3).join('.')}.${Math.min(last, end - 1)}-${parts.slice(0, 3).join('.')}.${end}`;
}

export function randomRule(rng: Prng): CcRule {
  const kind = rng.int(0, 19);
  const destination = randomDestination(rng);
  let rule: CcRule;
  if (kind <= 7) {
    rule = {
      protocol: 'tcp',
      destination,
      ports: String(rng.pick([443, 5432, 3306, 6379, 8443, 9092, 27017])),
    };
  } else if (kind <= 10) {
    const ports = rng.sample([80, 443, 8080, 8443, 9000, 9090, 5672], rng.int(2, 4)).sort((a, b) => a - b);
    rule = { protocol: 'tcp', destination, ports: ports.join(',') };
  } else if (kind <= 12) {
    const start = rng.int(1024, 60000);
    rule = {
      protocol: rng.bool(0.8) ? 'tcp' : 'udp',
      destination,
      ports: `${start}-${start + rng.int(1, 500)}`,
    };
  } else if (kind <= 14) {
    rule = { protocol: 'udp', destination, ports: String(rng.pick([53, 123, 514, 8125])) };
  } else if (kind <= 16) {
    rule = rng.bool(0.5)
      ? { protocol: 'icmp', destination, type: 8, code: 0 }
      : { protocol: 'icmp', destination, type: -1, code: -1 };
  } else {
    rule = { protocol: 'all', destination };
  }
  if (rule.protocol === 'tcp' && rng.bool(0.15)) rule.log = true;
  if (rng.bool(0.2)) rule.description = `access to ${rule.destination}`;
  return rule;
}

const PUBLIC_NETWORKS: CcRule[] = [
  { protocol: 'all', destination: '0.0.0.0-9.255.255.255' },
  { protocol: 'all', destination: '11.0.0.0-169.253.255.255' },
  { protocol: 'all', destination: '169.255.0.0-172.15.255.255' },
  { protocol: 'all', destination: '172.32.0.0-192.167.255.255' },
  { protocol: 'all', destination: '192.169.0.0-255.255.255.255' },
];

const DNS_RULES: CcRule[] = [
  { protocol: 'udp', destination: '0.0.0.0/0', ports: '53' },
  { protocol: 'tcp', destination: '0.0.0.0/0', ports: '53' },
  { protocol: 'icmp', destination: '0.0.0.0/0', type: -1, code: -1 },
  { protocol: 'tcp', destination: '10.0.0.10', ports: '443', log: true, description: 'internal proxy' },
];

/** A rule every third bound group shares, so the CC merge (several annotations) is exercised. */
export const SHARED_RULE: CcRule = { protocol: 'tcp', destination: '10.10.0.0/16', ports: '443' };

function rulesFor(rng: Prng, count: number, template: CcRule[]): CcRule[] {
  const rules = template.slice(0, count).map((r) => ({ ...r }));
  while (rules.length < count) rules.push(randomRule(rng));
  return rules;
}

// ---- generation ----

export function resolveSize(size: FoundationSize, overrides: SizeOverrides = {}): SizeSpec {
  const spec = { ...FOUNDATION_SIZES[size] };
  for (const [k, v] of Object.entries(overrides) as [keyof SizeSpec, number | undefined][]) {
    if (v !== undefined) spec[k] = v;
  }
  if (spec.cells < 1) throw new Error('a foundation needs at least one cell');
  if (spec.spaces < 1 || spec.orgs < 1) throw new Error('a foundation needs at least one org and space');
  return spec;
}

export function generateWorld(seed: number, size: FoundationSize, overrides: SizeOverrides = {}): SimWorld {
  const spec = resolveSize(size, overrides);
  const rng = new Prng(seed);
  const world = new SimWorld(seed, size);
  world.overlayNetwork = cellSubnet(0, spec.cells).overlay;
  const t = (offsetSeconds: number) => BASE_TIME_MS - offsetSeconds * 1000;

  for (let i = 0; i < spec.cells; i++) world.addCell(makeCell(i, spec.cells));
  const cellIds = [...world.cells.keys()];

  const orgGuids: string[] = [];
  for (let i = 0; i < spec.orgs; i++) {
    const guid = rng.uuid();
    orgGuids.push(guid);
    world.orgs.set(guid, { guid, name: `org-${i + 1}`, createdAt: isoSeconds(t(90 * 86400 - i * 60)) });
  }
  const spaceGuids: string[] = [];
  for (let i = 0; i < spec.spaces; i++) {
    const guid = rng.uuid();
    spaceGuids.push(guid);
    const created = isoSeconds(t(80 * 86400 - i * 60));
    world.spaces.set(guid, {
      guid,
      name: `space-${i + 1}`,
      orgGuid: orgGuids[i % orgGuids.length] as string,
      createdAt: created,
      updatedAt: created,
    });
  }

  generateSecurityGroups(world, rng, spec, spaceGuids, t);
  world.asgLatestUpdate = nsFromMs(t(3600)) + (654_321_987n % 1_000_000n);

  // Apps, DesiredLRPs and ActualLRPs.
  const baseInstances = Math.floor(spec.containers / Math.max(1, spec.apps));
  const extra = spec.containers - baseInstances * spec.apps;
  let cellCursor = rng.int(0, cellIds.length - 1);
  for (let i = 0; i < spec.apps; i++) {
    const spaceGuid = spaceGuids[i % spaceGuids.length] as string;
    const guid = rng.uuid();
    const version = rng.uuid();
    const instances = baseInstances + (i < extra ? 1 : 0);
    const createdMs = t(60 * 86400 - i * 7);
    const app: SimApp = {
      guid,
      name: `${WORDS[i % WORDS.length]}-${i + 1}`,
      spaceGuid,
      processGuid: guid,
      version,
      instances,
      ports: [APP_PORT],
      state: 'STARTED',
      createdAt: isoSeconds(createdMs),
      updatedAt: isoSeconds(createdMs + 3600_000),
    };
    world.putApp(app);
    const desired = buildDesiredLrp(world, app, `${(createdMs + 3600_000) / 1000}`, rng.uuid());
    world.putDesired(desired);
    for (let index = 0; index < instances; index++) {
      const cellId = cellIds[cellCursor % cellIds.length] as string;
      cellCursor++;
      const sinceNs = nsFromMs(createdMs + 3600_000 + index * 1000) + BigInt(rng.int(0, 999_999));
      world.putActual(runningActual(world, desired, index, cellId, rng.instanceGuid(), sinceNs, rng.uuid()));
    }
  }

  // Tasks (running, one per chosen app).
  const appGuids = [...world.apps.keys()];
  for (let i = 0; i < spec.tasks && appGuids.length > 0; i++) {
    const appGuid = appGuids[(i * 7) % appGuids.length] as string;
    const cellId = cellIds[rng.int(0, cellIds.length - 1)] as string;
    const created = nsFromMs(t(600 - i));
    world.putTask({
      ...buildTask(world, appGuid, rng.uuid(), `task-${i + 1}`, created),
      state: 'Running',
      cellId,
    });
  }

  generatePolicies(world, rng, spec, appGuids);
  world.policiesLastUpdated = nsFromMs(t(1800)) + 123_456n;
  return world;
}

function generateSecurityGroups(
  world: SimWorld,
  rng: Prng,
  spec: SizeSpec,
  spaceGuids: string[],
  t: (s: number) => number,
): void {
  const n = spec.asgs;
  const base = Math.floor(spec.asgRules / Math.max(1, n));
  const extra = spec.asgRules - base * n;
  const globals = n >= 10 ? 3 : Math.min(2, n);
  for (let i = 0; i < n; i++) {
    const count = base + (i < extra ? 1 : 0);
    const guid = rng.uuid();
    let name: string;
    let rules: CcRule[];
    let runningDefault = false;
    let stagingDefault = false;
    if (i === 0) {
      name = 'public_networks';
      rules = rulesFor(rng, count, PUBLIC_NETWORKS);
      runningDefault = true;
      stagingDefault = true;
    } else if (i === 1) {
      name = 'dns';
      rules = rulesFor(rng, count, DNS_RULES);
      runningDefault = true;
    } else if (i === 2 && globals > 2) {
      name = 'staging-mirror';
      rules = rulesFor(rng, count, []);
      stagingDefault = true;
    } else {
      name = `asg-${String(i).padStart(4, '0')}`;
      rules = rulesFor(rng, count, i % 3 === 0 ? [SHARED_RULE] : []);
    }
    const created = t(70 * 86400 - i * 30);
    const running = new Set<string>();
    const staging = new Set<string>();
    if (i >= globals) {
      const j = i - globals;
      // Every space gets at least one bound group; some groups get a few more spaces.
      running.add(spaceGuids[j % spaceGuids.length] as string);
      for (const s of rng.sample(spaceGuids, rng.int(0, 2))) running.add(s);
      if (rng.bool(0.3)) staging.add(rng.pick(spaceGuids));
      // The first bound group spans more than 50 spaces when there are enough, so v2 omits it inline.
      if (j === 0 && spaceGuids.length > 50) {
        for (const s of spaceGuids.slice(0, Math.min(spaceGuids.length, 60))) running.add(s);
        for (const s of spaceGuids.slice(0, Math.min(spaceGuids.length, 55))) staging.add(s);
      }
    }
    const g: SimSecurityGroup = {
      guid,
      id: world.nextSecurityGroupId++,
      name,
      createdAt: isoSeconds(created),
      updatedAt: isoSeconds(created + 600_000),
      rules,
      runningDefault,
      stagingDefault,
      runningSpaces: running,
      stagingSpaces: staging,
    };
    world.putSecurityGroup(g);
  }
  // Spaces not bound by the loop above (more spaces than bound groups) share round-robin groups.
  const bindable = [...world.securityGroups.values()].filter((g) => !g.runningDefault && !g.stagingDefault);
  if (bindable.length > 0) {
    for (let s = 0; s < spaceGuids.length; s++) {
      const space = spaceGuids[s] as string;
      if (bindable.some((g) => g.runningSpaces.has(space))) continue;
      (bindable[s % bindable.length] as SimSecurityGroup & { runningSpaces: Set<string> }).runningSpaces.add(
        space,
      );
    }
  }
}

function generatePolicies(world: SimWorld, rng: Prng, spec: SizeSpec, appGuids: string[]): void {
  if (appGuids.length === 0) return;
  const seen = new Set<string>();
  let attempts = 0;
  while (world.policies.length < spec.policies && attempts < spec.policies * 20) {
    attempts++;
    const sourceId = rng.pick(appGuids);
    const destinationId = rng.pick(appGuids);
    const protocol = rng.bool(0.85) ? 'tcp' : 'udp';
    const start = rng.bool(0.7) ? APP_PORT : rng.int(1024, 9000);
    const end = rng.bool(0.8) ? start : start + rng.int(1, 20);
    const key = `${sourceId}|${destinationId}|${protocol}|${start}|${end}`;
    if (seen.has(key)) continue;
    seen.add(key);
    world.allocateTag(sourceId, 'app');
    world.allocateTag(destinationId, 'app');
    world.policies.push({ sourceId, destinationId, protocol, start, end });
  }
  world.versions.policy++;
}

/** The DesiredLRP CC would desire for the app's current process version (A.6). */
export function buildDesiredLrp(
  world: SimWorld,
  app: SimApp,
  annotation: string,
  epoch: string,
): SimDesiredLrp {
  const space = world.spaces.get(app.spaceGuid);
  const orgGuid = space?.orgGuid ?? '';
  const ports = [...new Set([...app.ports, SSH_PORT])];
  return {
    processGuid: `${app.processGuid}-${app.version}`,
    appGuid: app.guid,
    spaceGuid: app.spaceGuid,
    orgGuid,
    processType: 'web',
    domain: LRP_DOMAIN,
    instances: app.instances,
    ports,
    rootFs: ROOT_FS,
    memoryMb: 256,
    diskMb: 1024,
    maxPids: 1024,
    cpuWeight: 9,
    startTimeoutMs: 60_000,
    annotation,
    egressRules: world.egressRulesFor(app.spaceGuid, 'running'),
    network: {
      policy_group_id: app.guid,
      app_id: app.guid,
      space_id: app.spaceGuid,
      org_id: orgGuid,
      ports: [...new Set(app.ports)].sort((a, b) => a - b).join(','),
      container_workload: 'app',
    },
    routes: {
      'cf-router': [
        {
          hostnames: [`${app.name}.${APP_DOMAIN}`],
          port: app.ports[0] ?? APP_PORT,
          route_service_url: null,
          isolation_segment: null,
          protocol: 'http1',
        },
      ],
      'tcp-router': [],
      'internal-router': [{ hostname: `${app.name}.apps.internal` }],
      'diego-ssh': {
        container_port: SSH_PORT,
        private_key: 'sim-placeholder',
        host_fingerprint: 'sim-placeholder',
      },
    },
    modificationTag: { epoch, index: 0 },
    placementTags: [],
  };
}

/** A RUNNING ActualLRP of `desired` on `cellId` with a fresh container IP and host ports. */
export function runningActual(
  world: SimWorld,
  desired: SimDesiredLrp,
  index: number,
  cellId: string,
  instanceGuid: string,
  since: bigint,
  epoch: string,
): SimActualLrp {
  const cell = world.cells.get(cellId);
  if (!cell) throw new Error(`unknown cell ${cellId}`);
  return {
    processGuid: desired.processGuid,
    index,
    domain: desired.domain,
    instanceGuid,
    cellId,
    address: cell.address,
    instanceAddress: world.allocateIp(cellId),
    ports: desired.ports.map((containerPort) => ({
      containerPort,
      hostPort: world.allocateHostPort(cellId),
    })),
    state: 'RUNNING',
    crashCount: 0,
    crashReason: '',
    placementError: '',
    since,
    modificationTag: { epoch, index: 2 },
    routable: true,
    availabilityZone: cell.zone,
  };
}

/** A Pending task of the app, as CC desires it (egress from the space's running ASGs). */
export function buildTask(
  world: SimWorld,
  appGuid: string,
  taskGuid: string,
  name: string,
  now: bigint,
): SimTask {
  const app = world.apps.get(appGuid);
  const spaceGuid = app?.spaceGuid ?? '';
  const orgGuid = world.spaces.get(spaceGuid)?.orgGuid ?? '';
  return {
    taskGuid,
    domain: TASK_DOMAIN,
    appGuid,
    spaceGuid,
    orgGuid,
    name,
    state: 'Pending',
    cellId: '',
    createdAt: now,
    updatedAt: now,
    firstCompletedAt: 0n,
    failed: false,
    failureReason: '',
    result: '',
    rootFs: ROOT_FS,
    memoryMb: 256,
    diskMb: 1024,
    egressRules: world.egressRulesFor(spaceGuid, 'running'),
    network: {
      policy_group_id: appGuid,
      app_id: appGuid,
      space_id: spaceGuid,
      org_id: orgGuid,
      ports: [...new Set(app?.ports ?? [])].sort((a, b) => a - b).join(','),
      container_workload: 'task',
    },
  };
}
