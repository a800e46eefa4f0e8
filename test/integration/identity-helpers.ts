/**
 * A signing controller for the identity tests: a simulated BBS that places each test cell at a
 * loopback address of its own (its rep address), and a controller whose agent API signs cell
 * certificates with a fresh agent CA. Cells are told apart by their source addresses.
 */
import { Controller } from '../../src/controller/controller.js';
import { controllerConfig } from '../../src/controller/settings.js';
import type { Logger } from '../../src/lib/log.js';
import type { Registry } from '../../src/lib/metrics.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import { type CertificateAuthority, createCa, issueCert } from '../../src/lib/tls.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { makeCell } from '../../src/sim/generate.js';
import { type SimHandle, startSimulator } from '../../src/sim/index.js';
import { REDIS_URL, testNamespace } from './controller-helpers.js';

export interface IdentityFoundation {
  sim: SimHandle;
  ca: CertificateAuthority;
  ctl: Controller;
  /** The agent API, dialled on 127.0.0.1. */
  url: string;
  stop(): Promise<void>;
}

export async function startIdentityFoundation(opts: {
  label: string;
  cells: { id: string; ip: string }[];
  ttlMs: number;
  bootstrapSecret: string;
  maxWaitSeconds: number;
  logger: Logger;
  registry?: Registry;
}): Promise<IdentityFoundation> {
  const ns = testNamespace(opts.label);
  const sim = await startSimulator({ seed: 3, size: 'small' });
  for (const [i, c] of opts.cells.entries()) {
    sim.world.addCell({
      ...makeCell(40 + i, 50),
      id: c.id,
      address: c.ip,
      repAddress: `http://${c.ip}:1800`,
    });
  }
  const ca = createCa({ cn: 'cfnet agent CA' });
  const server = issueCert(ca, { cn: 'cfnet-controller', sans: ['localhost', '127.0.0.1'] });
  const ctl = new Controller(
    controllerConfig({
      redisUrl: REDIS_URL,
      namespace: ns,
      campaign: false,
      cellConfig: DEFAULT_CELL_CONFIG,
      bbs: {
        url: sim.urls.bbs,
        tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      },
      // every address, so that requests from 127.0.0.11 etc. reach it
      api: {
        host: '0.0.0.0',
        port: 0,
        tls: { ca: ca.cert, cert: server.cert, key: server.key },
        maxWaitSeconds: opts.maxWaitSeconds,
      },
      identity: { ca, ttlMs: opts.ttlMs, bootstrapSecret: opts.bootstrapSecret },
      leases: { overlayNetwork: '10.255.0.0/22', subnetPrefixLength: 24, ttlMs: 60_000, recoveryWindowMs: 0 },
      ...(opts.registry ? { registry: opts.registry } : {}),
      logger: opts.logger,
    }),
  );
  await ctl.start();
  return {
    sim,
    ca,
    ctl,
    url: ctl.apiUrl!.replace('0.0.0.0', '127.0.0.1'),
    async stop() {
      await ctl.stop();
      await sim.stop();
      const r = createRedis(REDIS_URL);
      await deleteKeys(r, `${ns}:*`);
      await closeRedis(r);
    },
  };
}
