/**
 * Overlay ingress for routers, as the cell renders it: the routers' tags from their leases, one
 * TCP allow per (tag, container, exposed app port), enforced through the c2c sets — and the
 * router's own mark table. Pure functions; the nft elements come from the dataplane's renderer.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routerTags, withRouterIngress } from '../../src/agent/router-ingress.js';
import { desiredState } from '../../src/dataplane/desired.js';
import { renderFull } from '../../src/dataplane/render.js';
import { markedTag, routerMarkScript } from '../../src/dataplane/router-mark.js';
import { container, ruleSetOf } from '../helpers/fixtures.js';

const lease = (cellId: string, subnet: string, extra: Record<string, unknown> = {}) => ({
  cellId,
  subnet,
  underlayIp: '192.0.2.1',
  vtepMac: 'ee:ee:0a:ff:00:01',
  ...extra,
});

describe('overlay ingress for routers (cell side)', () => {
  it("takes the tags of routers' single-address leases only, once each", () => {
    const tags = routerTags([
      lease('cell-1', '10.255.1.0/24'),
      lease('router-1', '10.255.0.1/32', { kind: 'single-ip', tag: 9 }),
      lease('router-2', '10.255.0.2/32', { kind: 'single-ip', tag: 9 }),
      lease('router-3', '10.255.0.3/32', { kind: 'single-ip', tag: 4 }),
      lease('router-4', '10.255.0.4/32', { kind: 'single-ip' }),
    ] as never);
    assert.deepEqual(tags, [4, 9]);
  });

  it("allows each router tag to each container's exposed container ports over TCP, nothing more", () => {
    const rs = ruleSetOf([
      container('web', '10.255.1.2', {
        netIn: [
          { hostPort: 61001, containerPort: 8080 },
          { hostPort: 61002, containerPort: 8080 },
          { hostPort: 61003, containerPort: 2222 },
        ],
      }),
      container('worker', '10.255.1.3'),
    ]);
    const out = withRouterIngress(rs, [9]);
    assert.deepEqual(
      out.c2c,
      [
        { srcTag: 9, dstIp: '10.255.1.2', protocol: 'tcp', ports: { start: 8080, end: 8080 } },
        { srcTag: 9, dstIp: '10.255.1.2', protocol: 'tcp', ports: { start: 2222, end: 2222 } },
      ].sort((a, b) => a.ports.start - b.ports.start),
    );
    assert.equal(rs.c2c.length, 0, 'the input is not changed');
    assert.ok(!out.c2c.some((e) => e.dstIp === '10.255.1.3'), 'a container exposing no port gets nothing');
  });

  it('changes nothing without routers', () => {
    const rs = ruleSetOf([
      container('web', '10.255.1.2', { netIn: [{ hostPort: 61001, containerPort: 8080 }] }),
    ]);
    assert.equal(withRouterIngress(rs, []), rs);
  });

  it('keeps one entry when a policy already allows the same tag, address and port', () => {
    const same = {
      srcTag: 9,
      dstIp: '10.255.1.2',
      protocol: 'tcp' as const,
      ports: { start: 8080, end: 8080 },
    };
    const rs = ruleSetOf(
      [container('web', '10.255.1.2', { netIn: [{ hostPort: 61001, containerPort: 8080 }] })],
      {
        c2c: [same],
      },
    );
    assert.deepEqual(withRouterIngress(rs, [9]).c2c, [same]);
  });

  it('renders the entries as c2c set elements keyed by the router tag', () => {
    const rs = withRouterIngress(
      ruleSetOf([container('web', '10.255.1.2', { netIn: [{ hostPort: 61001, containerPort: 8080 }] })]),
      [9],
    );
    const elems = [...(desiredState(rs).sets.get('c2c_tcp')?.keys() ?? [])];
    assert.equal(elems.length, 1);
    assert.match(renderFull(rs), /c2c_tcp \{ 0x0*9 \. 10\.255\.1\.2 \. 8080/);
  });
});

describe("a router's mark table", () => {
  it('marks packets leaving through the VXLAN device with the tag, in the output hook, replacing the table whole', () => {
    const s = routerMarkScript('cfnet', 'cfnet-vtep', 0x1a);
    const lines = s
      .trim()
      .split('\n')
      .map((l) => l.trim());
    assert.deepEqual(lines.slice(0, 3), [
      'table inet cfnet {}',
      'delete table inet cfnet',
      'table inet cfnet {',
    ]);
    assert.ok(lines.includes('type filter hook output priority mangle; policy accept;'));
    assert.ok(lines.includes('oifname "cfnet-vtep" meta mark set 0x0000001a'));
  });

  it('refuses a tag that does not fit a VXLAN GBP id and a table that is not cfnet-like', () => {
    assert.throws(() => routerMarkScript('cfnet', 'cfnet-vtep', 0), /tag/);
    assert.throws(() => routerMarkScript('cfnet', 'cfnet-vtep', 0x10000), /tag/);
    assert.throws(() => routerMarkScript('filter', 'cfnet-vtep', 5), /table/);
    assert.throws(() => routerMarkScript('cfnet', 'bad dev"', 5), /vtepName/);
  });

  it("reads the tag back from the kernel's JSON listing of the chain", () => {
    const json = {
      nftables: [
        { metainfo: {} },
        { chain: { family: 'inet', table: 'cfnet', name: 'router_mark' } },
        {
          rule: {
            expr: [
              { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'cfnet-vtep' } },
              { mangle: { key: { meta: { key: 'mark' } }, value: 26 } },
            ],
          },
        },
      ],
    };
    assert.equal(markedTag(json), 26);
    assert.equal(markedTag({ nftables: [] }), null);
    assert.equal(markedTag(null), null);
  });
});
