/**
 * The CNI plugin itself: one invocation (env + stdin) in, stdout + exit status out. Used unchanged
 * by the warm executor (executor.ts) and by the one-off fallback process (fallback.ts), so both
 * paths give identical results.
 *
 * ADD:  validate → netns exists → subnet + MTU → reserve an address and record the container in
 *       the datastore (one locked step) → in parallel: nft (dataplane.addContainer: ASGs, NetIn,
 *       memberships; one transaction) and the veth (two `ip -batch` processes) → tell the agent
 *       (best effort) → result. Any failure undoes every step that ran.
 * DEL:  rules, veth and record removed; each step tolerates "already gone"; the address is
 *       released only once the rules are gone.
 * CHECK, GC, STATUS, VERSION as in SPEC 1.1.0.
 */
import { accessSync } from 'node:fs';
import { atomId, type Element } from '../dataplane/elements.js';
import type { Logger } from '../lib/log.js';
import { normalizeRules, ruleSetHash } from '../model/canonical.js';
import type { CellConfig, CellContainer, EgressRule } from '../model/types.js';
import { type CniEvent, postEvent } from './agent-client.js';
import {
  type AddInput,
  type Attachment,
  decodeStdin,
  type NetConfig,
  parseAddInput,
  parseNetConfig,
  parseValidAttachments,
} from './config.js';
import { type CheckedEnv, checkEnv } from './env.js';
import { CNI_ERR, CniError, cniErrorJson, toCniError } from './errors.js';
import { type IpBatchSource, ON_DEMAND } from './ip-pool.js';
import { allocate, capacity, inSubnet, readSubnet } from './ipam.js';
import {
  configureContainerSide,
  createHostSide,
  deleteHostIf,
  ensureIpForward,
  LinkError,
  listHostIfs,
  showLinks,
  showRoutes,
  type VethSpec,
} from './link.js';
import { containerMtu, type MtuCache } from './mtu.js';
import { containerMac, GATEWAY, HOST_IF, hostIfName, hostMac } from './names.js';
import { Datastore, type StoreEntry } from './store.js';
import type { CniRequest, CniResponse, CniResult } from './types.js';
import {
  checkCommandVersion,
  formatResult,
  isSupportedVersion,
  versionInfo,
  WIRE_VERSION,
} from './version.js';

/** A kernel table read back: what CHECK and GC need to see (NftDataplane's KernelState fits). */
export interface TableView {
  exists: boolean;
  sets: Map<string, Map<string, Element>>;
}

/** The container-level operations of the dataplane (NftDataplane implements them). */
export interface ContainerDataplane {
  /** `fresh`: nothing of this container is in the table yet (its address was just allocated). */
  addContainer(
    container: CellContainer,
    egressRules: EgressRule[],
    config: CellConfig,
    opts?: { fresh?: boolean },
  ): Promise<unknown>;
  removeContainer(handleOrIp: string): Promise<unknown>;
  readBack(): Promise<TableView>;
}

export interface CniDeps {
  /** The dataplane for a configuration (the executor keeps one per table and state dir). */
  dataplane: (cfg: NetConfig) => ContainerDataplane;
  /** Tells the agent; default: POST to `agent_socket`. Failures are logged, never fatal. */
  notify?: (event: CniEvent, cfg: NetConfig) => Promise<void>;
  mtuCache?: MtuCache;
  /** Where ADD and DEL get their `ip -batch -` processes (the executor's IpPool); default: on demand. */
  ipBatches?: IpBatchSource;
  /** Logger; when absent one is made from the config (`log_level`, `log_file`) by `loggerFor`. */
  logger?: Logger;
  loggerFor?: (cfg: NetConfig) => Logger;
}

const SILENT: Logger = {
  level: 'silent',
  fatal: () => undefined,
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  trace: () => undefined,
  silent: () => undefined,
  child: () => SILENT,
} as unknown as Logger;

/** cniVersion to print errors with: the config's when readable and supported. */
function versionOf(stdin: string): string {
  try {
    const v = (JSON.parse(stdin) as { cniVersion?: unknown }).cniVersion;
    return isSupportedVersion(v) ? v : WIRE_VERSION;
  } catch {
    return WIRE_VERSION;
  }
}

/** Runs one invocation; never throws (errors become CNI error JSON with exit status 1). */
export async function invokeCni(req: CniRequest, deps: CniDeps): Promise<CniResponse> {
  let log: Logger = deps.logger ?? SILENT;
  let cmd = req.env.CNI_COMMAND ?? '';
  try {
    const env = checkEnv(req.env);
    cmd = env.command;
    if (env.command === 'VERSION') return { stdout: `${JSON.stringify(versionInfo())}\n`, exitCode: 0 };
    const raw = decodeStdin(req.stdin);
    const cfg = parseNetConfig(raw);
    if (!deps.logger && deps.loggerFor) log = deps.loggerFor(cfg);
    log = log.child({ cmd, handle: env.containerId, ifname: env.ifname });
    checkCommandVersion(env.command, cfg.cniVersion);
    const t0 = performance.now();
    let out = '';
    switch (env.command) {
      case 'ADD':
        out = `${JSON.stringify(formatResult(await cmdAdd(env, cfg, deps, log), cfg.cniVersion))}\n`;
        break;
      case 'DEL':
        await cmdDel(env, cfg, deps, log);
        break;
      case 'CHECK':
        await cmdCheck(env, cfg, deps);
        break;
      case 'GC':
        await cmdGc(cfg, deps, log);
        break;
      case 'STATUS':
        await cmdStatus(cfg);
        break;
    }
    log.debug({ ms: Math.round((performance.now() - t0) * 10) / 10 }, 'cni invocation done');
    return { stdout: out, exitCode: 0 };
  } catch (err) {
    const e = toCniError(err);
    log.warn({ cmd, code: e.cniCode, msg: e.message }, 'cni invocation failed');
    return { stdout: `${JSON.stringify(cniErrorJson(e, versionOf(req.stdin)))}\n`, exitCode: 1 };
  }
}

// ---------------------------------------------------------------------------------------- ADD

async function notify(deps: CniDeps, cfg: NetConfig, event: CniEvent, log: Logger): Promise<void> {
  try {
    if (deps.notify) {
      await deps.notify(event, cfg);
      return;
    }
    if (cfg.agentSocket === null) return;
    const r = await postEvent(cfg.agentSocket, event, cfg.agentTimeoutMs);
    if (!r.ok)
      log.info({ agentSocket: cfg.agentSocket, error: r.error }, 'agent not told (it will catch up)');
  } catch (err) {
    log.info({ error: String(err) }, 'agent notification failed (it will catch up)');
  }
}

function buildContainer(handle: string, ip: string, input: AddInput, rules: EgressRule[]): CellContainer {
  return {
    handle,
    ip,
    appGuid: input.appGuid,
    spaceGuid: input.spaceGuid,
    orgGuid: input.orgGuid,
    workload: input.workload,
    tag: null,
    egress: ruleSetHash(rules),
    netIn: input.portMappings,
  };
}

/** Our result merged after a previous plugin's (chaining): its entries first, ours appended. */
function mergeResult(prev: CniResult | null, own: CniResult): CniResult {
  if (!prev) return own;
  const prevIfs = prev.interfaces ?? [];
  const out: CniResult = {
    cniVersion: own.cniVersion,
    interfaces: [...prevIfs, ...(own.interfaces ?? [])],
    ips: [
      ...(prev.ips ?? []),
      ...(own.ips ?? []).map((ip) =>
        ip.interface === undefined ? ip : { ...ip, interface: ip.interface + prevIfs.length },
      ),
    ],
    routes: [...(prev.routes ?? []), ...(own.routes ?? [])],
  };
  const dns = { ...(prev.dns ?? {}), ...(own.dns ?? {}) };
  if (Object.keys(dns).length > 0) out.dns = dns;
  return out;
}

function netnsExists(path: string): void {
  // synchronous: a stat, cheaper than a thread-pool round trip on ADD's path
  try {
    accessSync(path);
  } catch {
    throw new CniError(CNI_ERR.INVALID_NETNS, `network namespace ${path} does not exist`, '', {
      netns: path,
    });
  }
}

/**
 * Reserves an address and records the container, in one locked datastore step (the store is the
 * IPAM state). An existing entry for the handle is an error: the runtime must DEL first.
 */
async function reserveAddress(
  store: Datastore,
  handle: string,
  subnet: Awaited<ReturnType<typeof readSubnet>>,
  input: AddInput,
  cfg: NetConfig,
  ifname: string,
  hostIf: string,
  netns: string,
  mtu: number,
): Promise<string> {
  return store.update((tx) => {
    const existing = tx.data[handle];
    if (existing) {
      throw new CniError(
        CNI_ERR.INTERNAL,
        `container ${handle} is already attached (ip ${existing.ip}, interface ${existing.cfnet?.ifname ?? '?'}); DEL it first`,
        '',
        { handle },
      );
    }
    const used = new Set<string>();
    for (const e of Object.values(tx.data))
      if (e && typeof e.ip === 'string' && inSubnet(subnet, e.ip)) used.add(e.ip);
    // allocate() throws 999 naming the subnet when it is full
    const chosen = allocate(subnet, used, tx.lastReserved);
    const entry: StoreEntry = {
      handle,
      ip: chosen,
      metadata: input.metadata,
      cfnet: {
        network: cfg.name,
        ifname,
        hostIface: hostIf,
        netns,
        mtu,
        subnet: subnet.subnet,
        createdAt: new Date().toISOString(),
      },
    };
    tx.data[handle] = entry;
    tx.lastReserved = chosen;
    tx.changed = true;
    return chosen;
  });
}

async function cmdAdd(env: CheckedEnv, cfg: NetConfig, deps: CniDeps, log: Logger): Promise<CniResult> {
  const handle = env.containerId!;
  const ifname = env.ifname!;
  const netns = env.netns!;
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  const mark = (k: string) => {
    steps[k] = Math.round((performance.now() - t0) * 10) / 10;
  };
  const input = parseAddInput(cfg);
  const rules = normalizeRules(input.netOutRules);
  netnsExists(netns);
  // started now (or ready in the executor's pool) and fed once the address is known, so their
  // start-up overlaps the allocation
  const batches = deps.ipBatches ?? ON_DEMAND;
  const hostBatch = batches.host();
  const ctrBatch = batches.container(netns);
  const cancelBatches = () => {
    hostBatch.cancel();
    ctrBatch.cancel();
  };
  const store = new Datastore(cfg.datastore, { logger: log });
  const hostIf = hostIfName(handle);
  let subnet: Awaited<ReturnType<typeof readSubnet>>;
  let mtu: number;
  let ip: string;
  try {
    [subnet, mtu] = await Promise.all([readSubnet(cfg), containerMtu(cfg, deps.mtuCache)]);
    mark('subnetMtu');
    ip = await reserveAddress(store, handle, subnet, input, cfg, ifname, hostIf, netns, mtu);
  } catch (err) {
    cancelBatches();
    throw err;
  }
  mark('allocated');

  const container = buildContainer(handle, ip, input, rules);
  const veth: VethSpec = {
    hostIf,
    ctrIf: ifname,
    netns,
    ip,
    mtu,
    hostMac: hostMac(ip),
    ctrMac: containerMac(ip),
  };
  const dp = deps.dataplane(cfg);
  let vethMade = false;
  let rulesTried = false;
  try {
    await ensureIpForward();
    rulesTried = true;
    const [rulesRes, linkRes] = await Promise.allSettled([
      // fresh: the address was free in the datastore, so the table holds nothing of it
      dp.addContainer(container, rules, cfg.cell, { fresh: true }).finally(() => mark('rules')),
      (async () => {
        try {
          await createHostSide(veth, hostBatch);
          mark('hostSide');
        } catch (err) {
          // ip -batch stops at the first failing line: line 1 (link add) failing created nothing
          if (!(err instanceof LinkError && /-:1\b/.test(err.details))) vethMade = true;
          throw err;
        }
        vethMade = true;
        await configureContainerSide(veth, ctrBatch);
        mark('containerSide');
      })(),
    ]);
    if (linkRes.status === 'rejected') throw linkRes.reason;
    if (rulesRes.status === 'rejected') {
      const why = rulesRes.reason instanceof Error ? rulesRes.reason.message : String(rulesRes.reason);
      const clash = await portClash(dp, input.portMappings, ip);
      throw new CniError(
        CNI_ERR.INTERNAL,
        `applying rules for ${handle} failed: ${clash ? `${clash}; ` : ''}${why}`,
        '',
        {},
        rulesRes.reason,
      );
    }
  } catch (err) {
    cancelBatches();
    await rollbackAdd(log, store, dp, handle, ip, hostIf, vethMade, rulesTried);
    throw err;
  }

  await notify(
    deps,
    cfg,
    {
      type: 'add',
      handle,
      ifname,
      ip,
      network: cfg.name,
      metadata: input.metadata,
      container,
      egressRules: rules,
      at: new Date().toISOString(),
    },
    log,
  );

  const own: CniResult = {
    cniVersion: cfg.cniVersion,
    interfaces: [
      { name: hostIf, mac: veth.hostMac, mtu },
      { name: ifname, mac: veth.ctrMac, mtu, sandbox: netns },
    ],
    ips: [{ address: `${ip}/32`, gateway: GATEWAY, interface: 1 }],
    routes: [{ dst: '0.0.0.0/0', gw: GATEWAY }],
  };
  if (cfg.cell.dnsServers.length > 0) own.dns = { nameservers: [...cfg.cell.dnsServers] };
  mark('notified');
  log.info({ ip, hostIf, mtu, steps }, 'container attached');
  return mergeResult(cfg.prevResult, own);
}

/**
 * After a failed rules step: names a requested host port another address already holds (garden
 * allocates host ports per cell, so this is a leftover or a runtime bug), or null.
 */
async function portClash(
  dp: ContainerDataplane,
  mappings: AddInput['portMappings'],
  ip: string,
): Promise<string | null> {
  if (mappings.length === 0) return null;
  try {
    const held = new Map<number, string>();
    for (const e of (await dp.readBack()).sets.get('netin_dnat')?.values() ?? []) {
      const [port] = e.key;
      const [addr] = e.value ?? [];
      if (port?.k === 'port' && addr?.k === 'ip') held.set(port.v, addr.v);
    }
    const taken = mappings.filter((m) => held.has(m.hostPort) && held.get(m.hostPort) !== ip);
    if (taken.length === 0) return null;
    return taken
      .map((m) => `host port ${m.hostPort} is already mapped to ${held.get(m.hostPort)}`)
      .join(', ');
  } catch {
    return null; // only an explanation: the original error stands
  }
}

async function rollbackAdd(
  log: Logger,
  store: Datastore,
  dp: ContainerDataplane,
  handle: string,
  ip: string,
  hostIf: string,
  vethMade: boolean,
  rulesTried: boolean,
): Promise<void> {
  const problems: string[] = [];
  await Promise.all([
    vethMade ? deleteHostIf(hostIf).catch((e) => problems.push(`veth: ${String(e)}`)) : undefined,
    rulesTried ? dp.removeContainer(handle).catch((e) => problems.push(`rules: ${String(e)}`)) : undefined,
  ]);
  if (problems.length === 0) {
    await store
      .update((tx) => {
        if (tx.data[handle]?.ip === ip) {
          delete tx.data[handle];
          tx.changed = true;
        }
      })
      .catch((e) => problems.push(`datastore: ${String(e)}`));
  }
  if (problems.length > 0)
    log.error({ handle, problems }, 'rollback of a failed ADD was incomplete; DEL will finish it');
  else log.info({ handle, ip }, 'failed ADD rolled back');
}

// ---------------------------------------------------------------------------------------- DEL

interface DelOutcome {
  ip: string;
  problems: string[];
  /** ms from the start of detach to: veth gone, rules gone, record gone. */
  steps: Record<string, number>;
}

/** Removes one attachment (by handle); tolerant of anything already gone. */
async function detach(
  store: Datastore,
  dp: ContainerDataplane,
  handle: string,
  entry: StoreEntry | undefined,
  log: Logger,
  batches: IpBatchSource,
): Promise<DelOutcome> {
  const hostIf = entry?.cfnet?.hostIface ?? hostIfName(handle);
  const problems: string[] = [];
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  const mark = (k: string) => {
    steps[k] = Math.round((performance.now() - t0) * 10) / 10;
  };
  await Promise.all([
    deleteHostIf(hostIf, batches.host())
      .catch((e) => problems.push(`veth ${hostIf}: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => mark('veth')),
    dp
      .removeContainer(handle)
      .catch((e) => problems.push(`rules: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => mark('rules')),
  ]);
  if (problems.length === 0) {
    await store.update((tx) => {
      if (tx.data[handle]) {
        delete tx.data[handle];
        tx.changed = true;
      }
    });
    mark('released');
  } else {
    log.warn({ handle, problems }, 'detach incomplete; the address stays reserved until a DEL succeeds');
  }
  return { ip: entry?.ip ?? '', problems, steps };
}

async function cmdDel(env: CheckedEnv, cfg: NetConfig, deps: CniDeps, log: Logger): Promise<void> {
  const handle = env.containerId!;
  const t0 = performance.now();
  const store = new Datastore(cfg.datastore, { logger: log });
  const entry = (await store.read())[handle];
  const readMs = Math.round((performance.now() - t0) * 10) / 10;
  if (entry?.cfnet && entry.cfnet.ifname !== env.ifname) {
    log.info(
      { recorded: entry.cfnet.ifname },
      'DEL for an interface this container does not have: nothing to do',
    );
    return;
  }
  const out = await detach(store, deps.dataplane(cfg), handle, entry, log, deps.ipBatches ?? ON_DEMAND);
  if (out.problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `DEL of ${handle} incomplete: ${out.problems.join('; ')}`, '', {
      handle,
    });
  }
  log.info(
    { ip: out.ip || null, readMs, steps: out.steps, ms: Math.round((performance.now() - t0) * 10) / 10 },
    entry ? 'container detached' : 'DEL of an unknown container: nothing left behind',
  );
  if (entry) {
    await notify(
      deps,
      cfg,
      {
        type: 'del',
        handle,
        ifname: env.ifname!,
        ip: out.ip,
        network: cfg.name,
        at: new Date().toISOString(),
      },
      log,
    );
  }
}

// ---------------------------------------------------------------------------------------- CHECK

/** Container address -> handle (the element comment) of the table's `ctr_addrs` set. */
function ctrAddrs(view: TableView): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of view.sets.get('ctr_addrs')?.values() ?? []) {
    const a = e.key[0];
    if (a?.k === 'ip') out.set(atomId(a), e.comment ?? '');
  }
  return out;
}

async function cmdCheck(env: CheckedEnv, cfg: NetConfig, deps: CniDeps): Promise<void> {
  const handle = env.containerId!;
  const netns = env.netns!;
  const ifname = env.ifname!;
  const entry = (await new Datastore(cfg.datastore).read())[handle];
  if (!entry)
    throw new CniError(CNI_ERR.UNKNOWN_CONTAINER, `container ${handle} is not attached`, '', { handle });
  const problems: string[] = [];
  const rec = entry.cfnet;
  if (rec && rec.ifname !== ifname) problems.push(`attached as ${rec.ifname}, not ${ifname}`);
  const hostIf = rec?.hostIface ?? hostIfName(handle);
  const [ctr, host, ctrRoutes, hostRoutes, table] = await Promise.all([
    showLinks(ifname, netns),
    showLinks(hostIf),
    showRoutes(netns),
    showRoutes(undefined, [`${entry.ip}/32`]),
    deps.dataplane(cfg).readBack(),
  ]);
  const c = ctr[0];
  if (!c) problems.push(`interface ${ifname} missing in ${netns}`);
  else {
    if (!c.flags?.includes('UP')) problems.push(`${ifname} is down`);
    if (!c.addr_info?.some((a) => a.family === 'inet' && a.local === entry.ip && a.prefixlen === 32)) {
      problems.push(`${ifname} lacks ${entry.ip}/32`);
    }
    if (rec && c.mtu !== rec.mtu) problems.push(`${ifname} MTU ${c.mtu}, expected ${rec.mtu}`);
  }
  if (!ctrRoutes.some((r) => r.dst === 'default' && r.gateway === GATEWAY && r.dev === ifname)) {
    problems.push(`no default route via ${GATEWAY} on ${ifname}`);
  }
  const h = host[0];
  if (!h) problems.push(`host interface ${hostIf} missing`);
  else if (!h.flags?.includes('UP')) problems.push(`host interface ${hostIf} is down`);
  if (!hostRoutes.some((r) => r.dev === hostIf)) problems.push(`no host route ${entry.ip}/32 via ${hostIf}`);
  if (ctrAddrs(table).get(entry.ip) !== handle) problems.push(`no nft rules for ${entry.ip} (${handle})`);
  if (cfg.prevResult) {
    const p = cfg.prevResult;
    const idx = (p.interfaces ?? []).findIndex((i) => i.name === ifname && i.sandbox === netns);
    if (idx < 0) problems.push(`prevResult has no interface ${ifname} in ${netns}`);
    if (!(p.ips ?? []).some((x) => x.address === `${entry.ip}/32`))
      problems.push(`prevResult lacks ${entry.ip}/32`);
  }
  if (problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `CHECK failed for ${handle}: ${problems.join('; ')}`, '', {
      handle,
    });
  }
}

// ---------------------------------------------------------------------------------------- GC

async function cmdGc(cfg: NetConfig, deps: CniDeps, log: Logger): Promise<void> {
  const valid: Attachment[] | null = parseValidAttachments(cfg.raw);
  if (valid === null) {
    throw new CniError(
      CNI_ERR.INVALID_CONFIG,
      'GC needs cni.dev/valid-attachments (a list, possibly empty)',
      '',
      {
        field: 'cni.dev/valid-attachments',
      },
    );
  }
  const key = (h: string, i: string) => `${h}\u0000${i}`;
  const validSet = new Set(valid.map((a) => key(a.containerID, a.ifname)));
  const validHandles = new Set(valid.map((a) => a.containerID));
  const store = new Datastore(cfg.datastore, { logger: log });
  const dp = deps.dataplane(cfg);
  const data = await store.read();
  const problems: string[] = [];
  for (const [handle, entry] of Object.entries(data)) {
    const rec = entry?.cfnet;
    if (rec && rec.network !== cfg.name) continue; // another network's attachment
    if (validSet.has(key(handle, rec?.ifname ?? ''))) continue;
    if (!rec && validHandles.has(handle)) continue;
    const out = await detach(store, dp, handle, entry, log, deps.ipBatches ?? ON_DEMAND);
    problems.push(...out.problems);
    if (out.problems.length === 0) {
      log.info({ handle, ip: entry.ip }, 'GC removed a stale attachment');
      await notify(
        deps,
        cfg,
        {
          type: 'del',
          handle,
          ifname: rec?.ifname ?? '',
          ip: entry.ip,
          network: cfg.name,
          at: new Date().toISOString(),
        },
        log,
      );
    }
  }
  // leftovers with no datastore entry: host veths named by our scheme, and rule-set members
  const remaining = await store.read();
  const keepIfs = new Set<string>([...validHandles, ...Object.keys(remaining)].map(hostIfName));
  for (const e of Object.values(remaining)) if (e?.cfnet?.hostIface) keepIfs.add(e.cfnet.hostIface);
  for (const ifn of await listHostIfs(HOST_IF)) {
    if (keepIfs.has(ifn)) continue;
    await deleteHostIf(ifn).catch((e) => problems.push(`veth ${ifn}: ${String(e)}`));
  }
  const keepHandles = new Set([...validHandles, ...Object.keys(remaining)]);
  const table = await dp.readBack();
  for (const [, handle] of ctrAddrs(table)) {
    if (handle === '' || keepHandles.has(handle)) continue;
    await dp.removeContainer(handle).catch((e) => problems.push(`rules of ${handle}: ${String(e)}`));
  }
  if (problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `GC incomplete: ${problems.join('; ')}`);
  }
}

// ---------------------------------------------------------------------------------------- STATUS

async function cmdStatus(cfg: NetConfig): Promise<void> {
  let subnet: Awaited<ReturnType<typeof readSubnet>>;
  try {
    subnet = await readSubnet(cfg);
  } catch (err) {
    const e = toCniError(err);
    throw new CniError(CNI_ERR.NOT_AVAILABLE, `not ready: ${e.message}`, '', { cause: e.cniCode });
  }
  let used = 0;
  try {
    const data = await new Datastore(cfg.datastore).read();
    for (const e of Object.values(data)) if (e && typeof e.ip === 'string' && inSubnet(subnet, e.ip)) used++;
  } catch (err) {
    throw new CniError(CNI_ERR.NOT_AVAILABLE, `not ready: ${toCniError(err).message}`);
  }
  if (used >= capacity(subnet)) {
    throw new CniError(
      CNI_ERR.NOT_AVAILABLE,
      `not ready: no free address in ${subnet.subnet} (${used} in use)`,
    );
  }
}
