/**
 * Helpers for driving cfnet's CNI plugin exactly as a runtime does: an install tree laid out as in
 * production (bin/cfnet-cni shim, dist/ transpiled from src/, node_modules), a "cell" network
 * namespace per test with a fake underlay to a "router" namespace, container namespaces, the
 * executor running inside the cell, and invocations with env + stdin whose stdout is parsed.
 * Everything is uniquely named per run and removed by `cleanup()`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { StoreData } from '../../src/cni/store.js';
import { SET_BY_NAME } from '../../src/dataplane/elements.js';
import { buildInstall, type CniOutcome, type Install, runWithStdin } from '../../src/lab/install.js';
import { createNetns, deleteNetns, ip, localAddrs, run, uniqueName } from './netns.js';

// The install tree and the runtime-style invocation live in the lab foundation (src/lab/install.ts),
// shared with the multi-cell cluster, the benches and the demo.
export {
  buildInstall,
  type CniOutcome,
  type Install,
  REPO,
  removeInstalls,
  runWithStdin,
} from '../../src/lab/install.js';

// ------------------------------------------------------------------------------------ cells

export interface CellOptions {
  /** MTU of the cell's underlay link (default 1500). */
  underlayMtu?: number;
  /** Cell subnet written to the subnet file (default 10.255.<random>.0/24). */
  subnet?: string;
  /** Write the subnet file now (default true). */
  writeSubnet?: boolean;
}

export type Mode = 'executor' | 'fallback';

export interface CniCall {
  command: string;
  containerId?: string;
  /** Container netns name (under /run/netns) or an absolute path. */
  netns?: string;
  ifname?: string;
  args?: string;
  /** CNI_PATH (default /usr/lib/cni); null = unset. */
  path?: string | null;
  /** Network config (object → JSON) or raw stdin text. */
  config: Record<string, unknown> | string;
  mode: Mode;
  /** Extra environment (e.g. CFNET_NODE). */
  env?: Record<string, string>;
  /** Program to run instead of the shim (e.g. /usr/lib/cni/bridge). */
  program?: string;
  /**
   * How the call reaches the executor: `compiled` is the install's compiled entry point, `curl` and
   * `nc` the sh shim with that CFNET_CNI_TRANSPORT. Default: the install's plugin (`install.shim`,
   * compiled when a C compiler built it) as a runtime finds it.
   */
  transport?: Transport;
}

export type Transport = 'compiled' | 'curl' | 'nc';

/**
 * The entry points and transports this machine has: the compiled entry when the install has one
 * (a C compiler was there), the sh shim's curl always, its nc when netcat-openbsd is installed.
 */
export async function availableTransports(): Promise<Transport[]> {
  const install = await buildInstall();
  const nc = await run(['sh', '-c', 'command -v nc.openbsd'], { allowFail: true });
  return [
    ...(install.entry === 'compiled' ? (['compiled'] as const) : []),
    'curl',
    ...(nc.code === 0 ? (['nc'] as const) : []),
  ];
}

export const UNDERLAY_CELL_IP = '10.0.0.2';
export const UNDERLAY_ROUTER_IP = '10.0.0.1';
/** Addresses on the router's loopback standing for destinations outside the foundation. */
export const EXTERNAL_ALLOWED = '192.0.2.10';
export const EXTERNAL_DENIED = '198.51.100.10';
/** BOSH DNS address on the cell (host service). */
export const BOSH_DNS = '169.254.0.2';

export class Cell {
  readonly ns: string;
  readonly router: string;
  readonly dir: string;
  readonly subnet: string;
  readonly install: Install;
  readonly containers: string[] = [];
  private executor: ChildProcess | null = null;
  private executorLog = '';

  private constructor(ns: string, router: string, dir: string, subnet: string, install: Install) {
    this.ns = ns;
    this.router = router;
    this.dir = dir;
    this.subnet = subnet;
    this.install = install;
  }

  get socket(): string {
    return join(this.dir, 'cni.sock');
  }
  get deadSocket(): string {
    return join(this.dir, 'no-executor.sock');
  }
  get datastore(): string {
    return join(this.dir, 'data', 'store.json');
  }
  get subnetFile(): string {
    return join(this.dir, 'subnet.json');
  }
  get stateDir(): string {
    return join(this.dir, 'state');
  }
  get agentSocket(): string {
    return join(this.dir, 'agent.sock');
  }

  static async create(opts: CellOptions = {}): Promise<Cell> {
    const install = await buildInstall();
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-cni-cell-'));
    const subnet = opts.subnet ?? `10.255.${1 + (randomBytes(1)[0]! % 250)}.0/24`;
    const ns = uniqueName('cfcnicell');
    const router = uniqueName('cfcnirtr');
    const cell = new Cell(ns, router, dir, subnet, install);
    try {
      await createNetns(ns);
      await createNetns(router);
      // the underlay link, made inside the namespaces (never in the host's)
      const mtu = String(opts.underlayMtu ?? 1500);
      await ip(
        router,
        'link',
        'add',
        'eth0',
        'mtu',
        mtu,
        'type',
        'veth',
        'peer',
        'name',
        'eth0',
        'mtu',
        mtu,
        'netns',
        ns,
      );
      await ip(router, 'addr', 'add', `${UNDERLAY_ROUTER_IP}/24`, 'dev', 'eth0');
      await ip(ns, 'addr', 'add', `${UNDERLAY_CELL_IP}/24`, 'dev', 'eth0');
      await ip(router, 'link', 'set', 'eth0', 'up');
      await ip(ns, 'link', 'set', 'eth0', 'up');
      await ip(ns, 'route', 'add', 'default', 'via', UNDERLAY_ROUTER_IP);
      await localAddrs(router, [`${EXTERNAL_ALLOWED}/32`, `${EXTERNAL_DENIED}/32`]);
      await localAddrs(ns, [`${BOSH_DNS}/32`]);
      if (opts.writeSubnet !== false) await cell.writeSubnet();
    } catch (err) {
      await cell.cleanup();
      throw err;
    }
    return cell;
  }

  async writeSubnet(subnet = this.subnet): Promise<void> {
    await writeFile(this.subnetFile, JSON.stringify({ subnet }));
  }

  /** The plugin config a CF cell would carry (before the runtime injects runtimeConfig etc.). */
  config(extra: Record<string, unknown> = {}, mode: Mode = 'executor'): Record<string, unknown> {
    return {
      cniVersion: '1.0.0',
      name: 'cfnet',
      type: 'cfnet-cni',
      datastore: this.datastore,
      subnet_file: this.subnetFile,
      state_dir: this.stateDir,
      executor_socket: mode === 'executor' ? this.socket : this.deadSocket,
      agent_socket: this.agentSocket,
      overlay_network: '10.255.0.0/16',
      dns_servers: [BOSH_DNS],
      host_tcp_services: [`${BOSH_DNS}:9001`],
      log_level: 'warn',
      ...extra,
    };
  }

  /** A container network namespace (removed by cleanup). Returns its name. */
  async newContainer(): Promise<string> {
    const name = uniqueName('cfcnictr');
    this.containers.push(name);
    await createNetns(name);
    return name;
  }

  async startExecutor(): Promise<void> {
    if (this.executor) return;
    const child = spawn(
      'nsenter',
      [
        `--net=/run/netns/${this.ns}`,
        process.execPath,
        this.install.cli,
        'cni-executor',
        '--socket',
        this.socket,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, CFNET_LOG_LEVEL: process.env.CFNET_TEST_EXECUTOR_LOG ?? 'warn' },
      },
    );
    this.executor = child;
    child.stderr!.on('data', (b: Buffer) => {
      this.executorLog += b.toString();
    });
    child.stdout!.on('data', (b: Buffer) => {
      this.executorLog += b.toString();
    });
    // the executor loads the whole CLI: on a loaded 2-core machine that alone took over 15 s once
    const deadline = Date.now() + 45_000;
    for (;;) {
      const r = await run(['curl', '-s', '--unix-socket', this.socket, 'http://cfnet/healthz'], {
        allowFail: true,
      });
      if (r.code === 0 && r.stdout.trim() === 'ok') return;
      if (child.exitCode !== null)
        throw new Error(`executor exited (${child.exitCode}): ${this.executorLog}`);
      if (Date.now() > deadline) throw new Error(`executor did not start: ${this.executorLog}`);
      await new Promise((r2) => setTimeout(r2, 50));
    }
  }

  async stopExecutor(): Promise<void> {
    const child = this.executor;
    if (!child) return;
    this.executor = null;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((r) => {
      timer = setTimeout(() => r('late'), 3000);
    });
    if ((await Promise.race([exited, late])) === 'late') {
      child.kill('SIGKILL');
      await exited;
    }
    clearTimeout(timer);
  }

  /** Invokes the plugin inside the cell netns as a runtime would (env + stdin, stdout parsed). */
  async call(c: CniCall): Promise<CniOutcome> {
    const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
    if (c.command !== '') env.CNI_COMMAND = c.command;
    if (c.containerId !== undefined) env.CNI_CONTAINERID = c.containerId;
    if (c.netns !== undefined) env.CNI_NETNS = c.netns.startsWith('/') ? c.netns : `/run/netns/${c.netns}`;
    if (c.ifname !== undefined) env.CNI_IFNAME = c.ifname;
    if (c.args !== undefined) env.CNI_ARGS = c.args;
    if (c.path !== null) env.CNI_PATH = c.path ?? '/usr/lib/cni';
    if (c.transport === 'curl' || c.transport === 'nc') env.CFNET_CNI_TRANSPORT = c.transport;
    Object.assign(env, c.env ?? {});
    const stdin =
      typeof c.config === 'string'
        ? c.config
        : JSON.stringify(
            c.mode === 'fallback' && c.config.executor_socket === this.socket
              ? { ...c.config, executor_socket: this.deadSocket }
              : c.config,
          );
    if (c.transport === 'compiled' && this.install.entry !== 'compiled')
      throw new Error('this install has no compiled entry point (no C compiler when it was made)');
    const program =
      c.program ?? (c.transport === 'curl' || c.transport === 'nc' ? this.install.shShim : this.install.shim);
    return runWithStdin(['nsenter', `--net=/run/netns/${this.ns}`, program], env, stdin);
  }

  /** Runs a command inside the cell netns. */
  exec(argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return run(['nsenter', `--net=/run/netns/${this.ns}`, ...argv], { allowFail: true });
  }

  get log(): string {
    return this.executorLog;
  }

  async cleanup(): Promise<void> {
    await this.stopExecutor();
    for (const c of this.containers.splice(0)) await deleteNetns(c);
    await deleteNetns(this.ns);
    await deleteNetns(this.router);
    await rm(this.dir, { recursive: true, force: true });
  }
}

// ------------------------------------------------------------------------------------ agent

export interface FakeAgent {
  events: Record<string, unknown>[];
  close(): Promise<void>;
}

/** A stand-in for the cell agent's socket: records every CNI event POSTed to it. */
export async function fakeAgent(socket: string): Promise<FakeAgent> {
  const events: Record<string, unknown>[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (b: Buffer) => chunks.push(b));
    req.on('end', () => {
      try {
        events.push({ path: req.url, ...(JSON.parse(Buffer.concat(chunks).toString()) as object) });
      } catch {
        events.push({ path: req.url, invalid: true });
      }
      res.writeHead(204);
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(socket, () => resolve()));
  return {
    events,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

export interface HungAgent {
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

/**
 * An agent socket that accepts connections and reads requests but never answers (a wedged agent).
 * close() destroys the connections it holds, so it never keeps the test process alive.
 */
export async function hungAgent(socket: string): Promise<HungAgent> {
  const open = new Set<Socket>();
  let accepted = 0;
  const server = createNetServer((c) => {
    accepted++;
    open.add(c);
    c.on('close', () => open.delete(c));
    c.on('error', () => undefined);
    c.resume(); // read (and drop) the request, so a client hang-up is seen
  });
  await new Promise<void>((resolve) => server.listen(socket, () => resolve()));
  return {
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const c of open) c.destroy();
      }),
  };
}

/** Lines of a child process's stdout, for long-running helpers. */
export function lines(child: ChildProcess): AsyncIterable<string> {
  return createInterface({ input: child.stdout! });
}

// ------------------------------------------------------------------------------------ inspection

/** Interface names in a namespace (by `ip -j link`), run from the host. */
export async function linkNames(nsName: string): Promise<string[]> {
  const r = await run(['ip', '-n', nsName, '-j', 'link', 'show'], { allowFail: true });
  if (r.code !== 0) return [];
  return (JSON.parse(r.stdout) as { ifname: string }[]).map((l) => l.ifname);
}

export async function linkInfo(
  nsName: string,
  dev: string,
): Promise<{ mtu: number; address: string; addr_info: { local: string; prefixlen: number }[] } | null> {
  const r = await run(['ip', '-n', nsName, '-j', 'addr', 'show', 'dev', dev], { allowFail: true });
  if (r.code !== 0) return null;
  return (JSON.parse(r.stdout) as never[])[0] ?? null;
}

/**
 * A set or map of the cell's nft table as `nft list` prints it, '' when the table does not exist.
 * Any other failure (a name cfnet does not define) throws, so a check can never pass on an error.
 */
export async function nftSet(cell: Cell, set: string, table = 'cfnet'): Promise<string> {
  const def = SET_BY_NAME.get(set);
  if (!def) throw new Error(`cfnet's table has no set or map ${set}`);
  const r = await cell.exec(['nft', 'list', def.valueKinds ? 'map' : 'set', 'inet', table, set]);
  if (r.code === 0) return r.stdout;
  const tables = await cell.exec(['nft', 'list', 'tables']);
  if (!tables.stdout.includes(`table inet ${table}`)) return '';
  throw new Error(`nft list ${set} failed: ${r.stderr}`);
}

/** The cell's datastore (Silk's store.json shape plus cfnet's record), {} when absent. */
export async function readStore(cell: Cell): Promise<StoreData> {
  let text: string;
  try {
    text = await readFile(cell.datastore, 'utf8');
  } catch {
    return {};
  }
  return JSON.parse(text) as StoreData;
}

export function resultIp(json: Record<string, unknown> | null): string {
  const ips = (json?.ips ?? []) as { address: string }[];
  const a = ips[0]?.address;
  if (!a) throw new Error(`no ips in result ${JSON.stringify(json)}`);
  return a.split('/')[0]!;
}
