import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseBbsRule,
  parseBbsRules,
  parseCapiRule,
  parseCapiRules,
  parseGardenNetOutRule,
  parseGardenNetOutRules,
  parsePolicyServerRule,
  parsePolicyServerRules,
} from '../../src/model/asg-rule.js';
import { allAddresses } from '../../src/model/ip.js';
import type { EgressRule, IpRange } from '../../src/model/types.js';
import { rejectsInvalid } from '../helpers/assert.js';

const v4 = (start: string, end = start): IpRange => ({ family: 4, start, end });
const v6 = (start: string, end = start): IpRange => ({ family: 6, start, end });
const net24 = v4('10.10.10.0', '10.10.10.255');
const ALL4 = allAddresses(4);
const ALL6 = allAddresses(6);

describe('parseCapiRule: accepted (CAPI v3 examples and variants)', () => {
  it('parses the rules of a CAPI v3 security group resource', () => {
    const rules = parseCapiRules([
      { protocol: 'tcp', destination: '10.10.10.0/24', ports: '443,80,8080' },
      {
        protocol: 'icmp',
        destination: '10.10.10.0/24',
        type: 8,
        code: 0,
        description: 'Allow ping requests',
      },
    ]);
    assert.deepEqual(rules, [
      {
        protocol: 'tcp',
        destinations: [net24],
        ports: [
          { start: 80, end: 80 },
          { start: 443, end: 443 },
          { start: 8080, end: 8080 },
        ],
        log: false,
      },
      { protocol: 'icmp', destinations: [net24], ports: [], icmp: { type: 8, code: 0 }, log: false },
    ] satisfies EgressRule[]);
  });

  it('udp with a range, all, log, description, icmp -1/-1, icmpv6, IPv6 and comma lists', () => {
    assert.deepEqual(parseCapiRule({ protocol: 'udp', destination: '8.8.8.8', ports: '53' }), {
      protocol: 'udp',
      destinations: [v4('8.8.8.8')],
      ports: [{ start: 53, end: 53 }],
      log: false,
    });
    assert.deepEqual(parseCapiRule({ protocol: 'all', destination: '0.0.0.0-9.255.255.255', log: true }), {
      protocol: 'all',
      destinations: [v4('0.0.0.0', '9.255.255.255')],
      ports: [],
      log: true,
    });
    assert.deepEqual(parseCapiRule({ protocol: 'icmp', destination: '0.0.0.0/0', type: -1, code: -1 }), {
      protocol: 'icmp',
      destinations: [ALL4],
      ports: [],
      icmp: { type: -1, code: -1 },
      log: false,
    });
    assert.deepEqual(parseCapiRule({ protocol: 'icmpv6', destination: '::/0', type: 128, code: 0 }), {
      protocol: 'icmpv6',
      destinations: [ALL6],
      ports: [],
      icmp: { type: 128, code: 0 },
      log: false,
    });
    assert.deepEqual(
      parseCapiRule({
        protocol: 'tcp',
        destination: '10.0.0.1,2001:db8::1-2001:db8::9,10.0.0.2',
        ports: ' 80 , 443 ',
        description: 'x',
        log: false,
      }),
      {
        protocol: 'tcp',
        destinations: [v4('10.0.0.1', '10.0.0.2'), v6('2001:db8::1', '2001:db8::9')],
        ports: [
          { start: 80, end: 80 },
          { start: 443, end: 443 },
        ],
        log: false,
      },
    );
    assert.deepEqual(
      parseCapiRule({ protocol: 'tcp', destination: '10.0.0.1/24', ports: '4000 - 5000' }).ports,
      [{ start: 4000, end: 5000 }],
    );
  });

  it('ignores what CAPI v3 ignores: type/code on non-ICMP, ports on ICMP, null optional keys', () => {
    const tcp = parseCapiRule({ protocol: 'tcp', destination: '10.0.0.1', ports: '80', type: 99, code: 'x' });
    assert.equal(tcp.icmp, undefined);
    const icmp = parseCapiRule({ protocol: 'icmp', destination: '10.0.0.1', ports: '80', type: 0, code: 0 });
    assert.deepEqual(icmp.ports, []);
    assert.deepEqual(icmp.icmp, { type: 0, code: 0 });
    const all = parseCapiRule({
      protocol: 'all',
      destination: '10.0.0.1',
      ports: null,
      log: null,
      description: null,
    });
    assert.equal(all.log, false);
  });

  it('accepts unknown keys only with allowUnknownKeys', () => {
    const rule = { protocol: 'all', destination: '10.0.0.1', foo: 1, bar: 2 };
    const err = rejectsInvalid(() => parseCapiRule(rule), 'foo', /unknown field\(s\): \["foo","bar"\]/);
    assert.equal(err.value, 1);
    assert.equal(parseCapiRule(rule, { allowUnknownKeys: true }).protocol, 'all');
  });
});

describe('parseCapiRule: every rejection', () => {
  const ok = { protocol: 'tcp', destination: '10.0.0.1', ports: '80' };
  it('shape and protocol', () => {
    rejectsInvalid(() => parseCapiRule('tcp'), 'rule', /a rule must be an object/);
    rejectsInvalid(() => parseCapiRule([ok]), 'rule', /a rule must be an object/);
    rejectsInvalid(() => parseCapiRule(null), 'rule', /a rule must be an object/);
    rejectsInvalid(() => parseCapiRule({ ...ok, protocol: undefined }), 'protocol', /protocol is required/);
    rejectsInvalid(
      () => parseCapiRule({ ...ok, protocol: 'TCP' }),
      'protocol',
      /protocol must be one of tcp, udp, icmp, icmpv6, all/,
    );
    rejectsInvalid(() => parseCapiRule({ ...ok, protocol: 'sctp' }), 'protocol', /must be one of/);
    rejectsInvalid(() => parseCapiRule({ ...ok, protocol: 6 }), 'protocol', /must be one of/);
  });

  it('destination', () => {
    rejectsInvalid(() => parseCapiRule({ protocol: 'all' }), 'destination', /destination is required/);
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: 10 }),
      'destination',
      /must be a string/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '' }),
      'destination',
      /must not be empty/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.0.0.1 ' }),
      'destination',
      /whitespace/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.0.0.9-10.0.0.1' }),
      'destination',
      /greater than its end/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.0.0.0/33' }),
      'destination',
      /prefix length 33/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.01.0.1' }),
      'destination',
      /leading zeros/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.0.0.0/8-10.0.0.9' }),
      'destination',
      /CIDR is not allowed/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: 'example' }),
      'destination',
      /not an IP address/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: 'example.com' }),
      'destination',
      /not a dotted-quad/,
    );
  });

  it('description and log types', () => {
    rejectsInvalid(
      () => parseCapiRule({ ...ok, description: 5 }),
      'description',
      /description must be a string/,
    );
    rejectsInvalid(() => parseCapiRule({ ...ok, log: 'true' }), 'log', /log must be a boolean/);
    rejectsInvalid(() => parseCapiRule({ ...ok, log: 1 }), 'log', /log must be a boolean/);
  });

  it('tcp/udp ports', () => {
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'tcp', destination: '10.0.0.1' }),
      'ports',
      /ports are required for protocols tcp and udp/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'udp', destination: '10.0.0.1', ports: null }),
      'ports',
      /ports are required/,
    );
    rejectsInvalid(() => parseCapiRule({ ...ok, ports: 80 }), 'ports', /must be a string/);
    rejectsInvalid(() => parseCapiRule({ ...ok, ports: '' }), 'ports', /no ports given/);
    rejectsInvalid(() => parseCapiRule({ ...ok, ports: '80-80' }), 'ports', /lower than its end/);
    rejectsInvalid(() => parseCapiRule({ ...ok, ports: '65536' }), 'ports', /out of range/);
  });

  it('icmp type and code', () => {
    const icmp = { protocol: 'icmp', destination: '10.0.0.1', type: 8, code: 0 };
    rejectsInvalid(
      () => parseCapiRule({ ...icmp, type: undefined }),
      'type',
      /type is required for protocol icmp/,
    );
    rejectsInvalid(
      () => parseCapiRule({ ...icmp, code: null }),
      'code',
      /code is required for protocol icmp/,
    );
    rejectsInvalid(
      () => parseCapiRule({ ...icmp, type: 256 }),
      'type',
      /type must be an integer between -1 and 255 \(inclusive\)/,
    );
    rejectsInvalid(
      () => parseCapiRule({ ...icmp, code: -2 }),
      'code',
      /code must be an integer between -1 and 255/,
    );
    rejectsInvalid(() => parseCapiRule({ ...icmp, type: 1.5 }), 'type', /integer between -1 and 255/);
    rejectsInvalid(() => parseCapiRule({ ...icmp, type: '8' }), 'type', /integer between -1 and 255/);
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'icmpv6', destination: '::1', code: 0 }),
      'type',
      /type is required for protocol icmpv6/,
    );
  });

  it('icmp destinations must be IPv4, icmpv6 IPv6', () => {
    const e = rejectsInvalid(
      () => parseCapiRule({ protocol: 'icmp', destination: '10.0.0.1,::/0', type: 8, code: 0 }),
      'destination',
      /icmp destinations must be IPv4 addresses/,
    );
    assert.equal(e.value, '::/0');
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'icmpv6', destination: '10.0.0.0/8', type: 128, code: 0 }),
      'destination',
      /icmpv6 destinations must be IPv6 addresses/,
    );
  });

  it('ports on all (even "", which CAPI v3 treats as given)', () => {
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.0.0.1', ports: '80' }),
      'ports',
      /ports are not allowed for protocol all/,
    );
    rejectsInvalid(
      () => parseCapiRule({ protocol: 'all', destination: '10.0.0.1', ports: '' }),
      'ports',
      /not allowed for protocol all/,
    );
  });
});

describe('parseCapiRules', () => {
  it('prefixes fields with rules[i] and requires an array', () => {
    rejectsInvalid(
      () =>
        parseCapiRules([
          { protocol: 'all', destination: '10.0.0.1' },
          { protocol: 'all', destination: '10.0.0.1' },
          { protocol: 'tcp', destination: '10.0.0.1', ports: '0' },
        ]),
      'rules[2].ports',
      /port 0 is out of range/,
    );
    rejectsInvalid(
      () => parseCapiRules([{ protocol: 'tcp', destination: '10.0.0.1', x: 1 }]),
      'rules[0].x',
      /unknown field/,
    );
    rejectsInvalid(() => parseCapiRules([7]), 'rules[0]', /a rule must be an object/);
    rejectsInvalid(() => parseCapiRules({}), 'rules', /rules must be an array/);
    rejectsInvalid(
      () => parseCapiRules([{ protocol: 'x' }], { path: 'resources[3].rules' }),
      'resources[3].rules[0].protocol',
      /must be one of/,
    );
    assert.deepEqual(parseCapiRules([]), []);
  });

  it('skips and reports invalid rules when onInvalid is given', () => {
    const bad: Array<[string, number]> = [];
    const rules = parseCapiRules(
      [
        { protocol: 'tcp', destination: '10.0.0.1', ports: '80' },
        { protocol: 'tcp', destination: '10.0.0.9-10.0.0.1', ports: '80' },
        { protocol: 'all', destination: '10.0.0.2' },
      ],
      { onInvalid: (err, i) => bad.push([err.field, i]) },
    );
    assert.equal(rules.length, 2);
    assert.deepEqual(bad, [['rules[1].destination', 1]]);
  });
});

describe('parsePolicyServerRules (JSON string, 7 keys always present)', () => {
  const seven = [
    { protocol: 'tcp', destination: '0.0.0.0/0', ports: '53', type: 0, code: 0, description: '', log: false },
    { protocol: 'udp', destination: '0.0.0.0/0', ports: '53', type: 0, code: 0, description: '', log: false },
    {
      protocol: 'all',
      destination: '10.0.0.0-10.0.0.255',
      ports: '',
      type: 0,
      code: 0,
      description: 'all',
      log: true,
    },
    { protocol: 'icmp', destination: '0.0.0.0/0', ports: '', type: 0, code: 0, description: '', log: false },
    { protocol: 'icmpv6', destination: '::/0', ports: '', type: -1, code: -1, description: '', log: false },
  ];

  it('ignores ports:"" and type/code 0 on rules where they mean nothing', () => {
    const rules = parsePolicyServerRules(JSON.stringify(seven));
    assert.deepEqual(rules, [
      { protocol: 'tcp', destinations: [ALL4], ports: [{ start: 53, end: 53 }], log: false },
      { protocol: 'udp', destinations: [ALL4], ports: [{ start: 53, end: 53 }], log: false },
      { protocol: 'all', destinations: [v4('10.0.0.0', '10.0.0.255')], ports: [], log: true },
      // icmp type 0 IS meaningful (echo reply) when the protocol is icmp
      { protocol: 'icmp', destinations: [ALL4], ports: [], icmp: { type: 0, code: 0 }, log: false },
      { protocol: 'icmpv6', destinations: [ALL6], ports: [], icmp: { type: -1, code: -1 }, log: false },
    ] satisfies EgressRule[]);
  });

  it('decodes the policy server dns group example (rules as a JSON string)', () => {
    const body =
      '[{"protocol":"tcp","destination":"0.0.0.0/0","ports":"53","type":0,"code":0,"description":"","log":false}]';
    assert.deepEqual(parsePolicyServerRules(body), [
      { protocol: 'tcp', destinations: [ALL4], ports: [{ start: 53, end: 53 }], log: false },
    ]);
  });

  it('treats "null" and "" as no rules, tolerates extra keys', () => {
    assert.deepEqual(parsePolicyServerRules('null'), []);
    assert.deepEqual(parsePolicyServerRules(''), []);
    assert.deepEqual(parsePolicyServerRules('[]'), []);
    assert.equal(parsePolicyServerRule({ ...seven[2], future: 1 }).protocol, 'all');
  });

  it('rejects non-strings, bad JSON, non-arrays and bad rules with field paths', () => {
    rejectsInvalid(() => parsePolicyServerRules(seven), 'rules', /must be a JSON-encoded string/);
    rejectsInvalid(() => parsePolicyServerRules('[{'), 'rules', /not valid JSON/);
    rejectsInvalid(() => parsePolicyServerRules('{}'), 'rules', /rules must be an array/);
    rejectsInvalid(
      () => parsePolicyServerRules(JSON.stringify([{ ...seven[0], ports: '' }])),
      'rules[0].ports',
      /no ports given/,
    );
    rejectsInvalid(
      () =>
        parsePolicyServerRules(JSON.stringify([seven[0], { ...seven[2], ports: '80' }]), {
          path: 'security_groups[1].rules',
        }),
      'security_groups[1].rules[1].ports',
      /not allowed for protocol all/,
    );
    rejectsInvalid(
      () => parsePolicyServerRules(JSON.stringify([{ ...seven[3], type: 300 }])),
      'rules[0].type',
      /between -1 and 255/,
    );
  });
});

describe('parseBbsRule (protobufjs shape)', () => {
  it('tcp with ports, with portRange (and snake_case port_range), comma-separated destination items', () => {
    assert.deepEqual(
      parseBbsRule({
        protocol: 'tcp',
        destinations: ['10.0.0.0/24,10.0.1.0/24', '192.168.1.1'],
        ports: [443, 80, 81],
      }),
      {
        protocol: 'tcp',
        destinations: [v4('10.0.0.0', '10.0.1.255'), v4('192.168.1.1')],
        ports: [
          { start: 80, end: 81 },
          { start: 443, end: 443 },
        ],
        log: false,
      },
    );
    // CAPI rejects tcp without a ports string, but BBS carries a port_range instead — accepted.
    const withRange = parseBbsRule({
      protocol: 'tcp',
      destinations: ['10.0.0.1'],
      ports: [],
      portRange: { start: 8080, end: 8080 },
    });
    assert.deepEqual(withRange.ports, [{ start: 8080, end: 8080 }]);
    const snake = parseBbsRule({
      protocol: 'udp',
      destinations: ['10.0.0.1'],
      port_range: { start: 1, end: 65535 },
      log: true,
    });
    assert.deepEqual(snake.ports, [{ start: 1, end: 65535 }]);
    assert.equal(snake.log, true);
  });

  it('icmp with icmp_info, icmpv6 without icmp_info (CC gap) = any, all, annotations ignored', () => {
    assert.deepEqual(
      parseBbsRule({
        protocol: 'icmp',
        destinations: ['0.0.0.0/0'],
        icmpInfo: { type: 8, code: -1 },
        annotations: ['security_group_id:x'],
      }),
      { protocol: 'icmp', destinations: [ALL4], ports: [], icmp: { type: 8, code: -1 }, log: false },
    );
    assert.deepEqual(parseBbsRule({ protocol: 'icmpv6', destinations: ['::/0'] }).icmp, {
      type: -1,
      code: -1,
    });
    assert.deepEqual(
      parseBbsRule({ protocol: 'icmpv6', destinations: ['::/0'], icmpInfo: { type: 128, code: 0 } }).icmp,
      {
        type: 128,
        code: 0,
      },
    );
    // proto3: unset int32 fields decode as 0
    assert.deepEqual(parseBbsRule({ protocol: 'icmp', destinations: ['10.0.0.1'], icmpInfo: {} }).icmp, {
      type: 0,
      code: 0,
    });
    assert.deepEqual(
      parseBbsRule({ protocol: 'all', destinations: ['10.0.0.1-10.0.0.3'], ports: [], portRange: null }),
      {
        protocol: 'all',
        destinations: [v4('10.0.0.1', '10.0.0.3')],
        ports: [],
        log: false,
      },
    );
  });

  it('rejects every invalid combination, naming the field', () => {
    const d = ['10.0.0.1'];
    rejectsInvalid(() => parseBbsRule(undefined), 'rule', /must be an object/);
    rejectsInvalid(() => parseBbsRule({ protocol: '', destinations: d }), 'protocol', /must be one of/);
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', ports: [80] }),
      'destinations',
      /at least one destination/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: [], ports: [80] }),
      'destinations',
      /at least one destination/,
    );
    rejectsInvalid(
      () =>
        parseBbsRule({
          protocol: 'tcp',
          destinations: ['10.0.0.1', '10.0.0.1,10.0.0.9-10.0.0.1'],
          ports: [80],
        }),
      'destinations[1]',
      /greater than its end/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: [7], ports: [80] }),
      'destinations[0]',
      /must be a string/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, ports: [80], portRange: { start: 1, end: 2 } }),
      'ports',
      /mutually exclusive/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d }),
      'ports',
      /ports or port_range is required for protocol tcp/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'udp', destinations: d, ports: [] }),
      'ports',
      /ports or port_range is required for protocol udp/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, ports: [0] }),
      'ports[0]',
      /port must be an integer 1\.\.65535/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, ports: [80, 65536] }),
      'ports[1]',
      /1\.\.65535/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, ports: 80 }),
      'ports',
      /ports must be an array/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, portRange: { start: 9, end: 8 } }),
      'portRange',
      /greater than its end/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, port_range: { start: 0, end: 8 } }),
      'port_range.start',
      /out of range/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'tcp', destinations: d, ports: [80], icmpInfo: { type: 0, code: 0 } }),
      'icmpInfo',
      /icmp_info is not allowed for protocol tcp/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'icmp', destinations: d }),
      'icmpInfo',
      /icmp_info is required for protocol icmp/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'icmp', destinations: d, ports: [80], icmpInfo: { type: 0, code: 0 } }),
      'ports',
      /ports are not allowed for protocol icmp/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'icmpv6', destinations: ['::1'], portRange: { start: 1, end: 2 } }),
      'portRange',
      /port_range is not allowed for protocol icmpv6/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'all', destinations: d, ports: [80] }),
      'ports',
      /not allowed for protocol all/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'all', destinations: d, port_range: { start: 1, end: 2 } }),
      'port_range',
      /not allowed for protocol all/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'all', destinations: d, icmp_info: { type: 0, code: 0 } }),
      'icmp_info',
      /icmp_info is not allowed for protocol all/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'icmp', destinations: d, icmpInfo: { type: 256, code: 0 } }),
      'icmpInfo.type',
      /between -1 and 255/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'icmp', destinations: d, icmpInfo: 8 }),
      'icmpInfo',
      /icmp_info must be an object/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'icmp', destinations: ['::1'], icmpInfo: { type: 8, code: 0 } }),
      'destinations',
      /must be IPv4/,
    );
    rejectsInvalid(
      () => parseBbsRule({ protocol: 'all', destinations: d, log: 'yes' }),
      'log',
      /log must be a boolean/,
    );
  });

  it('parseBbsRules prefixes egress_rules[i]', () => {
    rejectsInvalid(
      () =>
        parseBbsRules([
          { protocol: 'all', destinations: ['10.0.0.1'] },
          { protocol: 'tcp', destinations: ['10.0.0.1'] },
        ]),
      'egress_rules[1].ports',
      /ports or port_range is required/,
    );
  });
});

describe('parseGardenNetOutRule', () => {
  it('applies Garden defaults: protocol all, all networks, all ports, any ICMP', () => {
    assert.deepEqual(parseGardenNetOutRule({}), {
      protocol: 'all',
      destinations: [ALL4, ALL6],
      ports: [],
      log: false,
    });
    assert.deepEqual(parseGardenNetOutRule({ protocol: 1, networks: [] }), {
      protocol: 'tcp',
      destinations: [ALL4, ALL6],
      ports: [{ start: 0, end: 65535 }],
      log: false,
    });
    assert.deepEqual(parseGardenNetOutRule({ protocol: 3 }), {
      protocol: 'icmp',
      destinations: [ALL4],
      ports: [],
      icmp: { type: -1, code: -1 },
      log: false,
    });
    assert.deepEqual(parseGardenNetOutRule({ protocol: 4 }).destinations, [ALL6]);
  });

  it('parses the documented JSON form', () => {
    assert.deepEqual(
      parseGardenNetOutRule({
        protocol: 1,
        networks: [
          { start: '10.0.0.5', end: '10.0.0.9' },
          { start: '10.0.0.1', end: '10.0.0.4' },
        ],
        ports: [
          { start: 80, end: 90 },
          { start: 443, end: 443 },
        ],
        log: true,
      }),
      {
        protocol: 'tcp',
        destinations: [v4('10.0.0.1', '10.0.0.9')],
        ports: [
          { start: 80, end: 90 },
          { start: 443, end: 443 },
        ],
        log: true,
      },
    );
    // omitempty: a port range without start starts at 0
    assert.deepEqual(parseGardenNetOutRule({ protocol: 2, ports: [{ end: 53 }] }).ports, [
      { start: 0, end: 53 },
    ]);
    assert.deepEqual(
      parseGardenNetOutRule({
        protocol: 2,
        networks: [{ start: '2001:DB8::1', end: '2001:db8::1' }],
        ports: [{ start: 53, end: 53 }],
      }).destinations,
      [v6('2001:db8::1')],
    );
  });

  it("icmps: type omitted = 0, code omitted = any, 255 (Diego's uint8 of -1) = any; ignored on non-ICMP", () => {
    assert.deepEqual(parseGardenNetOutRule({ protocol: 3, icmps: { type: 8, code: 0 } }).icmp, {
      type: 8,
      code: 0,
    });
    assert.deepEqual(parseGardenNetOutRule({ protocol: 3, icmps: { code: 0 } }).icmp, { type: 0, code: 0 });
    assert.deepEqual(parseGardenNetOutRule({ protocol: 3, icmps: { type: 3 } }).icmp, { type: 3, code: -1 });
    assert.deepEqual(parseGardenNetOutRule({ protocol: 3, icmps: { type: 255, code: 255 } }).icmp, {
      type: -1,
      code: -1,
    });
    assert.equal(parseGardenNetOutRule({ protocol: 1, icmps: { type: 8 } }).icmp, undefined);
  });

  it('rejects invalid rules, naming the field', () => {
    rejectsInvalid(() => parseGardenNetOutRule([]), 'rule', /must be an object/);
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 5 }),
      'protocol',
      /protocol must be 0 \(all\), 1 \(tcp\)/,
    );
    rejectsInvalid(() => parseGardenNetOutRule({ protocol: 'tcp' }), 'protocol', /protocol must be 0/);
    rejectsInvalid(() => parseGardenNetOutRule({ networks: 'x' }), 'networks', /networks must be an array/);
    rejectsInvalid(
      () => parseGardenNetOutRule({ networks: [5] }),
      'networks[0]',
      /must be an object \{start, end\}/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ networks: [{ end: '10.0.0.1' }] }),
      'networks[0].start',
      /start is required/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ networks: [{ start: '10.0.0.1' }] }),
      'networks[0].end',
      /end is required/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ networks: [{ start: '10.0.0.1', end: 'x' }] }),
      'networks[0].end',
      /not an IP address/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ networks: [{ start: '10.0.0.1', end: '::1' }] }),
      'networks[0]',
      /different IP families/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ networks: [{ start: '10.0.0.9', end: '10.0.0.1' }] }),
      'networks[0]',
      /greater than its end/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ ports: [{ start: 80, end: 80 }] }),
      'ports',
      /ports are not allowed for protocol all/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 3, ports: [{ start: 80, end: 80 }] }),
      'ports',
      /not allowed for protocol icmp/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 1, ports: [{ start: 90, end: 80 }] }),
      'ports[0]',
      /greater than its end/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 1, ports: [{ start: 80 }] }),
      'ports[0]',
      /greater than its end/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 1, ports: [{ start: 1, end: 65536 }] }),
      'ports[0].end',
      /out of range 0\.\.65535/,
    );
    rejectsInvalid(() => parseGardenNetOutRule({ protocol: 1, ports: [7] }), 'ports[0]', /must be an object/);
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 1, ports: {} }),
      'ports',
      /ports must be an array/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 3, icmps: 8 }),
      'icmps',
      /icmps must be an object/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 3, icmps: { type: 256 } }),
      'icmps.type',
      /type must be an integer 0\.\.255/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 3, icmps: { type: 1, code: -1 } }),
      'icmps.code',
      /code must be an integer 0\.\.255/,
    );
    rejectsInvalid(
      () => parseGardenNetOutRule({ protocol: 3, networks: [{ start: '::1', end: '::1' }] }),
      'networks',
      /icmp destinations must be IPv4/,
    );
    rejectsInvalid(() => parseGardenNetOutRule({ log: 1 }), 'log', /log must be a boolean/);
    rejectsInvalid(
      () => parseGardenNetOutRules([{}, { protocol: 9 }]),
      'netOutRules[1].protocol',
      /protocol must be 0/,
    );
  });
});
