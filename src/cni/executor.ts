/**
 * The warm CNI executor: an HTTP server on a local unix socket that runs invocations handed over
 * by the `cfnet-cni` shim (bin/cfnet-cni), so an ADD costs a curl instead of a Node start-up.
 * The cell agent hosts it (`startCniExecutor`); `cfnet cni-executor --socket PATH` runs it alone.
 *
 * Protocol (one request per invocation):
 *   POST /v1/cni?CNI_COMMAND=ADD&CNI_CONTAINERID=…   (each non-empty CNI_* variable, URL-encoded)
 *     or the same as headers `X-CNI_COMMAND: ADD` … (an empty value counts as unset)
 *   header x-cni-caller-pid: <pid of the shim>        (optional: netns sanity check)
 *   body: the plugin's stdin
 * → 200 with the plugin's stdout (exit status 0), or 400 with the CNI error JSON (exit status 1);
 *   the exit status is also in header x-cni-exit-code. `GET /healthz` answers 200 "ok".
 * The executor must run in the cell's network namespace (it creates host-side interfaces there):
 * a caller in another namespace gets code 7 naming executor_socket.
 */
import { statSync } from 'node:fs';
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { createLogger, type Logger } from '../lib/log.js';
import { socketAlive } from '../lib/unix-socket.js';
import type { CniEvent } from './agent-client.js';
import type { NetConfig } from './config.js';
import { nftDataplaneFactory } from './dataplane.js';
import { pickCniEnv } from './env.js';
import { CNI_ERR, CniError, cniErrorJson } from './errors.js';
import { IpPool } from './ip-pool.js';
import { MtuCache } from './mtu.js';
import { type ContainerDataplane, invokeCni } from './plugin/index.js';
import { WIRE_VERSION } from './version.js';

export const EXECUTOR_PATH = '/v1/cni';
const MAX_BODY = 64 * 1024 * 1024;
/** How long close() lets in-flight invocations finish. */
const DRAIN_MS = 10_000;

export interface CniExecutorOptions {
  /** Unix socket path to listen on (a stale socket file is replaced; a live one is an error). */
  socket: string;
  logger?: Logger;
  /** Dataplane per config; default NftDataplane per (nft_table, state_dir). */
  dataplane?: (cfg: NetConfig) => ContainerDataplane;
  /** In-process agent notification (the agent hosting the executor); default: POST to agent_socket. */
  notify?: (event: CniEvent, cfg: NetConfig) => Promise<void>;
  /** Socket file mode (default 0o600: root only, like the runtime that calls the plugin). */
  mode?: number;
}

export interface CniExecutorStats {
  requests: number;
  failures: number;
  inFlight: number;
}

export interface CniExecutor {
  readonly socket: string;
  stats(): CniExecutorStats;
  close(): Promise<void>;
}

/** Synchronous: one stat of /proc on every call, cheaper than a thread-pool round trip. */
function netnsInode(pid: string): number | null {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return null;
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) {
        reject(new CniError(CNI_ERR.DECODE, `request body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** `X-CNI_COMMAND: ADD` → { CNI_COMMAND: 'ADD' } (header names arrive lower-cased). */
function envFromHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.startsWith('x-cni_') && typeof value === 'string') out[name.slice(2).toUpperCase()] = value;
  }
  return out;
}

function send(res: ServerResponse, status: number, body: string, exitCode?: number): void {
  const headers: Record<string, string | number> = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  };
  if (exitCode !== undefined) headers['x-cni-exit-code'] = exitCode;
  res.writeHead(status, headers);
  res.end(body);
}

export async function startCniExecutor(opts: CniExecutorOptions): Promise<CniExecutor> {
  const log = opts.logger ?? createLogger('cni-executor');
  const socket = opts.socket;
  if (!socket.startsWith('/'))
    throw new CniError(CNI_ERR.INVALID_CONFIG, `socket must be an absolute path: ${socket}`);
  await mkdir(dirname(socket), { recursive: true });
  if (await socketAlive(socket)) {
    throw new CniError(CNI_ERR.INTERNAL, `another CNI executor is already listening on ${socket}`, '', {
      socket,
    });
  }
  await unlink(socket).catch(() => undefined);

  const ownNetns = netnsInode('self');
  // our own dataplanes keep an `nft -i` session each: no nft start-up on an ADD
  const ownDataplanes = opts.dataplane
    ? null
    : nftDataplaneFactory({ logger: log.child({ component: 'dataplane' }), session: true });
  // ip processes ready for the next ADD/DEL, topped up after each answer
  const ipPool = new IpPool();
  ipPool.refill();
  const deps = {
    dataplane: opts.dataplane ?? ownDataplanes!,
    mtuCache: new MtuCache(),
    ipBatches: ipPool,
    logger: log,
    ...(opts.notify ? { notify: opts.notify } : {}),
  };
  const stats: CniExecutorStats = { requests: 0, failures: 0, inFlight: 0 };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://cfnet');
    if (req.method === 'GET' && url.pathname === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
      res.end('ok\n');
      return;
    }
    if (req.method !== 'POST' || url.pathname !== EXECUTOR_PATH) {
      const e = new CniError(CNI_ERR.INTERNAL, `cfnet CNI executor: no route ${req.method} ${url.pathname}`);
      send(res, 404, `${JSON.stringify(cniErrorJson(e, WIRE_VERSION))}\n`, 1);
      return;
    }
    stats.requests++;
    stats.inFlight++;
    // after the answer is out: starting processes blocks the event loop for a moment
    res.once('finish', () => setImmediate(() => ipPool.refill()));
    const t0 = performance.now();
    try {
      const stdin = await readBody(req);
      const env = pickCniEnv({ ...Object.fromEntries(url.searchParams), ...envFromHeaders(req) });
      const callerPid = req.headers['x-cni-caller-pid'];
      if (typeof callerPid === 'string' && /^\d+$/.test(callerPid) && ownNetns !== null) {
        const theirs = netnsInode(callerPid);
        if (theirs !== null && theirs !== ownNetns) {
          throw new CniError(
            CNI_ERR.INVALID_CONFIG,
            `the CNI executor at ${socket} serves another network namespace than the caller's; point executor_socket (or CFNET_CNI_SOCKET) at this cell's executor`,
            '',
            { field: 'executor_socket' },
          );
        }
      }
      const out = await invokeCni({ env, stdin }, deps);
      if (out.exitCode !== 0) stats.failures++;
      send(res, out.exitCode === 0 ? 200 : 400, out.stdout, out.exitCode);
      log.debug(
        {
          cmd: env.CNI_COMMAND,
          handle: env.CNI_CONTAINERID,
          exit: out.exitCode,
          ms: Math.round(performance.now() - t0),
        },
        'cni request',
      );
    } catch (err) {
      stats.failures++;
      const e = err instanceof CniError ? err : new CniError(CNI_ERR.INTERNAL, String(err));
      send(res, 400, `${JSON.stringify(cniErrorJson(e, WIRE_VERSION))}\n`, 1);
    } finally {
      stats.inFlight--;
    }
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err) => {
      log.error({ err }, 'executor request failed');
      if (!res.headersSent) send(res, 500, '', 1);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(socket, opts.mode ?? 0o600);
  log.info({ socket }, 'CNI executor listening');

  let closed = false;
  return {
    socket,
    stats: () => ({ ...stats }),
    close: async () => {
      if (closed) return;
      closed = true;
      // in-flight invocations finish (each connection closes after its answer); a client that
      // never completes its request is cut off after DRAIN_MS
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      const cut = setTimeout(() => server.closeAllConnections(), DRAIN_MS);
      await stopped;
      clearTimeout(cut);
      await unlink(socket).catch(() => undefined);
      ipPool.close();
      await ownDataplanes?.close();
      log.info({ socket }, 'CNI executor stopped');
    },
  };
}
