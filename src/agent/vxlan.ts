/**
 * The cell's VXLAN device and its overlay entries, in the agent's network namespace:
 * - ensureDevice: `<vtep>` of type vxlan (VNI, UDP port, GBP on, learning off, local = underlay IP,
 *   MTU = underlay MTU − 50 unless set), MAC and /32 address derived from the lease. An existing
 *   device is kept when its VNI/port/GBP/local address match (a restart changes nothing); MTU, MAC
 *   and address are fixed in place; only a mismatch of the immutable attributes recreates it.
 * - sync: routes / neighbours / FDB entries for the other cells, diffed against what the agent
 *   last programmed (no kernel dump when nothing changed), in one `ip -batch` and one
 *   `bridge -batch` process; `readKernel` re-reads the kernel first (start-up and drift checks).
 */

import { CommandError, parseJsonOutput, type Runner, runCommand } from '../host/index.js';
import type { Logger } from '../lib/log.js';
import {
  cloneOverlay,
  diffOverlay,
  type OverlayState,
  parseFdb,
  parseNeighs,
  parseRoutes,
  vtepIpOf,
  vtepMacOf,
} from './overlay.js';

export const VXLAN_OVERHEAD = 50;

export interface VtepSpec {
  name: string;
  vni: number;
  port: number;
  underlayIp: string;
  underlayInterface: string;
  mtu: number;
  /** The cell's subnet (the device gets its first address as /32). */
  subnet: string;
  /** The device MAC (the lease's `vtepMac`: what the other cells program for this one). */
  mac: string;
}

/** The settings a VXLAN device is built from (the agent's config, a cell's or a router's). */
export interface VtepSettings {
  vtepName: string;
  vni: number;
  vtepPort: number;
  /** 0 = the underlay's MTU less the VXLAN overhead. */
  vtepMtu: number;
}

/** The VXLAN device for `lease` on `underlay`: one builder for cells and routers. */
export function vtepSpecOf(
  c: VtepSettings,
  underlay: Underlay,
  lease: { subnet: string; vtepMac?: string },
): VtepSpec {
  return {
    name: c.vtepName,
    vni: c.vni,
    port: c.vtepPort,
    underlayIp: underlay.ip,
    underlayInterface: underlay.interface,
    mtu: c.vtepMtu > 0 ? c.vtepMtu : underlay.mtu - VXLAN_OVERHEAD,
    subnet: lease.subnet,
    mac: lease.vtepMac || vtepMacOf(lease.subnet),
  };
}

export interface Underlay {
  ip: string;
  interface: string;
  mtu: number;
}

type Json = Record<string, unknown>;

async function ipJson(run: Runner, args: string[]): Promise<Json[]> {
  const r = await run(['ip', '-j', ...args]);
  const v = parseJsonOutput(r.stdout);
  return Array.isArray(v) ? (v as Json[]) : [];
}

/**
 * The underlay: `ip` (or the default route's source / its interface's first address) and its
 * interface and MTU.
 */
export async function detectUnderlay(
  want: { ip: string; interface: string },
  run: Runner = runCommand,
): Promise<Underlay> {
  const addrs = await ipJson(run, ['-4', 'addr', 'show']);
  const ifaceAddrs = (name: string) =>
    addrs
      .filter((l) => l.ifname === name)
      .flatMap((l) => (Array.isArray(l.addr_info) ? (l.addr_info as Json[]) : []))
      .filter((a) => a.family === 'inet' && a.scope === 'global')
      .map((a) => String(a.local));
  let ip = want.ip;
  let iface = want.interface;
  if (ip === '' && iface === '') {
    const routes = await ipJson(run, ['-4', 'route', 'show', 'default']);
    const def = routes[0];
    if (!def || typeof def.dev !== 'string') {
      throw new CommandError(
        ['detect underlay'],
        null,
        'no IPv4 default route: set underlayIp or underlayInterface',
      );
    }
    iface = def.dev;
    if (typeof def.prefsrc === 'string') ip = def.prefsrc;
  }
  if (ip === '') {
    const first = ifaceAddrs(iface)[0];
    if (!first)
      throw new CommandError(['detect underlay'], null, `interface ${iface} has no global IPv4 address`);
    ip = first;
  }
  if (iface === '') {
    const owner = addrs.find((l) => ifaceAddrs(String(l.ifname)).includes(ip));
    if (!owner) throw new CommandError(['detect underlay'], null, `no interface holds the underlay IP ${ip}`);
    iface = String(owner.ifname);
  }
  const link = (await ipJson(run, ['link', 'show', 'dev', iface]))[0];
  const mtu = typeof link?.mtu === 'number' ? link.mtu : 1500;
  return { ip, interface: iface, mtu };
}

export interface DeviceInfo {
  exists: boolean;
  vni?: number;
  port?: number;
  gbp?: boolean;
  local?: string;
  mtu?: number;
  mac?: string;
  up?: boolean;
  addresses: string[];
}

/** Whether `ip`/`bridge` failed because the device does not exist. */
export function deviceMissing(err: unknown): boolean {
  return err instanceof CommandError && /does not exist|Cannot find device/i.test(err.stderr);
}

export class Vxlan {
  readonly dev: string;
  private readonly run: Runner;
  private readonly log: Logger;
  /** What the kernel holds as far as this process knows (null = unknown: read it). */
  private known: OverlayState | null = null;

  constructor(dev: string, log: Logger, run: Runner = runCommand) {
    this.dev = dev;
    this.log = log;
    this.run = run;
  }

  async device(): Promise<DeviceInfo> {
    let links: Json[];
    try {
      links = await ipJson(this.run, ['-d', 'link', 'show', 'dev', this.dev]);
    } catch (err) {
      if (deviceMissing(err)) return { exists: false, addresses: [] };
      throw err;
    }
    const l = links[0];
    if (!l) return { exists: false, addresses: [] };
    const info = ((l.linkinfo as Json | undefined)?.info_data ?? {}) as Json;
    const kind = (l.linkinfo as Json | undefined)?.info_kind;
    const addrs = await ipJson(this.run, ['-4', 'addr', 'show', 'dev', this.dev]);
    const addresses = addrs
      .flatMap((x) => (Array.isArray(x.addr_info) ? (x.addr_info as Json[]) : []))
      .filter((a) => a.family === 'inet')
      .map((a) => `${a.local}/${a.prefixlen}`);
    const out: DeviceInfo = {
      exists: true,
      mtu: typeof l.mtu === 'number' ? l.mtu : 0,
      mac: typeof l.address === 'string' ? l.address.toLowerCase() : '',
      up: Array.isArray(l.flags) && l.flags.includes('UP'),
      addresses,
    };
    if (kind === 'vxlan') {
      if (typeof info.id === 'number') out.vni = info.id;
      if (typeof info.port === 'number') out.port = info.port;
      out.gbp = info.gbp === true;
      if (typeof info.local === 'string') out.local = info.local;
    }
    return out;
  }

  /** Creates or fixes the device for `spec`. Returns what was done (empty when nothing). */
  async ensureDevice(spec: VtepSpec): Promise<string[]> {
    const mac = spec.mac.toLowerCase();
    const addr = `${vtepIpOf(spec.subnet)}/32`;
    const cur = await this.device();
    const done: string[] = [];
    const lines: string[] = [];
    const immutableOk =
      cur.exists &&
      cur.vni === spec.vni &&
      cur.port === spec.port &&
      cur.gbp === true &&
      cur.local === spec.underlayIp;
    if (cur.exists && !immutableOk) {
      this.log.warn(
        { dev: this.dev, have: { vni: cur.vni, port: cur.port, gbp: cur.gbp, local: cur.local }, want: spec },
        'VXLAN device does not match the configuration: recreating it',
      );
      lines.push(`link del ${this.dev}`);
      done.push('deleted');
    }
    if (!immutableOk) {
      const devPart = spec.underlayInterface ? ` dev ${spec.underlayInterface}` : '';
      lines.push(
        `link add ${this.dev} type vxlan id ${spec.vni} dstport ${spec.port} local ${spec.underlayIp}${devPart} nolearning gbp`,
        `link set dev ${this.dev} addrgenmode none`,
        `link set dev ${this.dev} address ${mac} mtu ${spec.mtu}`,
        `addr add ${addr} dev ${this.dev}`,
        `link set dev ${this.dev} up`,
      );
      done.push('created');
      this.known = null;
    } else {
      if (cur.mac !== mac || cur.mtu !== spec.mtu) {
        lines.push(`link set dev ${this.dev} address ${mac} mtu ${spec.mtu}`);
        done.push(`mac/mtu ${cur.mac}/${cur.mtu} -> ${mac}/${spec.mtu}`);
      }
      for (const a of cur.addresses) {
        if (a !== addr) {
          lines.push(`addr del ${a} dev ${this.dev}`);
          done.push(`address ${a} removed`);
        }
      }
      if (!cur.addresses.includes(addr)) {
        lines.push(`addr add ${addr} dev ${this.dev}`);
        done.push(`address ${addr} added`);
      }
      if (!cur.up) {
        lines.push(`link set dev ${this.dev} up`);
        done.push('up');
      }
    }
    if (lines.length > 0) await this.run(['ip', '-batch', '-'], `${lines.join('\n')}\n`);
    return done;
  }

  /** The device's current overlay entries, read from the kernel. */
  async readKernel(): Promise<OverlayState> {
    const [routes, neighs, fdb] = await Promise.all([
      this.run(['ip', '-j', 'route', 'show', 'dev', this.dev]),
      this.run(['ip', '-j', 'neigh', 'show', 'dev', this.dev]),
      this.run(['bridge', '-j', 'fdb', 'show', 'dev', this.dev]),
    ]);
    return {
      routes: parseRoutes(parseJsonOutput(routes.stdout)),
      neighs: parseNeighs(parseJsonOutput(neighs.stdout)),
      fdb: parseFdb(parseJsonOutput(fdb.stdout)),
    };
  }

  /** Forget what was programmed: the next sync reads the kernel. */
  invalidate(): void {
    this.known = null;
  }

  /**
   * Brings the device's entries to `desired`. Returns the number of entries changed (0 = no
   * process was run unless `readKernel`). On a failure the kernel is re-read next time.
   */
  async sync(desired: OverlayState, opts: { readKernel?: boolean } = {}): Promise<number> {
    if (opts.readKernel || this.known === null) this.known = await this.readKernel();
    const d = diffOverlay(this.known, desired, this.dev);
    if (d.changes === 0) return 0;
    try {
      if (d.bridgeBefore.length > 0) {
        await this.run(['bridge', '-force', '-batch', '-'], `${d.bridgeBefore.join('\n')}\n`);
      }
      if (d.ip.length > 0) await this.run(['ip', '-force', '-batch', '-'], `${d.ip.join('\n')}\n`);
      if (d.bridgeAfter.length > 0) {
        await this.run(['bridge', '-force', '-batch', '-'], `${d.bridgeAfter.join('\n')}\n`);
      }
    } catch (err) {
      this.known = null;
      throw err;
    }
    this.known = cloneOverlay(desired);
    return d.changes;
  }
}
