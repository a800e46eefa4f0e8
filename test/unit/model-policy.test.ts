import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allAddresses } from '../../src/model/ip.js';
import {
  formatTag,
  parseInternalPolicies,
  parseInternalSecurityGroups,
  parsePoliciesLastUpdated,
  parseTag,
} from '../../src/model/policy.js';
import { parseCapiV3SecurityGroup } from '../../src/model/security-group.js';
import { rejectsInvalid } from '../helpers/assert.js';

const APP_A = '2ffe4b0f-b03c-48bb-a4fa-bf22657d34a2';
const APP_B = '5346072e-7265-45f9-b70f-80c5c4de5e5f';

describe('parseInternalPolicies', () => {
  it('with onInvalid, an invalid policy is left out by itself and the listing is kept', () => {
    const pol = (src: string, start: number, end: number) => ({
      source: { id: src, tag: '0001' },
      destination: { id: 'dst', tag: '0002', protocol: 'tcp', ports: { start, end } },
    });
    const bad: Array<[string, number]> = [];
    const got = parseInternalPolicies(
      { policies: [pol('a', 8080, 8080), pol('b', 9000, 8000), pol('c:x', 80, 80), pol('d', 443, 443)] },
      { onInvalid: (err, i) => bad.push([err.field, i]) },
    );
    assert.deepEqual(
      got.map((p) => p.source.appGuid),
      ['a', 'd'],
    );
    assert.deepEqual(bad, [
      ['policies[1].destination.ports', 1],
      ['policies[2].source.id', 2],
    ]);
    assert.throws(() => parseInternalPolicies({ policies: [pol('b', 9000, 8000)] }), /policies\[0\]/);
  });

  const body = {
    total_policies: 2,
    policies: [
      {
        source: { id: APP_A, tag: '0001' },
        destination: { id: APP_B, tag: '0002', protocol: 'tcp', ports: { start: 8080, end: 8090 } },
      },
      {
        source: { id: APP_B, tag: '00FF' },
        destination: { id: APP_A, tag: '0A0B', protocol: 'udp', ports: { start: 53, end: 53 } },
      },
    ],
  };

  it('parses the internal response (text or decoded), hex tags to numbers', () => {
    const expected = [
      {
        source: { appGuid: APP_A, tag: 1 },
        destination: { appGuid: APP_B, tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8090 } },
      },
      {
        source: { appGuid: APP_B, tag: 255 },
        destination: { appGuid: APP_A, tag: 0x0a0b, protocol: 'udp', ports: { start: 53, end: 53 } },
      },
    ];
    assert.deepEqual(parseInternalPolicies(body), expected);
    assert.deepEqual(parseInternalPolicies(JSON.stringify(body)), expected);
    assert.deepEqual(parseInternalPolicies('{"total_policies":0,"policies":[]}'), []);
    assert.deepEqual(parseInternalPolicies({ policies: null }), []);
  });

  it('tags: hex both cases, formatted back upper-case and padded', () => {
    assert.equal(parseTag('ffff'), 65535);
    assert.equal(parseTag('0001'), 1);
    assert.equal(formatTag(1), '0001');
    assert.equal(formatTag(0xabc), '0ABC');
    assert.equal(formatTag(5, 3), '000005');
    rejectsInvalid(() => parseTag('0000', 't'), 't', /tag 0 is not a valid policy tag/);
    rejectsInvalid(() => parseTag('00G1', 't'), 't', /1 to 8 hex digits/);
    rejectsInvalid(() => parseTag('', 't'), 't', /1 to 8 hex digits/);
    rejectsInvalid(() => parseTag('123456789', 't'), 't', /1 to 8 hex digits/);
    rejectsInvalid(() => parseTag(1, 't'), 't', /1 to 8 hex digits/);
  });

  it('rejects bad policies, naming the field', () => {
    const p = body.policies[0]!;
    const wrap = (policy: unknown) => ({ policies: [policy] });
    rejectsInvalid(() => parseInternalPolicies('{'), 'policies', /not valid JSON/);
    rejectsInvalid(() => parseInternalPolicies([]), 'policies', /response must be an object/);
    rejectsInvalid(() => parseInternalPolicies({ policies: {} }), 'policies', /policies must be an array/);
    rejectsInvalid(() => parseInternalPolicies(wrap(null)), 'policies[0]', /a policy must be an object/);
    rejectsInvalid(
      () => parseInternalPolicies(wrap({ ...p, source: 'x' })),
      'policies[0].source',
      /source must be an object/,
    );
    rejectsInvalid(
      () => parseInternalPolicies(wrap({ ...p, destination: null })),
      'policies[0].destination',
      /must be an object/,
    );
    rejectsInvalid(
      () => parseInternalPolicies(wrap({ ...p, source: { tag: '0001' } })),
      'policies[0].source.id',
      /id must be a non-empty string/,
    );
    rejectsInvalid(
      () => parseInternalPolicies(wrap({ ...p, source: { id: APP_A, tag: 'zz' } })),
      'policies[0].source.tag',
      /hex digits/,
    );
    rejectsInvalid(
      () => parseInternalPolicies(wrap({ ...p, destination: { ...p.destination, tag: undefined } })),
      'policies[0].destination.tag',
      /hex digits/,
    );
    rejectsInvalid(
      () => parseInternalPolicies(wrap({ ...p, destination: { ...p.destination, protocol: 'icmp' } })),
      'policies[0].destination.protocol',
      /protocol must be tcp or udp/,
    );
    rejectsInvalid(
      () =>
        parseInternalPolicies(
          wrap({ ...p, destination: { ...p.destination, ports: { start: 9000, end: 8000 } } }),
        ),
      'policies[0].destination.ports',
      /must not be greater than its end/,
    );
    rejectsInvalid(
      () =>
        parseInternalPolicies(
          wrap({ ...p, destination: { ...p.destination, ports: { start: 0, end: 80 } } }),
        ),
      'policies[0].destination.ports.start',
      /out of range 1\.\.65535/,
    );
    rejectsInvalid(
      () =>
        parseInternalPolicies(
          wrap({ ...p, destination: { ...p.destination, ports: { start: 1, end: 65536 } } }),
        ),
      'policies[0].destination.ports.end',
      /out of range/,
    );
    rejectsInvalid(
      () =>
        parseInternalPolicies(
          wrap({ ...p, destination: { ...p.destination, ports: undefined, port: 8080 } }),
        ),
      'policies[0].destination.ports',
      /must be an object/,
    );
  });
});

describe('parsePoliciesLastUpdated', () => {
  it('keeps all digits of a value above 2^53', () => {
    assert.equal(parsePoliciesLastUpdated('1700000000123456789'), 1700000000123456789n);
    assert.equal(parsePoliciesLastUpdated('1700000000123456789\n'), 1700000000123456789n);
    assert.equal(parsePoliciesLastUpdated('0'), 0n);
    // The JSON.parse route loses the last digits:
    assert.notEqual(BigInt(JSON.parse('1700000000123456789') as number), 1700000000123456789n);
  });

  it('rejects anything but a non-negative integer text', () => {
    rejectsInvalid(() => parsePoliciesLastUpdated('-1'), 'policies_last_updated', /non-negative integer/);
    rejectsInvalid(() => parsePoliciesLastUpdated('1.7e18'), 'policies_last_updated', /non-negative integer/);
    rejectsInvalid(() => parsePoliciesLastUpdated(''), 'policies_last_updated', /non-negative integer/);
    rejectsInvalid(
      () => parsePoliciesLastUpdated('{"error":"x"}'),
      'policies_last_updated',
      /non-negative integer/,
    );
    rejectsInvalid(
      () => parsePoliciesLastUpdated(1700000000123456800 as unknown as string),
      'policies_last_updated',
      /raw response text/,
    );
  });
});

describe('parseInternalSecurityGroups', () => {
  const dnsRules =
    '[{"protocol":"tcp","destination":"0.0.0.0/0","ports":"53","type":0,"code":0,"description":"","log":false}]';
  const body = {
    next: 0,
    security_groups: [
      {
        guid: 'g-dns',
        name: 'dns',
        rules: dnsRules,
        staging_default: true,
        running_default: true,
        staging_space_guids: [],
        running_space_guids: ['space-1'],
      },
      {
        guid: 'g-none',
        name: 'empty',
        rules: 'null',
        staging_default: false,
        running_default: false,
        staging_space_guids: null,
        running_space_guids: null,
      },
    ],
  };

  it('parses the policy server internal security-group example, decoding rules twice', () => {
    const page = parseInternalSecurityGroups(JSON.stringify({ ...body, next: 42 }));
    assert.equal(page.next, 42);
    assert.deepEqual(page.groups, [
      {
        guid: 'g-dns',
        name: 'dns',
        rules: [
          { protocol: 'tcp', destinations: [allAddresses(4)], ports: [{ start: 53, end: 53 }], log: false },
        ],
        runningDefault: true,
        stagingDefault: true,
        runningSpaces: ['space-1'],
        stagingSpaces: [],
      },
      {
        guid: 'g-none',
        name: 'empty',
        rules: [],
        runningDefault: false,
        stagingDefault: false,
        runningSpaces: [],
        stagingSpaces: [],
      },
    ]);
    assert.deepEqual(parseInternalSecurityGroups({ next: 0, security_groups: [] }), { next: 0, groups: [] });
  });

  it('can skip invalid rules and report them', () => {
    const bad: string[] = [];
    const rules = JSON.stringify([
      {
        protocol: 'tcp',
        destination: '10.0.0.9-10.0.0.1',
        ports: '80',
        type: 0,
        code: 0,
        description: '',
        log: false,
      },
      { protocol: 'all', destination: '10.0.0.1', ports: '', type: 0, code: 0, description: '', log: false },
    ]);
    const page = parseInternalSecurityGroups(
      { next: 0, security_groups: [{ ...body.security_groups[0], rules }] },
      { onInvalidRule: (err, group, i) => bad.push(`${group}#${i}:${err.field}`) },
    );
    assert.equal(page.groups[0]!.rules.length, 1);
    assert.deepEqual(bad, ['g-dns#0:security_groups[0].rules[0].destination']);
  });

  it('rejects bad pages, naming the field', () => {
    const g = body.security_groups[0]!;
    const wrap = (group: unknown) => ({ next: 0, security_groups: [group] });
    rejectsInvalid(() => parseInternalSecurityGroups('nope'), 'security_groups', /not valid JSON/);
    rejectsInvalid(() => parseInternalSecurityGroups(null), 'security_groups', /response must be an object/);
    rejectsInvalid(
      () => parseInternalSecurityGroups({ next: -1, security_groups: [] }),
      'next',
      /non-negative integer/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups({ next: '5', security_groups: [] }),
      'next',
      /non-negative integer/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups({ next: 0, security_groups: {} }),
      'security_groups',
      /must be an array/,
    );
    rejectsInvalid(() => parseInternalSecurityGroups(wrap(3)), 'security_groups[0]', /must be an object/);
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, guid: '' })),
      'security_groups[0].guid',
      /non-empty string/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, name: 5 })),
      'security_groups[0].name',
      /name must be a string/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, rules: JSON.parse(dnsRules) })),
      'security_groups[0].rules',
      /JSON-encoded string/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, rules: '[{' })),
      'security_groups[0].rules',
      /not valid JSON/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, rules: dnsRules.replace('"53"', '"0"') })),
      'security_groups[0].rules[0].ports',
      /out of range/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, running_default: 'true' })),
      'security_groups[0].running_default',
      /must be a boolean/,
    );
    rejectsInvalid(
      () => parseInternalSecurityGroups(wrap({ ...g, running_space_guids: 'a,b' })),
      'security_groups[0].running_space_guids',
      /array of strings/,
    );
  });
});

describe('parseCapiV3SecurityGroup', () => {
  const resource = {
    guid: 'b85a788e-671f-4549-814d-e34cdb2f539a',
    created_at: '2020-02-20T17:42:08Z',
    updated_at: '2020-02-20T17:42:08Z',
    name: 'my-group0',
    globally_enabled: { running: true, staging: false },
    rules: [
      { protocol: 'tcp', destination: '10.10.10.0/24', ports: '443,80,8080' },
      {
        protocol: 'icmp',
        destination: '10.10.10.0/24',
        type: 8,
        code: 0,
        description: 'Allow ping requests',
      },
    ],
    relationships: { running_spaces: { data: [{ guid: 'space-guid-1' }] }, staging_spaces: { data: [] } },
    links: { self: { href: 'https://api.example.org/v3/security_groups/b85a788e' } },
  };

  it('parses a CAPI v3 security group resource', () => {
    const g = parseCapiV3SecurityGroup(resource);
    assert.equal(g.guid, resource.guid);
    assert.equal(g.name, 'my-group0');
    assert.equal(g.runningDefault, true);
    assert.equal(g.stagingDefault, false);
    assert.deepEqual(g.runningSpaces, ['space-guid-1']);
    assert.deepEqual(g.stagingSpaces, []);
    assert.equal(g.rules.length, 2);
    assert.deepEqual(g.rules[1]!.icmp, { type: 8, code: 0 });
  });

  it('rejects bad resources, naming the field', () => {
    rejectsInvalid(() => parseCapiV3SecurityGroup([]), 'security_group', /must be an object/);
    rejectsInvalid(() => parseCapiV3SecurityGroup({ ...resource, guid: 1 }), 'guid', /non-empty string/);
    rejectsInvalid(
      () => parseCapiV3SecurityGroup({ ...resource, name: null }),
      'name',
      /name must be a string/,
    );
    rejectsInvalid(
      () => parseCapiV3SecurityGroup({ ...resource, globally_enabled: { running: 'yes' } }),
      'globally_enabled.running',
      /must be a boolean/,
    );
    rejectsInvalid(
      () => parseCapiV3SecurityGroup({ ...resource, relationships: { running_spaces: { data: [{}] } } }),
      'relationships.running_spaces.data[0].guid',
      /non-empty string/,
    );
    rejectsInvalid(
      () => parseCapiV3SecurityGroup({ ...resource, relationships: { staging_spaces: [] } }),
      'relationships.staging_spaces',
      /must be an object \{data/,
    );
    rejectsInvalid(
      () =>
        parseCapiV3SecurityGroup({
          ...resource,
          rules: [{ protocol: 'tcp', destination: '10.0.0.1', ports: '80', foo: 1 }],
        }),
      'rules[0].foo',
      /unknown field\(s\)/,
    );
    rejectsInvalid(
      () =>
        parseCapiV3SecurityGroup(
          {
            ...resource,
            rules: [
              { protocol: 'all', destination: '1.2.3.4' },
              { protocol: 'udp', destination: '1.2.3.4' },
            ],
          },
          { path: 'resources[7]' },
        ),
      'resources[7].rules[1].ports',
      /ports are required/,
    );
  });
});
