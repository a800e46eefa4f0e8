// The agent's own key and certificate (src/agent/identity.ts) against a real controller whose
// certificates live 6 s: the agent bootstraps with its token, renews on its own before expiry
// without a restart, a long-poll in flight survives a rotation, and once the first certificate has
// expired the agent still talks to the controller (it really uses the new one).
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CellAgent } from '../../src/agent/agent.js';
import { ControllerClient } from '../../src/agent/client.js';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { AgentIdentity } from '../../src/agent/identity.js';
import type { Controller } from '../../src/controller/controller.js';
import { cellBootstrapToken } from '../../src/controller/identity/bootstrap-token.js';
import { createLogger, defaultLogger } from '../../src/lib/log.js';
import { exposition } from '../../src/lib/metrics.js';
import { type CertificateAuthority, describeCert } from '../../src/lib/tls.js';
import { type CellRuleSet, DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { dryRunAgentFiles } from '../helpers/dry-run-agent.js';
import { waitUntil } from '../helpers/wait.js';
import { type IdentityFoundation, startIdentityFoundation } from './identity-helpers.js';

const SECRET = 'agent-identity-test-secret-0123';
const TTL_MS = 6000;

function ruleSet(cellId: string, n: number): CellRuleSet {
  return {
    cellId,
    version: 0,
    containers: Array.from({ length: n }, (_, i) => ({
      handle: `h${i}`,
      ip: `10.255.1.${i + 2}`,
      appGuid: 'a',
      spaceGuid: 's',
      orgGuid: 'o',
      workload: 'app' as const,
      tag: null,
      egress: 'e',
      netIn: [],
    })),
    asgSets: { e: [] },
    c2c: [],
    config: DEFAULT_CELL_CONFIG,
  };
}

describe('agent certificates rotate without a restart and without dropping a long-poll', () => {
  const cells = [
    { id: 'cell-r', ip: '127.0.0.31' },
    { id: 'cell-s', ip: '127.0.0.32' },
  ];
  let f: IdentityFoundation;
  let ca: CertificateAuthority;
  let ctl: Controller;
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cfnet-agent-identity-'));
    f = await startIdentityFoundation({
      label: 'agent-identity',
      cells,
      ttlMs: TTL_MS,
      bootstrapSecret: SECRET,
      maxWaitSeconds: 30,
      logger: createLogger('ctl', { level: 'silent' }),
    });
    ca = f.ca;
    ctl = f.ctl;
    await writeFile(join(dir, 'ca.crt'), ca.cert);
  });

  after(async () => {
    await f.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('a dry-run agent bootstraps with its token, then renews on its own and keeps applying', async () => {
    const cell = cells[0]!;
    const cdir = join(dir, cell.id);
    const tokenFile = join(dir, `${cell.id}.token`);
    await writeFile(tokenFile, `${cellBootstrapToken(SECRET, cell.id)}\n`, { mode: 0o600 });
    const config = resolveAgentConfig({
      flags: {
        cellId: cell.id,
        controllerUrl: f.url,
        controllerServerName: 'localhost',
        controllerSourceAddress: cell.ip,
        caCert: join(dir, 'ca.crt'),
        clientCert: join(cdir, 'certs', 'client.crt'),
        clientKey: join(cdir, 'certs', 'client.key'),
        bootstrapTokenFile: tokenFile,
        underlayIp: cell.ip,
        longPollTimeoutSeconds: 20,
        statusIntervalSeconds: 30,
        leasePollIntervalSeconds: 30,
        reconnectMinMs: 100,
        reconnectMaxMs: 1000,
        ...dryRunAgentFiles(cdir),
      },
    });
    const agent = new CellAgent({ config, dryRun: true, logger: defaultLogger('agent-identity') });
    try {
      await agent.start();
      const first = describeCert(await readFile(config.clientCert, 'utf8'));
      assert.equal(first.cn, cell.id);
      assert.deepEqual(first.ip, [cell.ip]);
      assert.equal(statSync(config.clientKey).mode & 0o777, 0o600, 'the key is readable by the agent only');
      // the agent's lease is for its own address
      await waitUntil('lease', () => agent.status().lease?.underlayIp === cell.ip, 10_000, 10);
      // two renewals on its own schedule (60-75 % of 6 s), the same process throughout
      const serials = new Set([first.serial]);
      await waitUntil(
        'two renewals',
        () => {
          serials.add(describeCert(readFileSync(config.clientCert, 'utf8')).serial);
          return serials.size >= 3;
        },
        20_000,
        10,
      );
      // once the first certificate has expired, a change published now still reaches the agent
      await new Promise((r) => setTimeout(r, Math.max(0, first.notAfter.getTime() - Date.now() + 100)));
      const v = await ctl.ruleSetStore.write(ruleSet(cell.id, 2), null);
      await waitUntil('applied', () => agent.status().appliedVersion === v, 10_000, 10);
      const metrics = (await exposition(agent.registry)).body;
      assert.match(metrics, /cfnet_agent_certificate_renewals_total\{method="token",outcome="ok"[^}]*\} 1/);
      assert.match(
        metrics,
        /cfnet_agent_certificate_renewals_total\{method="certificate",outcome="ok"[^}]*\} [2-9]/,
      );
      assert.doesNotMatch(metrics, /cfnet_agent_controller_errors_total\{op="rules"/, 'no long-poll failed');
      assert.equal(agent.status().controllerReachable, true);
    } finally {
      await agent.stop();
    }
  });

  it('a long-poll in flight when the certificate is swapped completes with the change', async () => {
    const cell = cells[1]!;
    const client = new ControllerClient({
      baseUrl: f.url,
      cellId: cell.id,
      tls: { ca: ca.cert, cert: '', key: '', servername: 'localhost' },
      localAddress: cell.ip,
    });
    const tokenFile = join(dir, `${cell.id}.token`);
    await writeFile(tokenFile, cellBootstrapToken(SECRET, cell.id));
    const identity = new AgentIdentity({
      cellId: cell.id,
      certFile: join(dir, cell.id, 'client.crt'),
      keyFile: join(dir, cell.id, 'client.key'),
      tokenFile,
      client,
      logger: defaultLogger('identity'),
    });
    try {
      const first = await identity.ready(new AbortController().signal);
      const poll = client.rules(0, 25);
      // (over a second later: validity is counted in whole seconds)
      await new Promise((r) => setTimeout(r, 1200));
      const second = await identity.renew();
      assert.notEqual(second.serial, first.serial);
      assert.ok(second.notAfter >= first.notAfter + 1000);
      const v = await ctl.ruleSetStore.write(ruleSet(cell.id, 1), null);
      const answer = await poll;
      assert.equal(answer.kind, 'snapshot');
      assert.equal(answer.kind === 'snapshot' ? answer.ruleSet.version : 0, v);
      // after the first certificate expired, requests still pass: they carry the second one
      await new Promise((r) => setTimeout(r, Math.max(0, first.notAfter - Date.now() + 200)));
      const report = await client.putStatus({ appliedVersion: v });
      assert.equal(report.inventoryChanged, false);
    } finally {
      await client.destroy();
    }
  });
});
