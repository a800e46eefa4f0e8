import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { AGENT_SETTINGS, envName, flagName, resolveAgentConfig } from '../../src/agent/config.js';
import { SettingsError } from '../../src/lib/settings/index.js';

const REQUIRED = {
  cellId: 'cell-1',
  controllerUrl: 'https://controller.example:4190/',
  caCert: '/etc/ca.crt',
  clientCert: '/etc/client.crt',
  clientKey: '/etc/client.key',
};

describe('agent config', () => {
  it('applies defaults and normalises the URL', () => {
    const c = resolveAgentConfig({ file: REQUIRED });
    assert.equal(c.controllerUrl, 'https://controller.example:4190');
    assert.equal(c.vni, 1);
    assert.equal(c.vtepPort, 4789);
    assert.equal(c.vtepName, 'cfnet-vtep');
    assert.equal(c.nftTable, 'cfnet');
    assert.equal(c.longPollTimeoutSeconds, 60);
    assert.equal(c.underlayIp, '');
  });

  it('flag beats environment beats file', () => {
    const file = { ...REQUIRED, vni: 7, logLevel: 'warn' };
    const env = { CFNET_AGENT_VNI: '8', CFNET_AGENT_LOG_LEVEL: 'debug' };
    assert.equal(resolveAgentConfig({ file, env }).vni, 8);
    assert.equal(resolveAgentConfig({ file, env, flags: { vni: '9' } }).vni, 9);
    assert.equal(resolveAgentConfig({ file, env }).logLevel, 'debug');
    assert.equal(resolveAgentConfig({ file }).vni, 7);
  });

  it('names the bad setting and its source', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...REQUIRED, vni: 0 }, 'vni'],
      [{ ...REQUIRED, vtepPort: 70000 }, 'vtepPort'],
      [{ ...REQUIRED, controllerUrl: 'http://plain:80' }, 'controllerUrl'],
      [{ ...REQUIRED, underlayIp: '10.0.0' }, 'underlayIp'],
      [{ ...REQUIRED, vtepName: 'a-very-long-interface-name' }, 'vtepName'],
      [{ ...REQUIRED, stateDir: 'relative/dir' }, 'stateDir'],
      [{ ...REQUIRED, nftTable: 'filter' }, 'nftTable'],
      [{ ...REQUIRED, cellId: 'bad id' }, 'cellId'],
      [{ ...REQUIRED, logLevel: 'loud' }, 'logLevel'],
      [{ ...REQUIRED, typo: 1 }, 'typo'],
      [{ ...REQUIRED, reconnectMinMs: 5000, reconnectMaxMs: 100 }, 'reconnectMaxMs'],
    ];
    for (const [file, field] of cases) {
      assert.throws(
        () => resolveAgentConfig({ file }),
        (e: unknown) => e instanceof SettingsError && e.key === field,
        field,
      );
    }
    const { cellId: _, ...noCell } = REQUIRED;
    assert.throws(
      () => resolveAgentConfig({ file: noCell }),
      (e: unknown) => e instanceof SettingsError && e.key === 'cellId' && /--cell-id/.test(e.message),
    );
    assert.throws(
      () => resolveAgentConfig({ file: REQUIRED, env: { CFNET_AGENT_VNI: 'x' } }),
      (e: unknown) => e instanceof SettingsError && /CFNET_AGENT_VNI/.test(e.message),
    );
  });

  it('flag and environment names follow the keys', () => {
    assert.equal(flagName('leasePollIntervalSeconds'), '--lease-poll-interval-seconds');
    assert.equal(envName('leasePollIntervalSeconds'), 'CFNET_AGENT_LEASE_POLL_INTERVAL_SECONDS');
    for (const s of AGENT_SETTINGS) assert.ok(s.describe.length > 10, s.key);
  });

  it("accepts every key the BOSH job's agent.json template renders", () => {
    const erb = readFileSync(
      new URL('../../bosh/jobs/cfnet-agent/templates/agent.json.erb', import.meta.url),
      'utf8',
    );
    const keys = [...erb.matchAll(/^\s*'([A-Za-z]+)' =>/gm)].map((m) => m[1]!);
    assert.ok(keys.length > 10, 'template keys found');
    const known = new Set(AGENT_SETTINGS.map((s) => s.key as string));
    for (const k of keys) assert.ok(known.has(k), `agent setting ${k} used by the BOSH job`);
  });
});
