/**
 * Minimal HTTP(S) plumbing shared by the simulated services: a path router with `:param`
 * segments, body reading, fault admission and JSON/text/protobuf replies.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { CF_INTERNAL_CIPHERS } from '../lib/tls.js';
import type { FaultDecision, FaultState, SimService } from './faults.js';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: Record<string, string>;
  body: Buffer;
  /** The fault layer asked for an invalid body on this response. */
  corrupt: boolean;
}

export type Handler = (ctx: Ctx) => void | Promise<void>;

interface Route {
  method: string;
  parts: string[];
  handler: Handler;
}

export class Router {
  private readonly routes: Route[] = [];

  on(method: string, pattern: string, handler: Handler): this {
    this.routes.push({ method, parts: pattern.split('/').filter(Boolean), handler });
    return this;
  }

  match(
    method: string,
    pathname: string,
  ): { handler: Handler; params: Record<string, string> } | 'method' | null {
    const segs = pathname.split('/').filter(Boolean);
    let methodMismatch = false;
    for (const r of this.routes) {
      if (r.parts.length !== segs.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < segs.length; i++) {
        const p = r.parts[i] as string;
        const s = segs[i] as string;
        if (p.startsWith(':')) params[p.slice(1)] = decodeURIComponent(s);
        else if (p !== s) {
          ok = false;
          break;
        }
      }
      if (!ok) continue;
      if (r.method !== method) {
        methodMismatch = true;
        continue;
      }
      return { handler: r.handler, params };
    }
    return methodMismatch ? 'method' : null;
  }
}

export interface ServerTls {
  cert: string;
  key: string;
  /** When set, clients must present a certificate signed by this CA (mTLS). */
  clientCa?: string;
  /** TLS 1.2 cipher list (TLS 1.3 suites stay enabled). */
  ciphers?: string;
}

export interface ServiceOptions {
  name: SimService | 'admin';
  host: string;
  port: number;
  tls?: ServerTls;
  router: Router;
  faults?: FaultState;
  /**
   * Reply for an injected failure or rate limit, in the service's own error format. A failure
   * injected with an explicit body is answered with that body instead (see `faultBodyType`).
   */
  onFault?: (ctx: Ctx, decision: Exclude<FaultDecision, { kind: 'pass' }>) => void;
  /** Content-Type of an injected failure's explicit body; none by default (as BBS's plain errors). */
  faultBodyType?: string;
  /** Reply for an unknown path (or method). */
  notFound: (ctx: Ctx, methodMismatch: boolean) => void;
  /** Runs before routing; return true when it replied (e.g. the v2-disabled nginx rule). */
  before?: (ctx: Ctx) => boolean;
}

export interface RunningService {
  url: string;
  port: number;
  close(): Promise<void>;
}

const MAX_BODY = 16 * 1024 * 1024;

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function startService(opts: ServiceOptions): Promise<RunningService> {
  const sockets = new Set<Socket>();
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    void handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.socket?.destroyed) {
        res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`simulator error: ${err instanceof Error ? err.message : String(err)}`);
      } else {
        res.socket?.destroy();
      }
    });
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://sim');
    const body = await readBody(req);
    const ctx: Ctx = { req, res, url, params: {}, body, corrupt: false };
    if (opts.faults && opts.name !== 'admin') {
      const decision = await opts.faults.admit(opts.name);
      if (decision.kind !== 'pass') {
        if (decision.kind === 'fail' && decision.body !== undefined) {
          sendFaultBody(ctx, decision.status, decision.body, opts.faultBodyType);
        } else if (opts.onFault) opts.onFault(ctx, decision);
        else sendText(ctx, decision.kind === 'fail' ? decision.status : 429, 'fault');
        return;
      }
      ctx.corrupt = decision.corrupt;
    }
    if (opts.before?.(ctx)) return;
    const m = opts.router.match(req.method ?? 'GET', url.pathname);
    if (m === null || m === 'method') {
      opts.notFound(ctx, m === 'method');
      return;
    }
    ctx.params = m.params;
    await m.handler(ctx);
  };

  const server = opts.tls
    ? https.createServer(
        {
          cert: opts.tls.cert,
          key: opts.tls.key,
          ca: opts.tls.clientCa,
          requestCert: opts.tls.clientCa !== undefined,
          rejectUnauthorized: opts.tls.clientCa !== undefined,
          minVersion: 'TLSv1.2',
          ciphers: opts.tls.ciphers ?? CF_INTERNAL_CIPHERS,
          ALPNProtocols: ['http/1.1'],
        },
        listener,
      )
    : http.createServer(listener);
  server.keepAliveTimeout = 30_000;
  // Event streams keep a hijacked request open indefinitely: no whole-request deadline.
  server.requestTimeout = 0;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  // TLS handshake failures (e.g. a client without a certificate) are expected; never crash on them.
  server.on('tlsClientError', () => {});
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const hostForUrl = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    url: `${opts.tls ? 'https' : 'http'}://${hostForUrl}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

function corruptText(text: string): string {
  return `${text.slice(0, Math.max(1, Math.floor(text.length / 2)))}\u0000{{not json`;
}

export function sendJson(
  ctx: Ctx,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  sendJsonText(ctx, status, JSON.stringify(value), headers);
}

/** Send pre-serialised JSON (e.g. containing bare integers above 2^53). */
export function sendJsonText(
  ctx: Ctx,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  const body = Buffer.from(ctx.corrupt ? corruptText(text) : text);
  ctx.res.writeHead(status, {
    'Content-Type': 'application/json;charset=utf-8',
    'Content-Length': String(body.length),
    ...headers,
  });
  ctx.res.end(body);
}

export function sendText(ctx: Ctx, status: number, text: string, headers: Record<string, string> = {}): void {
  const body = Buffer.from(text);
  ctx.res.writeHead(status, {
    'Content-Type': 'text/plain',
    'Content-Length': String(body.length),
    ...headers,
  });
  ctx.res.end(body);
}

export function sendBytes(ctx: Ctx, status: number, bytes: Uint8Array, contentType: string): void {
  let body = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (ctx.corrupt) body = truncateProtobuf(body);
  ctx.res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': String(body.length) });
  ctx.res.end(body);
}

/** A protobuf body whose last field is cut short (declares 127 bytes, carries 1): decoding must fail. */
function truncateProtobuf(body: Buffer): Buffer {
  return Buffer.concat([body, Buffer.from([0x12, 0x7f, 0x0a])]);
}

/** Parse `application/x-www-form-urlencoded` bodies. */
export function parseForm(body: Buffer): URLSearchParams {
  return new URLSearchParams(body.toString('utf8'));
}

/** Reply with an injected failure's body: bytes as given, strings as text, objects as JSON. */
function sendFaultBody(ctx: Ctx, status: number, body: string | object, contentType?: string): void {
  const bytes =
    body instanceof Uint8Array
      ? Buffer.from(body)
      : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  ctx.res.writeHead(status, {
    ...(contentType ? { 'Content-Type': contentType } : {}),
    'Content-Length': String(bytes.length),
  });
  ctx.res.end(bytes);
}

export function parseJsonBody(ctx: Ctx): unknown {
  if (ctx.body.length === 0) return undefined;
  return JSON.parse(ctx.body.toString('utf8'));
}
