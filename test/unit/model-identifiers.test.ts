/**
 * The shared validators (src/model/identifiers): one definition of what a handle, cell id, guid,
 * port, tag and container address may be, used by the controller's ingest, the agent API, the agent
 * and the dataplane. Property tests: everything accepted is safe to put in nft text and Redis keys;
 * everything the dataplane would refuse is refused here too.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { IngestGate } from '../../src/controller/sources/gate.js';
import { RejectionRecorder } from '../../src/controller/sources/rejections.js';
import { desiredState } from '../../src/dataplane/desired.js';
import { ValidationError } from '../../src/lib/errors.js';
import {
  checkCellId,
  checkContainerIp,
  checkGuid,
  checkHandle,
  checkPort,
  checkTag,
  containerIpv4,
  isHandle,
  isPort,
} from '../../src/model/identifiers.js';
import { parseCidr } from '../../src/model/ip.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { container, ruleSetOf } from '../helpers/fixtures.js';

const ALNUM = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
const alnum = fc.constantFrom(...ALNUM.split(''));
const rest = fc.constantFrom(...`${ALNUM}_.:-`.split(''));
const restNoColon = fc.constantFrom(...`${ALNUM}_.-`.split(''));
const validHandle = fc
  .tuple(alnum, fc.array(rest, { maxLength: 127 }))
  .map(([first, tail]) => first + tail.join(''));
const validCellId = fc
  .tuple(alnum, fc.array(restNoColon, { maxLength: 127 }))
  .map(([first, tail]) => first + tail.join(''));

/** A rule set with one container of `handle` (what the agent would render). */
function oneContainer(handle: string): CellRuleSet {
  return ruleSetOf([container(handle, '10.255.0.2')]);
}

describe('identifiers: handles', () => {
  it('every handle of 1-128 characters of [A-Za-z0-9_.:-] starting alphanumeric is accepted (`:` names a CNI attachment), and the dataplane renders it', () => {
    fc.assert(
      fc.property(validHandle, (h) => {
        assert.equal(checkHandle('handle', h), h);
        desiredState(oneContainer(h));
      }),
      { numRuns: 300 },
    );
  });

  it('anything else is refused — and refused by the dataplane as well (one definition)', () => {
    const invalid = fc.oneof(
      fc.string({ maxLength: 200 }).filter((s) => !/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/.test(s)),
      validHandle.map((h) => `${h}/x`),
      validHandle.map((h) => `${h}"`),
      fc.constant(`a${'b'.repeat(128)}`),
      fc.constant('evil";flush ruleset;"'),
      fc.constant(''),
    );
    fc.assert(
      fc.property(invalid, (h) => {
        assert.equal(isHandle(h), false);
        assert.throws(() => checkHandle('instance_guid', h), ValidationError);
        assert.throws(() => desiredState(oneContainer(h)), ValidationError);
      }),
      { numRuns: 300 },
    );
  });

  it('a refusal names the field and says why, bounded for long input', () => {
    assert.throws(
      () => checkHandle('instance_guid', 'x'.repeat(5000)),
      (err: ValidationError) => err.field === 'instance_guid' && /got 5000 characters/.test(err.message),
    );
    assert.throws(() => checkHandle('h', 42), /got a number/);
  });

  it('cell ids and guids: the same class without `:` (they are parts of Redis keys)', () => {
    fc.assert(
      fc.property(validCellId, (h) => {
        assert.equal(checkCellId('cell', h), h);
        assert.equal(checkGuid('guid', h), h);
      }),
    );
    assert.throws(() => checkCellId('cell', 'cell:1'), ValidationError);
    assert.throws(() => checkGuid('guid', 'a b'), ValidationError);
    assert.equal(checkGuid('guid', '', true), '');
    assert.throws(() => checkGuid('guid', ''), ValidationError);
  });
});

describe('identifiers: ports and tags', () => {
  it('ports are exactly the integers 1..65535 (0..65535 where Garden allows 0)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), (p) => {
        assert.equal(checkPort('p', p), p);
        assert.ok(isPort(p, 0));
      }),
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ max: 0 }),
          fc.integer({ min: 65536 }),
          fc.double({ noInteger: true }),
          fc.string(),
          fc.constant(null),
        ),
        (v) => {
          assert.equal(isPort(v), false);
          assert.throws(() => checkPort('p', v), ValidationError);
        },
      ),
    );
    assert.equal(checkPort('p', 0, 0), 0);
  });

  it('policy tags fit the 16-bit VXLAN GBP id: 1..65535', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 0xffff }), (t) => assert.equal(checkTag('t', t), t)));
    for (const bad of [0, 0x10000, -1, 1.5, '1']) assert.throws(() => checkTag('t', bad), ValidationError);
  });
});

describe('identifiers: container addresses and CIDRs', () => {
  const octet = fc.integer({ min: 0, max: 255 });
  const v4 = fc.tuple(octet, octet, octet, octet).map((o) => o.join('.'));

  it('every dotted-quad IPv4 address is a container address, in canonical form', () => {
    fc.assert(
      fc.property(v4, (ip) => {
        assert.equal(checkContainerIp('ip', ip), ip);
        assert.equal(containerIpv4(ip), ip);
      }),
    );
  });

  it('IPv6, leading zeros, CIDRs, ranges and junk are not container addresses', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.ipV6(),
          v4.map((ip) => `${ip}/32`),
          v4.map((ip) => `0${ip}`),
          v4.map((ip) => `${ip}-${ip}`),
          fc.string().filter((s) => !/^\d{1,3}(\.\d{1,3}){3}$/.test(s)),
        ),
        (text) => {
          assert.equal(containerIpv4(text), null);
          assert.throws(() => checkContainerIp('ip', text), ValidationError);
        },
      ),
    );
  });

  it('a CIDR is an address and a prefix within its family; the network is its canonical form', () => {
    fc.assert(
      fc.property(v4, fc.integer({ min: 0, max: 32 }), (ip, len) => {
        const c = parseCidr(`${ip}/${len}`);
        assert.equal(c.family, 4);
        assert.equal(c.prefix, len);
        assert.equal(parseCidr(`${c.network}/${len}`).network, c.network, 'idempotent');
      }),
    );
    fc.assert(
      fc.property(v4, fc.integer({ min: 33, max: 999 }), (ip, len) => {
        assert.throws(() => parseCidr(`${ip}/${len}`), ValidationError);
      }),
    );
    for (const bad of ['10.0.0.0', '10.0.0.0/', '10.0.0.0/8/8', '10.0.0.0/+8', '::/129'])
      assert.throws(() => parseCidr(bad), ValidationError, bad);
  });
});

describe('ingest gate: agent reports', () => {
  it('an inventory entry with a handle the dataplane refuses is left out by itself and recorded', () => {
    const seen: string[] = [];
    const gate = new IngestGate(
      new RejectionRecorder({ onRejected: (r) => seen.push(...r.map((x) => x.subject)) }),
    );
    const entries = gate.inventory('cell-1', [
      { handle: 'good-1', ip: '10.255.0.2', metadata: { policy_group_id: 'app-1' } },
      { handle: 'bad/handle', ip: '10.255.0.3' },
      { handle: 'ctr-9:eth1', ip: '10.255.0.7' },
      { handle: 'good-2', ip: '10.255.0.4:80' },
      { handle: 'good-3', ip: '10.255.0.5', metadata: { space_id: 'sp ace' } },
      { handle: 'good-1', ip: '10.255.0.6' },
      'not an object',
    ]);
    assert.deepEqual(
      entries.map((e) => [e.handle, e.ip, e.appGuid]),
      [
        ['good-1', '10.255.0.2', 'app-1'],
        ['ctr-9:eth1', '10.255.0.7', ''],
      ],
    );
    assert.deepEqual(seen, ['bad/handle', 'good-2', 'good-3', 'good-1', '(none)']);
  });

  it('each distinct problem is reported once; every occurrence is counted', () => {
    let reported = 0;
    let now = 0;
    const rec = new RejectionRecorder({
      onRejected: (r) => (reported += r.length),
      now: () => now,
      repeatAfterMs: 1000,
    });
    const gate = new IngestGate(rec);
    for (let i = 0; i < 5; i++) gate.inventory('cell-1', [{ handle: 'a/b', ip: '10.0.0.1' }]);
    assert.equal(reported, 1);
    gate.inventory('cell-2', [{ handle: 'a/b', ip: '10.0.0.1' }]);
    assert.equal(reported, 2, 'another cell is another problem');
    now = 1000;
    gate.inventory('cell-1', [{ handle: 'a/b', ip: '10.0.0.1' }]);
    assert.equal(reported, 3, 'reported again after repeatAfterMs');
  });
});
