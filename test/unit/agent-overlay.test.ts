import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { OverlayLease } from '../../src/agent/client.js';
import {
  cloneOverlay,
  desiredOverlay,
  diffOverlay,
  emptyOverlay,
  mergePeerLeases,
  missingPeers,
  type OverlayState,
  parseFdb,
  parseNeighs,
  parseRoutes,
  vtepIpOf,
  vtepMacOf,
} from '../../src/agent/overlay.js';
import { StateFile } from '../../src/agent/state.js';

function lease(cellId: string, n: number, renewedAt = 1): OverlayLease {
  const subnet = `10.255.${n}.0/24`;
  return { cellId, subnet, underlayIp: `198.51.100.${n}`, vtepMac: vtepMacOf(subnet), renewedAt };
}

/** What the kernel holds after running a diff's commands (a tiny model of ip/bridge). */
function runDiff(cur: OverlayState, lines: string[]): OverlayState {
  const s: OverlayState = { routes: new Map(cur.routes), neighs: new Map(cur.neighs), fdb: new Map(cur.fdb) };
  for (const l of lines) {
    const w = l.split(' ');
    if (w[0] === 'route' && w[1] === 'del') s.routes.delete(w[2]!);
    else if (w[0] === 'route' && w[1] === 'replace') s.routes.set(w[2]!, w[4]!);
    else if (w[0] === 'neigh' && w[1] === 'del') s.neighs.delete(w[2]!);
    else if (w[0] === 'neigh' && w[1] === 'replace') s.neighs.set(w[2]!, w[4]!);
    else if (w[0] === 'fdb' && w[1] === 'replace') s.fdb.set(w[2]!, w[6]!);
    else if (w[0] === 'fdb' && w[1] === 'del') s.fdb.delete(w[2]!);
    else throw new Error(`unexpected line ${l}`);
  }
  return s;
}

describe('overlay', () => {
  it("derives Silk's VTEP address and MAC from the subnet", () => {
    assert.equal(vtepIpOf('10.255.7.0/24'), '10.255.7.0');
    assert.equal(vtepMacOf('10.255.7.0/24'), 'ee:ee:0a:ff:07:00');
    assert.equal(vtepMacOf('10.32.4.0/22'), 'ee:ee:0a:20:04:00');
  });

  it('programs every other cell, skipping its own, clashing and duplicate leases', () => {
    const d = desiredOverlay(
      [
        lease('me', 1),
        lease('b', 2),
        lease('c', 3),
        { ...lease('d', 4), subnet: '10.255.2.0/24' }, // overlaps b (older renewal)
        { ...lease('e', 5), underlayIp: '198.51.100.1' }, // our own underlay address
      ],
      { cellId: 'me', subnet: '10.255.1.0/24', underlayIp: '198.51.100.1' },
    );
    assert.deepEqual(
      [...d.state.routes],
      [
        ['10.255.2.0/24', '10.255.2.0'],
        ['10.255.3.0/24', '10.255.3.0'],
      ],
    );
    assert.equal(d.state.neighs.get('10.255.3.0'), 'ee:ee:0a:ff:03:00');
    assert.equal(d.state.fdb.get('ee:ee:0a:ff:02:00'), '198.51.100.2');
    assert.deepEqual(d.skipped.map((s) => s.cellId).sort(), ['d', 'e']);
  });

  it('a newer lease of a subnet wins over an older one', () => {
    const moved = { ...lease('d', 4, 20), subnet: '10.255.2.0/24', vtepMac: vtepMacOf('10.255.2.0/24') };
    const d = desiredOverlay([lease('b', 2, 10), moved], {
      cellId: 'me',
      subnet: null,
      underlayIp: '198.51.100.1',
    });
    assert.equal(d.state.fdb.get(vtepMacOf('10.255.2.0/24')), '198.51.100.4');
    assert.deepEqual(d.skipped, [{ cellId: 'b', reason: 'subnet 10.255.2.0/24 overlaps another lease' }]);
  });

  it('sends nothing when nothing changed, and exactly the change otherwise', () => {
    const own = { cellId: 'me', subnet: '10.255.1.0/24', underlayIp: '198.51.100.1' };
    const all = [lease('b', 2), lease('c', 3), lease('d', 4)];
    const a = desiredOverlay(all, own).state;
    assert.equal(diffOverlay(a, a, 'vtep').changes, 0);
    const moved = { ...lease('c', 3), underlayIp: '198.51.100.33' };
    const b = desiredOverlay([lease('b', 2), moved], own).state;
    const d = diffOverlay(a, b, 'vtep');
    assert.deepEqual(d.bridgeBefore, [
      'fdb replace ee:ee:0a:ff:03:00 dev vtep dst 198.51.100.33 self permanent',
    ]);
    assert.deepEqual(d.ip, ['route del 10.255.4.0/24 dev vtep', 'neigh del 10.255.4.0 dev vtep']);
    assert.deepEqual(d.bridgeAfter, ['fdb del ee:ee:0a:ff:04:00 dev vtep self']);
    assert.equal(d.changes, 4);
  });

  it('applying the diff always reaches the desired state (property)', () => {
    const leases = fc.uniqueArray(
      fc.record({ n: fc.integer({ min: 2, max: 40 }), u: fc.integer({ min: 2, max: 250 }) }),
      { selector: (x) => x.n, maxLength: 12 },
    );
    const own = { cellId: 'me', subnet: '10.255.1.0/24', underlayIp: '198.51.100.1' };
    fc.assert(
      fc.property(leases, leases, (x, y) => {
        const mk = (l: { n: number; u: number }[]) =>
          desiredOverlay(
            l.map((v) => ({ ...lease(`c${v.n}`, v.n), underlayIp: `203.0.113.${v.u}` })),
            own,
          ).state;
        const cur = mk(x);
        const want = mk(y);
        const d = diffOverlay(cur, want, 'vtep');
        const after = runDiff(cur, [...d.bridgeBefore, ...d.ip, ...d.bridgeAfter]);
        assert.deepEqual(after, want);
        assert.equal(diffOverlay(after, want, 'vtep').changes, 0);
      }),
      { numRuns: 300 },
    );
  });

  it('counts a peer missing when its route, neighbour or FDB entry is absent or wrong in the kernel', () => {
    const own = { cellId: 'c1', subnet: '10.255.1.0/24', underlayIp: '198.51.100.1' };
    const want = desiredOverlay([lease('c1', 1), lease('c2', 2), lease('c3', 3), lease('c4', 4)], own).state;
    const kernel = () => cloneOverlay(want);
    assert.deepEqual(missingPeers(want, kernel()), []);
    assert.deepEqual(missingPeers(want, emptyOverlay()), ['10.255.2.0/24', '10.255.3.0/24', '10.255.4.0/24']);
    const noRoute = kernel();
    noRoute.routes.delete('10.255.3.0/24');
    assert.deepEqual(missingPeers(want, noRoute), ['10.255.3.0/24']);
    const noNeigh = kernel();
    noNeigh.neighs.delete('10.255.2.0');
    assert.deepEqual(missingPeers(want, noNeigh), ['10.255.2.0/24']);
    const wrongFdb = kernel();
    wrongFdb.fdb.set(vtepMacOf('10.255.4.0/24'), '198.51.100.99');
    assert.deepEqual(missingPeers(want, wrongFdb), ['10.255.4.0/24']);
    // entries the kernel has beyond the desired ones are drift, not missing peers
    const extra = kernel();
    extra.routes.set('10.255.9.0/24', '10.255.9.0');
    assert.deepEqual(missingPeers(want, extra), []);
  });

  it('parses ip/bridge JSON (permanent neighbours only, remote FDB entries only)', () => {
    assert.deepEqual(
      [
        ...parseRoutes([
          { dst: '10.255.2.0/24', gateway: '10.255.2.0', flags: ['onlink'] },
          { dst: '10.9.9.9' },
        ]),
      ],
      [
        ['10.255.2.0/24', '10.255.2.0'],
        ['10.9.9.9/32', ''],
      ],
    );
    assert.deepEqual(
      [
        ...parseNeighs([
          { dst: '10.255.2.0', lladdr: 'EE:EE:0A:FF:02:00', state: ['PERMANENT'] },
          { dst: '10.255.3.0', lladdr: 'ee:ee:0a:ff:03:00', state: ['STALE'] },
        ]),
      ],
      [['10.255.2.0', 'ee:ee:0a:ff:02:00']],
    );
    assert.deepEqual(
      [
        ...parseFdb([
          { mac: 'ee:ee:0a:ff:02:00', dst: '198.51.100.2', flags: ['self'], state: 'permanent' },
          { mac: '00:00:00:00:00:00', dst: '198.51.100.9' },
          { mac: '33:33:00:00:00:01', flags: ['self'] },
        ]),
      ],
      [['ee:ee:0a:ff:02:00', '198.51.100.2']],
    );
    assert.equal(emptyOverlay().routes.size, 0);
  });
});

describe('agent state file', () => {
  it('round-trips, refuses another cell and survives garbage', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-agent-state-'));
    try {
      const f = new StateFile(dir);
      assert.deepEqual(await f.load('cell-1'), { state: null });
      await f.save({
        cellId: 'cell-1',
        lease: lease('cell-1', 1),
        leases: [lease('b', 2)],
        base: null,
        local: {},
      });
      const { state } = await f.load('cell-1');
      assert.equal(state?.lease?.subnet, '10.255.1.0/24');
      assert.equal(state?.leases.length, 1);
      const other = await f.load('cell-2');
      assert.equal(other.state, null);
      assert.match(other.problem ?? '', /belongs to cell cell-1/);
      assert.equal(JSON.parse(await readFile(f.path, 'utf8')).format, 1);
      await writeFile(f.path, '{not json');
      assert.match((await f.load('cell-1')).problem ?? '', /not valid JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('peer leases are removed on expiry, never on a short listing', () => {
  const now = 1_800_000_000_000;
  const lease = (cellId: string, subnet: string, renewedAt = now - 1000): OverlayLease => ({
    cellId,
    subnet,
    underlayIp: `192.0.2.${subnet.split('.')[2]}`,
    vtepMac: vtepMacOf(subnet),
    renewedAt,
    expiresAt: renewedAt + 3600_000,
  });
  const a = lease('a', '10.255.1.0/24');
  const b = lease('b', '10.255.2.0/24');
  const c = lease('c', '10.255.3.0/24');

  it('keeps known peers the listing lacks (a controller rebuilding its table after Redis loss)', () => {
    const r = mergePeerLeases([a, b, c], [a], [], now);
    assert.deepEqual(
      r.leases.map((l) => l.cellId),
      ['a', 'b', 'c'],
    );
    assert.deepEqual(r.retained, ['b', 'c']);
  });

  it('drops a peer whose lease expired, or whose release is newer than its last renewal', () => {
    const expired = { ...b, expiresAt: now - 1 };
    const r = mergePeerLeases(
      [a, expired, c],
      [a],
      [{ cellId: 'c', subnet: c.subnet, releasedAt: now - 10 }],
      now,
    );
    assert.deepEqual(
      r.leases.map((l) => l.cellId),
      ['a'],
    );
    // a release older than a later renewal (the cell came back) does not drop it
    const back = mergePeerLeases([c], [], [{ cellId: 'c', subnet: c.subnet, releasedAt: now - 5000 }], now);
    assert.deepEqual(back.retained, ['c']);
  });

  it('drops a known peer when the listing gives its subnet to another cell', () => {
    const moved = lease('d', '10.255.2.0/24', now);
    const r = mergePeerLeases([a, b], [a, moved], [], now);
    assert.deepEqual(r.leases.map((l) => l.cellId).sort(), ['a', 'd']);
    assert.deepEqual(r.retained, []);
  });

  it('never removes a peer that is listed, whatever else it knew', () => {
    fc.assert(
      fc.property(fc.subarray([a, b, c]), fc.subarray([a, b, c]), (known, listed) => {
        const r = mergePeerLeases(known, listed, [], now);
        for (const l of listed) assert.ok(r.leases.includes(l));
        for (const k of known) assert.ok(r.leases.some((l) => l.cellId === k.cellId));
      }),
    );
  });
});
