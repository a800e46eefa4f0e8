/**
 * The kernel log parser on lines captured from the kernel: nf_log output of cfnet's log chains in
 * lab cells (network namespaces, net.netfilter.nf_log_all_netns=1), as /dev/kmsg records and as
 * dmesg prints them. Trailing spaces are the kernel's.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseKernelLogLine } from '../../src/dataplane/kernel-log.js';

const KMSG = {
  /** c2c denied on the destination cell, source on the same cell (no tag: no MARK). */
  c2cLocal:
    '4,405,807992222,-;DENY_C2C_2add9a1e-778a-479f-a5f6-0c66286fe11f IN=cfn0461722465fc OUT=cfnd7e82a2fb30b MAC=aa:aa:0a:ff:02:02:ee:ee:0a:ff:02:02:08:00 SRC=10.255.2.2 DST=10.255.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=7774 DF PROTO=TCP SPT=39474 DPT=8081 WINDOW=64860 RES=0x00 SYN URGP=0 ',
  /** c2c denied, source on another cell: in through the VTEP, its tag as mark (VXLAN GBP). */
  c2cRemote:
    '4,406,808301376,-;DENY_C2C_2add9a1e-778a-479f-a5f6-0c66286fe11f IN=cfnet-vtep OUT=cfnd7e82a2fb30b MAC=ee:ee:0a:ff:02:00:ee:ee:0a:ff:01:00:08:00 SRC=10.255.1.1 DST=10.255.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=25407 DF PROTO=TCP SPT=52974 DPT=8081 WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x8 ',
  /** egress denied (filterMode iptables: the mark's high half is cfnet's, the low half the tag). */
  egressDenied:
    '4,407,808522813,-;DENY_88a1370b-2215-4058-a4ca-7fc5b77a0d52 IN=cfnfbe3d5c93b4e OUT=eth0 MAC=aa:aa:0a:ff:01:01:ee:ee:0a:ff:01:01:08:00 SRC=10.255.1.1 DST=192.168.77.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=55122 DF PROTO=TCP SPT=57854 DPT=9001 WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x20008 ',
  /** c2c allowed by a policy, on the destination cell (the line the e2e audit test produces). */
  c2cAllowed:
    '4,410,809011204,-;OK_C2C_2add9a1e-778a-479f-a5f6-0c66286fe11f IN=cfnet-vtep OUT=cfnd7e82a2fb30b MAC=ee:ee:0a:ff:02:00:ee:ee:0a:ff:01:00:08:00 SRC=10.255.1.1 DST=10.255.2.1 LEN=60 TOS=0x00 PREC=0x00 TTL=62 ID=25410 DF PROTO=TCP SPT=52980 DPT=8080 WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x8 ',
  egressAllowed:
    '4,409,808947101,-;OK_88a1370b-2215-4058-a4ca-7fc5b77a0d52 IN=cfnfbe3d5c93b4e OUT=eth0 MAC=aa:aa:0a:ff:01:01:ee:ee:0a:ff:01:01:08:00 SRC=10.255.1.1 DST=192.168.77.10 LEN=60 TOS=0x00 PREC=0x00 TTL=63 ID=47229 DF PROTO=TCP SPT=45714 DPT=9000 WINDOW=64860 RES=0x00 SYN URGP=0 MARK=0x8 ',
  /** ICMP prints TYPE/CODE and a second ID= (the echo id): the first ID= is the IP header's. */
  icmpAllowed:
    '4,432,857056721,-;OK_f3da5f7d-6027-4a2f-a899-0a76277b016e IN=cfn3b26b9385dd4 OUT=eth0 MAC=aa:aa:0a:ff:01:01:ee:ee:0a:ff:01:01:08:00 SRC=10.255.1.1 DST=192.168.77.10 LEN=39 TOS=0x00 PREC=0x00 TTL=63 ID=24859 DF PROTO=ICMP TYPE=8 CODE=0 ID=24859 SEQ=1 MARK=0x8 ',
  /** UDP prints a second LEN= (the UDP length); logged in an output hook: IN= is empty. */
  udpAllowed:
    '4,416,820207548,-;OK_5c7e1b0a-7d3e-4c1a-9b2f-0d1e2f3a4b5c IN= OUT=hav9712 SRC=10.255.9.5 DST=10.255.9.7 LEN=31 TOS=0x00 PREC=0x00 TTL=64 ID=19097 DF PROTO=UDP SPT=39511 DPT=53 LEN=11 ',
};

/** The message part of a kmsg record (what dmesg and syslog print after their own header). */
function message(record: string): string {
  return record.slice(record.indexOf(';') + 1);
}

describe('kernel log parser (real nf_log lines of cfnet log chains)', () => {
  it('a c2c denial is an ingress packet keyed by the destination handle; no MARK gives mark ""', () => {
    assert.deepEqual(parseKernelLogLine(KMSG.c2cLocal), {
      kind: 'DENY_C2C_',
      handle: '2add9a1e-778a-479f-a5f6-0c66286fe11f',
      packet: {
        direction: 'ingress',
        allowed: false,
        src_ip: '10.255.2.2',
        dst_ip: '10.255.2.1',
        src_port: 39474,
        dst_port: 8081,
        protocol: 'TCP',
        mark: '',
        icmp_type: 0,
        icmp_code: 0,
      },
    });
    assert.equal(parseKernelLogLine(KMSG.c2cRemote)?.packet.mark, '0x8');
  });

  it('an OK_C2C_ line is an allowed ingress packet keyed by the destination handle, not an OK_ egress line', () => {
    const e = parseKernelLogLine(KMSG.c2cAllowed)!;
    assert.equal(e.kind, 'OK_C2C_');
    assert.equal(e.handle, '2add9a1e-778a-479f-a5f6-0c66286fe11f');
    assert.deepEqual(
      [e.packet.direction, e.packet.allowed, e.packet.dst_port, e.packet.mark],
      ['ingress', true, 8080, '0x8'],
    );
  });

  it('DENY_ and OK_ lines are egress, denied and allowed, keyed by the source handle', () => {
    const denied = parseKernelLogLine(KMSG.egressDenied)!;
    assert.equal(denied.kind, 'DENY_');
    assert.equal(denied.handle, '88a1370b-2215-4058-a4ca-7fc5b77a0d52');
    assert.deepEqual(
      [denied.packet.direction, denied.packet.allowed, denied.packet.dst_ip, denied.packet.dst_port],
      ['egress', false, '192.168.77.10', 9001],
    );
    assert.equal(denied.packet.mark, '0x20008');
    const allowed = parseKernelLogLine(KMSG.egressAllowed)!;
    assert.deepEqual(
      [allowed.kind, allowed.packet.direction, allowed.packet.allowed, allowed.packet.src_port],
      ['OK_', 'egress', true, 45714],
    );
  });

  it('DENY_ORL_ lines (outbound connection limit) are egress and denied, keyed by the source handle, never read as DENY_', () => {
    const line = KMSG.egressDenied.replace('DENY_88a1370b', 'DENY_ORL_88a1370b');
    const cut = parseKernelLogLine(line)!;
    assert.deepEqual(
      [cut.kind, cut.handle, cut.packet.direction, cut.packet.allowed, cut.packet.dst_port],
      ['DENY_ORL_', '88a1370b-2215-4058-a4ca-7fc5b77a0d52', 'egress', false, 9001],
    );
  });

  it('ICMP: type and code, no ports; the first of repeated keys wins (UDP LEN=, ICMP ID=)', () => {
    const icmp = parseKernelLogLine(KMSG.icmpAllowed)!.packet;
    assert.deepEqual(
      [icmp.protocol, icmp.icmp_type, icmp.icmp_code, icmp.src_port, icmp.dst_port],
      ['ICMP', 8, 0, 0, 0],
    );
    const udp = parseKernelLogLine(KMSG.udpAllowed)!.packet;
    assert.deepEqual(
      [udp.protocol, udp.src_port, udp.dst_port, udp.src_ip],
      ['UDP', 39511, 53, '10.255.9.5'],
    );
  });

  it('the same message parses alike from /dev/kmsg, dmesg and a syslog file', () => {
    const want = parseKernelLogLine(KMSG.c2cRemote);
    const text = message(KMSG.c2cRemote);
    assert.deepEqual(parseKernelLogLine(`[  808.301376] ${text}`), want);
    assert.deepEqual(
      parseKernelLogLine(`2026-12-07T06:39:05.251123+00:00 cell-2 kernel: [  808.301376] ${text}`),
      want,
    );
    assert.deepEqual(parseKernelLogLine(`Dec  7 06:39:05 cell-2 kernel: ${text}`), want);
    // a kmsg record may carry dictionary lines after the message
    assert.deepEqual(parseKernelLogLine(`${KMSG.c2cRemote}\n SUBSYSTEM=net\n DEVICE=n3\n`), want);
  });

  it("keeps only cfnet's prefixes at the start of a word, followed by a handle and IN=", () => {
    const text = message(KMSG.egressDenied);
    for (const line of [
      'IPT: CBLK IN=eth0 OUT= SRC=46.45.161.187 DST=188.126.93.160 LEN=40 PROTO=TCP SPT=1 DPT=445',
      text.replace('DENY_', 'XDENY_'), // another tool's prefix that merely contains ours
      text.replace('DENY_88a1370b', 'DENY_ 88a1370b'), // no handle
      text.replace(' IN=', ' FOO='), // not a packet log
      'audit: type=1400 audit(1.2:3): apparmor="DENIED" operation="open" name="/etc/OK_x"',
      'usb 1-1: new high-speed USB device number 2 using ehci-pci',
      '',
    ]) {
      assert.equal(parseKernelLogLine(line), null, line);
    }
    assert.equal(parseKernelLogLine(text.replace(/SRC=\S+ /, '')), null, 'no source address');
  });

  it('a handle cut by the prefix length limit is returned as printed', () => {
    const long = `app-${'x'.repeat(60)}`;
    const cut = `DENY_C2C_${long}`.slice(0, 62);
    const line = message(KMSG.c2cLocal).replace('DENY_C2C_2add9a1e-778a-479f-a5f6-0c66286fe11f', cut);
    assert.equal(parseKernelLogLine(line)?.handle, cut.slice('DENY_C2C_'.length));
  });
});
