/**
 * CF client throughput:
 *  1. BBS event decoding: (a) `decodeEvent` alone; (b) the full stream path — a local mTLS server
 *     writing events framed exactly as BBS frames them (`%x;\r\n…\r\n`), read by `BbsEventStream`
 *     (raw TLS socket → chunk decoder → eventsource SSE parser → base64 → protobuf).
 *  2. CAPI security-group listing of the large foundation (1,000 ASGs) from the simulator, v3 and v2.
 *  3. The simulator's side of a BBS ActualLRP listing of the large foundation (250,000 records):
 *     protobuf encoding of every record (cold cache) and the list body spliced from the cache.
 *
 * Run: npx tsx bench/cf-decode.ts [--events N] [--skip-capi] [--skip-sim-encode]
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { BbsEventStream } from '../src/cf/bbs-events.js';
import { ChunkedDecoder } from '../src/cf/chunked.js';
import { createCa, issueCert } from '../src/lib/tls.js';
import { decodeEvent, encodeEvent, type models } from '../src/model/bbs-messages.js';
import { eventStreamHead, frameEvent } from '../src/sim/bbs.js';

if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(
    "usage: npx tsx bench/cf-decode.ts [--events N] [--skip-capi] [--skip-sim-encode]\n  BBS event decoding, CAPI security-group listing and the simulator's BBS listing; prints a table",
  );
  process.exit(0);
}
const args = process.argv.slice(2);
const argNum = (name: string, def: number): number => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : def;
};
const EVENTS = argNum('--events', 200_000);
const SKIP_CAPI = args.includes('--skip-capi');
const SKIP_SIM_ENCODE = args.includes('--skip-sim-encode');

interface Row {
  what: string;
  value: string;
  detail: string;
}
const rows: Row[] = [];

function guid(i: number): string {
  const h = i.toString(16).padStart(12, '0');
  return `6a1f0c2e-5b7d-4e2a-9c1b-${h}`;
}

/** A realistic mix: 80% instance changes, 10% crashes, 10% desired-LRP changes with ASG rules. */
function sampleEvents(n: number): { name: string; data: string }[] {
  const out: { name: string; data: string }[] = [];
  const desired = (i: number): models.IDesiredLRP => ({
    processGuid: `${guid(i)}-${guid(i + 1)}`,
    domain: 'cf-apps',
    instances: 3,
    logGuid: guid(i),
    ports: [8080, 2222],
    egressRules: Array.from({ length: 10 }, (_, r) => ({
      protocol: 'tcp',
      destinations: [`10.${r}.0.0/16`],
      ports: [443, 8443],
      annotations: [`security_group_id:${guid(r)}`],
    })),
    network: {
      properties: {
        policy_group_id: guid(i),
        app_id: guid(i),
        space_id: guid(i % 100),
        org_id: guid(7),
        ports: '8080',
        container_workload: 'app',
      },
    },
  });
  for (let i = 0; i < n; i++) {
    const k = i % 10;
    if (k < 8) {
      out.push({
        name: 'actual_lrp_instance_changed',
        data: encodeEvent('actual_lrp_instance_changed', {
          actualLrpKey: { processGuid: `${guid(i)}-${guid(i + 1)}`, index: i % 4, domain: 'cf-apps' },
          actualLrpInstanceKey: { instanceGuid: guid(i + 5), cellId: `cell-${i % 2500}` },
          before: { state: 'CLAIMED' },
          after: {
            state: 'RUNNING',
            actualLrpNetInfo: {
              address: '10.0.16.4',
              instanceAddress: '10.255.12.34',
              ports: [{ containerPort: 8080, hostPort: 61001 }],
            },
          },
        } as models.ActualLRPInstanceChangedEvent),
      });
    } else if (k === 8) {
      out.push({
        name: 'actual_lrp_crashed',
        data: encodeEvent('actual_lrp_crashed', {
          actualLrpKey: { processGuid: `${guid(i)}-${guid(i + 1)}`, index: 0, domain: 'cf-apps' },
          actualLrpInstanceKey: { instanceGuid: guid(i + 5), cellId: `cell-${i % 2500}` },
          crashCount: 1,
          crashReason: 'APP/PROC/WEB: Exited with status 1',
        } as models.ActualLRPCrashedEvent),
      });
    } else {
      out.push({
        name: 'desired_lrp_changed',
        data: encodeEvent('desired_lrp_changed', {
          before: desired(i),
          after: { ...desired(i), instances: 4 },
        } as models.DesiredLRPChangedEvent),
      });
    }
  }
  return out;
}

function frameEvents(events: { name: string; data: string }[]): Buffer {
  return Buffer.concat(events.map((e, id) => Buffer.from(frameEvent(id, e.name, e.data))));
}

function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

async function benchDecode(events: { name: string; data: string }[]): Promise<void> {
  // warm up
  for (const e of events.slice(0, 5000)) decodeEvent(e.name, e.data);
  const t0 = process.hrtime.bigint();
  for (const e of events) decodeEvent(e.name, e.data);
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push({
    what: 'decodeEvent (base64 + protobuf)',
    value: `${fmt(events.length / s)} events/s`,
    detail: `${events.length} events`,
  });
}

function benchChunks(wire: Buffer): void {
  const t0 = process.hrtime.bigint();
  const dec = new ChunkedDecoder();
  const step = 16 * 1024; // TLS record sized pieces
  let bytes = 0;
  for (let i = 0; i < wire.length; i += step)
    for (const d of dec.push(wire.subarray(i, i + step))) bytes += d.length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  rows.push({
    what: 'ChunkedDecoder (BBS framing)',
    value: `${fmt(wire.length / s / 1e6)} MB/s`,
    detail: `${(wire.length / 1e6).toFixed(1)} MB, ${fmt(dec.chunkCount)} chunks, ${fmt(bytes)} data bytes`,
  });
}

async function benchStream(events: { name: string; data: string }[], wire: Buffer): Promise<void> {
  const ca = createCa({ cn: 'bench CA' });
  const srv = issueCert(ca, { cn: 'bbs.service.cf.internal', sans: ['127.0.0.1'], usage: 'server' });
  const cli = issueCert(ca, { cn: 'bench-client', usage: 'client' });
  const server = tls.createServer({
    key: srv.key,
    cert: srv.cert,
    ca: ca.cert,
    requestCert: true,
    rejectUnauthorized: true,
  });
  server.on('secureConnection', (socket) => {
    socket.on('error', () => {});
    socket.once('data', () => {
      socket.write(eventStreamHead());
      socket.write(wire);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const stream = new BbsEventStream({
    url: `https://127.0.0.1:${port}`,
    tls: { ca: ca.cert, cert: cli.cert, key: cli.key },
    kind: 'lrp',
    idleTimeoutMs: 0,
  });
  let n = 0;
  let t0 = 0n;
  const done = new Promise<void>((resolve) => {
    stream.on('open', () => {
      t0 = process.hrtime.bigint();
    });
    stream.on('event', () => {
      n += 1;
      if (n === events.length) resolve();
    });
  });
  stream.start();
  await done;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  stream.close();
  await new Promise<void>((r) => server.close(() => r()));
  rows.push({
    what: 'BbsEventStream over mTLS (BBS framing → SSE → decode)',
    value: `${fmt(events.length / s)} events/s`,
    detail: `${events.length} events, ${(wire.length / 1e6).toFixed(1)} MB in ${s.toFixed(2)} s; decode errors ${stream.counters.decodeErrors}`,
  });
}

async function benchCapi(): Promise<void> {
  const { startSimulator } = await import('../src/sim/index.js');
  const { UaaClient } = await import('../src/cf/uaa-client.js');
  const { CapiClient } = await import('../src/cf/capi-client.js');
  const t0 = Date.now();
  const sim = await startSimulator({ seed: 1, size: 'large', capiV2: true });
  rows.push({
    what: 'simulator start (large)',
    value: `${((Date.now() - t0) / 1000).toFixed(1)} s`,
    detail: '',
  });
  try {
    const uaa = new UaaClient({
      url: sim.urls.uaa,
      clientId: sim.uaaClient.id,
      clientSecret: sim.uaaClient.secret,
      tls: { ca: sim.tls.caCert },
    });
    const capi = new CapiClient({
      url: sim.urls.capi,
      tls: { ca: sim.tls.caCert },
      auth: uaa,
      internal: {
        url: sim.urls.ccInternal,
        tls: { ca: sim.tls.caCert, cert: sim.tls.clientCert, key: sim.tls.clientKey },
      },
    });
    await uaa.token();
    for (const version of ['v3', 'v2'] as const) {
      await capi.listSecurityGroups({ version }); // warm-up (JIT, keep-alive)
      const times: number[] = [];
      let last = { groups: 0, invalid: 0, requests: 0, spaces: 0 };
      for (let i = 0; i < 3; i++) {
        const s = process.hrtime.bigint();
        const l = await capi.listSecurityGroups({ version });
        times.push(Number(process.hrtime.bigint() - s) / 1e6);
        last = {
          groups: l.groups.length,
          invalid: l.invalid.length,
          requests: l.requests,
          spaces: l.groups.reduce((a, g) => a + g.runningSpaces.length + g.stagingSpaces.length, 0),
        };
      }
      times.sort((a, b) => a - b);
      rows.push({
        what: `CAPI ${version} listing, large foundation`,
        value: `${times[1]!.toFixed(0)} ms (median of 3)`,
        detail: `${last.groups} groups (+${last.invalid} invalid), ${last.spaces} space bindings, ${last.requests} requests`,
      });
    }
    const s = process.hrtime.bigint();
    const stable = await capi.listSecurityGroupsStable();
    rows.push({
      what: 'CAPI v3 stable listing (asg_latest_update checks)',
      value: `${(Number(process.hrtime.bigint() - s) / 1e6).toFixed(0)} ms`,
      detail: `${stable.groups.length} groups, ${stable.tries} pass(es)`,
    });
    capi.close();
    uaa.close();
    if (!SKIP_SIM_ENCODE) await benchBbsList(sim);
  } finally {
    await sim.stop();
  }
}

/**
 * What the simulated BBS does for `POST /v1/actual_lrps/list` on the large foundation, in process:
 * encode every ActualLRP with protobufjs into the per-record cache (the first listing after the
 * records changed) and splice the cached messages into the body pieces (every listing). Median of
 * 3 fresh caches.
 */
async function benchSimEncode(): Promise<void> {
  const { generateWorld } = await import('../src/sim/generate.js');
  const { ActualEncoder, listResponseLength, listResponsePieces } = await import('../src/sim/bbs-encode.js');
  const world = generateWorld(1, 'large');
  const list = (enc: InstanceType<typeof ActualEncoder>): number => {
    const messages: Uint8Array[] = [];
    for (const a of world.actualLrps.values()) messages.push(enc.encode(a));
    let bytes = 0;
    for (const piece of listResponsePieces(messages)) bytes += piece.length;
    if (bytes !== listResponseLength(messages)) throw new Error('list body length mismatch');
    return bytes;
  };
  const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;
  const cold: number[] = [];
  const warm: number[] = [];
  let bytes = 0;
  for (let i = 0; i < 3; i++) {
    const enc = new ActualEncoder(world, true);
    let t0 = process.hrtime.bigint();
    list(enc);
    cold.push(ms(t0));
    t0 = process.hrtime.bigint();
    bytes = list(enc);
    warm.push(ms(t0));
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[1] as number;
  const detail = `${fmt(world.actualLrps.size)} ActualLRPs, ${(bytes / 1e6).toFixed(1)} MB body`;
  rows.push({
    what: 'sim ActualLRP list, large: encode all (cold cache)',
    value: `${median(cold).toFixed(0)} ms (median of 3)`,
    detail,
  });
  rows.push({
    what: 'sim ActualLRP list, large: body from cache',
    value: `${median(warm).toFixed(0)} ms (median of 3)`,
    detail,
  });
}

/** Time to the last byte of the simulator's large ActualLRP listing over mTLS (body not decoded). */
async function benchBbsList(sim: import('../src/sim/index.js').SimHandle): Promise<void> {
  const https = await import('node:https');
  const fetchList = () =>
    new Promise<{ ms: number; bytes: number }>((resolve, reject) => {
      const t0 = process.hrtime.bigint();
      const req = https.request(`${sim.urls.bbs}/v1/actual_lrps/list`, {
        method: 'POST',
        ca: sim.tls.caCert,
        cert: sim.tls.clientCert,
        key: sim.tls.clientKey,
        agent: false,
        headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': '0' },
      });
      req.on('response', (res) => {
        let bytes = 0;
        res.on('data', (d: Buffer) => {
          bytes += d.length;
        });
        res.on('end', () => {
          if (bytes !== Number(res.headers['content-length'])) reject(new Error('short body'));
          else resolve({ ms: Number(process.hrtime.bigint() - t0) / 1e6, bytes });
        });
      });
      req.on('error', reject);
      req.end();
    });
  const first = await fetchList();
  const later = [await fetchList(), await fetchList(), await fetchList()].sort((a, b) => a.ms - b.ms);
  const detail = `${(first.bytes / 1e6).toFixed(1)} MB`;
  rows.push({
    what: 'sim BBS actual_lrps/list over mTLS, first (cold)',
    value: `${first.ms.toFixed(0)} ms`,
    detail,
  });
  rows.push({
    what: 'sim BBS actual_lrps/list over mTLS, cached',
    value: `${later[1]!.ms.toFixed(0)} ms (median of 3)`,
    detail,
  });
}

async function main(): Promise<void> {
  const events = sampleEvents(EVENTS);
  const wire = frameEvents(events);
  await benchDecode(events);
  benchChunks(wire);
  await benchStream(events, wire);
  if (!SKIP_CAPI) await benchCapi();
  if (!SKIP_SIM_ENCODE) await benchSimEncode();
  const w1 = Math.max(...rows.map((r) => r.what.length));
  const w2 = Math.max(...rows.map((r) => r.value.length));
  console.log(`| ${'measurement'.padEnd(w1)} | ${'result'.padEnd(w2)} | detail |`);
  console.log(`|${'-'.repeat(w1 + 2)}|${'-'.repeat(w2 + 2)}|--------|`);
  for (const r of rows) console.log(`| ${r.what.padEnd(w1)} | ${r.value.padEnd(w2)} | ${r.detail} |`);
}

await main();
