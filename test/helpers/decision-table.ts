/**
 * One cell's rule set and a table of new connections from its containers with the step that
 * decides each (src/dataplane/decision-order.ts): the unit test checks `cfnet explain`'s decision
 * against it, the e2e test sends the same packets through the real nft table in a namespace.
 *
 * The cell: underlay 192.0.2.1/24 (peer 192.0.2.2 holds the remote destinations), overlay subnet
 * 10.255.1.0/24 (VTEP 10.255.1.0), BOSH-DNS-like services on 169.254.0.2, containers' gateway
 * 169.254.0.1. Another cell's container is 10.255.2.7 (behind the peer).
 */
import type { CellAddresses } from '../../src/dataplane/decision-order.js';
import { parseCapiRules } from '../../src/model/asg-rule.js';
import type { CellRuleSet, IpRange } from '../../src/model/types.js';
import { container, ruleSetOf } from './fixtures.js';
import type { Probe } from './netns.js';

const r4 = (start: string, end = start): IpRange => ({ family: 4, start, end });

export const APP_IP = '10.255.1.2';
export const STAGING_IP = '10.255.1.4';
export const CELL_ADDRESSES: Required<CellAddresses> = { underlayIp: '192.0.2.1', subnet: '10.255.1.0/24' };
/** Addresses of the cell besides the underlay (the e2e test binds them). */
export const CELL_LOCAL = ['169.254.0.2', '10.255.1.0'];
export const PEER_IP = '192.0.2.2';
export const OTHER_CELL_CONTAINER = '10.255.2.7';
/** Remote destinations the peer holds. */
export const REMOTE = ['203.0.113.10', '203.0.113.30', '203.0.113.53', '203.0.113.60', '198.51.100.200'];

export function decisionRuleSet(handle: (name: string) => string = (n) => `decision-${n}`): CellRuleSet {
  return ruleSetOf(
    [
      container(handle('a'), APP_IP, { appGuid: 'app-a', tag: 1, egress: 'H' }),
      container(handle('s'), STAGING_IP, { appGuid: 'app-s', workload: 'staging', egress: 'H' }),
    ],
    {
      asgSets: {
        H: parseCapiRules([
          { protocol: 'tcp', destination: '203.0.113.10', ports: '443' },
          { protocol: 'tcp', destination: '203.0.113.30', ports: '80' }, // beaten by deny always
          { protocol: 'tcp', destination: '198.51.100.200', ports: '80' }, // deny running (apps)
          { protocol: 'all', destination: '192.0.2.0/24' }, // holds the cell's underlay address
          { protocol: 'udp', destination: '169.254.0.2', ports: '5353' }, // a local address
        ]),
      },
      config: {
        overlayNetwork: '10.255.0.0/16',
        dnsServers: ['169.254.0.2', '203.0.113.53'],
        hostTcpServices: [
          { ip: '169.254.0.2', port: 9001 },
          { ip: '203.0.113.60', port: 9100 },
        ],
        hostUdpServices: [],
        denyNetworks: { always: [r4('203.0.113.30')], running: [r4('198.51.100.200')], staging: [] },
        logging: { asg: false, c2c: false, deniedPerSec: 1, acceptedUdpPerSec: 100 },
      },
    },
  );
}

export interface DecisionCase {
  what: string;
  from: 'a' | 's';
  probe: Probe;
  allowed: boolean;
  by: string;
  /** Why the destination is local to the cell (input path); absent: forward path. */
  local?: RegExp;
}

const c = (
  what: string,
  from: 'a' | 's',
  proto: 'tcp' | 'udp',
  host: string,
  port: number,
  allowed: boolean,
  by: string,
  local?: RegExp,
): DecisionCase => ({ what, from, probe: { proto, host, port }, allowed, by, ...(local ? { local } : {}) });

export const DECISION_CASES: DecisionCase[] = [
  c('overlay: another cell decides', 'a', 'tcp', OTHER_CELL_CONTAINER, 7000, true, 'overlay'),
  c('deny_always beats an ASG allow', 'a', 'tcp', '203.0.113.30', 80, false, 'deny-network:always'),
  c('deny_running for an app', 'a', 'tcp', '198.51.100.200', 80, false, 'deny-network:running'),
  c('deny_running is not for staging', 's', 'tcp', '198.51.100.200', 80, true, 'asg'),
  c('ASG allows', 'a', 'tcp', '203.0.113.10', 443, true, 'asg'),
  c('no ASG rule: denied', 'a', 'tcp', '203.0.113.10', 80, false, 'default-deny'),
  c('local DNS server, udp', 'a', 'udp', '169.254.0.2', 53, true, 'dns', /link-local DNS server/),
  c('local DNS server, tcp', 'a', 'tcp', '169.254.0.2', 53, true, 'dns', /link-local DNS server/),
  c('DNS server elsewhere: egress, no ASG', 'a', 'udp', '203.0.113.53', 53, false, 'default-deny'),
  c('host service', 'a', 'tcp', '169.254.0.2', 9001, true, 'host-service', /link-local DNS server/),
  c('host service at a routable address: egress', 'a', 'tcp', '203.0.113.60', 9100, false, 'default-deny'),
  c('other port of a local address', 'a', 'tcp', '169.254.0.2', 9002, false, 'default-deny', /DNS/),
  c('ASGs do not open local addresses', 'a', 'udp', '169.254.0.2', 5353, false, 'default-deny', /DNS/),
  c('underlay address: local, not ASG', 'a', 'tcp', '192.0.2.1', 7000, false, 'default-deny', /underlay/),
  c('same ASG rule, a remote address', 'a', 'tcp', PEER_IP, 7000, true, 'asg'),
  c('VTEP address: local', 'a', 'tcp', '10.255.1.0', 7000, false, 'default-deny', /VTEP/),
  c('gateway: local', 'a', 'tcp', '169.254.0.1', 7000, false, 'default-deny', /gateway/),
];
