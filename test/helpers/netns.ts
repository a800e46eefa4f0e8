/**
 * Network-namespace helpers for tests (root only): unique per-run namespaces that are always
 * removed, commands inside them, veth/address/route helpers, TCP/UDP echo servers, a batch TCP/UDP
 * prober, an ICMP prober (python3 raw socket: any type/code), long-lived TCP connections, kernel
 * log capture and temporary sysctls. Traffic stays inside namespaces the test created.
 *
 *   await withNetns(['cell', 'a'], async (ns) => {
 *     await veth(ns.cell, 'h-a', ns.a, 'eth0');
 *     await exec(ns.a, ['ip', 'addr', 'add', '10.255.1.2/32', 'dev', 'eth0']);
 *   });
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createNetns, deleteNetns, exec, ip, run, uniqueName } from '../../src/lab/netns.js';
import { waitUntil } from './wait.js';

// The basics live in the lab foundation (src/lab/netns.ts), shared with the demo and benches.
export {
  createNetns,
  deleteNetns,
  type ExecOptions,
  type ExecResult,
  exec,
  ip,
  localAddrs,
  run,
  sysctlNs,
  uniqueName,
} from '../../src/lab/netns.js';

/**
 * Creates one namespace per logical name (unique per run), passes the map logical -> real name,
 * and always deletes them (and the processes inside) afterwards, even when fn throws.
 */
export async function withNetns<T>(
  names: readonly string[],
  fn: (ns: Record<string, string>) => Promise<T>,
): Promise<T> {
  const ns: Record<string, string> = {};
  try {
    for (const n of names) {
      const real = uniqueName(`cft${n.replace(/[^a-z0-9]/gi, '').slice(0, 6)}`);
      ns[n] = real;
      await createNetns(real);
    }
    return await fn(ns);
  } finally {
    for (const real of Object.values(ns)) await deleteNetns(real);
  }
}

/** A veth pair between two namespaces, both ends up. Interface names <= 15 chars. */
export async function veth(
  nsA: string,
  ifA: string,
  nsB: string,
  ifB: string,
  opts: { addrA?: string; addrB?: string; mtu?: number } = {},
): Promise<void> {
  const tmpA = `v${randomBytes(5).toString('hex')}`;
  const tmpB = `v${randomBytes(5).toString('hex')}`;
  await run(['ip', 'link', 'add', tmpA, 'type', 'veth', 'peer', 'name', tmpB]);
  await run(['ip', 'link', 'set', tmpA, 'netns', nsA, 'name', ifA]);
  await run(['ip', 'link', 'set', tmpB, 'netns', nsB, 'name', ifB]);
  for (const [ns, dev, addr] of [
    [nsA, ifA, opts.addrA],
    [nsB, ifB, opts.addrB],
  ] as const) {
    if (opts.mtu) await ip(ns, 'link', 'set', dev, 'mtu', String(opts.mtu));
    if (addr) await ip(ns, 'addr', 'add', addr, 'dev', dev);
    await ip(ns, 'link', 'set', dev, 'up');
  }
}

/**
 * Silk-style container attachment: a veth from `cellNs` (host side `hostIf`) into `ctrNs` (eth0)
 * with the container's /32, gateway 169.254.0.1 on the host side and a /32 route to the container.
 */
export async function attachContainer(
  cellNs: string,
  hostIf: string,
  ctrNs: string,
  ctrIp: string,
): Promise<void> {
  await veth(cellNs, hostIf, ctrNs, 'eth0');
  await ip(cellNs, 'addr', 'add', '169.254.0.1/32', 'dev', hostIf);
  await ip(cellNs, 'route', 'add', `${ctrIp}/32`, 'dev', hostIf);
  await ip(ctrNs, 'addr', 'add', `${ctrIp}/32`, 'dev', 'eth0');
  await ip(ctrNs, 'route', 'add', '169.254.0.1/32', 'dev', 'eth0');
  await ip(ctrNs, 'route', 'add', 'default', 'via', '169.254.0.1', 'dev', 'eth0');
}

// ------------------------------------------------------------------ servers and probes

const SERVER = `
const net = require('node:net'); const dgram = require('node:dgram');
const cfg = JSON.parse(process.argv[1]); let pending = 0; const done = () => { if (--pending === 0) console.log('ready'); };
for (const h of cfg.hosts) {
for (const p of cfg.tcp) { pending++; const s = net.createServer((c) => { c.on('data', (d) => c.write('pong:' + p + ':' + c.remoteAddress + ':' + d + '\\n')); c.on('error', () => {}); }); s.listen(p, h, done); }
for (const p of cfg.udp) { pending++; const s = dgram.createSocket('udp4'); s.on('message', (m, r) => s.send('pong:' + p + ':' + r.address + ':' + m, r.port, r.address)); s.bind(p, h, done); }
}
if (pending === 0) console.log('ready');
setInterval(() => {}, 1 << 30);
`;

export interface Server {
  close(): void;
}

/**
 * Echo servers (`pong:<port>:<peer address>:<data>`) on TCP and UDP ports inside `ns`, on each of
 * `hosts` (default 0.0.0.0). UDP replies leave from the bound address, so bind the exact addresses
 * a UDP client will use when the namespace has several. Resolves once listening.
 */
export async function startServers(
  ns: string,
  ports: { tcp?: number[]; udp?: number[]; hosts?: string[] },
): Promise<Server> {
  const cfg = JSON.stringify({
    tcp: ports.tcp ?? [],
    udp: ports.udp ?? [],
    hosts: ports.hosts ?? ['0.0.0.0'],
  });
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', SERVER, cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString();
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server in ${ns} did not start: ${stderr}`)), 10_000);
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l === 'ready') {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server in ${ns} exited (${code}): ${stderr}`));
    });
  });
  return { close: () => child.kill('SIGKILL') };
}

export interface Probe {
  proto: 'tcp' | 'udp';
  host: string;
  port: number;
}

/** open = the echo answered; refused = RST or ICMP unreachable; timeout = no answer (dropped). */
export type ProbeResult = 'open' | 'refused' | 'unreachable' | 'timeout' | 'error';

/**
 * JavaScript source of `one(p)`: one probe → a ProbeResult string. Shared by `probe` (one round)
 * and FlowWatch (rounds until stopped); expects `timeout` (ms) in scope.
 */
export const PROBE_ONE_JS = `
const net = require('node:net'); const dgram = require('node:dgram');
const one = (p) => new Promise((res) => {
  let done = false; let s;
  const fin = (r) => { if (!done) { done = true; clearTimeout(t); try { s.destroy ? s.destroy() : s.close(); } catch {} res(r); } };
  const t = setTimeout(() => fin('timeout'), timeout);
  const code = (e) => e.code === 'ECONNREFUSED' ? 'refused' : (e.code === 'EHOSTUNREACH' || e.code === 'ENETUNREACH') ? 'unreachable' : 'error:' + e.code;
  if (p.proto === 'tcp') {
    s = net.connect({ host: p.host, port: p.port });
    s.on('connect', () => s.write('ping'));
    s.on('data', (d) => fin(String(d).startsWith('pong:') ? 'open' : 'error'));
    s.on('error', (e) => fin(code(e)));
  } else {
    s = dgram.createSocket('udp4');
    s.on('message', (d) => fin(String(d).startsWith('pong:') ? 'open' : 'error'));
    s.on('error', (e) => fin(code(e)));
    s.connect(p.port, p.host, () => s.send('ping'));
  }
});
`;

const PROBER = `
const { probes, timeout } = JSON.parse(process.argv[1]);
${PROBE_ONE_JS}
Promise.all(probes.map(one)).then((r) => { console.log(JSON.stringify(r)); process.exit(0); });
`;

/** Runs all probes concurrently from inside `ns` (one process), results in order. */
export async function probe(ns: string, probes: Probe[], timeoutMs = 1500): Promise<ProbeResult[]> {
  const r = await exec(ns, [process.execPath, '-e', PROBER, JSON.stringify({ probes, timeout: timeoutMs })], {
    timeoutMs: timeoutMs + 10_000,
  });
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as ProbeResult[];
}

/** Convenience: one TCP probe. */
export async function tcp(ns: string, host: string, port: number, timeoutMs = 1500): Promise<ProbeResult> {
  return (await probe(ns, [{ proto: 'tcp', host, port }], timeoutMs))[0]!;
}

export async function udp(ns: string, host: string, port: number, timeoutMs = 1500): Promise<ProbeResult> {
  return (await probe(ns, [{ proto: 'udp', host, port }], timeoutMs))[0]!;
}

const ICMP = `
import socket, struct, sys, time, os, json
dst, typ, code, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
def csum(b):
    if len(b) % 2: b += b'\\0'
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
ident = os.getpid() & 0xffff
payload = b'\\0' * 12 if typ == 13 else b'cfnet-probe'
hdr = struct.pack('!BBHHH', typ, code, 0, ident, 1)
pkt = struct.pack('!BBHHH', typ, code, csum(hdr + payload), ident, 1) + payload
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.2); s.sendto(pkt, (dst, 0)); end = time.time() + timeout; res = 'timeout'
while time.time() < end:
    try: data, addr = s.recvfrom(2048)
    except socket.timeout: continue
    ihl = (data[0] & 15) * 4; t, c = data[ihl], data[ihl + 1]
    if t in (0, 14) and addr[0] == dst and struct.unpack('!H', data[ihl+4:ihl+6])[0] == ident: res = 'reply'; break
    if t == 3:
        inner = data[ihl + 8:]; iihl = (inner[0] & 15) * 4
        if len(inner) >= iihl + 6 and struct.unpack('!H', inner[iihl+4:iihl+6])[0] == ident: res = 'unreachable'; break
print(json.dumps(res))
`;

export type IcmpResult = 'reply' | 'unreachable' | 'timeout';

/** Sends one ICMP message (echo = type 8, timestamp = 13, any code) and reports what came back. */
export async function icmp(
  ns: string,
  dst: string,
  opts: { type?: number; code?: number; timeoutMs?: number } = {},
): Promise<IcmpResult> {
  const r = await exec(ns, [
    'python3',
    '-c',
    ICMP,
    dst,
    String(opts.type ?? 8),
    String(opts.code ?? 0),
    String((opts.timeoutMs ?? 1000) / 1000),
  ]);
  return JSON.parse(r.stdout.trim()) as IcmpResult;
}

const CONN = `
const net = require('node:net'); const [host, port] = process.argv.slice(1);
const s = net.connect({ host, port: Number(port) }, () => console.log('connected'));
s.on('data', (d) => console.log('data ' + String(d).trim()));
s.on('error', (e) => { console.log('error ' + e.code); process.exit(1); });
s.on('close', () => { console.log('closed'); process.exit(0); });
process.stdin.on('data', (d) => s.write(String(d).trim()));
`;

/** A long-lived TCP connection from inside `ns`; send() resolves with the echo reply. */
export class LongConnection {
  private readonly child: ChildProcess;
  private readonly waiters: ((line: string) => void)[] = [];
  private lines: string[] = [];

  private constructor(child: ChildProcess) {
    this.child = child;
    createInterface({ input: child.stdout! }).on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.lines.push(l);
    });
  }

  static async open(ns: string, host: string, port: number, timeoutMs = 3000): Promise<LongConnection> {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', CONN, host, String(port)], {
      stdio: ['pipe', 'pipe', 'ignore'],
    });
    const c = new LongConnection(child);
    const first = await c.next(timeoutMs);
    if (first !== 'connected') {
      c.close();
      throw new Error(`connection to ${host}:${port} from ${ns} failed: ${first}`);
    }
    return c;
  }

  private next(timeoutMs: number): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve('timeout');
      }, timeoutMs);
      const w = (line: string) => {
        clearTimeout(timer);
        resolve(line);
      };
      this.waiters.push(w);
    });
  }

  /** Sends `text`, resolves with the reply line (`data pong:<port>:<peer>:<text>`) or `timeout`. */
  async send(text: string, timeoutMs = 2000): Promise<string> {
    this.child.stdin!.write(`${text}\n`);
    return this.next(timeoutMs);
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}

// ------------------------------------------------------------------ kernel log and sysctls

/** Kernel log lines (dmesg) containing `needle`. */
export async function kernelLog(needle: string): Promise<string[]> {
  const r = await run(['dmesg']);
  return r.stdout.split('\n').filter((l) => l.includes(needle));
}

/** Waits until a kernel log line contains `needle` (nf_log is asynchronous only in theory). */
export async function waitKernelLog(needle: string, timeoutMs = 3000): Promise<string[]> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const lines = await kernelLog(needle);
    if (lines.length > 0 || Date.now() > end) return lines;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Sets a host sysctl for the duration of fn, restoring the previous value afterwards. */
export async function withSysctl<T>(key: string, value: string, fn: () => Promise<T>): Promise<T> {
  const old = (await run(['sysctl', '-n', key])).stdout.trim();
  await run(['sysctl', '-qw', `${key}=${value}`]);
  try {
    return await fn();
  } finally {
    await run(['sysctl', '-qw', `${key}=${old}`], { allowFail: true });
  }
}

/** Probes until the results equal `want` (rules converge asynchronously); fails with the last seen. */
export async function expectTraffic(
  what: string,
  ns: string,
  probes: Probe[],
  want: ProbeResult[],
  timeoutMs = 15_000,
): Promise<void> {
  let last: ProbeResult[] = [];
  try {
    await waitUntil(
      what,
      async () => {
        last = await probe(ns, probes, 1000);
        return JSON.stringify(last) === JSON.stringify(want);
      },
      timeoutMs,
      150,
    );
  } catch {
    assert.deepEqual(last, want, what);
  }
}
