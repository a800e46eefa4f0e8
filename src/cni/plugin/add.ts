/**
 * ADD: validate → netns exists → subnet + MTU (the table's address use listed meanwhile) → in one
 * locked datastore step: pick an address, check nothing on the cell holds it (table, routes,
 * interfaces, neighbours; refused with nothing changed otherwise), record the attachment → in
 * parallel: nft (dataplane.addContainer: ASGs, NetIn, memberships; one transaction) and the veth
 * (two `ip -batch` processes) → tell the agent (best effort) → result. A failure undoes exactly the
 * steps that succeeded.
 */
import { accessSync } from 'node:fs';
import { AddressTakenError, type AttachmentRef } from '../../dataplane/apply.js';
import type { Logger } from '../../lib/log.js';
import { normalizeRules, ruleSetHash } from '../../model/canonical.js';
import type { CellContainer, EgressRule } from '../../model/types.js';
import {
  AddressInUseError,
  attachedOnCell,
  cellHolders,
  type TableAddressUse,
  tableHolding,
} from '../address-use.js';
import {
  type AttachmentId,
  attachmentName,
  DEFAULT_IFNAME,
  findAttachment,
  recordContainerId,
  recordIfname,
} from '../attachment.js';
import { type AddInput, type NetConfig, parseAddInput } from '../config.js';
import type { CheckedEnv } from '../env.js';
import { CNI_ERR, CniError } from '../errors.js';
import { ON_DEMAND } from '../ip-pool.js';
import { allocate, inSubnet, readSubnet } from '../ipam.js';
import {
  configureContainerSide,
  createHostSide,
  deleteHostIf,
  deleteSourceRule,
  ensureIpForward,
  LinkError,
  type VethSpec,
} from '../link.js';
import { containerMtu } from '../mtu.js';
import { containerMac, GATEWAY, hostIfName, hostMac } from '../names.js';
import { Datastore, type StoreEntry } from '../store.js';
import type { CniResult } from '../types.js';
import type { CniDeps, ContainerDataplane } from './deps.js';
import { notify } from './shared.js';

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

export async function cmdAdd(
  env: CheckedEnv,
  cfg: NetConfig,
  deps: CniDeps,
  log: Logger,
): Promise<CniResult> {
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
  tableUse.then(
    () => mark('tableListed'),
    () => undefined, // awaited (and reported) by reserveAddress, or dropped on an early failure
  );
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
        .addContainer(container, rules, cfg.cell, {
          fresh: stale.length === 0,
          // stale when it was listed, or gone from the cell now: a rule set still naming a departed
          // container may have been applied since the listing (the agent's merge lets such an entry
          // give way to the attached container too)
          takeOver: (owner) => stale.includes(owner) || !attachedOnCell(owner, hostIfName),
        })
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
