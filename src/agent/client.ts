/**
 * The agent's client of the controller's agent API (HTTPS with mutual TLS; the controller takes
 * the cell id from the client certificate). One keep-alive https.Agent holds the connections, so a
 * long-poll and a status report do not set up TLS for every request. (node:https rather than
 * undici: it costs the agent no extra module memory.)
 *
 *   GET  /v1/cells/{cell}/rules?since=V&wait=S   → 200 {kind:'patch',patch} | {kind:'snapshot',ruleSet} | 304
 *   PUT  /v1/cells/{cell}/status                 {appliedVersion, appliedAt, error?, containers?}
 *   POST /v1/cells/{cell}/lease/acquire|renew|release
 *   GET  /v1/leases                              → {leases: [...]}
 *   POST /v1/cells/{cell}/certificate            {csr, token?} → {certificate, ca, notAfter, serial}
 *
 * `useCertificate` swaps the client certificate without a restart: new requests go through a new
 * https.Agent, requests in flight (a long-poll) finish on the old one, which is closed once idle.
 */
import { Agent, request } from 'node:https';
import { CfnetError } from '../lib/errors.js';
import type { CellRuleSet, RuleSetPatch } from '../model/types.js';

/** An overlay subnet lease as the controller hands it out (Silk's lease plus the cell id). */
export interface OverlayLease {
  cellId: string;
  /** e.g. 10.255.7.0/24 */
  subnet: string;
  underlayIp: string;
  vtepMac: string;
  acquiredAt?: number;
  renewedAt?: number;
  expiresAt?: number;
  /** Set when an operator moved the cell to this (new) subnet. */
  moved?: 'operator';
}

/** A lease an agent released (the controller keeps these for one lease TTL). */
export interface ReleasedLease {
  cellId: string;
  subnet: string;
  releasedAt: number;
}

/** `GET /v1/leases`: every live lease and the recent releases. */
export interface LeaseListing {
  leases: OverlayLease[];
  released: ReleasedLease[];
}

export type RulesAnswer =
  | { kind: 'patch'; patch: RuleSetPatch }
  | { kind: 'snapshot'; ruleSet: CellRuleSet }
  | { kind: 'unchanged'; version: number };

export interface InventoryItem {
  handle: string;
  ip: string;
  metadata: Record<string, unknown>;
}

export interface StatusReport {
  appliedVersion: number;
  appliedAt?: number;
  error?: string;
  containers?: InventoryItem[];
  /** What the dataplane refused of the rule set (the rest is applied). */
  refused?: { handle: string; reason: string }[];
}

/** A failed controller request: HTTP status (0 = no answer) and the API's error code. */
export class ControllerRequestError extends CfnetError {
  readonly status: number;
  readonly apiCode: string;

  constructor(message: string, status: number, apiCode: string, context: Record<string, unknown> = {}) {
    super('CFNET_AGENT_CONTROLLER', message, { ...context, status, apiCode });
    this.status = status;
    this.apiCode = apiCode;
  }

  /** 4xx answers other than 408/429 mean the request itself is wrong: retrying will not help. */
  get permanent(): boolean {
    return this.status >= 400 && this.status < 500 && this.status !== 408 && this.status !== 429;
  }
}

/** The controller's answer to a certificate request. */
export interface SignedCertificate {
  certificate: string;
  ca: string;
  notAfter: string;
  serial: string;
}

/** One https.Agent and the requests running on it. */
interface Dispatcher {
  agent: Agent;
  inflight: number;
  retired: boolean;
}

export interface ControllerClientOptions {
  baseUrl: string;
  cellId: string;
  /** `cert`/`key` may be '' before the cell has a certificate (bootstrap with its token). */
  tls: { ca: string; cert: string; key: string; servername?: string };
  /** Local address to connect from (default: the kernel's choice). */
  localAddress?: string;
  /** Timeout of ordinary requests (default 10 s). */
  requestTimeoutMs?: number;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;
const CIDR4 = /^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/;
const IP4 = /^\d{1,3}(\.\d{1,3}){3}$/;

/** Checks one lease from the wire; returns null when it is unusable. */
export function checkLease(v: unknown): OverlayLease | null {
  if (typeof v !== 'object' || v === null) return null;
  const l = v as Record<string, unknown>;
  if (typeof l.cellId !== 'string' || l.cellId === '') return null;
  if (typeof l.subnet !== 'string' || !CIDR4.test(l.subnet)) return null;
  if (typeof l.underlayIp !== 'string' || !IP4.test(l.underlayIp)) return null;
  if (typeof l.vtepMac !== 'string' || !MAC.test(l.vtepMac.toLowerCase())) return null;
  const out: OverlayLease = {
    cellId: l.cellId,
    subnet: l.subnet,
    underlayIp: l.underlayIp,
    vtepMac: l.vtepMac.toLowerCase(),
  };
  for (const k of ['acquiredAt', 'renewedAt', 'expiresAt'] as const) {
    if (typeof l[k] === 'number') out[k] = l[k] as number;
  }
  if (l.moved === 'operator') out.moved = 'operator';
  return out;
}

function checkReleased(v: unknown): ReleasedLease | null {
  if (typeof v !== 'object' || v === null) return null;
  const r = v as Record<string, unknown>;
  if (typeof r.cellId !== 'string' || typeof r.subnet !== 'string' || !CIDR4.test(r.subnet)) return null;
  if (typeof r.releasedAt !== 'number') return null;
  return { cellId: r.cellId, subnet: r.subnet, releasedAt: r.releasedAt };
}

export class ControllerClient {
  readonly baseUrl: string;
  readonly cellId: string;
  private dispatcher: Dispatcher;
  private readonly retiring = new Set<Dispatcher>();
  private readonly timeoutMs: number;
  private tls: ControllerClientOptions['tls'];
  private readonly localAddress: string | undefined;

  constructor(opts: ControllerClientOptions) {
    this.baseUrl = opts.baseUrl.replace(/\/+$/, '');
    this.cellId = opts.cellId;
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.tls = opts.tls;
    this.localAddress = opts.localAddress || undefined;
    this.dispatcher = this.makeDispatcher();
  }

  private makeDispatcher(): Dispatcher {
    const t = this.tls;
    const agent = new Agent({
      keepAlive: true,
      keepAliveMsecs: 30_000,
      maxSockets: 4,
      maxFreeSockets: 4,
      ca: t.ca,
      ...(t.cert ? { cert: t.cert } : {}),
      ...(t.key ? { key: t.key } : {}),
      minVersion: 'TLSv1.2',
      ...(t.servername ? { servername: t.servername } : {}),
      ...(this.localAddress ? { localAddress: this.localAddress } : {}),
    });
    return { agent, inflight: 0, retired: false };
  }

  /**
   * From now on requests present this certificate (and trust `ca` when given). Requests in flight
   * keep their connection; the old connections close once they are idle.
   */
  useCertificate(cert: string, key: string, ca?: string): void {
    const old = this.dispatcher;
    this.tls = { ...this.tls, cert, key, ...(ca ? { ca } : {}) };
    this.dispatcher = this.makeDispatcher();
    old.retired = true;
    if (old.inflight === 0) old.agent.destroy();
    else this.retiring.add(old);
  }

  private released(d: Dispatcher): void {
    d.inflight--;
    if (d.retired && d.inflight === 0) {
      d.agent.destroy();
      this.retiring.delete(d);
    }
  }

  private cellPath(suffix: string): string {
    return `${this.baseUrl}/v1/cells/${encodeURIComponent(this.cellId)}${suffix}`;
  }

  private call(
    method: 'GET' | 'PUT' | 'POST',
    url: string,
    body: unknown,
    opts: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<{ status: number; json: unknown; headers: Record<string, unknown> }> {
    const timeout = opts.timeoutMs ?? this.timeoutMs;
    const payload = body === undefined ? null : Buffer.from(JSON.stringify(body));
    const dispatcher = this.dispatcher;
    dispatcher.inflight++;
    return new Promise<{ status: number; json: unknown; headers: Record<string, unknown> }>(
      (resolve, reject) => {
        let settled = false;
        const fail = (err: unknown) => {
          if (settled) return;
          settled = true;
          if (opts.signal?.aborted) {
            reject(opts.signal.reason ?? err);
            return;
          }
          const e = err as { message?: string; code?: string };
          reject(
            new ControllerRequestError(
              `${method} ${url}: ${e.message ?? String(err)}`,
              0,
              e.code ?? 'NO_ANSWER',
              {
                url,
              },
            ),
          );
        };
        const headers: Record<string, string | number> = { accept: 'application/json' };
        if (payload) {
          headers['content-type'] = 'application/json';
          headers['content-length'] = payload.length;
        }
        const req = request(
          url,
          { method, agent: dispatcher.agent, headers, ...(opts.signal ? { signal: opts.signal } : {}) },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (b: Buffer) => chunks.push(b));
            res.on('error', fail);
            res.on('end', () => {
              if (settled) return;
              const status = res.statusCode ?? 0;
              const text = Buffer.concat(chunks).toString('utf8');
              let json: unknown = null;
              if (text !== '') {
                try {
                  json = JSON.parse(text);
                } catch {
                  json = null;
                }
              }
              settled = true;
              if (status >= 400) {
                const e = (json as { error?: { code?: string; message?: string } } | null)?.error;
                reject(
                  new ControllerRequestError(
                    `${method} ${url}: HTTP ${status}${e?.message ? `: ${e.message}` : ''}`,
                    status,
                    e?.code ?? `HTTP_${status}`,
                    { url },
                  ),
                );
                return;
              }
              resolve({ status, json, headers: res.headers as Record<string, unknown> });
            });
          },
        );
        req.setTimeout(timeout, () =>
          req.destroy(Object.assign(new Error(`no answer within ${timeout} ms`), { code: 'TIMEOUT' })),
        );
        req.on('error', fail);
        req.end(payload ?? undefined);
      },
    ).finally(() => this.released(dispatcher));
  }

  /**
   * One long-poll: changes since `since`, waiting up to `waitSeconds` at the controller.
   * `unchanged` carries the controller's current version (0 when it has none for this cell).
   */
  async rules(since: number, waitSeconds: number, signal?: AbortSignal): Promise<RulesAnswer> {
    const url = this.cellPath(`/rules?since=${since}&wait=${waitSeconds}`);
    const r = await this.call('GET', url, undefined, {
      ...(signal ? { signal } : {}),
      timeoutMs: (waitSeconds + 15) * 1000,
    });
    if (r.status === 304) {
      const v = Number(r.headers['x-cfnet-version'] ?? 0);
      return { kind: 'unchanged', version: Number.isFinite(v) ? v : 0 };
    }
    const j = r.json as { kind?: string; patch?: RuleSetPatch; ruleSet?: CellRuleSet } | null;
    if (j?.kind === 'patch' && j.patch && typeof j.patch === 'object')
      return { kind: 'patch', patch: j.patch };
    if (j?.kind === 'snapshot' && j.ruleSet && typeof j.ruleSet === 'object') {
      return { kind: 'snapshot', ruleSet: j.ruleSet };
    }
    throw new ControllerRequestError(
      `GET ${url}: unexpected answer (HTTP ${r.status})`,
      r.status,
      'BAD_ANSWER',
    );
  }

  async putStatus(report: StatusReport, signal?: AbortSignal): Promise<{ inventoryChanged: boolean }> {
    const r = await this.call('PUT', this.cellPath('/status'), report, signal ? { signal } : {});
    return { inventoryChanged: (r.json as { inventoryChanged?: boolean } | null)?.inventoryChanged === true };
  }

  private lease(json: unknown, url: string): OverlayLease {
    const l = checkLease(json);
    if (!l)
      throw new ControllerRequestError(`${url}: malformed lease ${JSON.stringify(json)}`, 200, 'BAD_ANSWER');
    return l;
  }

  /**
   * Acquire (or re-acquire) this cell's lease. `subnet` is the lease the agent held before (a hint
   * for the controller; it hands the old subnet back when the cell still owns it).
   */
  async acquireLease(underlayIp: string, vtepMac?: string, subnet?: string): Promise<OverlayLease> {
    const url = this.cellPath('/lease/acquire');
    const body: Record<string, string> = { underlayIp };
    if (vtepMac) body.vtepMac = vtepMac;
    if (subnet) body.subnet = subnet;
    return this.lease((await this.call('POST', url, body)).json, url);
  }

  async renewLease(subnet: string, underlayIp: string, vtepMac?: string): Promise<OverlayLease> {
    const url = this.cellPath('/lease/renew');
    const body: Record<string, string> = { subnet, underlayIp };
    if (vtepMac) body.vtepMac = vtepMac;
    return this.lease((await this.call('POST', url, body)).json, url);
  }

  async releaseLease(): Promise<boolean> {
    const r = await this.call('POST', this.cellPath('/lease/release'), {});
    return (r.json as { released?: boolean } | null)?.released === true;
  }

  /** Every live lease and the recent releases (malformed entries are dropped). */
  async leases(signal?: AbortSignal): Promise<LeaseListing> {
    const url = `${this.baseUrl}/v1/leases`;
    const r = await this.call('GET', url, undefined, signal ? { signal } : {});
    const body = r.json as { leases?: unknown[]; released?: unknown[] } | null;
    const list = body?.leases;
    if (!Array.isArray(list))
      throw new ControllerRequestError(`GET ${url}: no leases list`, r.status, 'BAD_ANSWER');
    return {
      leases: list.map(checkLease).filter((l): l is OverlayLease => l !== null),
      released: (Array.isArray(body?.released) ? body.released : [])
        .map(checkReleased)
        .filter((x): x is ReleasedLease => x !== null),
    };
  }

  /**
   * Asks the controller to sign `csr` for this cell: authenticated by the current certificate, or
   * (first certificate, or after it expired) by the cell's bootstrap `token`.
   */
  async requestCertificate(csr: string, token?: string): Promise<SignedCertificate> {
    const url = this.cellPath('/certificate');
    const r = await this.call('POST', url, token ? { csr, token } : { csr });
    const j = r.json as Partial<SignedCertificate> | null;
    if (!j || typeof j.certificate !== 'string' || typeof j.ca !== 'string') {
      throw new ControllerRequestError(`POST ${url}: no certificate in the answer`, r.status, 'BAD_ANSWER');
    }
    return {
      certificate: j.certificate,
      ca: j.ca,
      notAfter: String(j.notAfter ?? ''),
      serial: String(j.serial ?? ''),
    };
  }

  async close(): Promise<void> {
    await this.destroy();
  }

  /** Drops open connections at once (a long-poll in flight fails). */
  async destroy(): Promise<void> {
    this.dispatcher.agent.destroy();
    for (const d of this.retiring) d.agent.destroy();
    this.retiring.clear();
  }
}
