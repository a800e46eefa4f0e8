/**
 * The lab's controller: `cfnet controller --config <file>` as its own process (what an operator
 * runs, with whatever the CLI registers, e.g. the dashboard), wired to the simulator's BBS, CAPI,
 * UAA, internal CC and policy server, serving the agent API and the operator port on loopback
 * ports it picks itself (read back from its log). Restartable; its log goes to a file.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CONTROLLER_SETTINGS } from '../controller/settings.js';
import type { SimHandle } from '../sim/index.js';
import type { Install } from './install.js';
import { alive, terminate, waitExit, waitForLine } from './process.js';

export interface LabControllerOptions {
  install: Install;
  /** Directory for the config file, the PEM files and the log. */
  dir: string;
  sim: SimHandle;
  redisUrl: string;
  /** Redis namespace (key prefix). */
  namespace: string;
  /** Agent API TLS: CA of the agents' client certificates, server certificate and key (PEM). */
  apiTls: { ca: string; cert: string; key: string };
  logLevel: string;
  /** Controller settings (CONTROLLER_SETTINGS keys) overriding the lab's. */
  settings?: Record<string, unknown>;
}

/** The setting holding the operator token, when this controller has one (the dashboard's). */
export const OPERATOR_TOKEN_SETTING = CONTROLLER_SETTINGS.find(
  (s) => s.kind === 'secret' && /token/i.test(s.key),
)?.key;

export class LabController {
  child: ChildProcess | null = null;
  starts = 0;
  /** https://127.0.0.1:<port> of the agent API (set once started). */
  apiUrl = '';
  /** http://127.0.0.1:<port> of the operator port (metrics, health, dashboard). */
  operatorUrl = '';
  /** The operator token, when the controller has such a setting. */
  readonly operatorToken: string | null = OPERATOR_TOKEN_SETTING ? randomBytes(16).toString('hex') : null;

  constructor(readonly opts: LabControllerOptions) {}

  get configPath(): string {
    return join(this.opts.dir, 'controller.json');
  }
  get logPath(): string {
    return join(this.opts.dir, 'controller.log');
  }

  /** The settings file content: every CF endpoint of the simulator, loopback listeners. */
  async settings(): Promise<Record<string, unknown>> {
    const { sim, dir } = this.opts;
    const f = sim.tls.files;
    if (!f) throw new Error('the lab controller needs the simulator started with certDir');
    const pem = async (name: string, text: string) => {
      const p = join(dir, name);
      await writeFile(p, text, { mode: 0o600 });
      return p;
    };
    return {
      redisUrl: this.opts.redisUrl,
      redisNamespace: this.opts.namespace,
      instanceId: `lab-${this.starts}`,
      leaseMs: 2000,
      initialSyncTimeoutMs: 5000,
      // lab agents retry every ≤ 2 s: claims arrive well within this after a Redis loss
      leaseRecoveryWindowMs: 3000,
      workerConcurrency: 4,
      jobBackoffMs: 100,
      bbsUrl: sim.urls.bbs,
      bbsCaCert: f.ca,
      bbsClientCert: f.cert,
      bbsClientKey: f.key,
      capiUrl: sim.urls.capi,
      capiCaCert: f.ca,
      uaaUrl: sim.urls.uaa,
      uaaCaCert: f.ca,
      uaaClientId: sim.uaaClient.id,
      uaaClientSecret: sim.uaaClient.secret,
      ccInternalUrl: sim.urls.ccInternal,
      ccInternalCaCert: f.ca,
      ccInternalClientCert: f.cert,
      ccInternalClientKey: f.key,
      asgCheckIntervalMs: 250,
      asgFullListIntervalMs: 5000,
      policyServerUrl: sim.urls.policyServer,
      policyServerCaCert: f.ca,
      policyServerClientCert: f.cert,
      policyServerClientKey: f.key,
      policyPollIntervalMs: 250,
      apiListen: '127.0.0.1:0',
      apiCaCert: await pem('api-ca.crt', this.opts.apiTls.ca),
      apiCert: await pem('api.crt', this.opts.apiTls.cert),
      apiKey: await pem('api.key', this.opts.apiTls.key),
      operatorListen: '127.0.0.1:0',
      // the lab reads its listening URLs from info lines
      logLevel: ['trace', 'debug'].includes(this.opts.logLevel) ? this.opts.logLevel : 'info',
      ...(OPERATOR_TOKEN_SETTING && this.operatorToken
        ? { [OPERATOR_TOKEN_SETTING]: this.operatorToken }
        : {}),
      ...this.opts.settings,
    };
  }

  /** Starts the process; resolves when its agent API and operator port listen. */
  async start(): Promise<void> {
    if (this.child && alive(this.child)) throw new Error('controller is running');
    this.starts++;
    await writeFile(this.configPath, JSON.stringify(await this.settings(), null, 2), { mode: 0o600 });
    const log = createWriteStream(this.logPath, { flags: 'a' });
    const child = spawn(
      process.execPath,
      [this.opts.install.cli, 'controller', '--config', this.configPath],
      {
        cwd: this.opts.install.home,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: process.env,
      },
    );
    this.child = child;
    child.stderr!.pipe(log, { end: false });
    let api = '';
    let operator = '';
    const urlOf = (line: string, msg: string): string => {
      if (!line.includes(`"${msg}"`)) return '';
      try {
        return String((JSON.parse(line) as { url?: string }).url ?? '');
      } catch {
        return '';
      }
    };
    try {
      await waitForLine(
        child,
        `controller (log ${this.logPath})`,
        (line) => {
          api ||= urlOf(line, 'agent API listening');
          operator ||= urlOf(line, 'operator endpoints listening');
          return api !== '' && operator !== '';
        },
        { timeoutMs: 30_000, onLine: (line) => log.write(`${line}\n`) },
      );
    } catch (err) {
      child.kill('SIGKILL');
      await waitExit(child, 5000);
      throw err;
    }
    this.apiUrl = api.replace(/\/+$/, '');
    this.operatorUrl = operator.replace(/\/+$/, '');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** SIGKILL (a crash) or SIGTERM (graceful: leadership released, workers drained); waits for the exit. */
  async kill(signal: 'SIGKILL' | 'SIGTERM' = 'SIGKILL'): Promise<void> {
    const c = this.child;
    if (!c || !alive(c)) return;
    if (signal === 'SIGTERM') {
      await terminate(c, 15_000);
      return;
    }
    c.kill('SIGKILL');
    await waitExit(c, 10_000);
  }
}
