/**
 * The agent API (HTTPS, mutual TLS) and the operator endpoints (plain HTTP, separate port).
 *
 * Agent API — every request needs a client certificate signed by the configured CA; the cell id is
 * taken from it: a DNS SAN `<cell>.cell.cfnet` when present, else the subject CN. A request about
 * another cell gets 403; a request without a valid certificate gets 401.
 *
 * - `GET /v1/cells/{cell}/rules?since=V&wait=S` → 200 `{kind:'patch', patch}` (V → current, when
 *   the log covers V), 200 `{kind:'snapshot', ruleSet}` (V = 0, unknown or too old), or 304
 *   after S seconds (at most `maxWaitSeconds`, default 60) without a change. An agent ahead of the
 *   store (V above the stored version: the store lost writes) is never sent older content: the cell
 *   is recomputed with a version above V and the poll waits for it. Header
 *   `X-Cfnet-Version` carries the current version (0 when nothing is stored yet).
 * - `PUT /v1/cells/{cell}/status` `{appliedVersion, appliedAt?, error?, containers?: [{handle, ip,
 *   metadata}]}` → 200 `{inventoryChanged}`; a changed inventory is stored and the cell enqueued.
 * - `POST /v1/cells/{cell}/lease/acquire` `{underlayIp, vtepMac?, subnet?}` → 200 Lease; `subnet`
 *   is the agent's claim of the subnet it holds: 409 `CFNET_LEASE_CONFLICT` when another live cell
 *   holds it; without a claim 503 `CFNET_LEASE_RECOVERING` while the lease table is being rebuilt
 * - `POST /v1/cells/{cell}/lease/renew` `{subnet, underlayIp, vtepMac?}` → 200 Lease, 409 mismatch
 * - `POST /v1/cells/{cell}/lease/release` → 200 `{released}`
 * - `GET /v1/leases` → 200 `{leases: Lease[], released: ReleasedLease[]}` (every live lease, for
 *   VXLAN programming, and the releases of the last TTL)
 * - `POST /v1/cells/{cell}/certificate` `{csr, token?}` → 200 `{certificate, ca, notAfter, serial}`:
 *   the cell's next certificate (identity/authority.ts). The one route a client without a valid
 *   certificate may call: it then needs the cell's bootstrap token.
 * A certificate with an IP SAN (the authority's) is accepted only from that address (403
 * `CFNET_IDENTITY_ADDRESS_MISMATCH`). A lease's `underlayIp` must be the caller's own address (the IP SAN of a certificate the
 * authority issued, else the cell's BBS presence when the authority is configured), and not
 * another cell's live lease: 403 `CFNET_LEASE_FOREIGN_UNDERLAY` otherwise.
 * Errors: `{error: {code, message, field?}}`. Paths, headers and the schema of every body and answer
 * are the wire contract in src/api, shared with the agent's client (docs/controller.md, "Agent API").
 *
 * Operator port: `GET /metrics` (Prometheus), `GET /healthz` (process up), `GET /readyz` (503
 * unless Redis answers and the informers are synced on the leader / a leader is known).
 *
 * Longer than ~400 lines: the agent API's routes (rules long-poll, status, leases, certificates)
 * share authentication, request limits and error mapping.
 */
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { z } from 'zod';
import { CertificateBody, type SignedCertificate } from '../../api/certificate.js';
import type { ErrorAnswerBody } from '../../api/errors.js';
import {
  AcquireBody,
  type LeaseAnswer,
  type LeaseListingAnswer,
  type ReleaseAnswer,
  RenewBody,
} from '../../api/lease.js';
import { HEADERS, ROUTES } from '../../api/routes.js';
import { type RulesChangeAnswer, RulesQuery } from '../../api/rules.js';
import { type StatusAnswer, StatusBody } from '../../api/status.js';
import { CfnetError, type ErrorCode, ValidationError } from '../../lib/errors.js';
import type { Logger } from '../../lib/log.js';
import { counter, exposition, gauge, METRICS, type Registry } from '../../lib/metrics.js';
import { CF_INTERNAL_CIPHERS } from '../../lib/tls.js';
import type { InventoryEntry } from '../../rules/records.js';
import type { Trigger } from '../../rules/world.js';
import { validateCellId } from '../../state/keys.js';
import { LeaseError, type LeaseManager } from '../../state/lease-store.js';
import { changesJson, type RuleSetStore } from '../../state/ruleset-store.js';
import type { SingleIpLeases } from '../../state/single-ip-lease.js';
import type { WorldStore } from '../../state/world-store.js';
import { CELL_SAN_SUFFIX, type CellIdentityAuthority, certifiedAddress } from '../identity/authority.js';
import { normaliseAddress } from '../identity/directory.js';
import { IdentityError } from '../identity/errors.js';
import { IngestGate } from '../sources/gate.js';
import type { ChangeNotifier } from './notifier.js';
import type { RouterTag } from './router-tag.js';

/**
 * What a connection's client certificate says: the cell it names ('' for none) and the address it
 * is bound to. Read once per TLS connection: the certificate was verified in the handshake and
 * cannot change on the connection (renegotiation is disabled on every connection), while `getPeerCertificate()`
 * builds a new object with every field each time — ~0.2 ms, paid by every one of 2,500 long
 * polls per change.
 */
const identities = new WeakMap<TLSSocket, { cellId: string; certifiedAddress: string | null }>();

function peerIdentity(socket: TLSSocket): { cellId: string; certifiedAddress: string | null } {
  let known = identities.get(socket);
  if (known === undefined) {
    const cert = socket.getPeerCertificate();
    known = {
      cellId: cellIdFromCertificate(cert) ?? '',
      certifiedAddress: certifiedAddress(cert.subjectaltname),
    };
    identities.set(socket, known);
  }
  return known;
}

export { CELL_SAN_SUFFIX };

export interface AgentApiDeps {
  store: RuleSetStore;
  world: WorldStore;
  leases: LeaseManager;
  /** Routers' single-address leases and their tag; unset = routers get no lease. */
  routers?: { leases: SingleIpLeases; tag: RouterTag };
  notifier: ChangeNotifier;
  enqueue(cellId: string, trigger: Trigger): Promise<void>;
  logger: Logger;
  registry?: Registry;
  /** Validates report items one by one and records what it leaves out (default: records nothing). */
  ingest?: IngestGate;
  /** Signs cells' certificate requests and knows each cell's address; unset = no CSR endpoint. */
  identity?: CellIdentityAuthority;
  /** Called after a status report was stored (operator journal). */
  onStatus?(cellId: string, status: { appliedVersion: number; appliedAt: number; error: string }): void;
}

/** Longest long-poll wait granted (s) (`apiMaxWaitSeconds`). */
export const DEFAULT_MAX_WAIT_SECONDS = 60;

/** As compiled into ControllerConfig `api` (settings apiListen, apiMaxWaitSeconds); port 0 = any free port. */
export interface AgentApiOptions {
  host: string;
  port: number;
  /** PEM: CA that signs agent certificates, the server certificate and key. */
  tls: { ca: string; cert: string; key: string };
  /** Setting apiMaxWaitSeconds ({@link DEFAULT_MAX_WAIT_SECONDS}). */
  maxWaitSeconds: number;
}

export interface RunningServer {
  app: FastifyInstance;
  url: string;
  port: number;
  close(): Promise<void>;
}

/** The cell id an agent certificate names (SAN `<cell>.cell.cfnet`, else CN), or null. */
export function cellIdFromCertificate(cert: {
  subject?: { CN?: string | string[] };
  subjectaltname?: string;
}): string | null {
  for (const part of (cert.subjectaltname ?? '').split(/,\s*/)) {
    if (part.startsWith('DNS:') && part.endsWith(CELL_SAN_SUFFIX)) {
      const id = part.slice(4, -CELL_SAN_SUFFIX.length);
      return id || null;
    }
  }
  const cn = cert.subject?.CN;
  const v = Array.isArray(cn) ? cn[0] : cn;
  return v || null;
}

function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string, field?: string) {
  const body: ErrorAnswerBody = { error: { code, message, ...(field ? { field } : {}) } };
  return reply.code(status).send(body);
}

function zodError(reply: FastifyReply, err: z.ZodError) {
  const issue = err.issues[0]!;
  const field = issue.path.join('.') || 'body';
  return sendError(reply, 400, 'CFNET_INVALID', `invalid ${field}: ${issue.message}`, field);
}

// The bodies come from the wire contract (src/api); the server adds only the claim rule: an acquire
// may carry the subnet the agent holds, a renew must name it.
type CellParams = { cell: string };
/** What the identity hook learnt from the client certificate. */
type Caller = { cellId?: string; certifiedAddress?: string | null };

export async function startAgentApi(deps: AgentApiDeps, opts: AgentApiOptions): Promise<RunningServer> {
  const maxWait = opts.maxWaitSeconds;
  const ingest = deps.ingest ?? new IngestGate();
  const app = Fastify({
    https: {
      ca: opts.tls.ca,
      cert: opts.tls.cert,
      key: opts.tls.key,
      requestCert: true,
      // Verified per request below, so that a missing certificate gets a clear 401 answer.
      rejectUnauthorized: false,
      minVersion: 'TLSv1.2',
      ciphers: CF_INTERNAL_CIPHERS,
    },
    logger: false,
    // long polls hold requests open up to maxWait; leave room for it
    requestTimeout: (maxWait + 30) * 1000,
    keepAliveTimeout: (maxWait + 30) * 1000,
  });
  // A connection keeps the identity of its handshake's certificate (peerIdentity): refuse a
  // TLS 1.2 renegotiation, which could present another certificate on the same connection.
  app.server.on('secureConnection', (socket: TLSSocket) => socket.disableRenegotiation());
  const requests = deps.registry
    ? counter(deps.registry, METRICS.apiRequests, 'Agent API requests by route and status', [
        'route',
        'status',
      ])
    : undefined;
  const polls = deps.registry
    ? gauge(deps.registry, METRICS.longPolls, 'Long-poll requests waiting')
    : undefined;
  const leaseConflicts = deps.registry
    ? counter(
        deps.registry,
        METRICS.leaseConflicts,
        'Lease claims refused because another live cell holds the claimed subnet',
      )
    : undefined;

  app.addHook('onResponse', async (req, reply) => {
    requests?.inc({ route: req.routeOptions.url ?? 'unknown', status: String(reply.statusCode) });
  });

  // Identity: a verified client certificate naming a cell.
  app.addHook('onRequest', async (req, reply) => {
    const socket = req.raw.socket as TLSSocket;
    const certificateRoute = (req.routeOptions.config as { certificateRequest?: boolean } | undefined)
      ?.certificateRequest;
    if (!socket.authorized && certificateRoute) return; // bootstrap: the authority checks the token
    if (!socket.authorized) {
      const reason = socket.authorizationError ? String(socket.authorizationError) : 'no client certificate';
      return sendError(
        reply,
        401,
        'CFNET_UNAUTHENTICATED',
        `a valid client certificate is required (${reason})`,
      );
    }
    const { cellId: id, certifiedAddress: bound } = peerIdentity(socket);
    if (!id) return sendError(reply, 401, 'CFNET_UNAUTHENTICATED', 'the client certificate names no cell');
    (req as FastifyRequest & Caller).cellId = id;
    (req as FastifyRequest & Caller).certifiedAddress = bound;
    // a certificate the authority issued is bound to the cell's address: a copied key is of no use elsewhere
    if (bound !== null && bound !== normaliseAddress(req.raw.socket.remoteAddress)) {
      return sendError(
        reply,
        403,
        'CFNET_IDENTITY_ADDRESS_MISMATCH',
        `the certificate of cell ${id} is valid from ${bound} only`,
      );
    }
    const params = req.params as Partial<CellParams> | undefined;
    if (params?.cell !== undefined && params.cell !== id) {
      return sendError(
        reply,
        403,
        'CFNET_FORBIDDEN',
        `certificate of cell ${id} may not access cell ${params.cell}`,
      );
    }
  });

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof IdentityError) {
      const retry = err.context.retryAfterSeconds;
      if (typeof retry === 'number') reply.header(HEADERS.retryAfter, String(retry));
      return sendError(reply, err.status, err.code, err.message);
    }
    if (err instanceof LeaseError) return sendError(reply, err.status, err.code, err.message);
    if (err instanceof ValidationError) return sendError(reply, 400, err.code, err.message, err.field);
    if (err instanceof CfnetError) return sendError(reply, 500, err.code, err.message);
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status < 500) return sendError(reply, status, 'CFNET_BAD_REQUEST', (err as Error).message);
    deps.logger.error({ err }, 'agent API error');
    return sendError(reply, 500, 'CFNET_INTERNAL', 'internal error');
  });

  const cellOf = (req: FastifyRequest<{ Params: CellParams }>) => validateCellId(req.params.cell, 'cell');

  /** Refuses a lease for an underlay address that is not the caller's own (see the module comment). */
  const checkOwnUnderlay = async (req: FastifyRequest, cell: string, underlayIp: string) => {
    let own = (req as FastifyRequest & Caller).certifiedAddress ?? null;
    if (own === null && deps.identity) {
      own = await deps.identity.directory.addressOf(cell);
      if (own === null) {
        throw new IdentityError('CFNET_IDENTITY_UNKNOWN_CELL', `BBS presents no cell ${cell}`, 403, {
          cellId: cell,
        });
      }
    }
    if (own !== null && own !== underlayIp) {
      throw new IdentityError(
        'CFNET_LEASE_FOREIGN_UNDERLAY',
        `cell ${cell} lives at ${own}: it may not lease for underlay ${underlayIp}`,
        403,
        { cellId: cell, underlayIp, own },
      );
    }
  };
  const checkNotLeasedByOther = async (cell: string, underlayIp: string) => {
    const other = (await deps.leases.list()).find((l) => l.underlayIp === underlayIp && l.cellId !== cell);
    if (other) {
      throw new IdentityError(
        'CFNET_LEASE_FOREIGN_UNDERLAY',
        `underlay ${underlayIp} belongs to cell ${other.cellId}'s live lease`,
        403,
        { cellId: cell, underlayIp, holder: other.cellId },
      );
    }
  };

  app.get<{ Params: CellParams; Querystring: Record<string, string> }>(
    ROUTES.rules.path,
    async (req, reply) => {
      const cell = cellOf(req);
      const q = RulesQuery.safeParse(req.query);
      if (!q.success) return zodError(reply, q.error);
      const waitMs = Math.min(q.data.wait, maxWait) * 1000;
      const deadline = Date.now() + waitMs;
      // the client went away: stop waiting (a flag and the current wait, not an AbortController:
      // its signal and DOMException cost ~0.1 ms per answered poll, thousands per fan-out)
      let closed = false;
      let w: ReturnType<ChangeNotifier['wait']> | null = null;
      reply.raw.once('close', () => {
        closed = true;
        w?.cancel();
      });
      polls?.inc();
      let recomputeAsked = false;
      try {
        for (;;) {
          w = deps.notifier.wait(cell, deadline - Date.now());
          const ch = await deps.store.changesSince(cell, q.data.since);
          if (ch.kind === 'patch' || ch.kind === 'snapshot') {
            w.cancel();
            const version = ch.kind === 'patch' ? ch.patch.to : ch.ruleSet.version;
            // sent as the store composed it: no copy, no re-validation of a rule set of up to ~1 MB;
            // the text of sets shared by many cells is built once (changesJson)
            return reply
              .header(HEADERS.version, String(version))
              .type('application/json; charset=utf-8')
              .send(changesJson(ch satisfies RulesChangeAnswer));
          }
          if (ch.kind === 'ahead' && !recomputeAsked) {
            // the store lost what the agent holds: have the cell recomputed above its version
            recomputeAsked = true;
            await deps.enqueue(cell, { kind: 'resync', id: 'agent-ahead', at: Date.now() });
          }
          const current = ch.kind === 'current' || ch.kind === 'ahead' ? ch.version : 0;
          if (Date.now() >= deadline || closed) {
            w.cancel();
            return reply.code(304).header(HEADERS.version, String(current)).send();
          }
          await w.promise;
        }
      } finally {
        polls?.dec();
      }
    },
  );

  app.put<{ Params: CellParams }>(ROUTES.status.path, async (req, reply) => {
    const cell = cellOf(req);
    const body = StatusBody.safeParse(req.body);
    if (!body.success) return zodError(reply, body.error);
    const b = body.data;
    const status = {
      appliedVersion: b.appliedVersion,
      appliedAt: b.appliedAt ?? Date.now(),
      error: b.error ?? '',
      intervalMs: (b.statusIntervalSeconds ?? 0) * 1000,
      ...(b.dryRun !== undefined ? { dryRun: b.dryRun } : {}),
      ...(b.overlay ? { overlay: b.overlay } : {}),
    };
    await deps.store.reportStatus(cell, status);
    deps.onStatus?.(cell, status);
    let inventoryChanged = false;
    if (b.refused && b.refused.length > 0) ingest.refusedByAgent(cell, b.refused);
    if (b.containers) {
      const entries: InventoryEntry[] = ingest.inventory(cell, b.containers);
      inventoryChanged = await deps.world.setInventory(cell, entries);
      if (inventoryChanged) await deps.enqueue(cell, { kind: 'inventory', id: cell, at: Date.now() });
    }
    const answer: StatusAnswer = { inventoryChanged };
    return reply.send(answer);
  });

  app.post<{ Params: CellParams }>(ROUTES.leaseAcquire.path, async (req, reply) => {
    const cell = cellOf(req);
    const b = AcquireBody.safeParse(req.body ?? {});
    if (!b.success) return zodError(reply, b.error);
    await checkOwnUnderlay(req, cell, b.data.underlayIp);
    await checkNotLeasedByOther(cell, b.data.underlayIp);
    if (b.data.singleIp) return acquireSingleIp(reply, cell, b.data.underlayIp, b.data.subnet);
    try {
      const lease = await deps.leases.acquire(cell, b.data.underlayIp, b.data.vtepMac, b.data.subnet);
      if (lease.moved)
        deps.logger.warn(
          { cell, subnet: lease.subnet, claimed: b.data.subnet },
          'cell moved to a new subnet by an operator',
        );
      const answer: z.input<typeof LeaseAnswer> = lease;
      return reply.send(answer);
    } catch (err) {
      if (err instanceof LeaseError && err.code === 'CFNET_LEASE_CONFLICT') {
        leaseConflicts?.inc();
        deps.logger.error({ err, cell }, 'lease claim refused: another live cell holds the subnet');
      }
      if (err instanceof LeaseError && err.code === 'CFNET_LEASE_RECOVERING') {
        reply.header(HEADERS.retryAfter, String(Math.ceil(Number(err.context.retryAfterMs ?? 1000) / 1000)));
      }
      throw err;
    }
  });

  /** A router's lease: its tag first (from the policy server), then its address. */
  const acquireSingleIp = async (reply: FastifyReply, cell: string, underlayIp: string, claim?: string) => {
    if (!deps.routers) {
      return sendError(
        reply,
        503,
        'CFNET_ROUTER_TAG_UNAVAILABLE',
        'this controller leases no router addresses',
      );
    }
    let tag: number;
    try {
      tag = await deps.routers.tag.get();
    } catch (err) {
      deps.logger.warn({ err, cell }, 'router lease refused: no router tag from the policy server');
      reply.header(HEADERS.retryAfter, '5');
      return sendError(reply, 503, 'CFNET_ROUTER_TAG_UNAVAILABLE', (err as Error).message);
    }
    const lease = await deps.routers.leases.acquire({
      cellId: cell,
      underlayIp,
      tag,
      ...(claim ? { claim } : {}),
    });
    const answer: z.input<typeof LeaseAnswer> = lease;
    return reply.send(answer);
  };

  app.post<{ Params: CellParams }>(ROUTES.leaseRenew.path, async (req, reply) => {
    const cell = cellOf(req);
    const b = RenewBody.safeParse(req.body ?? {});
    if (!b.success) return zodError(reply, b.error);
    await checkOwnUnderlay(req, cell, b.data.underlayIp);
    const answer: z.input<typeof LeaseAnswer> = await deps.leases.renew(
      cell,
      b.data.subnet,
      b.data.underlayIp,
      b.data.vtepMac,
    );
    return reply.send(answer);
  });

  app.post<{ Params: CellParams }>(ROUTES.leaseRelease.path, async (req, reply) => {
    const answer: ReleaseAnswer = { released: await deps.leases.release(cellOf(req)) };
    return reply.send(answer);
  });

  app.post<{ Params: CellParams }>(
    ROUTES.certificate.path,
    { config: { certificateRequest: true } },
    async (req, reply) => {
      const cell = cellOf(req);
      if (!deps.identity) {
        throw new IdentityError('CFNET_IDENTITY_DISABLED', 'this controller signs no cell certificates', 404);
      }
      const b = CertificateBody.safeParse(req.body ?? {});
      if (!b.success) return zodError(reply, b.error);
      const issued: SignedCertificate = await deps.identity.sign({
        cellId: cell,
        csr: b.data.csr,
        token: b.data.token,
        sourceAddress: req.raw.socket.remoteAddress ?? '',
        certifiedCell: (req as FastifyRequest & Caller).cellId ?? null,
      });
      return reply.header(HEADERS.cacheControl, 'no-store').send(issued);
    },
  );

  app.get(ROUTES.leases.path, async (_req, reply) => {
    const [leases, released] = await Promise.all([deps.leases.list(), deps.leases.released()]);
    const answer: z.input<typeof LeaseListingAnswer> = { leases, released };
    return reply.send(answer);
  });

  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  return { app, port, url: `https://${host}:${port}`, close: () => app.close() };
}

export interface OperatorDeps {
  registry: Registry;
  /** Readiness checks; the server answers 503 unless all are ok. */
  ready(): Promise<Record<string, { ok: boolean; detail?: string }>>;
  /** Extra routes (operator dashboard), registered before the server listens. */
  routes?(app: FastifyInstance): Promise<void>;
}

export async function startOperatorServer(
  deps: OperatorDeps,
  /** As compiled into ControllerConfig `operator` (setting operatorListen); port 0 = any free port. */
  opts: { host: string; port: number },
): Promise<RunningServer> {
  const app = Fastify({ logger: false });
  app.get('/metrics', async (_req, reply) => {
    const { contentType, body } = await exposition(deps.registry);
    return reply.header('content-type', contentType).send(body);
  });
  app.get('/healthz', async (_req, reply) => reply.send({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    let checks: Record<string, { ok: boolean; detail?: string }>;
    try {
      checks = await deps.ready();
    } catch (err) {
      checks = { checks: { ok: false, detail: (err as Error).message } };
    }
    const ok = Object.values(checks).every((c) => c.ok);
    return reply.code(ok ? 200 : 503).send({ ok, checks });
  });
  await deps.routes?.(app);
  await app.listen({ host: opts.host, port: opts.port });
  const addr = app.server.address();
  const port = typeof addr === 'object' && addr ? addr.port : opts.port;
  const host = opts.host && opts.host !== '0.0.0.0' ? opts.host : '127.0.0.1';
  return { app, port, url: `http://${host}:${port}`, close: () => app.close() };
}
