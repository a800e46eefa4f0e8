import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { OverlayLease } from '../../src/agent/client.js';
import { DryRunDataplane, DryRunError, DryRunOverlay } from '../../src/agent/dry-run.js';
import { desiredOverlay, vtepMacOf } from '../../src/agent/overlay.js';
import { DataplaneStateError, desiredState, diffStates, renderStateFull } from '../../src/dataplane/index.js';
import { sampleRuleSet } from '../../src/dataplane/sample.js';
import { ValidationError } from '../../src/lib/errors.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';

const rs = (containers: number, version: number) => ({
  ...sampleRuleSet({ containers, asgSets: 3, rulesPerSet: 5, c2cPerContainer: 2, seed: 3 }),
  version,
});

describe('dry-run dataplane', () => {
  it('renders like the real one: full first, then the incremental diff, then nothing', async () => {
    const dp = new DryRunDataplane('cfnet');
    const a = rs(10, 1);
    const b = rs(12, 2);
    const full = await dp.apply(a);
    assert.equal(full.mode, 'full');
    assert.equal(full.bytes, renderStateFull(desiredState(a)).length);
    const inc = await dp.apply(b);
    assert.equal(inc.mode, 'incremental');
    const expected = diffStates(desiredState(a), desiredState(b));
    assert.equal(inc.bytes, expected.script.length);
    assert.deepEqual(inc.summary, expected.summary);
    assert.ok((inc.summary?.elementsAdded ?? 0) > 0);
    const again = await dp.apply(b);
    assert.equal(again.mode, 'noop');
    assert.equal(again.bytes, 0);
  });

  it('its "kernel" is what it rendered: no drift against it, drift against anything else', async () => {
    const dp = new DryRunDataplane('cfnet');
    await assert.rejects(dp.detectDrift(), DataplaneStateError);
    assert.equal((await dp.readBack()).exists, false);
    await dp.apply(rs(5, 1));
    assert.equal((await dp.detectDrift()).drift, false);
    assert.equal((await dp.detectDrift(rs(5, 9))).drift, false, 'the version is not table content');
    const other = rs(6, 2);
    assert.equal((await dp.detectDrift(other)).drift, true);
    const fixed = await dp.repair(other);
    assert.equal(fixed.repaired, true);
    assert.equal((await dp.detectDrift(other)).drift, false);
    assert.equal((await dp.repair()).repaired, false);
  });

  it('refuses an invalid rule set before "applying" and keeps the previous one', async () => {
    const dp = new DryRunDataplane('cfnet');
    const good = rs(3, 1);
    await dp.apply(good);
    const bad = { ...rs(3, 2), config: { ...DEFAULT_CELL_CONFIG, dnsServers: ['not-an-ip'] } };
    await assert.rejects(dp.apply(bad), ValidationError);
    assert.equal((await dp.detectDrift(good)).drift, false);
  });

  it('attaches no containers (there is no CNI executor in a dry run)', async () => {
    const dp = new DryRunDataplane('cfnet');
    await assert.rejects(dp.addContainer(), DryRunError);
    await assert.rejects(dp.removeContainer(), DryRunError);
  });
});

describe('dry-run overlay', () => {
  const lease = (cellId: string, n: number): OverlayLease => {
    const subnet = `10.255.${n}.0/24`;
    return { cellId, subnet, underlayIp: `198.51.100.${n}`, vtepMac: vtepMacOf(subnet), renewedAt: 1 };
  };
  const self = { cellId: 'c1', subnet: '10.255.1.0/24', underlayIp: '198.51.100.1' };

  it('counts the entries a real sync would change, and only those', async () => {
    const o = new DryRunOverlay('cfnet-vtep');
    const two = desiredOverlay([lease('c1', 1), lease('c2', 2), lease('c3', 3)], self).state;
    assert.equal(await o.sync(two), 6, 'route + neighbour + FDB entry per peer');
    assert.equal(await o.sync(two), 0);
    const one = desiredOverlay([lease('c1', 1), lease('c2', 2)], self).state;
    assert.equal(await o.sync(one), 3);
  });

  it('reports the device as created once, then unchanged, then updated', async () => {
    const o = new DryRunOverlay('cfnet-vtep');
    const spec = {
      name: 'cfnet-vtep',
      vni: 1,
      port: 4789,
      underlayIp: '198.51.100.1',
      underlayInterface: 'eth0',
      mtu: 1450,
      subnet: '10.255.1.0/24',
      mac: vtepMacOf('10.255.1.0/24'),
    };
    assert.deepEqual(await o.ensureDevice(spec), ['created (dry run)']);
    assert.deepEqual(await o.ensureDevice({ ...spec }), []);
    assert.deepEqual(await o.ensureDevice({ ...spec, mtu: 1400 }), ['updated (dry run)']);
  });
});
