import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auditRecord, directoryOf, formatAuditLine } from '../../src/agent/audit-record.js';
import { parseKernelLogLine } from '../../src/dataplane/kernel-log.js';
import type { CellContainer, CellRuleSet } from '../../src/model/types.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';

const HOST = { ip: '198.51.100.12', guid: 'cell-2' };

function ctr(handle: string, ip: string, app: string): CellContainer {
  return {
    handle,
    ip,
    appGuid: app,
    spaceGuid: `space-of-${app}`,
    orgGuid: `org-of-${app}`,
    workload: 'app',
    tag: null,
    egress: 'h',
    netIn: [],
  };
}

const B1 = ctr('2add9a1e-778a-479f-a5f6-0c66286fe11f', '10.255.2.1', 'app-b');
const C1 = ctr('6c1f0d2e-1111-4a2b-8c3d-4e5f60718293', '10.255.2.2', 'app-c');

const RULES: CellRuleSet = {
  cellId: 'cell-2',
  version: 3,
  containers: [B1, C1],
  asgSets: { h: [] },
  c2c: [],
  config: DEFAULT_CELL_CONFIG,
  tags: { 'app-a': 8, 'app-b': 9 },
};

/** A kernel line of cfnet's (the shape of the real ones in dataplane-kernel-log.test.ts). */
function line(prefix: string, src: string, dst: string, dpt: number, mark?: string): string {
  return `4,1,2,-;${prefix} IN=cfn0461722465fc OUT=cfnd7e82a2fb30b MAC=aa:aa:0a:ff:02:02:ee:ee:0a:ff:02:02:08:00 SRC=${src} DST=${dst} LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=7774 DF PROTO=TCP SPT=39474 DPT=${dpt} WINDOW=64860 RES=0x00 SYN URGP=0 ${mark ? `MARK=${mark} ` : ''}`;
}

function record(text: string, rs: CellRuleSet | null = RULES) {
  return auditRecord(parseKernelLogLine(text)!, directoryOf(rs), HOST);
}

const silkContainer = (c: CellContainer) => ({
  container_id: c.handle,
  app_guid: c.appGuid,
  space_guid: c.spaceGuid,
  organization_guid: c.orgGuid,
  host_ip: HOST.ip,
  host_guid: HOST.guid,
});

describe('audit record: Silk iptables-logger fields from the rule set', () => {
  it('egress lines carry the source container (host = the cell) and nothing else', () => {
    const r = record(line(`DENY_${C1.handle}`, C1.ip, '192.168.77.10', 9001));
    assert.equal(r.message, 'cfnetworking.iptables.egress-denied');
    assert.deepEqual(Object.keys(r.data), ['packet', 'source']);
    assert.deepEqual(r.data.source, silkContainer(C1));
    const ok = record(line(`OK_${C1.handle}`, C1.ip, '192.168.77.10', 443));
    assert.equal(ok.message, 'cfnetworking.iptables.egress-allowed');
  });

  it('c2c lines carry the destination, and the local source container when the source is on the cell', () => {
    const r = record(line(`DENY_C2C_${B1.handle}`, C1.ip, B1.ip, 8081));
    assert.equal(r.message, 'cfnetworking.iptables.ingress-denied');
    assert.deepEqual(Object.keys(r.data), ['destination', 'packet', 'source']);
    assert.deepEqual(r.data.destination, silkContainer(B1));
    assert.deepEqual(r.data.source, silkContainer(C1));
  });

  it("a remote source is named by its app, from the packet's tag (low 16 bits of the mark)", () => {
    for (const mark of ['0x8', '0x20008']) {
      const r = record(line(`DENY_C2C_${B1.handle}`, '10.255.1.1', B1.ip, 8081, mark));
      assert.deepEqual(r.data.source, {
        container_id: '',
        app_guid: 'app-a',
        space_guid: '',
        organization_guid: '',
        host_ip: '',
        host_guid: '',
      });
    }
    const untagged = record(line(`DENY_C2C_${B1.handle}`, '10.255.1.1', B1.ip, 8081));
    assert.equal(untagged.data.source, undefined, 'no tag, no source');
    const unknownTag = record(line(`DENY_C2C_${B1.handle}`, '10.255.1.1', B1.ip, 8081, '0x77'));
    assert.equal(unknownTag.data.source, undefined);
  });

  it('an address the rule set no longer holds, or holds for another container, keeps only the handle', () => {
    const gone = record(line('DENY_0b0b0b0b-dead-4bee-8f00-000000000001', '10.255.2.9', '192.168.77.10', 80));
    assert.deepEqual(gone.data.source, {
      container_id: '0b0b0b0b-dead-4bee-8f00-000000000001',
      app_guid: '',
      space_guid: '',
      organization_guid: '',
      host_ip: HOST.ip,
      host_guid: HOST.guid,
    });
    // C1's address logged under another handle: the line predates C1 (address reused)
    const reused = record(line('DENY_0b0b0b0b-dead-4bee-8f00-000000000001', C1.ip, '192.168.77.10', 80));
    assert.equal(reused.data.source?.container_id, '0b0b0b0b-dead-4bee-8f00-000000000001');
    assert.equal(reused.data.source?.app_guid, '');
    const before = record(line(`DENY_${C1.handle}`, C1.ip, '192.168.77.10', 80), null);
    assert.equal(before.data.source?.app_guid, '', 'no rule set yet');
  });

  it('a handle cut by the prefix limit still finds its container', () => {
    const r = record(line(`DENY_C2C_${B1.handle.slice(0, 20)}`, C1.ip, B1.ip, 8081));
    assert.deepEqual(r.data.destination, silkContainer(B1));
  });

  it("is written as lager writes it: rfc3339 (Silk's default) or the deprecated epoch form", () => {
    const r = record(line(`DENY_${C1.handle}`, C1.ip, '192.168.77.10', 9001));
    const ms = Date.UTC(2026, 11, 7, 6, 39, 5, 251);
    const rfc = formatAuditLine(r, 'rfc3339', ms);
    assert.equal(
      rfc.slice(0, rfc.indexOf(',"data"')),
      '{"timestamp":"2026-12-07T06:39:05.251000000Z","level":"info","source":"cfnetworking.iptables","message":"cfnetworking.iptables.egress-denied"',
    );
    assert.deepEqual(JSON.parse(rfc).data, JSON.parse(JSON.stringify(r.data)));
    const old = formatAuditLine(r, 'deprecated', ms);
    assert.equal(
      old.slice(0, old.indexOf(',"data"')),
      `{"timestamp":"${Math.floor(ms / 1000)}.251000000","source":"cfnetworking.iptables","message":"cfnetworking.iptables.egress-denied","log_level":1`,
    );
    // the packet keys in Silk's order
    assert.deepEqual(Object.keys(JSON.parse(old).data.packet), [
      'direction',
      'allowed',
      'src_ip',
      'dst_ip',
      'src_port',
      'dst_port',
      'protocol',
      'mark',
      'icmp_type',
      'icmp_code',
    ]);
  });
});
