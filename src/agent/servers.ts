/**
 * The agent's two small HTTP servers:
 * - the local unix socket (`agentSocket`) the CNI plugin reports to when it runs outside the
 *   agent (`POST /v1/cni/events`, see src/cni/agent-client.ts), plus `GET /healthz` and
 *   `GET /v1/state` (what the agent holds, for operators);
 * - the metrics/health endpoint on TCP (`GET /metrics`, `/healthz`, `/readyz`).
 */
import { chmod, mkdir, unlink } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { dirname } from 'node:path';
import { AGENT_EVENTS_PATH, type CniEvent } from '../cni/agent-client.js';
import type { Logger } from '../lib/log.js';
import { exposition, type Registry } from '../lib/metrics.js';
import { socketAlive } from '../lib/unix-socket.js';

const MAX_BODY = 4 * 1024 * 1024;

export interface RunningHttp {
  address: string;
  close(): Promise<void>;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections?.();
  });
}

/** Validates the shape of a CNI event from the socket (the rest is checked when merged). */
export function parseCniEvent(text: string): CniEvent {
  const e = JSON.parse(text) as CniEvent;
  if (typeof e !== 'object' || e === null) throw new Error('not an object');
  if (e.type !== 'add' && e.type !== 'del') throw new Error('type must be add or del');
  if (typeof e.handle !== 'string' || e.handle === '') throw new Error('handle missing');
  if (typeof e.ip !== 'string') throw new Error('ip missing');
  return e;
}

export async function startLocalServer(opts: {
  socket: string;
  logger: Logger;
  onEvent(e: CniEvent): Promise<void>;
  state(): unknown;
}): Promise<RunningHttp> {
  await mkdir(dirname(opts.socket), { recursive: true });
  if (await socketAlive(opts.socket)) throw new Error(`another process listens on ${opts.socket}`);
  await unlink(opts.socket).catch(() => undefined);
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method === 'GET' && url.pathname === '/healthz') return send(res, 200, 'ok\n', 'text/plain');
    if (req.method === 'GET' && url.pathname === '/v1/state') return send(res, 200, opts.state());
    if (req.method === 'POST' && url.pathname === AGENT_EVENTS_PATH) {
      readBody(req)
        .then(async (text) => {
          let ev: CniEvent;
          try {
            ev = parseCniEvent(text);
          } catch (err) {
            send(res, 400, {
              error: { code: 'CFNET_INVALID', message: `bad CNI event: ${(err as Error).message}` },
            });
            return;
          }
          await opts.onEvent(ev);
          send(res, 202, { accepted: true });
        })
        .catch((err) => {
          opts.logger.warn({ err }, 'CNI event handling failed');
          if (!res.headersSent) send(res, 500, { error: { code: 'CFNET_INTERNAL', message: String(err) } });
        });
      return;
    }
    send(res, 404, { error: { code: 'CFNET_NOT_FOUND', message: `no route ${req.method} ${url.pathname}` } });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socket, () => {
      server.off('error', reject);
      resolve();
    });
  });
  await chmod(opts.socket, 0o600);
  return {
    address: opts.socket,
    close: async () => {
      await closeServer(server);
      await unlink(opts.socket).catch(() => undefined);
    },
  };
}

export async function startMetricsServer(opts: {
  host: string;
  port: number;
  registry: Registry;
  ready(): { ok: boolean; checks: Record<string, unknown> };
}): Promise<RunningHttp> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://agent');
    if (req.method !== 'GET') return send(res, 405, { error: 'GET only' });
    if (url.pathname === '/healthz') return send(res, 200, { ok: true });
    if (url.pathname === '/readyz') {
      const r = opts.ready();
      return send(res, r.ok ? 200 : 503, r);
    }
    if (url.pathname === '/metrics') {
      exposition(opts.registry)
        .then((m) => send(res, 200, m.body, m.contentType))
        .catch((err) => send(res, 500, { error: String(err) }));
      return;
    }
    send(res, 404, { error: 'not found' });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : opts.port;
  return { address: `http://${opts.host}:${port}`, close: () => closeServer(server) };
}
