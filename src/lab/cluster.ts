/**
 * A multi-cell cfnet foundation with real processes, for tests, benches and the demo.
 *
 * dataplane `kernel` (root; the default):
 *
 *           this namespace: simulator (in-process), Redis, `cfnet controller` process
 *                 │  relay (unix socket; no interface of this namespace is touched)
 *   ┌─────────────┼────────────────────────────────────────┐
 *   cell-1 ns     cell-2 ns       cell-3 ns                 each: 127.0.0.1:4190 → relay → controller;
 *   agent         agent           agent                     `cfnet agent` under `ip netns exec`,
 *   eth0 .11      eth0 .12        eth0 .13                  hosting the CNI executor
 *      └──────────────┴── br0 (198.51.100.1) ──┘            underlay namespace: bridge, plus
 *                        "external" 192.168.77.10            an external server for ASG tests
 *
 * Containers are made by the real CNI plugin (bin/cfnet-cni with CNI_* env and stdin, inside the
 * cell namespace) and registered in the simulator as RUNNING ActualLRPs with their real IPs.
 *
 * dataplane `dry-run` (no root needed): the agents run in this namespace with `--dry-run` (they
 * lease, long-poll, merge, render and report, but write nothing to the kernel) and reach the
 * controller through a loopback relay; there are no containers of their own.
 *
 * Everything (namespaces, processes, Redis keys, temp dirs) is removed by `stop()`, also after a
 * failure; call it from `finally`.
 *
 * Longer than ~400 lines: the whole lab topology (cells, controller replicas, relays, containers,
 * servers) for tests, benches and the demo; every part shares the cluster's files, namespaces and
 * stop.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect as netConnect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { ControllerClient } from '../agent/client.js';
import type { AgentConfig } from '../agent/config.js';
import type { AgentEvent } from '../agent/events.js';
import { DEFAULT_IPTABLES_BINARIES } from '../dataplane/host-filter.js';
import { closeRedis, createRedis, deleteKeys } from '../lib/redis.js';
import { createCa, issueCert } from '../lib/tls.js';
import { type SimHandle, type SimOptions, startSimulator } from '../sim/index.js';
import { LabController } from './controller.js';
import { type GardenNetOutRule, gardenNetOutRulesOfBbs } from './garden-rules.js';
import { type Install, labInstall, removeInstalls, runWithStdin } from './install.js';
import { createNetns, deleteNetns, exec, ip, localAddrs, sysctlNs, uniqueName } from './netns.js';
import { alive, getUnix, rss, waitExit, waitForLine, waitUntil } from './process.js';

export { waitUntil } from './process.js';

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
export const UNDERLAY_GW = '198.51.100.1';
export const EXTERNAL_IP = '192.168.77.10';
const CONTROLLER_PORT_IN_CELL = 4190;

export type LabDataplane = 'kernel' | 'dry-run';

export interface ClusterOptions {
  /** Number of cells (default 3; with `simCells`, default: every cell of the foundation). */
  cells?: number;
  seed?: number;
  /** Extra agent settings (e.g. shorter intervals). */
  agent?: Partial<AgentConfig>;
  /** Controller poll intervals (ms). */
  policyIntervalMs?: number;
  capiCheckIntervalMs?: number;
  /**
   * Full security-group listing interval (ms; the lab's controller default is 5 s). The only way a
   * group written through the v2 API (`via: 'v2'`) is seen.
   */
  capiFullListIntervalMs?: number;
  /**
   * false = static ASGs (CF's `dynamic_asgs_enabled: false`): containers keep the egress rules of
   * their BBS desired LRP / task; a group change reaches an app only when it is restarted
   * (`sim.apply({kind: 'app-restage'})`) or a new task is run. Default true.
   */
  dynamicAsgs?: boolean;
  /** Log level of the controller and agents (logs go to the cluster's temp dir, kept with CFNET_KEEP_LOGS). */
  logLevel?: string;
  /** Simulator options (default: seed 7, small foundation). */
  sim?: SimOptions;
  /** Ids of the real cells (default e2e-cell-1..N); a simulator cell id gets that cell's rule set. */
  cellIds?: string[];
  /**
   * The cells are the simulator's own cells (its foundation and churn land on them); once the agents
   * hold their leases, the simulated containers are addressed from them (`cell-subnet`).
   */
  simCells?: boolean;
  /** Controller settings (CONTROLLER_SETTINGS keys, e.g. `workerConcurrency`) overriding the lab's. */
  controller?: Record<string, unknown>;
  /** How agents are started: `cli` = `node bin/cfnet.js agent` (default), `lean` = `node dist/agent/main.js`. */
  agentEntry?: 'cli' | 'lean';
  /** Node options for the agent processes (e.g. `--max-semi-space-size=2`). */
  agentNodeOptions?: string[];
  /** `kernel` (default; root: namespaces, nft, VXLAN, CNI) or `dry-run` (agents render, write nothing). */
  dataplane?: LabDataplane;
  /** Redis (default REDIS_URL: $REDIS_URL or redis://127.0.0.1:6379/0). */
  redisUrl?: string;
  /** Prefix of the Redis namespace (default `cfnet-e2e`); a unique suffix is added. */
  redisPrefix?: string;
  /** Keep the logs and files (default: when CFNET_KEEP_LOGS is set). */
  keepLogs?: boolean;
  /**
   * The cluster's directory, made by the caller (default: a new temp dir). The demo names it before
   * the cluster starts so that `cfnet demo --cleanup` finds what a killed demo left there.
   */
  dir?: string;
  /**
   * Routers (`cfnet agent --router`, kernel dataplane) after the cells, ids e2e-router-1..N: a
   * namespace on the underlay each, a single-address lease, no containers. Default 0.
   */
  routers?: number;
  /** Prefix of the namespace names the cluster creates (default none: `cfeul-…`, `cfec1-…`). */
  nsPrefix?: string;
}

export interface StopSummary {
  processes: number;
  namespaces: number;
  redisKeys: number;
}

export interface ContainerRef {
  handle: string;
  /** The CNI ADD result as the runtime got it. */
  cniResult?: Record<string, unknown>;
  ns: string;
  ip: string;
  cell: CellNode;
  appGuid: string;
  processGuid: string;
  index: number;
}

export interface AppRef {
  appGuid: string;
  processGuid: string;
  spaceGuid: string;
  orgGuid: string;
}

/** An executable of that name in a directory of PATH (or the sbin directories root has). */
function onPath(name: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  return dirs.some((d) => d !== '' && existsSync(join(d, name)));
}

/** A TCP relay from `host:port` in a cell namespace to a unix socket (run with `node -e`). */
const RELAY = `
const net = require('node:net');
const [host, port, path] = process.argv.slice(1);
net.createServer((c) => {
  const u = net.connect(path);
  c.pipe(u); u.pipe(c);
  const end = () => { c.destroy(); u.destroy(); };
  c.on('error', end); u.on('error', end); c.on('close', end); u.on('close', end);
}).listen(Number(port), host, () => console.log('ready'));
`;

/** One cell: namespace (kernel) or none (dry-run), underlay address, files, agent process. */
export class CellNode {
  agent: ChildProcess | null = null;
  relay: ChildProcess | null = null;
  readonly containers: string[] = [];
  starts = 0;
  /**
   * The agent's output lines (every start) as this process read them from its pipes. `logLines`
   * reads these rather than the log file, which is written after them (one more asynchronous hop).
   */
  private readonly output: string[] = [];

  constructor(
    readonly cluster: Cluster,
    readonly id: string,
    /** The cell's network namespace ('' in dry-run mode). */
    readonly ns: string,
    readonly underlayIp: string,
    readonly dir: string,
    /** A router (`cfnet agent --router`): no CNI executor, a single-address lease. */
    readonly router = false,
  ) {}

  get configPath(): string {
    return join(this.dir, 'agent.json');
  }
  get logPath(): string {
    return join(this.dir, 'agent.log');
  }
  get stateDir(): string {
    return join(this.dir, 'agent-state');
  }
  get datastore(): string {
    return join(this.dir, 'data', 'store.json');
  }
  get subnetFile(): string {
    return join(this.dir, 'subnet.json');
  }
  /** A router's saved state (its lease), written after each successful round. */
  get routerStateFile(): string {
    return join(this.stateDir, 'router.json');
  }
  get cniStateDir(): string {
    return join(this.dir, 'cni-state');
  }
  get executorSocket(): string {
    return join(this.dir, 'cni.sock');
  }
  get agentSocket(): string {
    return join(this.dir, 'agent.sock');
  }
  /** The agent's audit log (Silk's iptables.log; written with the `auditLog` agent setting). */
  get auditLogPath(): string {
    return join(this.dir, 'iptables.log');
  }

  /** The CNI network config a Diego cell would carry for cfnet. */
  cniConfig(): Record<string, unknown> {
    return {
      cniVersion: '0.3.1',
      name: 'cfnet',
      type: 'cfnet-cni',
      datastore: this.datastore,
      subnet_file: this.subnetFile,
      state_dir: this.cniStateDir,
      executor_socket: this.executorSocket,
      agent_socket: this.agentSocket,
      nft_table: 'cfnet',
      underlay_interface: 'eth0',
      overlay_network: '10.255.0.0/16',
      dns_servers: ['169.254.0.2'],
      log_level: 'warn',
    };
  }

  /** Starts `cfnet agent` (in the cell namespace, or with --dry-run); resolves when it serves. */
  async startAgent(): Promise<void> {
    if (this.agent && alive(this.agent)) throw new Error(`agent of ${this.id} is running`);
    this.starts++;
    const dryRun = this.cluster.dataplane === 'dry-run';
    const install = this.cluster.install;
    const program = [
      process.execPath,
      ...(this.cluster.opts.agentNodeOptions ?? []),
      ...(this.cluster.opts.agentEntry === 'lean'
        ? [join(install.home, 'dist', 'agent', 'main.js')]
        : [install.cli, 'agent']),
      '--config',
      this.configPath,
      ...(dryRun ? ['--dry-run'] : []),
    ];
    const argv = dryRun ? program : ['ip', 'netns', 'exec', this.ns, ...program];
    const log = createWriteStream(this.logPath, { flags: 'a' });
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CFNET_LOG_LEVEL: this.cluster.logLevel },
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    for (const stream of [child.stdout!, child.stderr!]) {
      createInterface({ input: stream }).on('line', (line) => this.output.push(line));
    }
    this.agent = child;
    if (this.router) {
      // a router serves nothing locally: it is up once it holds its lease (its state file)
      await waitUntil(
        `router ${this.id} holding its lease`,
        async () => {
          if (child.exitCode !== null)
            throw new Error(`router agent exited (${child.exitCode}): ${await this.logTail()}`);
          return existsSync(this.routerStateFile);
        },
        20_000,
        50,
      );
      return;
    }
    // kernel: the CNI executor must answer (containers are made through it); dry-run: the agent socket
    const socket = dryRun ? this.agentSocket : this.executorSocket;
    await waitUntil(
      `agent of ${this.id} serving on ${socket}`,
      async () => {
        if (child.exitCode !== null)
          throw new Error(`agent exited (${child.exitCode}): ${await this.logTail()}`);
        const r = await getUnix(socket, '/healthz', 1000).catch(() => null);
        return r?.status === 200 && r.body.trim() === 'ok';
      },
      20_000,
      50,
    );
  }

  /** SIGTERM (drain) or SIGKILL the agent and wait for it to exit. */
  async stopAgent(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<number | null> {
    const child = this.agent;
    if (!child || !alive(child)) return child?.exitCode ?? null;
    child.kill(signal);
    if (!(await waitExit(child, 10_000))) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
    }
    return child.exitCode;
  }

  async logTail(lines = 40): Promise<string> {
    const t = await readFile(this.logPath, 'utf8').catch(() => '');
    return t.split('\n').slice(-lines).join('\n');
  }

  /** Agent log lines (pino JSON, every start) containing `needle`, as received so far. */
  /** The agent's log lines carrying `event` (src/agent/events.ts), every start included. */
  async events(name: AgentEvent): Promise<Record<string, unknown>[]> {
    return (await this.logLines(`"event":"${name}"`)).filter((l) => l.event === name);
  }

  async logLines(needle: string): Promise<Record<string, unknown>[]> {
    return this.output
      .filter((l) => l.includes(needle))
      .flatMap((l) => {
        try {
          return [JSON.parse(l) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  private kernelOnly(what: string): void {
    if (!this.ns) throw new Error(`${what}: cell ${this.id} has no namespace (dry-run dataplane)`);
  }

  exec(argv: string[]) {
    this.kernelOnly('exec');
    return exec(this.ns, argv, { allowFail: true });
  }

  /** The agent's state as it reports it on its local socket (GET /v1/state). */
  async agentState(): Promise<Record<string, unknown>> {
    const r = await getUnix(this.agentSocket, '/v1/state');
    if (r.status !== 200) throw new Error(`agent of ${this.id}: /v1/state answered ${r.status}`);
    return JSON.parse(r.body) as Record<string, unknown>;
  }

  /** `nft list table inet cfnet` (text). */
  async table(): Promise<string> {
    this.kernelOnly('table');
    return (await exec(this.ns, ['nft', 'list', 'table', 'inet', 'cfnet'], { allowFail: true })).stdout;
  }

  /**
   * The c2c source tag the cell's `ctr_tag` map gives a container address (the mark its packets
   * carry in the VXLAN GBP id), null when it has none.
   */
  async ctrTag(ip: string): Promise<number | null> {
    this.kernelOnly('ctrTag');
    const text = (
      await exec(this.ns, ['nft', 'list', 'map', 'inet', 'cfnet', 'ctr_tag'], { allowFail: true })
    ).stdout;
    const m = new RegExp(`(?:^|[\\s{,])${ip.replaceAll('.', '\\.')} : (0x[0-9a-f]+)`).exec(text);
    return m ? Number(m[1]) : null;
  }

  async subnet(): Promise<string> {
    if (this.router) {
      const saved = JSON.parse(await readFile(this.routerStateFile, 'utf8')) as { lease: { subnet: string } };
      return saved.lease.subnet;
    }
    return (JSON.parse(await readFile(this.subnetFile, 'utf8')) as { subnet: string }).subnet;
  }
}

export class Cluster {
  readonly cells: CellNode[] = [];
  readonly namespaces: string[] = [];
  sim!: SimHandle;
  install!: Install;
  underlay = '';
  readonly redisUrl: string;
  readonly redisNs: string;
  readonly logLevel: string;
  readonly dataplane: LabDataplane;
  private ctl: LabController | null = null;
  /** Further controller replicas (startReplica), standbys unless the first one dies. */
  readonly replicas: LabController[] = [];
  private rootRelay: Server | null = null;
  private relayPort = 0;
  private tls!: { ca: string; cert: string; key: string; caKey: string };
  private servers: ChildProcess[] = [];
  private stopped = false;

  private constructor(
    readonly dir: string,
    readonly opts: ClusterOptions,
  ) {
    this.logLevel = opts.logLevel ?? process.env.CFNET_TEST_LOG ?? 'info';
    this.dataplane = opts.dataplane ?? 'kernel';
    this.redisUrl = opts.redisUrl ?? REDIS_URL;
    this.redisNs = `{${opts.redisPrefix ?? 'cfnet-e2e'}-${process.pid}-${randomBytes(4).toString('hex')}}`;
  }

  /** Unix socket of the relay to the controller (kernel dataplane). */
  get relaySocket(): string {
    return join(this.dir, 'controller.sock');
  }

  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'cfnet-cluster-')));
    const c = new Cluster(dir, opts);
    try {
      await c.setup();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  private async setup(): Promise<void> {
    const [install, sim] = await Promise.all([
      labInstall(),
      startSimulator({
        seed: this.opts.seed ?? 7,
        size: 'small',
        ...this.opts.sim,
        certDir: join(this.dir, 'sim-certs'),
      }),
    ]);
    this.install = install;
    this.sim = sim;
    const simIds = [...sim.world.cells.keys()].sort();
    const n = this.opts.cells ?? (this.opts.simCells ? simIds.length : 3);
    const ids = Array.from(
      { length: n },
      (_, i) => (this.opts.simCells ? simIds[i] : this.opts.cellIds?.[i]) ?? `e2e-cell-${i + 1}`,
    );
    const routers = this.dataplane === 'kernel' ? (this.opts.routers ?? 0) : 0;
    for (let r = 1; r <= routers; r++) ids.push(`e2e-router-${r}`);
    const ca = createCa({ cn: 'cfnet lab agent-API CA' });
    const server = issueCert(ca, { cn: 'cfnet-controller', sans: ['127.0.0.1', 'localhost'] });
    this.tls = { ca: ca.cert, cert: server.cert, key: server.key, caKey: ca.key };
    this.ctl = new LabController({
      install,
      dir: this.dir,
      sim,
      redisUrl: this.redisUrl,
      namespace: this.redisNs,
      apiTls: { ca: ca.cert, cert: server.cert, key: server.key },
      logLevel: this.logLevel,
      settings: {
        ...(this.opts.policyIntervalMs ? { policyPollIntervalMs: this.opts.policyIntervalMs } : {}),
        ...(this.opts.capiCheckIntervalMs ? { asgCheckIntervalMs: this.opts.capiCheckIntervalMs } : {}),
        ...(this.opts.capiFullListIntervalMs
          ? { asgFullListIntervalMs: this.opts.capiFullListIntervalMs }
          : {}),
        ...(this.opts.dynamicAsgs === false ? { dynamicAsgs: false } : {}),
        ...this.opts.controller,
      },
    });

    // this namespace's end of the relay to the controller's (restartable, so moving) port
    this.rootRelay = createServer((sock) => {
      const up = netConnect(this.controllerPort, '127.0.0.1');
      sock.pipe(up);
      up.pipe(sock);
      const end = () => {
        sock.destroy();
        up.destroy();
      };
      sock.on('error', end);
      up.on('error', end);
      sock.on('close', end);
      up.on('close', end);
    });
    if (this.dataplane === 'kernel') {
      await new Promise<void>((resolve) => this.rootRelay!.listen(this.relaySocket, resolve));
      await this.setupUnderlay();
    } else {
      await new Promise<void>((resolve) => this.rootRelay!.listen(0, '127.0.0.1', resolve));
      const a = this.rootRelay.address();
      this.relayPort = typeof a === 'object' && a ? a.port : 0;
    }

    const clientKey = issueCert(ca, { cn: 'key-holder', usage: 'client' }).key;
    for (const [k, id] of ids.entries()) {
      const i = k + 1;
      const cellDir = join(this.dir, id);
      await mkdir(cellDir, { recursive: true });
      const underlayIp = `198.51.100.${10 + i}`;
      const ns = this.dataplane === 'kernel' ? await this.setupCellNamespace(i, underlayIp) : '';
      const cell = new CellNode(this, id, ns, underlayIp, cellDir, k >= n);
      const cert = issueCert(ca, { cn: id, usage: 'client', key: clientKey });
      await writeFile(join(cellDir, 'ca.crt'), ca.cert);
      await writeFile(join(cellDir, 'client.crt'), cert.cert);
      await writeFile(join(cellDir, 'client.key'), cert.key, { mode: 0o600 });
      const controllerPort = this.dataplane === 'kernel' ? CONTROLLER_PORT_IN_CELL : this.relayPort;
      const agent: Partial<AgentConfig> = {
        cellId: id,
        controllerUrl: `https://127.0.0.1:${controllerPort}`,
        caCert: join(cellDir, 'ca.crt'),
        clientCert: join(cellDir, 'client.crt'),
        clientKey: join(cellDir, 'client.key'),
        underlayIp,
        vtepName: 'cfnet-vtep',
        leasePollIntervalSeconds: 1,
        longPollTimeoutSeconds: 30,
        driftCheckIntervalSeconds: 5,
        statusIntervalSeconds: 5,
        reconnectMinMs: 200,
        reconnectMaxMs: 2000,
        stateDir: cell.stateDir,
        executorSocket: cell.executorSocket,
        agentSocket: cell.agentSocket,
        datastore: cell.datastore,
        subnetFile: cell.subnetFile,
        cniStateDir: cell.cniStateDir,
        metricsPort: 0,
        logLevel: this.logLevel,
        auditLogFile: cell.auditLogPath,
        // the agent's default filter mode needs one of its iptables executables; a machine without
        // any runs the cells in the self-contained mode rather than not at all (a test asking for
        // a mode gets it)
        ...(this.dataplane === 'kernel' && !DEFAULT_IPTABLES_BINARIES.some(onPath)
          ? { filterMode: 'nftables' as const }
          : {}),
        ...this.opts.agent,
        ...(cell.router ? { router: true } : {}),
      };
      await writeFile(cell.configPath, JSON.stringify(agent, null, 2));
      if (ns) cell.relay = await this.startCellRelay(ns);
      this.cells.push(cell);
    }
    await this.startController();
    await Promise.all(this.cells.map((c) => c.startAgent()));
    // every cell holds a lease and routes to every other cell
    await waitUntil('every cell has overlay routes to every other cell', async () => {
      for (const c of this.cells) {
        // a cell holds its lease once its subnet file is written (with one cell, no routes prove it)
        if ((await c.subnet().catch(() => null)) === null) return false;
        if (this.dataplane === 'kernel') {
          const r = await c.exec(['ip', '-j', 'route', 'show', 'dev', 'cfnet-vtep']);
          if ((JSON.parse(r.stdout || '[]') as unknown[]).length !== this.cells.length - 1) return false;
        } else if ((await c.agentState()).peers !== this.cells.length - 1) return false;
      }
      return true;
    });
    if (this.opts.simCells) await this.addressFromLeases();
  }

  /**
   * The simulated cells' containers take their addresses from the subnets the agents leased, as CF
   * containers do (the simulator generated them before any lease existed): instances outside their
   * cell's lease are recreated inside it.
   */
  private async addressFromLeases(): Promise<void> {
    for (const c of this.cells) {
      if (c.router || !this.sim.world.cells.has(c.id)) continue;
      await this.sim.apply({ kind: 'cell-subnet', cellId: c.id, subnet: await c.subnet() });
    }
  }

  /** The underlay: a bridge namespace with the "external" world behind it. */
  private async setupUnderlay(): Promise<void> {
    this.underlay = uniqueName(`${this.opts.nsPrefix ?? ''}cfeul`);
    this.namespaces.push(this.underlay);
    await createNetns(this.underlay);
    await ip(this.underlay, 'link', 'add', 'br0', 'type', 'bridge');
    await ip(this.underlay, 'addr', 'add', `${UNDERLAY_GW}/24`, 'dev', 'br0');
    await ip(this.underlay, 'link', 'set', 'br0', 'up');
    await localAddrs(this.underlay, [`${EXTERNAL_IP}/32`]);
  }

  /** Cell namespace `i` with eth0 on the underlay bridge; returns its name. */
  private async setupCellNamespace(i: number, underlayIp: string): Promise<string> {
    const ns = uniqueName(`${this.opts.nsPrefix ?? ''}cfec${i}`);
    this.namespaces.push(ns);
    await createNetns(ns);
    const hostIf = `ul${i}${randomBytes(3).toString('hex')}`;
    await ip(this.underlay, 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await ip(this.underlay, 'link', 'set', hostIf, 'master', 'br0', 'up');
    await ip(ns, 'addr', 'add', `${underlayIp}/24`, 'dev', 'eth0');
    await ip(ns, 'link', 'set', 'eth0', 'up');
    await ip(ns, 'route', 'add', '192.168.77.0/24', 'via', UNDERLAY_GW);
    await localAddrs(ns, ['169.254.0.2/32']);
    await sysctlNs(ns, 'net.ipv4.ip_forward', '1');
    await sysctlNs(ns, 'net.ipv4.icmp_ratelimit', '0');
    return ns;
  }

  /** The cell namespace's end of the relay: 127.0.0.1:4190 there → the relay socket here. */
  private async startCellRelay(ns: string): Promise<ChildProcess> {
    const relay = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        RELAY,
        '127.0.0.1',
        String(CONTROLLER_PORT_IN_CELL),
        this.relaySocket,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await waitForLine(relay, `relay in ${ns}`, (l) => l === 'ready');
    return relay;
  }

  /** The controller process (null before setup). */
  get controller(): ChildProcess | null {
    return this.ctl?.child ?? null;
  }

  get controllerStarts(): number {
    return this.ctl?.starts ?? 0;
  }

  /**
   * Port of the agent API of the first running controller replica (the relay of every cell goes
   * there; changes when a replica is restarted or dies).
   */
  get controllerPort(): number {
    const up = [this.ctl, ...this.replicas].find((c) => c?.child && alive(c.child) && c.apiUrl);
    const c = up ?? this.ctl;
    return c?.apiUrl ? Number(new URL(c.apiUrl).port) : 0;
  }

  /** The first controller replica and the ones added by startReplica, in that order. */
  get controllers(): LabController[] {
    return [...(this.ctl ? [this.ctl] : []), ...this.replicas];
  }

  /** Starts one more controller replica (own config, log and instance id), on the same Redis. */
  async startReplica(): Promise<LabController> {
    const n = this.replicas.length + 1;
    const dir = join(this.dir, `replica-${n}`);
    await mkdir(dir, { recursive: true });
    const base = this.ctl!.opts;
    const replica = new LabController({
      ...base,
      dir,
      settings: { ...base.settings, instanceId: `lab-replica-${n}` },
    });
    this.replicas.push(replica);
    await replica.start();
    return replica;
  }

  /** The controller's operator port (metrics, health, dashboard), e.g. http://127.0.0.1:41234. */
  get operatorUrl(): string {
    return this.ctl?.operatorUrl ?? '';
  }

  /** The operator token the controller was given, when it has such a setting. */
  get operatorToken(): string | null {
    return this.ctl?.operatorToken ?? null;
  }

  /** Starts the controller as its own process (`cfnet controller`, this namespace, loopback Redis). */
  async startController(): Promise<void> {
    await this.ctl!.start();
  }

  async killController(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    await this.ctl?.kill(signal);
  }

  /**
   * SIGSTOP / SIGCONT of the controller process: paused, it still accepts connections (the kernel
   * queues them) but answers nothing, so whatever waits on it hangs rather than failing fast.
   */
  pauseController(paused: boolean): void {
    const pid = this.ctl?.pid;
    if (pid === undefined) throw new Error('no controller process');
    process.kill(pid, paused ? 'SIGSTOP' : 'SIGCONT');
  }

  /** A client certificate for any cell id from the cluster's CA (reusing `key` when given). */
  clientTls(cellId: string, key?: string): { ca: string; cert: string; key: string } {
    const cert = issueCert(
      { cert: this.tls.ca, key: this.tls.caKey },
      { cn: cellId, usage: 'client', ...(key ? { key } : {}) },
    );
    return { ca: this.tls.ca, cert: cert.cert, key: cert.key };
  }

  /** The controller's agent API from this namespace. */
  get controllerUrl(): string {
    return `https://127.0.0.1:${this.controllerPort}`;
  }

  /** A controller client for any cell id (certificate from the cluster's CA), from this namespace. */
  controllerClient(cellId: string): ControllerClient {
    return new ControllerClient({ baseUrl: this.controllerUrl, cellId, tls: this.clientTls(cellId) });
  }

  /** Resident set size (kB) and its peak of a process. */
  static rss(pid: number): Promise<{ rssKb: number; hwmKb: number }> {
    return rss(pid);
  }

  /** A new app (no instances yet) in a new space of the simulated foundation. */
  async app(name: string, spaceGuid?: string): Promise<AppRef> {
    let space = spaceGuid;
    if (!space) {
      const s = await this.sim.apply({ kind: 'space-create', name: `e2e-${name}` });
      space = (s.result.spaceGuids as string[])[0]!;
    }
    const r = await this.sim.apply({
      kind: 'app-start',
      name,
      spaceGuid: space,
      instances: 0,
      ports: [8080],
    });
    const appGuid = r.result.appGuid as string;
    const orgGuid = this.sim.world.spaces.get(space)!.orgGuid;
    return { appGuid, processGuid: r.result.processGuid as string, spaceGuid: space, orgGuid };
  }

  /**
   * A container of `app` on `cell`, made by the real CNI plugin (as garden-external-networker
   * invokes it), then registered as a RUNNING ActualLRP with its real IP. Kernel dataplane only.
   */
  async container(
    cell: CellNode,
    app: AppRef,
    index: number,
    opts: {
      hostPorts?: { hostPort: number; containerPort: number }[];
      /** Register the instance in the simulator (default true). */
      register?: boolean;
      /** Garden metadata (default: the app's identity, as Garden passes it). */
      metadata?: Record<string, unknown>;
      /**
       * `runtimeConfig.netOutRules` (Garden's NetOutRule JSON; default none). `'desired'`: the
       * egress_rules of the app's current desired LRP in the simulator, as Garden passes them
       * (what a static-ASG cell enforces from creation).
       */
      netOutRules?: 'desired' | GardenNetOutRule[];
    } = {},
  ): Promise<ContainerRef> {
    if (this.dataplane !== 'kernel') throw new Error('containers need the kernel dataplane (root)');
    const handle = `${randomBytes(4).toString('hex')}-${randomBytes(2).toString('hex')}-4${randomBytes(2).toString('hex').slice(1)}-a${randomBytes(2).toString('hex').slice(1)}-${randomBytes(6).toString('hex')}`;
    const ns = uniqueName(`${this.opts.nsPrefix ?? ''}cfectr`);
    this.namespaces.push(ns);
    cell.containers.push(ns);
    await createNetns(ns);
    const stdin = {
      ...cell.cniConfig(),
      runtimeConfig: {
        portMappings: (opts.hostPorts ?? []).map((p) => ({
          host_port: p.hostPort,
          container_port: p.containerPort,
        })),
        netOutRules:
          opts.netOutRules === 'desired'
            ? gardenNetOutRulesOfBbs(this.sim.world.desiredLrps.get(app.processGuid)?.egressRules ?? [])
            : (opts.netOutRules ?? []),
      },
      metadata: opts.metadata ?? {
        policy_group_id: app.appGuid,
        app_id: app.appGuid,
        space_id: app.spaceGuid,
        org_id: app.orgGuid,
        container_workload: 'app',
      },
    };
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: 'ADD',
      CNI_CONTAINERID: handle,
      CNI_NETNS: `/run/netns/${ns}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
      // the working copy's compiled entry lives in dist/native/: its fallback needs the install named
      CFNET_HOME: this.install.home,
    };
    const out = await runWithStdin(
      ['ip', 'netns', 'exec', cell.ns, this.install.shim],
      env,
      JSON.stringify(stdin),
    );
    if (out.code !== 0)
      throw new Error(`CNI ADD on ${cell.id} failed (${out.code}): ${out.stdout} ${out.stderr}`);
    const ips = (out.json?.ips ?? []) as { address: string }[];
    const ipAddr = ips[0]?.address.split('/')[0];
    if (!ipAddr) throw new Error(`CNI ADD returned no address: ${out.stdout}`);
    if (opts.register ?? true) {
      await this.sim.apply({
        kind: 'lrp-place',
        processGuid: app.processGuid,
        index,
        instanceGuid: handle,
        cellId: cell.id,
        instanceAddress: ipAddr,
        address: cell.underlayIp,
        hostPorts: (opts.hostPorts ?? []).map((p) => ({
          hostPort: p.hostPort,
          containerPort: p.containerPort,
        })),
      });
    }
    return {
      handle,
      ...(out.json ? { cniResult: out.json as Record<string, unknown> } : {}),
      ns,
      ip: ipAddr,
      cell,
      appGuid: app.appGuid,
      processGuid: app.processGuid,
      index,
    };
  }

  /**
   * Removes a container as Diego does when an instance goes away: the ActualLRP leaves the BBS
   * (when it was registered), then garden-external-networker's CNI DEL, then its namespace.
   */
  async removeContainer(ref: ContainerRef, opts: { registered?: boolean } = {}): Promise<void> {
    if (opts.registered ?? true) {
      await this.sim.apply({ kind: 'lrp-remove', processGuid: ref.processGuid, index: ref.index });
    }
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: 'DEL',
      CNI_CONTAINERID: ref.handle,
      CNI_NETNS: `/run/netns/${ref.ns}`,
      CNI_IFNAME: 'eth0',
      CNI_PATH: '/usr/lib/cni',
      // the working copy's compiled entry lives in dist/native/: its fallback needs the install named
      CFNET_HOME: this.install.home,
    };
    const out = await runWithStdin(
      ['ip', 'netns', 'exec', ref.cell.ns, this.install.shim],
      env,
      JSON.stringify(ref.cell.cniConfig()),
    );
    if (out.code !== 0)
      throw new Error(`CNI DEL on ${ref.cell.id} failed (${out.code}): ${out.stdout} ${out.stderr}`);
    await deleteNetns(ref.ns);
  }

  /** TCP echo servers inside a container or the underlay namespace (`pong:<port>:<peer>:<data>`). */
  async serve(ns: string, tcp: number[], hosts?: string[]): Promise<void> {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        ns,
        process.execPath,
        '-e',
        SERVER,
        JSON.stringify({ tcp, hosts: hosts ?? ['0.0.0.0'] }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    this.servers.push(child);
    await waitForLine(child, `server in ${ns}`, (l) => l === 'ready');
  }

  /** Pids of every process the cluster started that is still running. */
  pids(): number[] {
    const all = [
      this.controller,
      ...this.replicas.map((r) => r.child),
      ...this.servers,
      ...this.cells.flatMap((c) => [c.agent, c.relay]),
    ];
    return all.flatMap((p) => (p?.pid !== undefined && alive(p) ? [p.pid] : []));
  }

  /** Stops and removes everything; returns what was removed. Safe to call twice. */
  async stop(): Promise<StopSummary> {
    const summary: StopSummary = { processes: 0, namespaces: 0, redisKeys: 0 };
    if (this.stopped) return summary;
    this.stopped = true;
    summary.processes = this.pids().length;
    summary.namespaces = this.namespaces.length;
    for (const c of this.cells) {
      await c.stopAgent('SIGKILL').catch(() => undefined);
      c.relay?.kill('SIGKILL');
    }
    await this.killController('SIGKILL').catch(() => undefined);
    for (const r of this.replicas) await r.kill('SIGKILL').catch(() => undefined);
    for (const s of this.servers) s.kill('SIGKILL');
    for (const ns of this.namespaces) await deleteNetns(ns);
    this.rootRelay?.close();
    await this.sim?.stop().catch(() => undefined);
    const r = createRedis(this.redisUrl, { name: 'cfnet-lab-cleanup' });
    try {
      summary.redisKeys = await deleteKeys(r, `${this.redisNs}*`);
    } catch {
      // Redis unreachable: nothing to clean
    } finally {
      await closeRedis(r);
    }
    await removeInstalls();
    if (this.opts.keepLogs ?? !!process.env.CFNET_KEEP_LOGS)
      process.stderr.write(`cluster logs kept in ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
    return summary;
  }
}

const SERVER = `
const net = require('node:net');
const cfg = JSON.parse(process.argv[1]); let pending = 0; const done = () => { if (--pending === 0) console.log('ready'); };
for (const h of cfg.hosts) for (const p of cfg.tcp) {
  pending++;
  net.createServer((c) => { c.on('data', (d) => c.write('pong:' + p + ':' + c.remoteAddress + ':' + d + '\\n')); c.on('error', () => {}); }).listen(p, h, done);
}
setInterval(() => {}, 1 << 30);
`;
