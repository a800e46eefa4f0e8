import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatHostService, parseCellConfig, parseHostService } from '../../src/model/config.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { rejectsInvalid } from '../helpers/assert.js';

describe('parseCellConfig', () => {
  it('returns a copy of the defaults for {} / undefined', () => {
    assert.deepEqual(parseCellConfig({}), DEFAULT_CELL_CONFIG);
    const c = parseCellConfig(undefined);
    assert.deepEqual(c, DEFAULT_CELL_CONFIG);
    c.denyNetworks.always.push({ family: 4, start: '1.1.1.1', end: '1.1.1.1' });
    assert.deepEqual(DEFAULT_CELL_CONFIG.denyNetworks.always, [], 'defaults not shared');
  });

  it('parses every Silk-style setting', () => {
    const c = parseCellConfig({
      overlay_network: '10.32.0.1/11',
      dns_servers: ['169.254.0.2', '10.0.0.2', '169.254.0.2', '2001:DB8::53'],
      host_tcp_services: ['169.254.0.2:9001', '10.0.0.1:80', '169.254.0.2:9001', '[::1]:8080'],
      host_udp_services: ['169.254.0.2:53'],
      deny_networks: {
        always: ['10.0.0.0/8', '10.1.0.0/16', '169.254.169.254/32'],
        running: ['192.168.0.1/24'],
        staging: [],
      },
      iptables_logging: true,
      iptables_c2c_logging: true,
      iptables_denied_logs_per_sec: 5,
      iptables_accepted_udp_logs_per_sec: 200,
      outbound_connections: { limit: true, burst: 30, rate_per_sec: 2, logging: true },
      disable_container_network_policy: true,
    });
    assert.deepEqual(c, {
      overlayNetwork: '10.32.0.0/11',
      dnsServers: ['169.254.0.2', '10.0.0.2', '2001:db8::53'],
      hostTcpServices: [
        { ip: '10.0.0.1', port: 80 },
        { ip: '169.254.0.2', port: 9001 },
        { ip: '::1', port: 8080 },
      ],
      hostUdpServices: [{ ip: '169.254.0.2', port: 53 }],
      denyNetworks: {
        always: [
          { family: 4, start: '10.0.0.0', end: '10.255.255.255' },
          { family: 4, start: '169.254.169.254', end: '169.254.169.254' },
        ],
        running: [{ family: 4, start: '192.168.0.0', end: '192.168.0.255' }],
        staging: [],
      },
      logging: { asg: true, c2c: true, deniedPerSec: 5, acceptedUdpPerSec: 200 },
      outboundConnections: { limit: true, burst: 30, ratePerSec: 2, logging: true, dryRun: false },
      disableContainerNetworkPolicy: true,
    });
  });

  it('accepts the wrapper-config name iptables_asg_logging and a custom base', () => {
    const base = parseCellConfig({ dns_servers: [] });
    const c = parseCellConfig({ iptables_asg_logging: true, iptables_logging: true }, { base });
    assert.equal(c.logging.asg, true);
    assert.deepEqual(c.dnsServers, []);
    assert.equal(parseCellConfig({ extra: 1 }, { allowUnknownKeys: true }).overlayNetwork, '10.255.0.0/16');
  });

  it('rejects every bad field, naming it', () => {
    rejectsInvalid(() => parseCellConfig([]), 'config', /must be an object/);
    rejectsInvalid(
      () => parseCellConfig({ deny_network: [] }),
      'deny_network',
      /unknown field\(s\): \["deny_network"\]/,
    );
    rejectsInvalid(() => parseCellConfig({ overlay_network: '10.255.0.0' }), 'overlay_network', /not a CIDR/);
    rejectsInvalid(
      () => parseCellConfig({ overlay_network: '10.255.0.0/33' }),
      'overlay_network',
      /prefix length 33/,
    );
    rejectsInvalid(
      () => parseCellConfig({ overlay_network: 'fd00::/64' }),
      'overlay_network',
      /must be an IPv4 CIDR/,
    );
    rejectsInvalid(
      () => parseCellConfig({ dns_servers: '10.0.0.2' }),
      'dns_servers',
      /must be an array of strings/,
    );
    rejectsInvalid(
      () => parseCellConfig({ dns_servers: ['10.0.0.2', 5] }),
      'dns_servers[1]',
      /must be a string/,
    );
    rejectsInvalid(() => parseCellConfig({ dns_servers: ['10.0.0.02'] }), 'dns_servers[0]', /leading zeros/);
    rejectsInvalid(
      () => parseCellConfig({ host_tcp_services: ['169.254.0.2'] }),
      'host_tcp_services[0]',
      /must be "ip:port"/,
    );
    rejectsInvalid(
      () => parseCellConfig({ host_udp_services: ['x:53'] }),
      'host_udp_services[0]',
      /invalid address: x/,
    );
    rejectsInvalid(
      () => parseCellConfig({ host_tcp_services: ['10.0.0.1:0'] }),
      'host_tcp_services[0]',
      /port 0 is out of range/,
    );
    rejectsInvalid(
      () => parseCellConfig({ host_tcp_services: ['10.0.0.1:70000'] }),
      'host_tcp_services[0]',
      /out of range/,
    );
    rejectsInvalid(
      () => parseCellConfig({ host_tcp_services: ['::1:53'] }),
      'host_tcp_services[0]',
      /must be "ip:port"/,
    );
    rejectsInvalid(
      () => parseCellConfig({ deny_networks: ['10.0.0.0/8'] }),
      'deny_networks',
      /must be an object \{always/,
    );
    rejectsInvalid(
      () => parseCellConfig({ deny_networks: { allways: [] } }),
      'deny_networks.allways',
      /unknown field/,
    );
    rejectsInvalid(
      () => parseCellConfig({ deny_networks: { always: '10.0.0.0/8' } }),
      'deny_networks.always',
      /array of strings/,
    );
    rejectsInvalid(
      () => parseCellConfig({ deny_networks: { always: ['10.0.0.0/8', '10.0.0.1'] } }),
      'deny_networks.always[1]',
      /must be a CIDR/,
    );
    rejectsInvalid(
      () => parseCellConfig({ deny_networks: { staging: ['10.0.0.0/40'] } }),
      'deny_networks.staging[0]',
      /prefix length 40/,
    );
    rejectsInvalid(
      () => parseCellConfig({ iptables_logging: 'yes' }),
      'iptables_logging',
      /must be a boolean/,
    );
    rejectsInvalid(
      () => parseCellConfig({ iptables_asg_logging: 1 }),
      'iptables_asg_logging',
      /must be a boolean/,
    );
    rejectsInvalid(
      () => parseCellConfig({ iptables_asg_logging: true, iptables_logging: false }),
      'iptables_asg_logging',
      /contradicts iptables_logging/,
    );
    rejectsInvalid(
      () => parseCellConfig({ iptables_c2c_logging: null }),
      'iptables_c2c_logging',
      /must be a boolean/,
    );
    rejectsInvalid(
      () => parseCellConfig({ iptables_denied_logs_per_sec: 0 }),
      'iptables_denied_logs_per_sec',
      /integer >= 1/,
    );
    rejectsInvalid(
      () => parseCellConfig({ iptables_accepted_udp_logs_per_sec: 1.5 }),
      'iptables_accepted_udp_logs_per_sec',
      /integer >= 1/,
    );
  });
});

describe('host services', () => {
  it('round-trips ip:port text', () => {
    assert.deepEqual(parseHostService('[2001:db8::0001]:53'), { ip: '2001:db8::1', port: 53 });
    assert.equal(formatHostService({ ip: '2001:db8::1', port: 53 }), '[2001:db8::1]:53');
    assert.equal(formatHostService(parseHostService('169.254.0.2:9001')), '169.254.0.2:9001');
    rejectsInvalid(() => parseHostService(9001, 'svc'), 'svc', /must be a string/);
  });
});
