/**
 * The CNI plugin itself: one invocation (env + stdin) in, stdout + exit status out. Used unchanged
 * by the warm executor (executor.ts) and by the one-off fallback process (fallback.ts), so both
 * paths give identical results.
 *
 * An attachment is (CNI_CONTAINERID, CNI_IFNAME), named as attachment.ts says; everything below
 * (datastore key, nft handle, host veth) is keyed by that name, never by an address alone.
 *
 * ADD:  validate → netns exists → subnet + MTU (the table's address use listed meanwhile) → in one
 *       locked datastore step: pick an address, check nothing on the cell holds it (table, routes,
 *       interfaces, neighbours; refused with nothing changed otherwise), record the attachment →
 *       in parallel: nft (dataplane.addContainer: ASGs, NetIn, memberships; one transaction) and
 *       the veth (two `ip -batch` processes) → tell the agent (best effort) → result. A failure
 *       undoes exactly the steps that succeeded.
 * DEL:  rules (by the record: address, host ports, ASG set), veth and record removed; each step
 *       tolerates "already gone"; the address is released only once the rules are gone.
 * CHECK, GC, STATUS, VERSION as in SPEC 1.1.0.
 */
import { accessSync } from 'node:fs';
import { AddressTakenError, type AttachmentRef } from '../dataplane/apply.js';
import { atomId, type Element } from '../dataplane/elements.js';
import type { Logger } from '../lib/log.js';
import { normalizeRules, ruleSetHash } from '../model/canonical.js';
import type { C2CAllow, CellConfig, CellContainer, EgressRule } from '../model/types.js';
import { AddressInUseError, cellHolders, type TableAddressUse, tableHolding } from './address-use.js';
import { type CniEvent, postEvent } from './agent-client.js';
import {
  type AttachmentId,
  attachmentName,
  DEFAULT_IFNAME,
  findAttachment,
  recordContainerId,
  recordIfname,
} from './attachment.js';
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
  deleteSourceRule,
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
  /**
   * `fresh`: nothing of this container is in the table yet (its address was just allocated);
   * `takeOver`: handles whose entries for the address it may replace (checked not on the cell);
   * `c2c`: allow entries to the container, added in the same transaction (the agent's local ones).
   */
  addContainer(
    container: CellContainer,
    egressRules: EgressRule[],
    config: CellConfig,
    opts?: { fresh?: boolean; takeOver?: readonly string[]; c2c?: readonly C2CAllow[] },
  ): Promise<unknown>;
  /** Removes one attachment by its record (NftDataplane.removeAttachment). */
  removeAttachment(ref: AttachmentRef): Promise<{ foreignOwner?: string }>;
  /** The table's ctr_addrs and netin_dnat by address (ADD's address check). */
  addressUse(): Promise<TableAddressUse>;
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
 * Picks an address and records the attachment, in one locked datastore step (the store is the IPAM
 * state). Before recording, nothing else on the cell may hold the address: an attachment the table
 * names whose host veth exists (`tableUse`, listed since ADD began), routes, interfaces and
 * neighbours of this namespace. A holder refuses the ADD with AddressInUseError and nothing written
 * but the round-robin hint, so a retry takes the next address. Table entries of attachments that
 * are not on the cell are `stale`: the ADD takes the address over from them. An existing record of
 * this attachment is an error (DEL it first).
 */
async function reserveAddress(
  store: Datastore,
  id: AttachmentId,
  name: string,
  subnet: Awaited<ReturnType<typeof readSubnet>>,
  tableUse: Promise<TableAddressUse>,
  record: (ip: string) => StoreEntry,
): Promise<{ ip: string; stale: string[] }> {
  const out = await store.update(async (tx) => {
    const existing = findAttachment(tx.data, id);
    if (existing) {
      throw new CniError(
        CNI_ERR.INTERNAL,
        `container ${id.containerId} is already attached on ${id.ifname} (ip ${existing.entry.ip}); DEL it first`,
        '',
        { handle: id.containerId, ifname: id.ifname },
      );
    }
    const squatter = tx.data[name];
    if (squatter) {
      throw new CniError(
        CNI_ERR.INTERNAL,
        `datastore key ${name} holds the attachment of ${recordContainerId(name, squatter)} on ${recordIfname(squatter)} (ip ${squatter.ip}); DEL it first`,
        '',
        { handle: id.containerId, ifname: id.ifname },
      );
    }
    const used = new Set<string>();
    for (const e of Object.values(tx.data))
      if (e && typeof e.ip === 'string' && inSubnet(subnet, e.ip)) used.add(e.ip);
    // allocate() throws 999 naming the subnet when it is full
    const chosen = allocate(subnet, used, tx.lastReserved);
    tx.lastReserved = chosen;
    const table = tableHolding(await tableUse, chosen, name, hostIfName);
    const holders = [...table.live, ...cellHolders(chosen, hostMac(chosen))];
    if (holders.length > 0) return { ip: chosen, holders, stale: table.stale };
    tx.data[name] = record(chosen);
    tx.changed = true;
    return { ip: chosen, holders, stale: table.stale };
  });
  if (out.holders.length > 0) throw new AddressInUseError(out.ip, out.holders, store.path);
  return { ip: out.ip, stale: out.stale };
}

async function cmdAdd(env: CheckedEnv, cfg: NetConfig, deps: CniDeps, log: Logger): Promise<CniResult> {
  const id: AttachmentId = { containerId: env.containerId!, ifname: env.ifname! };
  const ifname = id.ifname;
  const handle = attachmentName(id.containerId, ifname);
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
  const dp = deps.dataplane(cfg);
  // listed while the subnet and MTU are read; awaited inside the datastore lock
  const tableUse = dp.addressUse();
  tableUse.catch(() => undefined); // awaited (and reported) by reserveAddress, or dropped on an early failure
  const egress = ruleSetHash(rules);
  let subnet: Awaited<ReturnType<typeof readSubnet>>;
  let mtu: number;
  let ip: string;
  let stale: string[];
  try {
    [subnet, mtu] = await Promise.all([readSubnet(cfg), containerMtu(cfg, deps.mtuCache)]);
    mark('subnetMtu');
    ({ ip, stale } = await reserveAddress(store, id, handle, subnet, tableUse, (chosen) => ({
      handle: id.containerId,
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
        hostPorts: input.portMappings.map((m) => m.hostPort),
        egress,
      },
    })));
  } catch (err) {
    cancelBatches();
    throw err;
  }
  mark('allocated');
  if (stale.length > 0) {
    log.info({ ip, stale }, 'address taken over from table entries of attachments not on this cell');
  }

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
  let vethMade = false;
  let rulesMade = false;
  try {
    await ensureIpForward();
    const [rulesRes, linkRes] = await Promise.allSettled([
      // fresh: nothing in the table names the address, so its part is written blind; when a stale
      // entry does, the table is read back and what it holds for the address replaced
      dp
        .addContainer(container, rules, cfg.cell, { fresh: stale.length === 0, takeOver: stale })
        .finally(() => mark('rules')),
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
    // one nft transaction: it either made all of this attachment's rules or none
    rulesMade = rulesRes.status === 'fulfilled';
    if (linkRes.status === 'rejected') throw linkRes.reason;
    if (rulesRes.status === 'rejected') {
      if (rulesRes.reason instanceof AddressTakenError) {
        throw new AddressInUseError(ip, [rulesRes.reason.message], store.path);
      }
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
    const ref: AttachmentRef = {
      handle,
      ip,
      hostPorts: input.portMappings.map((m) => m.hostPort),
      egress,
    };
    await rollbackAdd(log, store, dp, ref, hostIf, vethMade, rulesMade);
    if (vethMade && ifname !== DEFAULT_IFNAME) await deleteSourceRule(netns, ip);
    throw err;
  }

  await notify(
    deps,
    cfg,
    {
      type: 'add',
      handle,
      containerId: id.containerId,
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

/**
 * Undoes exactly what a failed ADD made: its veth (only when it created it), its rules (only when
 * its one nft transaction went through; removed by the attachment's record, so another
 * attachment's elements are never touched) and its datastore record.
 */
async function rollbackAdd(
  log: Logger,
  store: Datastore,
  dp: ContainerDataplane,
  ref: AttachmentRef,
  hostIf: string,
  vethMade: boolean,
  rulesMade: boolean,
): Promise<void> {
  const problems: string[] = [];
  await Promise.all([
    vethMade ? deleteHostIf(hostIf).catch((e) => problems.push(`veth: ${String(e)}`)) : undefined,
    rulesMade ? dp.removeAttachment(ref).catch((e) => problems.push(`rules: ${String(e)}`)) : undefined,
  ]);
  if (problems.length === 0) {
    await store
      .update((tx) => {
        if (tx.data[ref.handle]?.ip === ref.ip) {
          delete tx.data[ref.handle];
          tx.changed = true;
        }
      })
      .catch((e) => problems.push(`datastore: ${String(e)}`));
  }
  if (problems.length > 0)
    log.error(
      { handle: ref.handle, problems },
      'rollback of a failed ADD was incomplete; DEL will finish it',
    );
  else log.info({ handle: ref.handle, ip: ref.ip, vethMade, rulesMade }, 'failed ADD rolled back');
}

// ---------------------------------------------------------------------------------------- DEL

interface DelOutcome {
  ip: string;
  problems: string[];
  /** ms from the start of detach to: veth gone, rules gone, record gone. */
  steps: Record<string, number>;
}

/**
 * Removes one attachment (record key `key`, its record if any); tolerant of anything already gone.
 * Its rules go by the record (address, host ports, ASG set), so they go even when the table lost
 * its ctr_addrs element or comment; without a record, by the handle in the table.
 */
async function detach(
  store: Datastore,
  dp: ContainerDataplane,
  key: string,
  entry: StoreEntry | undefined,
  log: Logger,
  batches: IpBatchSource,
): Promise<DelOutcome> {
  const hostIf = entry?.cfnet?.hostIface ?? hostIfName(key);
  const problems: string[] = [];
  const t0 = performance.now();
  const steps: Record<string, number> = {};
  const mark = (k: string) => {
    steps[k] = Math.round((performance.now() - t0) * 10) / 10;
  };
  const ref: AttachmentRef = {
    handle: key,
    ip: typeof entry?.ip === 'string' ? entry.ip : null,
    ...(entry?.cfnet?.hostPorts ? { hostPorts: entry.cfnet.hostPorts } : {}),
    ...(entry?.cfnet?.egress ? { egress: entry.cfnet.egress } : {}),
  };
  await Promise.all([
    deleteHostIf(hostIf, batches.host())
      .catch((e) => problems.push(`veth ${hostIf}: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => mark('veth')),
    dp
      .removeAttachment(ref)
      .then((r) => {
        if (r.foreignOwner !== undefined) {
          log.warn(
            { handle: key, ip: ref.ip, owner: r.foreignOwner },
            "the table gives this attachment's address to another handle: its elements were left alone",
          );
        }
      })
      .catch((e) => problems.push(`rules: ${e instanceof Error ? e.message : String(e)}`))
      .finally(() => mark('rules')),
  ]);
  const netns = entry?.cfnet?.netns;
  if (entry?.cfnet && entry.cfnet.ifname !== DEFAULT_IFNAME && netns && ref.ip) {
    await deleteSourceRule(netns, ref.ip);
  }
  if (problems.length === 0) {
    await store.update((tx) => {
      if (tx.data[key]) {
        delete tx.data[key];
        tx.changed = true;
      }
    });
    mark('released');
  } else {
    log.warn({ handle: key, problems }, 'detach incomplete; the address stays reserved until a DEL succeeds');
  }
  return { ip: entry?.ip ?? '', problems, steps };
}

/** The attachment's name, or null for an interface name no ADD could have attached (nothing to DEL). */
function nameOrNull(id: AttachmentId): string | null {
  try {
    return attachmentName(id.containerId, id.ifname);
  } catch {
    return null;
  }
}

async function cmdDel(env: CheckedEnv, cfg: NetConfig, deps: CniDeps, log: Logger): Promise<void> {
  const id: AttachmentId = { containerId: env.containerId!, ifname: env.ifname! };
  const name = nameOrNull(id);
  if (name === null) return;
  const t0 = performance.now();
  const store = new Datastore(cfg.datastore, { logger: log });
  const data = await store.read();
  const found = findAttachment(data, id);
  const readMs = Math.round((performance.now() - t0) * 10) / 10;
  if (!found && data[name]) {
    // a record from before attachments were keyed by interface holds this name for another one
    log.info(
      { recorded: recordIfname(data[name]!) },
      'DEL for an interface this container does not have: nothing to do',
    );
    return;
  }
  const key = found?.key ?? name;
  const entry = found?.entry;
  const out = await detach(store, deps.dataplane(cfg), key, entry, log, deps.ipBatches ?? ON_DEMAND);
  if (out.problems.length > 0) {
    throw new CniError(CNI_ERR.INTERNAL, `DEL of ${key} incomplete: ${out.problems.join('; ')}`, '', {
      handle: key,
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
        handle: key,
        containerId: id.containerId,
        ifname: id.ifname,
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
  const id: AttachmentId = { containerId: env.containerId!, ifname: env.ifname! };
  const netns = env.netns!;
  const ifname = id.ifname;
  const found = findAttachment(await new Datastore(cfg.datastore).read(), id);
  if (!found) {
    throw new CniError(
      CNI_ERR.UNKNOWN_CONTAINER,
      `container ${id.containerId} is not attached on ${ifname}`,
      '',
      { handle: id.containerId, ifname },
    );
  }
  const { key: handle, entry } = found;
  const problems: string[] = [];
  const rec = entry.cfnet;
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
  const pair = (h: string, i: string) => `${h}\u0000${i}`;
  const validPairs = new Set(valid.map((a) => pair(a.containerID, a.ifname)));
  const validHandles = new Set(valid.map((a) => a.containerID));
  const validNames = new Set<string>();
  for (const a of valid) {
    const n = nameOrNull({ containerId: a.containerID, ifname: a.ifname });
    if (n !== null) validNames.add(n);
  }
  const store = new Datastore(cfg.datastore, { logger: log });
  const dp = deps.dataplane(cfg);
  const data = await store.read();
  const problems: string[] = [];
  for (const [key, entry] of Object.entries(data)) {
    const rec = entry?.cfnet;
    if (rec && rec.network !== cfg.name) continue; // another network's attachment
    const containerId = recordContainerId(key, entry);
    if (validPairs.has(pair(containerId, recordIfname(entry)))) continue;
    if (!rec && validHandles.has(containerId)) continue; // Silk's records do not say which interface
    const out = await detach(store, dp, key, entry, log, deps.ipBatches ?? ON_DEMAND);
    problems.push(...out.problems);
    if (out.problems.length === 0) {
      log.info({ handle: key, ip: entry.ip }, 'GC removed a stale attachment');
      await notify(
        deps,
        cfg,
        {
          type: 'del',
          handle: key,
          containerId,
          ifname: recordIfname(entry),
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
  const keep = new Set<string>([...validNames, ...Object.keys(remaining)]);
  const keepIfs = new Set<string>([...keep].map(hostIfName));
  for (const e of Object.values(remaining)) if (e?.cfnet?.hostIface) keepIfs.add(e.cfnet.hostIface);
  for (const ifn of await listHostIfs(HOST_IF)) {
    if (keepIfs.has(ifn)) continue;
    await deleteHostIf(ifn).catch((e) => problems.push(`veth ${ifn}: ${String(e)}`));
  }
  const table = await dp.readBack();
  for (const [ip, handle] of ctrAddrs(table)) {
    if (handle === '' || keep.has(handle)) continue;
    await dp.removeAttachment({ handle, ip }).catch((e) => problems.push(`rules of ${handle}: ${String(e)}`));
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
