/**
 * Shared pieces of the operator-tool tests: the CLI run in-process with captured output and exit
 * status, and a small foundation: the simulator, a controller (with the operator extensions: event
 * journal, dashboard) on its own Redis namespace, and optionally one dry-run cell agent per cell
 * (real agents that lease, long-poll, render and report, but write nothing to the kernel).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { CellAgent } from '../../src/agent/agent.js';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { type OpsIo, registerOpsCommands } from '../../src/cli/ops-commands.js';
import { Controller, type ControllerConfig } from '../../src/controller/controller.js';
import { controllerConfig } from '../../src/controller/settings.js';
import { applyCommandConventions, CfnetCommand, exitStatusOf } from '../../src/lib/command.js';
import { EXIT } from '../../src/lib/exit-codes.js';
import { defaultLogger } from '../../src/lib/log.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import { createCa, issueCert } from '../../src/lib/tls.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { type JournalExtension, opsExtensions } from '../../src/ops/extension.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { dryRunAgentFiles } from '../helpers/dry-run-agent.js';
import { REDIS_URL, simSources, testNamespace } from './controller-helpers.js';

export { waitUntil } from '../helpers/wait.js';
export { REDIS_URL, testNamespace } from './controller-helpers.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  progress: string;
}

/**
 * Run `cfnet <args>` with only the operator commands registered, in this process. `namespace` is
 * passed as --redis-namespace unless the args name one.
 */
export async function cfnet(
  args: string[],
  opts: {
    namespace?: string;
    env?: Record<string, string>;
    signal?: AbortSignal;
    onStdout?: (t: string) => void;
  } = {},
): Promise<CliResult> {
  let stdout = '';
  let stderr = '';
  let progress = '';
  let code = 0;
  const stream = new PassThrough();
  stream.on('data', (b: Buffer) => {
    progress += b.toString('utf8');
  });
  const io: OpsIo = {
    stdout: (t) => {
      stdout += t;
      opts.onStdout?.(t);
    },
    stderr: (t) => {
      stderr += t;
    },
    progress: stream,
    setExitCode: (c) => {
      code = c;
    },
    // the CLI reads CFNET_REDIS_URL: the tests' Redis, never the default 127.0.0.1:6379
    env: opts.env ?? { CFNET_REDIS_URL: REDIS_URL },
    ...(opts.signal ? { signal: opts.signal } : {}),
  };
  // the CLI's own conventions (usage errors exit 2, help width), as bin/cfnet.js applies them
  const program = new CfnetCommand('cfnet').enablePositionalOptions();
  program.configureOutput({ writeOut: (t) => io.stdout(t), writeErr: (t) => io.stderr(t) });
  registerOpsCommands(program, io);
  applyCommandConventions(program);
  const all =
    opts.namespace && !args.includes('--redis-namespace') && !args.includes('--help')
      ? [...args, '--redis-namespace', opts.namespace]
      : args;
  try {
    await program.parseAsync(['node', 'cfnet', ...all]);
  } catch (err) {
    // commander's own errors (unknown option, missing argument, --help) end the parse
    const status = exitStatusOf(err, io.stderr);
    if (status === undefined) throw err;
    code = status;
  }
  stream.end();
  return { code, stdout, stderr, progress };
}

/**
 * JSON output of a successful command. `explain` answers with its exit status too (0 allowed,
 * 1 denied or depends): checked against the JSON's verdict on every call.
 */
export async function cfnetJson<T>(args: string[], namespace: string): Promise<T> {
  const r = await cfnet([...args, '--json'], { namespace });
  const answered = args[0] === 'explain' && r.code === EXIT.denied && r.stdout !== '';
  if (r.code !== 0 && !answered) throw new Error(`cfnet ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  const out = JSON.parse(r.stdout) as T;
  if (args[0] === 'explain') {
    const allowed = (out as { allowed: boolean | null }).allowed;
    if (r.code !== (allowed === true ? EXIT.ok : EXIT.denied)) {
      throw new Error(`cfnet ${args.join(' ')}: allowed ${allowed} but exit status ${r.code}`);
    }
  }
  return out;
}

export interface Foundation {
  sim: SimHandle;
  ns: string;
  controller: Controller;
  config: ControllerConfig;
  journal: JournalExtension;
  agents: Map<string, CellAgent>;
  /** The operator token of the dashboard ('' when none was given). */
  token: string;
  /** Start (or restart) the dry-run agent of a cell. */
  startAgent(cellId: string): Promise<CellAgent>;
  stop(): Promise<void>;
}

export interface FoundationOptions {
  seed?: number;
  /** Run a dry-run agent per cell (needs the agent API; default false). */
  agents?: boolean;
  /** Operator token for the dashboard. */
  token?: string;
  attempts?: number;
  backoffMs?: number;
  /** Policy / ASG poll intervals (ms). */
  pollMs?: number;
}

export async function startFoundation(label: string, o: FoundationOptions = {}): Promise<Foundation> {
  const ns = testNamespace(label);
  const dir = await mkdtemp(join(tmpdir(), `cfnet-ops-${label}-`));
  const sim = await startSimulator({ seed: o.seed ?? 11, size: 'small' });
  const agents = new Map<string, CellAgent>();
  let controller: Controller | null = null;
  const cleanup = async () => {
    for (const a of agents.values()) await a.stop().catch(() => {});
    await controller?.stop().catch(() => {});
    await sim.stop().catch(() => {});
    const r = createRedis(REDIS_URL);
    await deleteKeys(r, `${ns}:*`).catch(() => {});
    await closeRedis(r);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const ca = createCa({ cn: `cfnet ops test CA ${label}` });
    const server = issueCert(ca, { cn: 'localhost', sans: ['localhost', '127.0.0.1'] });
    const poll = o.pollMs ?? 150;
    const config: ControllerConfig = controllerConfig({
      redisUrl: REDIS_URL,
      namespace: ns,
      instanceId: `ops-${label}`,
      leaseMs: 2000,
      workers: { concurrency: 4, attempts: o.attempts ?? 3, backoffMs: o.backoffMs ?? 50 },
      ...simSources(sim, poll, 10 * poll),
      cellConfig: DEFAULT_CELL_CONFIG,
      initialSyncTimeoutMs: 5000,
      leases: { recoveryWindowMs: 0 },
      operator: { host: '127.0.0.1', port: 0, ...(o.token ? { token: o.token } : {}) },
      ...(o.agents
        ? {
            api: {
              host: '127.0.0.1',
              port: 0,
              tls: { ca: ca.cert, cert: server.cert, key: server.key },
              maxWaitSeconds: 10,
            },
          }
        : {}),
      logger: defaultLogger(`controller-${label}`),
    });
    const extensions = opsExtensions(config);
    config.extensions = extensions;
    controller = new Controller(config);
    await controller.start();
    await controller.leading(30_000);
    const ctl = controller;
    let clientKey: string | undefined;
    const startAgent = async (cellId: string): Promise<CellAgent> => {
      await agents.get(cellId)?.stop();
      const cdir = join(dir, cellId);
      // a client certificate (the agent API checks the usage and takes the cell from the CN);
      // one key for every cell keeps the (slow) RSA key generation to one
      clientKey ??= issueCert(ca, { cn: 'key-holder', usage: 'client' }).key;
      const client = issueCert(ca, { cn: cellId, usage: 'client', key: clientKey });
      const files = {
        ca: join(dir, 'ca.pem'),
        cert: join(dir, `${cellId}.crt`),
        key: join(dir, `${cellId}.key`),
      };
      await writeFile(files.ca, ca.cert);
      await writeFile(files.cert, client.cert);
      await writeFile(files.key, client.key);
      const index = [...sim.world.cells.keys()].sort().indexOf(cellId);
      const config = resolveAgentConfig({
        flags: {
          cellId,
          controllerUrl: ctl.apiUrl!,
          controllerServerName: 'localhost',
          caCert: files.ca,
          clientCert: files.cert,
          clientKey: files.key,
          underlayIp: `198.51.100.${20 + index}`,
          longPollTimeoutSeconds: 5,
          statusIntervalSeconds: 2,
          reconnectMinMs: 100,
          reconnectMaxMs: 1000,
          ...dryRunAgentFiles(cdir),
        },
      });
      const agent = new CellAgent({ config, dryRun: true, logger: defaultLogger(`agent-${cellId}`) });
      agents.set(cellId, agent);
      await agent.start();
      return agent;
    };
    if (o.agents) for (const cell of [...sim.world.cells.keys()].sort()) await startAgent(cell);
    return {
      sim,
      ns,
      controller,
      config,
      journal: extensions[0] as JournalExtension,
      agents,
      token: o.token ?? '',
      startAgent,
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}
