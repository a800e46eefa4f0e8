/**
 * Interface work with iproute2, batched to keep ADD to two `ip` processes: one in the cell's
 * namespace (the process's own) creating the veth with its peer directly in the container netns,
 * routing the /32 and pinning the neighbour; one in the container namespace (`nsenter --net=`)
 * setting the address, default route via 169.254.0.1 onlink and the gateway's neighbour entry.
 * Both can be started before their input is known (PendingCmd; the executor pools them, ip-pool.ts).
 * Every argument is built from validated values (interface names, addresses, MACs, numbers).
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { ipv4ToInt } from '../model/ip.js';
import { CNI_ERR, CniError } from './errors.js';
import { GATEWAY } from './names.js';

export interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs argv (no shell), feeding `input`; never rejects on a non-zero exit (see `code`). */
export function runCmd(argv: string[], input?: string, timeoutMs = 30_000): Promise<CmdResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new CniError(CNI_ERR.INTERNAL, `cannot run ${argv[0]}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input ?? '');
  });
}

/**
 * A process started ahead of its input: ADD starts its `ip -batch -` processes before it knows the
 * address (or takes them ready-made from the executor's IpPool), so their start-up, ~4 ms each
 * here and mostly dynamic linking, stays off the critical path. `run` feeds the script and waits.
 */
export interface PendingCmd {
  /** Writes part of the input now, keeping stdin open (the rest comes with `run`). */
  feed(text: string): void;
  /** Writes `input`, closes stdin and resolves with the outcome (never rejects on a non-zero exit). */
  run(input: string, timeoutMs?: number): Promise<CmdResult>;
  /** Lets the process end without doing anything (stdin closed); a no-op after `run`. */
  cancel(): void;
  /** Still waiting for input (not run, cancelled or exited). */
  readonly ready: boolean;
  /** The process id (undefined when it could not be started). */
  readonly pid: number | undefined;
}

/** How long a started process may wait for its input before it is killed (a bug, not a path). */
const PENDING_IDLE_MS = 120_000;

/** Starts argv now; `idleMs` null: wait for input indefinitely (pools cancel on close). */
export function startCmd(argv: string[], idleMs: number | null = PENDING_IDLE_MS): PendingCmd {
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let spawnError: Error | null = null;
  let used = false;
  let exited = false;
  let timer = idleMs === null ? undefined : setTimeout(() => child.kill('SIGKILL'), idleMs);
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.on('error', () => undefined);
  const closed = new Promise<number | null>((resolve) => {
    child.on('error', (e) => {
      spawnError = e;
      exited = true;
      resolve(null);
    });
    child.on('close', (code) => {
      exited = true;
      resolve(code);
    });
  });
  void closed.then(() => clearTimeout(timer));
  return {
    pid: child.pid,
    get ready() {
      return !used && !exited;
    },
    feed: (text) => {
      if (!used) child.stdin.write(text);
    },
    run: async (input, timeoutMs = 30_000) => {
      if (used) throw new CniError(CNI_ERR.INTERNAL, `${argv[0]} was already run`);
      used = true;
      clearTimeout(timer);
      timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      child.stdin.end(input);
      const code = await closed;
      clearTimeout(timer);
      if (spawnError) {
        throw new CniError(CNI_ERR.INTERNAL, `cannot run ${argv[0]}: ${(spawnError as Error).message}`);
      }
      return {
        code,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      };
    },
    cancel: () => {
      if (used) return;
      used = true;
      child.stdin.end();
    },
  };
}

/** `ip -batch -` started now, in this namespace or in the one at path `netns`. */
export function startIpBatch(netns?: string, idleMs?: number | null): PendingCmd {
  return startCmd(ipArgv(['-batch', '-'], netns), idleMs);
}

/*
 * For a pool, where the container's netns is not known yet: a shell that reads the netns path as
 * its first input line (POSIX `read` on a pipe consumes nothing past the newline) and then becomes
 * `nsenter … ip -batch -` reading the rest. No input at all: it exits doing nothing.
 */
const IP_BATCH_IN_NETNS = 'IFS= read -r ns || exit 0; exec nsenter --net="$ns" -- ip -batch -';

/** An `ip -batch -` whose netns path is its first input line (see `enterNetns`). */
export function startIpBatchAnyNetns(idleMs?: number | null): PendingCmd {
  return startCmd(['sh', '-c', IP_BATCH_IN_NETNS], idleMs);
}

/** Points a startIpBatchAnyNetns() process at `netns` (an absolute path without newlines). */
export function enterNetns(p: PendingCmd, netns: string): PendingCmd {
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
export async function createHostSide(v: VethSpec, ipBatch?: PendingCmd): Promise<void> {
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
export async function configureContainerSide(v: VethSpec, ipBatch?: PendingCmd): Promise<void> {
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
  await runCmd(ipArgv(['rule', 'del', 'from', ip, 'lookup', String(sourceTable(ip))], netns)).catch(
    () => undefined,
  );
}

/**
 * Deletes the host veth (and with it the peer). Returns false when it did not exist.
 * `ipBatch`: an `ip -batch -` in this namespace started earlier.
 */
export async function deleteHostIf(hostIf: string, ipBatch?: PendingCmd): Promise<boolean> {
  const r = ipBatch
    ? await ipBatch.run(`link del dev ${hostIf}\n`)
    : await runCmd(ipArgv(['link', 'del', 'dev', hostIf]));
  if (r.code === 0) return true;
  if (/Cannot find device|does not exist/.test(r.stderr)) return false;
  throw new LinkError(CNI_ERR.INTERNAL, `deleting ${hostIf} failed: ${r.stderr.trim()}`, r.stderr.trim());
}

/** Deletes an interface inside a container netns; false when the netns or interface is gone. */
export async function deleteContainerIf(netns: string, ifname: string): Promise<boolean> {
  const r = await runCmd(ipArgv(['link', 'del', 'dev', ifname], netns));
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
  const r = await runCmd(ipArgv(args, netns));
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
  const r = await runCmd(ipArgv(['-j', 'route', 'show', ...extra], netns));
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
  const r = await runCmd(ipArgv(['-j', 'link', 'show', 'dev', ifname]));
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
  const r = await runCmd(ipArgv(['-j', 'link', 'show', 'type', 'veth']));
  if (r.code !== 0) return [];
  try {
    return (JSON.parse(r.stdout || '[]') as { ifname: string }[])
      .map((l) => l.ifname)
      .filter((n) => pattern.test(n));
  } catch {
    return [];
  }
}
