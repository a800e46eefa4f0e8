import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { InventoryReader, REPORTED_METADATA_MAX_CHARS, reportedMetadata } from '../../src/agent/inventory.js';
import { AddressInUseError, cellHolders, NO_TABLE_USE, tableHolding } from '../../src/cni/address-use.js';
import { attachmentName, findAttachment } from '../../src/cni/attachment.js';
import {
  checkMetadataSize,
  MAX_METADATA_BYTES,
  parseAddInput,
  parseNetConfig,
} from '../../src/cni/config.js';
import { checkEnv } from '../../src/cni/env.js';
import { CniError, toCniError } from '../../src/cni/errors.js';
import { sourceTable } from '../../src/cni/link.js';
import { invokeCni } from '../../src/cni/plugin/index.js';
import type { StoreData } from '../../src/cni/store.js';
import { aboutText, SUPPORTED_VERSIONS } from '../../src/cni/version.js';
import { checkHandle } from '../../src/dataplane/desired.js';
import { ValidationError } from '../../src/lib/errors.js';

const BASE = { cniVersion: '1.0.0', name: 'cfnet', type: 'cfnet-cni', subnet: '10.255.3.0/24' };

describe('Garden metadata is bounded', () => {
  const input = (metadata: Record<string, unknown>) => parseAddInput(parseNetConfig({ ...BASE, metadata }));

  it(`accepts metadata up to ${MAX_METADATA_BYTES} bytes of JSON`, () => {
    const meta = { policy_group_id: 'app' } as Record<string, unknown>;
    meta.pad = 'x'.repeat(MAX_METADATA_BYTES - Buffer.byteLength(JSON.stringify({ ...meta, pad: '' })));
    assert.equal(Buffer.byteLength(JSON.stringify(meta)), MAX_METADATA_BYTES);
    assert.deepEqual(input(meta).metadata, meta, 'recorded verbatim');
  });

  it('refuses one byte more with CNI code 7 naming metadata and the limit', () => {
    const meta = { pad: 'x'.repeat(MAX_METADATA_BYTES - Buffer.byteLength('{"pad":""}') + 1) };
    assert.throws(
      () => input(meta),
      (err: unknown) => {
        assert.ok(err instanceof ValidationError);
        assert.equal(err.field, 'metadata');
        const e = toCniError(err);
        assert.equal(e.cniCode, 7);
        assert.match(e.message, /invalid metadata "<16385 bytes>": is larger than 16384 bytes/);
        return true;
      },
    );
  });

  it('counts UTF-8 bytes, not characters', () => {
    const chars = Math.floor(MAX_METADATA_BYTES / 2);
    assert.throws(() => checkMetadataSize({ pad: 'é'.repeat(chars) }), ValidationError);
    assert.doesNotThrow(() => checkMetadataSize({ pad: 'e'.repeat(chars) }));
  });

  it('an oversized ADD is refused before any I/O (the datastore and the table are never reached)', async () => {
    let touched = false;
    const out = await invokeCni(
      {
        env: {
          CNI_COMMAND: 'ADD',
          CNI_CONTAINERID: 'c1',
          CNI_NETNS: '/proc/self/ns/net',
          CNI_IFNAME: 'eth0',
          CNI_PATH: '/x',
        },
        stdin: JSON.stringify({
          ...BASE,
          datastore: '/nonexistent/store.json',
          metadata: { x: 'y'.repeat(2 << 20) },
        }),
      },
      {
        dataplane: () => {
          touched = true;
          throw new Error('must not be reached');
        },
      },
    );
    assert.equal(out.exitCode, 1);
    assert.equal((JSON.parse(out.stdout) as { code: number }).code, 7);
    assert.equal(touched, false);
  });

  it("the agent's status report carries only the identity keys, as bounded strings", () => {
    const huge = 'x'.repeat(2 << 20);
    assert.deepEqual(
      reportedMetadata({
        policy_group_id: 'app',
        space_id: 'space',
        org_id: 'org',
        container_workload: 'task',
        log_config: { huge },
        ports: '8080',
        app_id: huge.slice(0, REPORTED_METADATA_MAX_CHARS + 1),
      }),
      { policy_group_id: 'app', space_id: 'space', org_id: 'org', container_workload: 'task' },
    );
    assert.deepEqual(reportedMetadata(null), {});
    assert.deepEqual(reportedMetadata(['policy_group_id']), {});
  });

  it('a datastore record with megabytes of metadata (written before the limit) still gives a small report', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-inventory-'));
    try {
      const store = join(dir, 'store.json');
      const data: StoreData = {
        big: {
          handle: 'big',
          ip: '10.255.3.2',
          metadata: { policy_group_id: 'app-1', blob: 'x'.repeat(2 << 20) },
        },
        small: { handle: 'small', ip: '10.255.3.3', metadata: { policy_group_id: 'app-2' } },
      };
      await writeFile(store, JSON.stringify(data));
      const inv = await new InventoryReader(store).read(true);
      assert.deepEqual(
        inv.items.map((i) => [i.handle, i.metadata]),
        [
          ['big', { policy_group_id: 'app-1' }],
          ['small', { policy_group_id: 'app-2' }],
        ],
      );
      assert.ok(Buffer.byteLength(JSON.stringify(inv.items)) < 200, 'the report stays small');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('attachments: (container ID, interface name)', () => {
  it("eth0 keeps the bare container ID (CF's handle); other interfaces append :<ifname>", () => {
    assert.equal(attachmentName('abc-123', 'eth0'), 'abc-123');
    assert.equal(attachmentName('abc-123', 'eth1'), 'abc-123:eth1');
    assert.equal(attachmentName('abc-123', 'net1'), 'abc-123:net1');
    assert.notEqual(attachmentName('a', 'eth1'), attachmentName('a.eth1', 'eth0'), 'no collision with an ID');
    // every name is a valid handle for the dataplane and the agent API
    assert.doesNotThrow(() => checkHandle('h', attachmentName('x'.repeat(100), 'eth12')));
  });

  it('refuses names that cannot be a handle: code 4 naming the variable', () => {
    const code = (fn: () => unknown) => {
      try {
        fn();
      } catch (err) {
        assert.ok(err instanceof CniError);
        return err.cniCode;
      }
      return 0;
    };
    assert.equal(
      code(() => attachmentName('abc', 'eth@1')),
      4,
    );
    assert.equal(
      code(() => attachmentName('x'.repeat(124), 'eth1')),
      4,
      'too long with :eth1',
    );
    assert.equal(
      code(() => attachmentName('x'.repeat(128), 'eth0')),
      0,
      'eth0 adds nothing',
    );
  });

  it('finds a record by container ID and interface, also one keyed the old way', () => {
    const data: StoreData = {
      c1: { handle: 'c1', ip: '10.255.3.2', metadata: {} },
      'c1:eth1': { handle: 'c1', ip: '10.255.3.3', metadata: {}, cfnet: rec('eth1') },
      c2: { handle: 'c2', ip: '10.255.3.4', metadata: {}, cfnet: rec('net5') },
    };
    assert.equal(
      findAttachment(data, { containerId: 'c1', ifname: 'eth0' })?.key,
      'c1',
      "Silk's record: eth0",
    );
    assert.equal(findAttachment(data, { containerId: 'c1', ifname: 'eth1' })?.entry.ip, '10.255.3.3');
    assert.equal(findAttachment(data, { containerId: 'c1', ifname: 'eth2' }), null);
    assert.equal(
      findAttachment(data, { containerId: 'c2', ifname: 'net5' })?.key,
      'c2',
      'written before names',
    );
    assert.equal(findAttachment(data, { containerId: 'c2', ifname: 'eth0' }), null);
  });

  it('each additional attachment gets its own routing table in the container', () => {
    assert.equal(sourceTable('10.255.3.7'), 0x10000 + 3 * 256 + 7);
    assert.notEqual(sourceTable('10.255.3.7'), sourceTable('10.255.3.8'));
  });
});

function rec(ifname: string) {
  return {
    network: 'cfnet',
    ifname,
    hostIface: 'cfn000000000000',
    netns: '/run/netns/x',
    mtu: 1450,
    subnet: '10.255.3.0/24',
    createdAt: '2026-01-01T00:00:00Z',
  };
}

describe("ADD's address check", () => {
  it('a table entry of another attachment is in use only while that attachment is on the cell', () => {
    const use = {
      handles: new Map([
        ['10.255.3.9', 'live-container'],
        ['10.255.3.10', 'me'],
        ['10.255.3.11', 'departed'],
      ]),
      netIn: new Map([[61001, '10.255.3.9']]),
    };
    // "lo" stands for the live attachment's host veth: it exists in every namespace
    const vethOf = (h: string) => (h === 'live-container' ? 'lo' : `cfn-${h}`);
    assert.deepEqual(tableHolding(use, '10.255.3.9', 'me', vethOf), {
      live: ['nft ctr_addrs element of live-container (attached: lo, NetIn host port 61001)'],
      stale: [],
    });
    assert.deepEqual(tableHolding(use, '10.255.3.10', 'me', vethOf), { live: [], stale: [] });
    assert.deepEqual(tableHolding(use, '10.255.3.11', 'me', vethOf), { live: [], stale: ['departed'] });
    assert.deepEqual(tableHolding(NO_TABLE_USE, '10.255.3.9', 'me', vethOf), { live: [], stale: [] });
  });

  it('sees an address held by an interface of this namespace', () => {
    assert.deepEqual(cellHolders('127.0.0.1', 'aa:aa:7f:00:00:01'), ['address of interface lo']);
    assert.deepEqual(cellHolders('10.255.254.253', 'aa:aa:0a:ff:fe:fd'), []);
  });

  it('is a typed CNI error naming the address, the holders and the datastore', () => {
    const e = new AddressInUseError('10.255.3.9', ['route 10.255.3.9/32 dev cfn1'], '/data/store.json');
    assert.ok(e instanceof CniError);
    assert.equal(e.cniCode, 999);
    assert.deepEqual(e.context.holders, ['route 10.255.3.9/32 dev cfn1']);
    assert.match(e.message, /address 10\.255\.3\.9 is free in the datastore \/data\/store\.json but in use/);
  });
});

describe('VERSION and the about text (as skel)', () => {
  it('VERSION needs nothing but CNI_COMMAND, whatever else is set', () => {
    assert.deepEqual(
      checkEnv({ CNI_COMMAND: 'VERSION', CNI_NETNS: 'dummy', CNI_CONTAINERID: '-x-', CNI_IFNAME: '' }),
      {
        command: 'VERSION',
      },
    );
  });

  it('the about text names the plugin and every supported version', () => {
    assert.equal(
      aboutText(),
      `CNI cfnet-cni plugin (cfnet; docs/cni.md)\nCNI protocol versions supported: ${SUPPORTED_VERSIONS.join(', ')}\n`,
    );
  });
});
