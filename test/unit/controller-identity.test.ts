// Pure pieces of the identity and operator-surface defences: the per-client failure budget (with
// an injected clock, so the rate is exact), per-cell bootstrap tokens, the BBS cell directory's
// caching, CSRs made without node-forge and checked with it, and the cross-origin rule.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bootstrapTokenMatches, cellBootstrapToken } from '../../src/controller/identity/bootstrap-token.js';
import {
  addressFromPresence,
  BbsCellDirectory,
  normaliseAddress,
} from '../../src/controller/identity/directory.js';
import { AuthThrottle } from '../../src/lib/auth-throttle.js';
import { makeCsr } from '../../src/lib/csr.js';
import { createLogger } from '../../src/lib/log.js';
import { createRegistry, exposition } from '../../src/lib/metrics.js';
import { checkCsr, generateRsaKey } from '../../src/lib/tls.js';
import { crossOriginReason } from '../../src/ops/dashboard/index.js';

describe('AuthThrottle', () => {
  const setup = () => {
    let now = 1_000_000;
    const lines: Record<string, unknown>[] = [];
    const registry = createRegistry({ processMetrics: false });
    const t = new AuthThrottle({
      burst: 10,
      perSecond: 1,
      now: () => now,
      registry,
      logger: createLogger('t', { level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) }),
    });
    return { t, lines, registry, advance: (ms: number) => (now += ms) };
  };

  it('admits 10 failures at once, then exactly one per second; successes cost nothing', () => {
    const { t, advance } = setup();
    let compared = 0;
    // a guessing loop: 1,000 attempts over 60 s, 60 ms apart
    for (let i = 0; i < 1000; i++) {
      if (t.admit('10.0.0.1', 'dashboard')) {
        compared++;
        t.fail('10.0.0.1', 'dashboard', 'wrong token');
      }
      advance(60);
    }
    assert.equal(compared, 10 + 59, 'the burst, then one per second of the 60 s');
    assert.equal(t.admit('10.0.0.2', 'dashboard'), true, 'another client is not affected');
  });

  it('logs every failure and throttled attempt with structured fields and counts them', async () => {
    const { t, lines, registry } = setup();
    for (let i = 0; i < 12; i++) if (t.admit('c', 'dashboard')) t.fail('c', 'dashboard', 'wrong token');
    assert.deepEqual(
      lines.map((l) => l.event),
      [...Array(10).fill('auth_failed'), 'auth_throttled', 'auth_throttled'],
    );
    assert.equal(lines[0]!.client, 'c');
    assert.equal(lines[0]!.surface, 'dashboard');
    assert.equal(t.retryAfterSeconds('c'), 1);
    const m = (await exposition(registry)).body;
    assert.match(m, /cfnet_controller_auth_failures_total\{surface="dashboard",outcome="refused"\} 10/);
    assert.match(m, /cfnet_controller_auth_failures_total\{surface="dashboard",outcome="throttled"\} 2/);
  });
});

describe('bootstrap tokens', () => {
  it('differ per cell and per secret, and only the right one matches', () => {
    const a = cellBootstrapToken('s'.repeat(20), 'cell-a');
    assert.match(a, /^[0-9a-f]{64}$/);
    assert.notEqual(a, cellBootstrapToken('s'.repeat(20), 'cell-b'));
    assert.notEqual(a, cellBootstrapToken('t'.repeat(20), 'cell-a'));
    assert.equal(bootstrapTokenMatches('s'.repeat(20), 'cell-a', `${a}\n`), true);
    assert.equal(bootstrapTokenMatches('s'.repeat(20), 'cell-b', a), false);
    assert.equal(bootstrapTokenMatches('s'.repeat(20), 'cell-a', ''), false);
    assert.equal(bootstrapTokenMatches('s'.repeat(20), 'cell-a', undefined), false);
  });
});

describe('BbsCellDirectory', () => {
  it('maps cells to their rep_address host, caches, and re-lists for an unknown cell at most every 2 s', async () => {
    let now = 0;
    let lists = 0;
    const cells = [
      { cellId: 'a', repAddress: 'http://10.0.16.5:1800' },
      { cellId: 'b', repAddress: 'http://[fd00::5]:1800' },
      { cellId: 'c', repAddress: 'http://cell-c.internal:1800' },
    ];
    const dir = new BbsCellDirectory({
      list: async () => {
        lists++;
        return cells;
      },
      now: () => now,
    });
    assert.equal(await dir.addressOf('a'), '10.0.16.5');
    assert.equal(await dir.addressOf('b'), 'fd00::5');
    assert.equal(await dir.addressOf('c'), null, 'a host name is no address');
    assert.equal(lists, 1);
    assert.equal(await dir.addressOf('new'), null);
    assert.equal(lists, 1, 'no re-list within 2 s');
    now += 2000;
    cells.push({ cellId: 'new', repAddress: 'http://10.0.16.9:1800' });
    assert.equal(await dir.addressOf('new'), '10.0.16.9');
    assert.equal(lists, 2);
    now += 30_000;
    await dir.addressOf('a');
    assert.equal(lists, 3, 'stale after 30 s');
    assert.equal(addressFromPresence({ repAddress: 'not a url' }), null);
    assert.equal(normaliseAddress('::ffff:10.1.2.3'), '10.1.2.3');
  });
});

describe('CSRs', () => {
  it('a CSR made with node:crypto verifies and names its CN; a tampered one is refused', () => {
    const key = generateRsaKey();
    const pem = makeCsr(key, 'cell-1');
    const c = checkCsr(pem);
    assert.equal(c.cn, 'cell-1');
    assert.equal(c.bits, 2048);
    const body = pem.split('\n').slice(1, -2).join('');
    const der = Buffer.from(body, 'base64');
    der[der.length - 5] = (der[der.length - 5] ?? 0) ^ 0xff; // flip signature bits
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    assert.throws(() => checkCsr(tampered), /signature/);
    assert.throws(() => checkCsr('nope'), /PEM certificate request/);
  });
});

describe('crossOriginReason', () => {
  const req = (method: string, headers: Record<string, string>) =>
    ({ method, headers: { host: 'ops:4191', ...headers }, protocol: 'http' }) as never;
  it('refuses state changes from elsewhere, allows reads, same origin and header-less scripts', () => {
    assert.equal(crossOriginReason(req('GET', { origin: 'http://evil.example' })), null);
    assert.equal(crossOriginReason(req('POST', { origin: 'http://ops:4191' })), null);
    assert.equal(crossOriginReason(req('POST', {})), null);
    assert.equal(crossOriginReason(req('POST', { 'sec-fetch-site': 'none' })), null);
    assert.match(String(crossOriginReason(req('POST', { origin: 'http://evil.example' }))), /evil/);
    assert.match(String(crossOriginReason(req('POST', { origin: 'http://ops:8899' }))), /8899/);
    assert.match(String(crossOriginReason(req('DELETE', { 'sec-fetch-site': 'same-site' }))), /same-site/);
  });
});
