import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { encodeEventsByCellId } from '../../src/cf/bbs-events.js';
import { parseRfc3339Nanos } from '../../src/cf/capi-client.js';
import { HttpHeadError } from '../../src/cf/errors.js';
import { errorBodyExcerpt } from '../../src/cf/http.js';
import { batchQueryValues } from '../../src/cf/policy-client.js';
import { parseResponseHead } from '../../src/cf/raw-http.js';
import { backoffDelay, parseRetryAfter } from '../../src/lib/backoff.js';
import { ValidationError } from '../../src/lib/errors.js';
import { models } from '../../src/model/bbs-messages.js';

describe('backoff', () => {
  it('grows exponentially, is capped, and jitter stays within [d·(1−j), d]', () => {
    const o = { initialMs: 100, maxMs: 1000, factor: 2, jitter: 0.5 };
    assert.equal(
      backoffDelay(0, o, () => 0),
      100,
    );
    assert.equal(
      backoffDelay(3, o, () => 0),
      800,
    );
    assert.equal(
      backoffDelay(10, o, () => 0),
      1000,
    );
    assert.equal(
      backoffDelay(3, o, () => 1),
      400,
    );
    fc.assert(
      fc.property(fc.nat(40), fc.double({ min: 0, max: 1, noNaN: true }), (n, r) => {
        const d = backoffDelay(n, o, () => r);
        const cap = Math.min(1000, 100 * 2 ** n);
        return d >= Math.floor(cap / 2) && d <= cap;
      }),
    );
  });

  it('parses Retry-After as seconds or an HTTP date', () => {
    assert.equal(parseRetryAfter('3'), 3000);
    assert.equal(parseRetryAfter(' 0 '), 0);
    const now = Date.parse('2024-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('Mon, 01 Jan 2024 00:00:05 GMT', now), 5000);
    assert.equal(parseRetryAfter('Sun, 31 Dec 2023 00:00:05 GMT', now), 0);
    assert.equal(parseRetryAfter('soon'), undefined);
    assert.equal(parseRetryAfter(undefined), undefined);
  });
});

describe('parseRfc3339Nanos (asg_latest_update)', () => {
  it('keeps all 9 fractional digits exactly', () => {
    assert.equal(parseRfc3339Nanos('1970-01-01T00:00:00+00:00'), 0n);
    assert.equal(parseRfc3339Nanos('2024-05-01T10:20:30.123456789+00:00'), 1714558830123456789n);
    assert.equal(parseRfc3339Nanos('2024-05-01T10:20:30.123456789Z'), 1714558830123456789n);
    assert.equal(parseRfc3339Nanos('2024-05-01T12:20:30.1+02:00'), 1714558830100000000n);
    // differs in the last digit only: still distinguishable
    assert.notEqual(
      parseRfc3339Nanos('2024-05-01T10:20:30.123456789Z'),
      parseRfc3339Nanos('2024-05-01T10:20:30.123456788Z'),
    );
  });

  it('rejects text that is not RFC 3339', () => {
    for (const bad of [
      '',
      'yesterday',
      '2024-05-01',
      '2024-05-01T10:20:30',
      '2024-05-01T10:20:30.1234567890Z',
    ]) {
      assert.throws(() => parseRfc3339Nanos(bad), ValidationError, bad);
    }
  });
});

describe('encodeEventsByCellId', () => {
  it('is field 1 (string) with a varint length, and empty for all cells', () => {
    // Bytes written by hand from the wire format: tag 0x0a (field 1, wire type 2), length, UTF-8.
    assert.deepEqual(
      Buffer.from(encodeEventsByCellId('cell-1')),
      Buffer.from([0x0a, 0x06, ...Buffer.from('cell-1')]),
    );
    const long = 'x'.repeat(200); // 200 = 0xc8 → varint c8 01
    assert.deepEqual(
      Buffer.from(encodeEventsByCellId(long)),
      Buffer.concat([Buffer.from([0x0a, 0xc8, 0x01]), Buffer.from(long)]),
    );
    const unicode = 'zürich-ä';
    const utf8 = Buffer.from(unicode, 'utf8');
    assert.deepEqual(
      Buffer.from(encodeEventsByCellId(unicode)),
      Buffer.concat([Buffer.from([0x0a, utf8.length]), utf8]),
    );
    assert.equal(models.EventsByCellId.decode(encodeEventsByCellId(unicode)).cellId, unicode);
    assert.equal(encodeEventsByCellId(undefined).length, 0);
    assert.equal(encodeEventsByCellId('').length, 0);
  });
});

describe('parseResponseHead', () => {
  it('reads BBS stream headers', () => {
    const h = parseResponseHead(
      'HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\nX-A:  b ',
    );
    assert.equal(h.status, 200);
    assert.equal(h.statusText, 'OK');
    assert.equal(h.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    assert.equal(h.headers.get('transfer-encoding'), 'chunked');
    assert.equal(h.headers.get('x-a'), 'b');
  });
  it('rejects garbage', () => {
    assert.throws(() => parseResponseHead('SSH-2.0-OpenSSH'), HttpHeadError);
    assert.throws(() => parseResponseHead('HTTP/1.1 200 OK\r\nno colon here'), HttpHeadError);
  });
});

describe('batchQueryValues', () => {
  it('splits long lists under the limit and keeps every item once', () => {
    const ids = Array.from(
      { length: 500 },
      (_, i) => `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
    );
    const batches = batchQueryValues(ids, 1000);
    assert.ok(batches.length > 1);
    for (const b of batches) assert.ok(b.length <= 1000, `batch of ${b.length}`);
    assert.deepEqual(
      batches.flatMap((b) => decodeURIComponent(b).split(',')),
      ids,
    );
  });
  it('encodes characters that would break the query', () => {
    assert.deepEqual(batchQueryValues(['a&b', 'c'], 100), ['a%26b%2Cc']);
  });
});

describe('errorBodyExcerpt', () => {
  it('summarises CC v3, v2, UAA and policy-server error bodies', () => {
    assert.equal(
      errorBodyExcerpt('{"errors":[{"code":10008,"title":"CF-UnprocessableEntity","detail":"bad"}]}'),
      'CF-UnprocessableEntity: bad',
    );
    assert.equal(
      errorBodyExcerpt('{"code":10000,"description":"Unknown request","error_code":"CF-NotFound"}'),
      'CF-NotFound: Unknown request',
    );
    assert.equal(
      errorBodyExcerpt('{"error":"unauthorized","error_description":"Bad credentials"}'),
      'unauthorized: Bad credentials',
    );
    assert.equal(
      errorBodyExcerpt('{"error":"invalid value for \'from\' parameter"}'),
      "invalid value for 'from' parameter",
    );
    assert.equal(errorBodyExcerpt('<html>\n  oops\n</html>'), '<html> oops </html>');
  });
});
