/**
 * Interface work with iproute2, batched to keep ADD to two `ip` processes: one in the cell's
 * namespace (the process's own) creating the veth with its peer directly in the container netns,
 * routing the /32 and pinning the neighbour; one in the container namespace (`nsenter --net=`)
 * setting the address, default route via 169.254.0.1 onlink and the gateway's neighbour entry.
 * Both can be started before their input is known (PendingCommand, src/host; the executor pools them, ip-pool.ts).
 * Every argument is built from validated values (interface names, addresses, MACs, numbers).
 */
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { type PendingCommand, run, startCommand } from '../host/index.js';
import { ipv4ToInt } from '../model/ip.js';
import { CNI_ERR, CniError } from './errors.js';
import { GATEWAY } from './names.js';

/** `ip -batch -` started now, in this namespace or in the one at path `netns`. */
export function startIpBatch(netns?: string, idleMs?: number | null): PendingCommand {
  return startCommand(ipArgv(['-batch', '-'], netns), idleMs);
}

/*
 * For a pool, where the container's netns is not known yet: a shell that reads the netns path as
 * its first input line (POSIX `read` on a pipe consumes nothing past the newline) and then becomes
 * `nsenter … ip -batch -` reading the rest. No input at all: it exits doing nothing.
 */
const IP_BATCH_IN_NETNS = 'IFS= read -r ns || exit 0; exec nsenter --net="$ns" -- ip -batch -';

/** An `ip -batch -` whose netns path is its first input line (see `enterNetns`). */
export function startIpBatchAnyNetns(idleMs?: number | null): PendingCommand {
  return startCommand(['sh', '-c', IP_BATCH_IN_NETNS], idleMs);
}

/** Points a startIpBatchAnyNetns() process at `netns` (an absolute path without newlines). */
export function enterNetns(p: PendingCommand, netns: string): PendingCommand {
  p.feed(`${netns}\n`);
  return p;
}

/** `ip` in this process's namespace, or in the namespace at path `netns` (via nsenter). */
export function ipArgv(args: string[], netns?: string): string[] {
  return netns === undefined ? ['ip', ...args] : ['nsenter', `--net=${netns}`, '--', 'ip', ...args];
}

export interface VethSpec {
  hostIf: string;
  ctrIf: string;
  /** Container netns path. */
  netns: string;
  ip: string;
  mtu: number;
  hostMac: string;
  ctrMac: string;
}

export class LinkError extends CniError {}

let ipv6: boolean | undefined;

/** Whether the kernel has IPv6 at all (`ipv6.disable=1` removes it, and `addrgenmode` then fails). */
function kernelHasIpv6(): boolean {
  ipv6 ??= existsSync('/proc/sys/net/ipv6');
  return ipv6;
}

/**
 * Container addresses are IPv4 only, so neither end of the veth gets an IPv6 link-local address
 * (`addrgenmode none`, set before the link goes up). Without this, the container could talk IPv6
 * to the cell over link-local addresses, which cfnet's IPv4 rules never see.
 */
function noLinkLocal(dev: string): string[] {
  return kernelHasIpv6() ? [`link set dev ${dev} addrgenmode none`] : [];
}

/**
 * Drops every IPv6 packet arriving on the host end (defence in depth: a container with raw sockets
 * could still send IPv6 without an address). A write in /proc, so no extra process.
 */
async function disableIpv6(dev: string): Promise<void> {
  if (!kernelHasIpv6()) return;
  try {
    await writeFile(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1');
  } catch (err) {
    throw new LinkError(CNI_ERR.INTERNAL, `cannot disable IPv6 on ${dev}: ${String(err)}`);
  }
}

/**
 * Creates the host side (and the peer inside the container netns); fails if either name exists.
 * `ipBatch`: an `ip -batch -` in this namespace started earlier (startIpBatch()).
 */
export async function createHostSide(v: VethSpec, ipBatch?: PendingCommand): Promise<void> {
  const script = [
    `link add name ${v.hostIf} mtu ${v.mtu} address ${v.hostMac} type veth peer name ${v.ctrIf} mtu ${v.mtu} address ${v.ctrMac} netns ${v.netns}`,
    ...noLinkLocal(v.hostIf),
    `link set dev ${v.hostIf} up`,
    `addr add ${GATEWAY}/32 dev ${v.hostIf} scope link`,
    `route add ${v.ip}/32 dev ${v.hostIf} scope link`,
    `neigh replace ${v.ip} lladdr ${v.ctrMac} dev ${v.hostIf} nud permanent`,
    '',
  ].join('\n');
  const r = await (ipBatch ?? startIpBatch()).run(script);
  if (r.code !== 0) {
    const msg = r.stderr.trim();
    if (/File exists/.test(msg)) {
      throw new LinkError(
        CNI_ERR.INTERNAL,
        `interface ${v.hostIf} (host) or ${v.ctrIf} (in ${v.netns}) already exists`,
        msg,
        { hostIf: v.hostIf, ifname: v.ctrIf, exists: true },
      );
    }
    throw new LinkError(CNI_ERR.INTERNAL, `creating veth ${v.hostIf}/${v.ctrIf} failed: ${msg}`, msg);
  }
  await disableIpv6(v.hostIf);
}

/**
 * Address, default route and gateway neighbour inside the container. `ipBatch`: an `ip -batch -`
 * in the container netns started earlier (startIpBatch(v.netns)).
 */
export async function configureContainerSide(v: VethSpec, ipBatch?: PendingCommand): Promise<void> {
  const script = [
    ...noLinkLocal(v.ctrIf),
    `addr add ${v.ip}/32 dev ${v.ctrIf}`,
    `link set dev ${v.ctrIf} up`,
    ...defaultRoutes(v),
    `neigh replace ${GATEWAY} lladdr ${v.hostMac} dev ${v.ctrIf} nud permanent`,
    '',
  ].join('\n');
  const r = await (ipBatch ?? startIpBatch(v.netns)).run(script);
  if (r.code !== 0) {
    throw new LinkError(
      CNI_ERR.INTERNAL,
      `configuring ${v.ctrIf} in ${v.netns} failed: ${r.stderr.trim()}`,
      r.stderr.trim(),
    );
  }
}

/**
 * The container's routes out. The first network (`eth0`, CF's only one) owns the default route, as
 * before. Another attachment in the same container (a runtime with several networks) must not fail
 * on the default route that exists already, and its address must leave through its own interface
 * (where its rules are): its default route is appended (used when no other exists) and its
 * address gets a policy rule to a table of its own (sourceTable) holding a default route via it.
 */
function defaultRoutes(v: VethSpec): string[] {
  const via = `default via ${GATEWAY} dev ${v.ctrIf} onlink`;
  if (v.ctrIf === 'eth0') return [`route add ${via}`];
  const table = sourceTable(v.ip);
  return [`route append ${via}`, `route add ${via} table ${table}`, `rule add from ${v.ip} lookup ${table}`];
}

/** The routing table of an additional attachment's address (unique per address in the container). */
export function sourceTable(ip: string): number {
  return 0x10000 + (ipv4ToInt(ip) & 0xffff);
}

/**
 * Removes the policy rule an additional attachment put into its container (its routes went with
 * the interface). Best effort: the namespace may be gone.
 */
export async function deleteSourceRule(netns: string, ip: string): Promise<void> {
  await run(ipArgv(['rule', 'del', 'from', ip, 'lookup', String(sourceTable(ip))], netns), {
    allowFail: true,
  }).catch(() => undefined);
}

/**
 * Deletes the host veth (and with it the peer). Returns false when it did not exist.
 * `ipBatch`: an `ip -batch -` in this namespace started earlier.
 */
export async function deleteHostIf(hostIf: string, ipBatch?: PendingCommand): Promise<boolean> {
  const r = ipBatch
    ? await ipBatch.run(`link del dev ${hostIf}\n`)
    : await run(ipArgv(['link', 'del', 'dev', hostIf]), { allowFail: true });
  if (r.code === 0) return true;
  if (/Cannot find device|does not exist/.test(r.stderr)) return false;
  throw new LinkError(CNI_ERR.INTERNAL, `deleting ${hostIf} failed: ${r.stderr.trim()}`, r.stderr.trim());
}

/** Deletes an interface inside a container netns; false when the netns or interface is gone. */
export async function deleteContainerIf(netns: string, ifname: string): Promise<boolean> {
  const r = await run(ipArgv(['link', 'del', 'dev', ifname], netns), { allowFail: true });
  return r.code === 0;
}

export interface LinkInfo {
  ifname: string;
  mtu: number;
  address?: string;
  flags?: string[];
  operstate?: string;
  link_type?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
  linkinfo?: { info_kind?: string };
}

/** `ip -j -d addr show [dev X]` parsed; [] when the device (or netns) does not exist. */
export async function showLinks(dev?: string, netns?: string): Promise<LinkInfo[]> {
  const args = ['-j', '-d', 'addr', 'show'];
  if (dev !== undefined) args.push('dev', dev);
  const r = await run(ipArgv(args, netns), { allowFail: true });
  if (r.code !== 0) return [];
  try {
    return JSON.parse(r.stdout || '[]') as LinkInfo[];
  } catch {
    return [];
  }
}

export interface RouteInfo {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  scope?: string;
}

export async function showRoutes(netns?: string, extra: string[] = []): Promise<RouteInfo[]> {
  const r = await run(ipArgv(['-j', 'route', 'show', ...extra], netns), { allowFail: true });
  if (r.code !== 0) return [];
  try {
    return JSON.parse(r.stdout || '[]') as RouteInfo[];
  } catch {
    return [];
  }
}

/** Interface of the lowest-metric IPv4 default route, from /proc/net/route (this netns). */
export async function defaultRouteInterface(): Promise<string | null> {
  let text: string;
  try {
    // synchronous: a small /proc read on every ADD with an automatic MTU (no thread-pool round trip)
    text = readFileSync('/proc/net/route', 'utf8');
  } catch {
    return null;
  }
  let best: { ifname: string; metric: number } | null = null;
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [ifname, dest, , , , , metric, mask] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    if (dest !== '00000000' || mask !== '00000000') continue;
    const m = Number(metric);
    if (!best || m < best.metric) best = { ifname, metric: m };
  }
  return best?.ifname ?? null;
}

/** MTU of an interface in this netns, or null when it does not exist. */
export async function interfaceMtu(ifname: string): Promise<number | null> {
  const r = await run(ipArgv(['-j', 'link', 'show', 'dev', ifname]), { allowFail: true });
  if (r.code !== 0) return null;
  try {
    const l = JSON.parse(r.stdout) as { mtu?: number }[];
    return typeof l[0]?.mtu === 'number' ? l[0].mtu : null;
  } catch {
    return null;
  }
}

/** Enables IPv4 forwarding in this netns when it is off (containers are routed, not bridged). */
export async function ensureIpForward(): Promise<void> {
  const path = '/proc/sys/net/ipv4/ip_forward';
  try {
    // synchronous: one small /proc read on every ADD, cheaper than a thread-pool round trip
    if (readFileSync(path, 'utf8').trim() === '1') return;
    await writeFile(path, '1');
  } catch (err) {
    throw new CniError(CNI_ERR.INTERNAL, `cannot enable IPv4 forwarding: ${String(err)}`);
  }
}

/** Host veths of ours in this netns (names matching `pattern`). */
export async function listHostIfs(pattern: RegExp): Promise<string[]> {
  const r = await run(ipArgv(['-j', 'link', 'show', 'type', 'veth']), { allowFail: true });
  if (r.code !== 0) return [];
  try {
    return (JSON.parse(r.stdout || '[]') as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => pattern.test(n));
  } catch {
    return [];
  }
}
