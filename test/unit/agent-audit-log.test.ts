/**
 * The audit log's plumbing without a kernel: a syslog file as the source (appended to, rotated,
 * truncated as logrotate does), the output file rotated under it, the bounded queue and the
 * metrics. Real kernel lines with real traffic: test/e2e/agent-audit-log.test.ts.
 */
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { AuditLog } from '../../src/agent/audit-log.js';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { AGENT_METRICS } from '../../src/agent/metrics.js';
import { createLogger } from '../../src/lib/log.js';
import { createRegistry, type Registry } from '../../src/lib/metrics.js';
import type { CellContainer, CellRuleSet } from '../../src/model/types.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { waitUntil } from '../helpers/wait.js';

const A1: CellContainer = {
  handle: '88a1370b-2215-4058-a4ca-7fc5b77a0d52',
  ip: '10.255.1.1',
  appGuid: 'app-a',
  spaceGuid: 'space-a',
  orgGuid: 'org-a',
  workload: 'app',
  tag: 8,
  egress: 'h',
  netIn: [],
};

const RULES: CellRuleSet = {
  cellId: 'cell-1',
  version: 1,
  containers: [A1],
  asgSets: { h: [] },
  c2c: [],
  config: DEFAULT_CELL_CONFIG,
};

/** A kern.log line (rsyslog) with a real nf_log message of cfnet's, destination port `dpt`. */
function kernLine(dpt: number, handle = A1.handle, ip = A1.ip): string {
  return `2026-12-07T06:39:05.251123+00:00 cell-1 kernel: [  808.522813] DENY_${handle} IN=cfnfbe3d5c93b4e OUT=eth0 MAC=aa:aa:0a:ff:01:01:ee:ee:0a:ff:01:01:08:00 SRC=${ip} DST=192.168.77.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=55122 DF PROTO=TCP SPT=57854 DPT=${dpt} WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x20008 \n`;
}

async function metric(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const m = (await registry.getSingleMetric(name)?.get())?.values ?? [];
  return m
    .filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))
    .reduce((sum, v) => sum + v.value, 0);
}

describe('audit log (file source, rotation, bounded queue, metrics)', () => {
  let dir: string;
  let kern: string;
  let out: string;
  let registry: Registry;
  let audit: AuditLog | null;
  let rules: CellRuleSet | null;

  const written = async (): Promise<
    { data: { source: { container_id: string; app_guid: string }; packet: { dst_port: number } } }[]
  > =>
    (await readFile(out, 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l));
  const ports = async () => (await written()).map((l) => l.data.packet.dst_port);

  /** What the audit log logged (pino JSON lines). */
  let logged: Record<string, unknown>[] = [];

  function start(opts: { maxQueued?: number } = {}): Promise<void> {
    audit = new AuditLog({
      kernelLog: kern,
      file: out,
      timestampFormat: 'rfc3339',
      host: () => ({ ip: '198.51.100.11', guid: 'cell-1' }),
      ruleSet: () => rules,
      log: createLogger(
        'test',
        { level: 'info' },
        new Writable({
          write(chunk, _enc, done) {
            logged.push(JSON.parse(String(chunk)) as Record<string, unknown>);
            done();
          },
        }),
      ),
      registry,
      pollMs: 20,
      sink: { checkMs: 30, ...(opts.maxQueued ? { maxQueued: opts.maxQueued } : {}) },
    });
    return audit.start();
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cfnet-audit-'));
    kern = join(dir, 'kern.log');
    out = join(dir, 'sys', 'log', 'iptables-logger', 'iptables.log');
    registry = createRegistry({ processMetrics: false });
    rules = RULES;
    audit = null;
    logged = [];
  });
  afterEach(async () => {
    await audit?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('starts at the end of the kernel log and writes each new line of cfnet, enriched', async () => {
    await writeFile(kern, kernLine(1));
    await start();
    await appendFile(
      kern,
      `${kernLine(2)}Dec  7 06:39:05 cell-1 kernel: usb 1-1: new device\n${kernLine(3)}`,
    );
    await waitUntil('two lines written', async () => (await ports()).length === 2, 3000, 20);
    assert.deepEqual(await ports(), [2, 3], 'the line from before the start is not reported');
    const [first] = await written();
    assert.deepEqual(first!.data.source, {
      container_id: A1.handle,
      app_guid: 'app-a',
      space_guid: 'space-a',
      organization_guid: 'org-a',
      host_ip: '198.51.100.11',
      host_guid: 'cell-1',
    });
    assert.equal(await metric(registry, AGENT_METRICS.auditLinesWritten), 2);
  });

  it('enriches from the rule set in force when the line is read (a new rule set is picked up)', async () => {
    rules = null;
    await start();
    await appendFile(kern, kernLine(1));
    await waitUntil('line 1', async () => (await ports()).length === 1, 3000, 20);
    rules = RULES;
    await appendFile(kern, kernLine(2));
    await waitUntil('line 2', async () => (await ports()).length === 2, 3000, 20);
    assert.deepEqual(
      (await written()).map((l) => l.data.source.app_guid),
      ['', 'app-a'],
    );
  });

  it('follows the kernel log through rotation by rename, truncation, and a file created late', async () => {
    await start(); // no kern.log yet
    await writeFile(kern, kernLine(1));
    await waitUntil(
      'line from the file created after the start',
      async () => (await ports()).length === 1,
      3000,
      20,
    );
    await appendFile(kern, kernLine(2));
    await rename(kern, `${kern}.1`);
    await writeFile(kern, kernLine(3));
    await waitUntil('lines before and after the rename', async () => (await ports()).length === 3, 3000, 20);
    await truncate(kern, 0);
    await new Promise((r) => setTimeout(r, 100));
    await appendFile(kern, kernLine(4));
    await waitUntil('line after copytruncate', async () => (await ports()).length === 4, 3000, 20);
    assert.deepEqual(await ports(), [1, 2, 3, 4]);
  });

  it('opens its output again when the file is rotated away or removed', async () => {
    await writeFile(kern, '');
    await start();
    await appendFile(kern, kernLine(1));
    await waitUntil('line 1', async () => (await ports()).length === 1, 3000, 20);
    await rename(out, `${out}.1`);
    await new Promise((r) => setTimeout(r, 120)); // > checkMs: the sink sees the new inode
    await appendFile(kern, kernLine(2));
    await waitUntil(
      'line 2 in a new file',
      async () => (await ports()).length === 1 && (await ports())[0] === 2,
      3000,
      20,
    );
    await rm(out);
    await new Promise((r) => setTimeout(r, 120));
    await appendFile(kern, kernLine(3));
    await waitUntil('line 3 in a re-created file', async () => (await ports())[0] === 3, 3000, 20);
    assert.deepEqual(JSON.parse(await readFile(`${out}.1`, 'utf8')).data.packet.dst_port, 1);
  });

  it('says, once, that the kernel log file is missing while it waits for it', async () => {
    await start();
    await new Promise((r) => setTimeout(r, 150)); // several polls
    const warnings = logged.filter((l) => l.msg === 'kernel log source failed');
    assert.equal(warnings.length, 1);
    assert.equal((warnings[0]!.err as { code: string }).code, 'ENOENT');
    assert.equal(warnings[0]!.source, kern);
  });

  it('drops and counts lines beyond its queue instead of growing', async () => {
    await writeFile(kern, '');
    await start({ maxQueued: 5 });
    // one read of the source hands over all of them at once: more than the queue holds
    await appendFile(kern, Array.from({ length: 50 }, (_, i) => kernLine(i + 1)).join(''));
    await waitUntil(
      'every line written or dropped',
      async () =>
        (await metric(registry, AGENT_METRICS.auditLinesWritten)) +
          (await metric(registry, AGENT_METRICS.auditLinesDropped, { reason: 'queue_full' })) ===
        50,
      3000,
      20,
    );
    const dropped = await metric(registry, AGENT_METRICS.auditLinesDropped, { reason: 'queue_full' });
    assert.ok(dropped > 0, 'some lines dropped');
    assert.equal((await ports()).length, 50 - dropped);
  });
});

describe('audit log settings', () => {
  const REQUIRED = {
    cellId: 'cell-1',
    controllerUrl: 'https://controller.example:4190/',
    caCert: '/etc/ca.crt',
    clientCert: '/etc/client.crt',
    clientKey: '/etc/client.key',
  };

  it("defaults: off, /dev/kmsg, Silk's file and timestamp format", () => {
    const c = resolveAgentConfig({ file: REQUIRED });
    assert.deepEqual(
      [c.auditLog, c.auditKernelLog, c.auditLogFile, c.auditTimestampFormat],
      [false, '/dev/kmsg', '/var/vcap/sys/log/iptables-logger/iptables.log', 'rfc3339'],
    );
  });

  it('refuses a timestamp format Silk does not have and relative paths, naming the setting', () => {
    assert.throws(
      () => resolveAgentConfig({ file: { ...REQUIRED, auditTimestampFormat: 'unix' } }),
      /auditTimestampFormat/,
    );
    assert.throws(
      () => resolveAgentConfig({ file: { ...REQUIRED, auditLogFile: 'iptables.log' } }),
      /auditLogFile/,
    );
    assert.throws(
      () => resolveAgentConfig({ file: REQUIRED, env: { CFNET_AGENT_AUDIT_KERNEL_LOG: 'kern.log' } }),
      /auditKernelLog/,
    );
    const on = resolveAgentConfig({ file: REQUIRED, env: { CFNET_AGENT_AUDIT_LOG: 'true' } });
    assert.equal(on.auditLog, true);
  });
});
