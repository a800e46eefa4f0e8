/**
 * A minimal HTTP/1.1 client on a raw socket (`tls.connect` for https, `net.connect` for http), for
 * the one case Node's own parser cannot handle: BBS event streams, whose chunk-size lines end with
 * an empty chunk extension (`4c;\r\n`, rejected by llhttp and undici). It writes one request on a
 * fresh connection (`Connection: close`), parses the status line and headers itself, decodes the
 * body (chunked via `ChunkedDecoder`, Content-Length, or until close) and exposes it as a web
 * `ReadableStream`, with back-pressure (the socket is paused while the stream's queue is full).
 *
 * `rawFetch` adapts it to the `fetch` signature the `eventsource` package accepts.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import { ChunkedDecoder } from './chunked.js';
import { ChunkedEncodingError, HttpHeadError } from './errors.js';

export interface RawTlsOptions {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  /** SNI and certificate host name; defaults to the URL host name (not sent for IP literals). */
  servername?: string;
  rejectUnauthorized?: boolean;
}

export interface RawRequestOptions {
  url: string | URL;
  method?: string;
  headers?: Record<string, string>;
  body?: Uint8Array;
  tls?: RawTlsOptions;
  signal?: AbortSignal;
  /** Time allowed from connect to the end of the response head. Default 30 s. */
  headTimeoutMs?: number;
  /** Largest response head accepted. Default 64 KiB. */
  maxHeadBytes?: number;
}

export interface RawResponse {
  status: number;
  statusText: string;
  headers: Headers;
  /** Decoded body (chunk framing removed). Null for 204/304 and HEAD. */
  body: ReadableStream<Uint8Array> | null;
}

const HEAD_END = Buffer.from('\r\n\r\n');

function abortError(signal: AbortSignal | undefined): Error {
  const reason = signal?.reason;
  if (reason instanceof Error) return reason;
  return new DOMException('The operation was aborted', 'AbortError');
}

/** Parse `HTTP/1.1 200 OK\r\nName: value\r\n...` (without the final empty line). */
export function parseResponseHead(text: string): { status: number; statusText: string; headers: Headers } {
  const lines = text.split('\r\n');
  const statusLine = lines.shift() ?? '';
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!m) throw new HttpHeadError('bad status line', { line: statusLine.slice(0, 80) });
  const headers = new Headers();
  for (const line of lines) {
    if (line.length === 0) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new HttpHeadError('bad header line', { line: line.slice(0, 80) });
    const name = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();
    try {
      headers.append(name, value);
    } catch (err) {
      throw new HttpHeadError('invalid header', { line: line.slice(0, 80), cause: String(err) });
    }
  }
  return { status: Number(m[1]), statusText: m[2] ?? '', headers };
}

type BodyMode =
  | { kind: 'none' }
  | { kind: 'chunked' }
  | { kind: 'length'; length: number }
  | { kind: 'close' };

function bodyMode(method: string, status: number, headers: Headers): BodyMode {
  if (method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) {
    return { kind: 'none' };
  }
  const te = headers.get('transfer-encoding');
  if (te && /(^|,)\s*chunked\s*$/i.test(te)) return { kind: 'chunked' };
  const cl = headers.get('content-length');
  if (cl !== null) {
    if (!/^\d+$/.test(cl.trim())) throw new HttpHeadError('bad Content-Length', { value: cl });
    return { kind: 'length', length: Number(cl.trim()) };
  }
  return { kind: 'close' };
}

/** Send one request on a fresh connection and resolve with the response head and a body stream. */
export function rawRequest(opts: RawRequestOptions): Promise<RawResponse> {
  const url = typeof opts.url === 'string' ? new URL(opts.url) : opts.url;
  const method = (opts.method ?? 'GET').toUpperCase();
  const headTimeoutMs = opts.headTimeoutMs ?? 30_000;
  const maxHead = opts.maxHeadBytes ?? 64 * 1024;
  const signal = opts.signal;
  if (signal?.aborted) return Promise.reject(abortError(signal));

  return new Promise<RawResponse>((resolve, reject) => {
    const secure = url.protocol === 'https:';
    if (!secure && url.protocol !== 'http:') {
      reject(new HttpHeadError(`unsupported protocol ${url.protocol}`));
      return;
    }
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || (secure ? 443 : 80));
    let socket: net.Socket;
    if (secure) {
      const t = opts.tls ?? {};
      const servername = t.servername ?? (net.isIP(host) ? undefined : host);
      socket = tls.connect({
        host,
        port,
        ca: t.ca,
        cert: t.cert,
        key: t.key,
        rejectUnauthorized: t.rejectUnauthorized ?? true,
        ALPNProtocols: ['http/1.1'],
        ...(servername ? { servername } : {}),
      });
    } else {
      socket = net.connect({ host, port });
    }
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30_000);

    let settled = false;
    let headBuf: Buffer = Buffer.alloc(0);
    let controller: ReadableStreamDefaultController<Uint8Array> | undefined;
    let streamDone = false;
    let mode: BodyMode = { kind: 'none' };
    let decoder: ChunkedDecoder | undefined;
    let remaining = 0;

    const headTimer = setTimeout(() => {
      fail(new HttpHeadError(`no response head within ${headTimeoutMs} ms`, { timeoutMs: headTimeoutMs }));
    }, headTimeoutMs);

    const onAbort = (): void => fail(abortError(signal));
    signal?.addEventListener('abort', onAbort, { once: true });

    function cleanup(): void {
      clearTimeout(headTimer);
      signal?.removeEventListener('abort', onAbort);
    }

    function fail(err: Error): void {
      cleanup();
      socket.destroy();
      if (!settled) {
        settled = true;
        reject(err);
      } else if (controller && !streamDone) {
        streamDone = true;
        controller.error(err);
      }
    }

    function finishBody(): void {
      if (streamDone) return;
      streamDone = true;
      cleanup();
      controller?.close();
      socket.destroy();
    }

    function enqueue(data: Uint8Array): void {
      if (data.length === 0 || !controller || streamDone) return;
      controller.enqueue(data);
      if ((controller.desiredSize ?? 1) <= 0) socket.pause();
    }

    function onBody(data: Buffer): void {
      switch (mode.kind) {
        case 'none':
          return;
        case 'chunked': {
          for (const piece of decoder!.push(data)) enqueue(piece);
          if (decoder!.done) finishBody();
          return;
        }
        case 'length': {
          const take = Math.min(remaining, data.length);
          enqueue(data.subarray(0, take));
          remaining -= take;
          if (remaining === 0) finishBody();
          return;
        }
        case 'close':
          enqueue(data);
          return;
      }
    }

    function onHead(head: string, rest: Buffer): void {
      clearTimeout(headTimer);
      const parsed = parseResponseHead(head);
      mode = bodyMode(method, parsed.status, parsed.headers);
      if (mode.kind === 'chunked') decoder = new ChunkedDecoder();
      if (mode.kind === 'length') remaining = mode.length;
      let body: ReadableStream<Uint8Array> | null = null;
      if (mode.kind !== 'none') {
        body = new ReadableStream<Uint8Array>(
          {
            start(c) {
              controller = c;
            },
            pull() {
              if (socket.isPaused()) socket.resume();
            },
            cancel() {
              streamDone = true;
              cleanup();
              socket.destroy();
            },
          },
          { highWaterMark: 16 },
        );
      }
      settled = true;
      resolve({ status: parsed.status, statusText: parsed.statusText, headers: parsed.headers, body });
      if (mode.kind === 'none') {
        cleanup();
        socket.destroy();
        return;
      }
      if (mode.kind === 'length' && remaining === 0) {
        finishBody();
        return;
      }
      if (rest.length > 0) onBody(rest);
    }

    socket.on('data', (data: Buffer) => {
      try {
        if (!settled) {
          headBuf = headBuf.length === 0 ? data : Buffer.concat([headBuf, data]);
          const end = headBuf.indexOf(HEAD_END);
          if (end < 0) {
            if (headBuf.length > maxHead)
              throw new HttpHeadError(`response head larger than ${maxHead} bytes`);
            return;
          }
          const head = headBuf.subarray(0, end).toString('latin1');
          const rest = headBuf.subarray(end + HEAD_END.length);
          headBuf = Buffer.alloc(0);
          onHead(head, rest);
        } else {
          onBody(data);
        }
      } catch (err) {
        fail(err as Error);
      }
    });
    function onEnd(): void {
      if (!settled) {
        fail(new HttpHeadError('connection closed before the response head'));
      } else if (mode.kind === 'close') {
        finishBody();
      } else if (!streamDone) {
        fail(
          mode.kind === 'chunked'
            ? new ChunkedEncodingError('connection closed before the last chunk', {
                chunks: decoder?.chunkCount,
              })
            : new HttpHeadError('connection closed before the end of the body', { missing: remaining }),
        );
      }
    }
    socket.on('end', onEnd);
    socket.on('error', (err) => fail(err));
    socket.on('close', () => {
      if (!settled || (!streamDone && controller)) onEnd();
    });

    const headers: Record<string, string> = {
      Host: url.host,
      Connection: 'close',
      ...opts.headers,
    };
    const body = opts.body;
    if (body && body.length > 0) headers['Content-Length'] = String(body.length);
    else if (method === 'POST' || method === 'PUT') headers['Content-Length'] = '0';
    let head = `${method} ${url.pathname}${url.search} HTTP/1.1\r\n`;
    for (const [k, v] of Object.entries(headers)) {
      if (/[\r\n]/.test(k) || /[\r\n]/.test(v)) {
        fail(new HttpHeadError('header contains CR or LF', { header: k }));
        return;
      }
      head += `${k}: ${v}\r\n`;
    }
    head += '\r\n';
    socket.write(head);
    if (body && body.length > 0) socket.write(body);
  });
}

/** What `rawFetch` needs to know beyond the eventsource-supplied init. */
export interface RawFetchOptions {
  method?: string;
  /** Body written on every (re)connect. */
  body?: Uint8Array;
  headers?: Record<string, string>;
  tls?: RawTlsOptions;
  headTimeoutMs?: number;
  /** Called with the request id of every connection attempt (X-Vcap-Request-Id). */
  onRequest?: (requestId: string) => void;
}

/**
 * A `fetch` for the `eventsource` package: sends the configured method and body over `rawRequest`
 * and returns a web `Response` whose body is the de-chunked stream.
 */
export function rawFetch(options: RawFetchOptions) {
  return async (
    input: string | URL,
    init?: { headers?: Record<string, string> | HeadersInit; signal?: AbortSignal | null },
  ): Promise<Response> => {
    const requestId = randomUUID();
    options.onRequest?.(requestId);
    const initHeaders: Record<string, string> = {};
    if (init?.headers) {
      new Headers(init.headers as HeadersInit).forEach((v, k) => {
        initHeaders[k] = v;
      });
    }
    const res = await rawRequest({
      url: input,
      method: options.method ?? 'GET',
      headers: { ...initHeaders, 'X-Vcap-Request-Id': requestId, ...options.headers },
      body: options.body,
      tls: options.tls,
      signal: init?.signal ?? undefined,
      headTimeoutMs: options.headTimeoutMs,
    });
    const status = res.status >= 200 && res.status <= 599 ? res.status : 502;
    const nullBody = status === 204 || status === 205 || status === 304;
    return new Response(nullBody ? null : res.body, {
      status,
      statusText: res.statusText,
      headers: res.headers,
    });
  };
}
