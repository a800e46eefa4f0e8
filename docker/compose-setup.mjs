#!/usr/bin/env node
// Helpers for docker-compose.yml (run inside the cfnet image, or from a built checkout):
//
//   node docker/compose-setup.mjs certs <dir> <cell-id>...
//       A throw-away CA for the agent API plus the controller's server certificate and one client
//       certificate per cell (common name = cell id). Keeps existing files (restarts reuse them):
//       <dir>/ca.crt, ca.key, controller.crt, controller.key, cells/<cell-id>/client.crt, client.key
//       Also a generated operator token for the dashboard, <dir>/operator-token (0600), printed on
//       stdout so that `docker compose logs setup` shows it.
//
//   node docker/compose-setup.mjs controller-config <sim.jsonl> <certs-dir> <sim-certs-dir>
//       Prints the controller's JSON config (the keys of the BOSH job's controller.json) for the
//       simulator that wrote <sim.jsonl> (its `sim-started` line carries ports and the UAA secret).
//       The simulator is reached by the CF names its certificates carry (compose network aliases).
//       Environment: REDIS_URL (default redis://redis:6379/0). The operator token is read from
//       <certs-dir>/operator-token.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createCa, issueCert, writePem } from '../dist/lib/tls.js';

/** Host names the simulator's server certificates carry (src/sim SIM_SERVER_NAMES). */
export const SIM_NAMES = {
  bbs: 'bbs.service.cf.internal',
  policyServer: 'policy-server.service.cf.internal',
  ccInternal: 'cloud-controller-ng.service.cf.internal',
  uaa: 'uaa.service.cf.internal',
  capi: 'api.sim.internal',
};
export const CONTROLLER_NAMES = ['controller', 'cfnet-controller.service.cf.internal', 'localhost'];

function certs(dir, cells) {
  if (!existsSync(join(dir, 'ca.crt'))) {
    const ca = createCa({ cn: 'cfnet compose CA' });
    const server = issueCert(ca, { cn: CONTROLLER_NAMES[1], sans: CONTROLLER_NAMES, usage: 'server' });
    writePem(dir, { 'ca.crt': ca.cert, 'ca.key': ca.key, 'controller.crt': server.cert, 'controller.key': server.key });
  }
  const ca = { cert: readFileSync(join(dir, 'ca.crt'), 'utf8'), key: readFileSync(join(dir, 'ca.key'), 'utf8') };
  for (const cell of cells) {
    const cellDir = join(dir, 'cells', cell);
    if (existsSync(join(cellDir, 'client.crt'))) continue;
    // The controller takes the cell id from the SAN <cell>.cell.cfnet (else the CN).
    const c = issueCert(ca, { cn: cell, sans: [`${cell}.cell.cfnet`], usage: 'client' });
    writePem(cellDir, { 'client.crt': c.cert, 'client.key': c.key, 'ca.crt': ca.cert });
  }
  process.stdout.write(`${JSON.stringify({ event: 'certs', dir, cells })}\n`);
  const tokenFile = join(dir, 'operator-token');
  if (!existsSync(tokenFile)) writeFileSync(tokenFile, `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
  const token = readFileSync(tokenFile, 'utf8').trim();
  process.stdout.write(`${JSON.stringify({ event: 'operator-token', token, dashboard: 'http://127.0.0.1:4191/dashboard' })}\n`);
  process.stdout.write(`cfnet operator token (dashboard http://127.0.0.1:4191/dashboard): ${token}\n`);
}

function port(url) {
  return new URL(url).port;
}

function controllerConfig(simJsonl, certsDir, simCerts) {
  const started = readFileSync(simJsonl, 'utf8')
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l))
    .find((e) => e.event === 'sim-started');
  if (!started) throw new Error(`${simJsonl} holds no sim-started line yet`);
  const u = started.urls;
  // Settings of `cfnet controller --config` (src/controller/settings.ts), as the BOSH job renders them.
  const config = {
    redisUrl: process.env.REDIS_URL || 'redis://redis:6379/0',
    redisNamespace: '{cfnet}',
    instanceId: process.env.HOSTNAME || 'controller',
    campaign: true,
    leaseMs: 10000,
    workerConcurrency: 4,
    bbsUrl: `https://${SIM_NAMES.bbs}:${port(u.bbs)}`,
    bbsCaCert: join(simCerts, 'ca.crt'),
    bbsClientCert: join(simCerts, 'client.crt'),
    bbsClientKey: join(simCerts, 'client.key'),
    capiUrl: `https://${SIM_NAMES.capi}:${port(u.capi)}`,
    capiCaCert: join(simCerts, 'ca.crt'),
    uaaUrl: `https://${SIM_NAMES.uaa}:${port(u.uaa)}`,
    uaaCaCert: join(simCerts, 'ca.crt'),
    uaaClientId: started.uaaClient.id,
    uaaClientSecret: started.uaaClient.secret,
    ccInternalUrl: `https://${SIM_NAMES.ccInternal}:${port(u.ccInternal)}`,
    ccInternalCaCert: join(simCerts, 'ca.crt'),
    ccInternalClientCert: join(simCerts, 'client.crt'),
    ccInternalClientKey: join(simCerts, 'client.key'),
    asgCheckIntervalMs: 5000,
    policyServerUrl: `https://${SIM_NAMES.policyServer}:${port(u.policyServer)}`,
    policyServerCaCert: join(simCerts, 'ca.crt'),
    policyServerClientCert: join(simCerts, 'client.crt'),
    policyServerClientKey: join(simCerts, 'client.key'),
    policyPollIntervalMs: 1000,
    policyFullListIntervalMs: 300000,
    apiListen: '0.0.0.0:4190',
    apiCaCert: join(certsDir, 'ca.crt'),
    apiCert: join(certsDir, 'controller.crt'),
    apiKey: join(certsDir, 'controller.key'),
    apiMaxWaitSeconds: 60,
    operatorListen: '0.0.0.0:4191',
    overlayNetwork: '10.255.0.0/16',
    subnetPrefixLength: 24,
    leaseTtlHours: 168,
    dnsServers: ['169.254.0.2'],
    hostTcpServices: [],
    hostUdpServices: [],
    denyNetworksAlways: [],
    denyNetworksRunning: [],
    denyNetworksStaging: [],
    asgLogging: false,
    c2cLogging: false,
    deniedLogsPerSec: 1,
    acceptedUdpLogsPerSec: 100,
    logLevel: 'info',
  };
  const tokenFile = join(certsDir, 'operator-token');
  if (existsSync(tokenFile)) config.operatorToken = readFileSync(tokenFile, 'utf8').trim();
  process.stdout.write(`${JSON.stringify(config, null, 2)}\n`);
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === 'certs' && args.length >= 1) certs(args[0], args.slice(1));
else if (cmd === 'controller-config' && args.length === 3) controllerConfig(args[0], args[1], args[2]);
else {
  process.stderr.write(
    'usage: compose-setup.mjs certs <dir> <cell-id>... | controller-config <sim.jsonl> <certs-dir> <sim-certs-dir>\n',
  );
  process.exit(2);
}
