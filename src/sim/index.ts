/**
 * `startSimulator()`: a CF foundation (Diego BBS, Cloud Controller v2/v3 + internal, UAA, policy
 * server internal API) generated from a seed and a size, speaking the real wire formats, with a
 * change API, churn and fault injection. See docs/cf-interfaces.md for the formats and docs/architecture.md for the sizes.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { createCa, issueCert, writePem } from '../lib/tls.js';
import { startAdmin } from './admin.js';
import { EventHub, startBbs } from './bbs.js';
import { ActualEncoder } from './bbs-encode.js';
import { startCapi, startCcInternal } from './capi.js';
import { type AppliedChange, ChangeEngine, type SimChange } from './changes.js';
import { type ChurnOptions, type ChurnRun, runChurn } from './churn.js';
import { FaultState, type SimFaults } from './faults.js';
import { generateWorld, type SizeOverrides } from './generate.js';
import type { RunningService } from './http.js';
import { startPolicyServer } from './policy.js';
import { summarize, type WorldSummary, worldHash } from './summary.js';
import { startUaa, TokenStore, type UaaClient } from './uaa.js';
import type { FoundationSize, SimWorld } from './world.js';

export type { AppliedChange, SimChange, SimChangeKind } from './changes.js';
export { CHANGE_KINDS } from './changes.js';
export type { ChurnOptions, ChurnResult, ChurnRun } from './churn.js';
export type { RawEvent, SimFaults, SimService } from './faults.js';
export type { WorldSummary } from './summary.js';
export type {
  BbsEgressRule,
  CcRule,
  FoundationSize,
  SimActualLrp,
  SimApp,
  SimCell,
  SimDesiredLrp,
  SimOrg,
  SimPolicy,
  SimSecurityGroup,
  SimSpace,
  SimTag,
  SimTask,
  SimWorld,
} from './world.js';
export { FOUNDATION_SIZES } from './world.js';

export type SimPortName = 'bbs' | 'capi' | 'uaa' | 'ccInternal' | 'policy' | 'admin';

export interface SimTls {
  /** PEM of the CA that signed every simulator certificate (trust it; sign client certs with it). */
  caCert: string;
  /** The CA's key (present when the simulator generated the CA or was given it). */
  caKey?: string;
  /** A client certificate/key accepted by the mTLS servers (BBS, CC internal, policy server). */
  clientCert: string;
  clientKey: string;
  /** Server certificate/key used by the HTTPS servers (generated from the CA when absent). */
  serverCert?: string;
  serverKey?: string;
  /** File paths, when `certDir` was given. */
  files?: { ca: string; cert: string; key: string; caKey?: string; serverCert?: string; serverKey?: string };
}

export interface SimOptions extends SizeOverrides {
  /** Default 1; the same seed and size give an identical foundation. */
  seed?: number;
  /** Default 'small'. */
  size?: FoundationSize;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 or absent = ephemeral port. */
  ports?: Partial<Record<SimPortName, number>>;
  /** Write ca.crt, ca.key, client.crt/key, server.crt/key there. */
  certDir?: string;
  /** Reuse a CA / certificates instead of generating them. */
  tls?: SimTls;
  /** Default true: serve /v2; false → nginx-style 404 "V2 endpoints disabled". */
  capiV2?: boolean;
  /** UAA `expires_in`, default 3600. */
  tokenTtlSeconds?: number;
  /** Include the rep's resolved metric_tags in ActualLRPs (default true). */
  actualLrpMetricTags?: boolean;
  /** Require `Authorization: Bearer <token>` on the admin API. */
  adminToken?: string;
  /** Events queued for a BBS stream subscriber that does not read before it is dropped (BBS: 1024). */
  eventBufferLimit?: number;
}

export interface SimHandle {
  urls: { bbs: string; capi: string; uaa: string; ccInternal: string; policyServer: string; admin: string };
  tls: SimTls;
  /** A client_credentials client with cloud_controller.admin_read_only. */
  uaaClient: { id: string; secret: string };
  /** A client_credentials client with cloud_controller.admin (for v3 writes). */
  uaaAdminClient: { id: string; secret: string };
  /** The live model; treat as read-only. */
  world: SimWorld;
  apply(change: SimChange): Promise<AppliedChange>;
  runChurn(opts: ChurnOptions): ChurnRun;
  faults: SimFaults;
  summary(): WorldSummary;
  hash(): string;
  /** Open BBS event-stream subscriptions. */
  eventStreams(): number;
  stop(): Promise<void>;
}

/** DNS names the simulator's server certificates carry (CF's internal names). */
export const SIM_SERVER_NAMES = {
  bbs: 'bbs.service.cf.internal',
  policy: 'policy-server.service.cf.internal',
  ccInternal: 'cloud-controller-ng.service.cf.internal',
  uaa: 'uaa.service.cf.internal',
  capi: 'api.sim.internal',
};

interface ServerCerts {
  bbs: { cert: string; key: string };
  policy: { cert: string; key: string };
  cc: { cert: string; key: string };
  uaa: { cert: string; key: string };
  capi: { cert: string; key: string };
}

function buildTls(opts: SimOptions, host: string): { tls: SimTls; servers: ServerCerts } {
  const given = opts.tls;
  const sans = [...Object.values(SIM_SERVER_NAMES), 'localhost', '127.0.0.1', '::1'];
  if (isIP(host) !== 0 && !sans.includes(host)) sans.push(host);
  else if (isIP(host) === 0 && host !== '0.0.0.0' && !sans.includes(host)) sans.push(host);
  if (given?.serverCert && given.serverKey) {
    const one = { cert: given.serverCert, key: given.serverKey };
    return { tls: given, servers: { bbs: one, policy: one, cc: one, uaa: one, capi: one } };
  }
  if (given && !given.caKey) {
    throw new Error('tls: give either serverCert/serverKey or caKey so server certificates can be issued');
  }
  const ca = given?.caKey ? { cert: given.caCert, key: given.caKey } : createCa({ cn: 'cfnet simulator CA' });
  const first = issueCert(ca, { cn: SIM_SERVER_NAMES.bbs, sans });
  const reuse = (cn: string) => {
    const c = issueCert(ca, { cn, sans, key: first.key });
    return { cert: c.cert, key: c.key };
  };
  const servers: ServerCerts = {
    bbs: { cert: first.cert, key: first.key },
    policy: reuse(SIM_SERVER_NAMES.policy),
    cc: reuse(SIM_SERVER_NAMES.ccInternal),
    uaa: reuse(SIM_SERVER_NAMES.uaa),
    capi: reuse(SIM_SERVER_NAMES.capi),
  };
  let clientCert = given?.clientCert;
  let clientKey = given?.clientKey;
  if (!clientCert || !clientKey) {
    const c = issueCert(ca, { cn: 'cfnet-client', usage: 'client', key: first.key });
    clientCert = c.cert;
    clientKey = c.key;
  }
  return {
    tls: {
      caCert: ca.cert,
      caKey: ca.key,
      clientCert,
      clientKey,
      serverCert: first.cert,
      serverKey: first.key,
    },
    servers,
  };
}

export async function startSimulator(opts: SimOptions = {}): Promise<SimHandle> {
  const seed = opts.seed ?? 1;
  const size = opts.size ?? 'small';
  const host = opts.host ?? '127.0.0.1';
  const ports = opts.ports ?? {};
  const overrides: SizeOverrides = {};
  for (const k of [
    'cells',
    'containers',
    'apps',
    'spaces',
    'asgs',
    'asgRules',
    'policies',
    'orgs',
    'tasks',
  ] as const) {
    if (opts[k] !== undefined) overrides[k] = opts[k];
  }
  const world = generateWorld(seed, size, overrides);
  const { tls, servers } = buildTls(opts, host);
  if (opts.certDir) {
    const files = writePem(opts.certDir, {
      'ca.crt': tls.caCert,
      ...(tls.caKey ? { 'ca.key': tls.caKey } : {}),
      'client.crt': tls.clientCert,
      'client.key': tls.clientKey,
      'server.crt': servers.bbs.cert,
      'server.key': servers.bbs.key,
    });
    tls.files = {
      ca: files['ca.crt'] as string,
      cert: files['client.crt'] as string,
      key: files['client.key'] as string,
      caKey: files['ca.key'],
      serverCert: files['server.crt'],
      serverKey: files['server.key'],
    };
  }

  const faults = new FaultState();
  const tokens = new TokenStore();
  const actuals = new ActualEncoder(world, opts.actualLrpMetricTags ?? true);
  const hub = new EventHub(world, actuals, opts.eventBufferLimit);
  const engine = new ChangeEngine(world, hub, seed);
  faults.hooks = {
    dropEventStreams: () => hub.dropAll(),
    injectEvent: (stream, event) => hub.inject(stream, event),
    expireTokens: () => tokens.expireAll(),
  };
  const uaaClient: UaaClient = {
    id: 'cfnet-network-policy',
    secret: randomBytes(12).toString('hex'),
    scopes: ['cloud_controller.admin_read_only', 'uaa.resource'],
  };
  const uaaAdmin: UaaClient = {
    id: 'cfnet-sim-admin',
    secret: randomBytes(12).toString('hex'),
    scopes: ['cloud_controller.admin', 'uaa.resource'],
  };
  const readOnly: UaaClient = {
    id: 'cfnet-sim-reader',
    secret: 'reader-secret',
    scopes: ['cloud_controller.read'],
  };

  const started: RunningService[] = [];
  const churns = new Map<string, ChurnRun>();
  try {
    let uaaUrl = '';
    const [bbs, uaa, ccInternal, policy] = await Promise.all([
      startBbs({
        host,
        port: ports.bbs ?? 0,
        tls: { ...servers.bbs, clientCa: tls.caCert },
        world,
        hub,
        actuals,
        faults,
      }),
      startUaa({
        host,
        port: ports.uaa ?? 0,
        tls: servers.uaa,
        clients: [uaaClient, uaaAdmin, readOnly],
        tokens,
        tokenTtlSeconds: opts.tokenTtlSeconds ?? 3600,
        faults,
      }),
      startCcInternal({
        host,
        port: ports.ccInternal ?? 0,
        tls: { ...servers.cc, clientCa: tls.caCert },
        world,
        faults,
      }),
      startPolicyServer({
        host,
        port: ports.policy ?? 0,
        tls: { ...servers.policy, clientCa: tls.caCert },
        world,
        faults,
      }),
    ]);
    started.push(bbs, uaa, ccInternal, policy);
    uaaUrl = uaa.url;
    const capi = await startCapi({
      host,
      port: ports.capi ?? 0,
      tls: servers.capi,
      world,
      engine,
      tokens,
      faults,
      v2: opts.capiV2 ?? true,
      uaaUrl: () => uaaUrl,
    });
    started.push(capi);
    const urls = {
      bbs: bbs.url,
      capi: capi.url,
      uaa: uaa.url,
      ccInternal: ccInternal.url,
      policyServer: policy.url,
      admin: '',
    };
    const admin = await startAdmin({
      host,
      port: ports.admin ?? 0,
      world,
      engine,
      faults,
      token: opts.adminToken,
      churns,
      info: () => ({
        urls,
        tlsFiles: tls.files ?? null,
        uaaClient: { id: uaaClient.id, secret: uaaClient.secret },
      }),
      extraSummary: () => ({
        eventStreams: hub.count,
        eventsEmitted: hub.emitted,
        requests: faults.requests,
      }),
    });
    started.push(admin);
    urls.admin = admin.url;

    let stopped = false;
    return {
      urls,
      tls,
      uaaClient: { id: uaaClient.id, secret: uaaClient.secret },
      uaaAdminClient: { id: uaaAdmin.id, secret: uaaAdmin.secret },
      world,
      apply: (change) => engine.apply(change),
      runChurn: (o) => {
        const run = runChurn(world, engine, o);
        churns.set(run.id, run);
        return run;
      },
      faults,
      summary: () => summarize(world),
      hash: () => worldHash(world),
      eventStreams: () => hub.count,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        for (const run of churns.values()) run.stop();
        engine.stop();
        hub.closeAll();
        await Promise.all(started.map((s) => s.close()));
      },
    };
  } catch (err) {
    engine.stop();
    await Promise.all(started.map((s) => s.close()));
    throw err;
  }
}
