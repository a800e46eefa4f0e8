import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ChunkedDecoder, parseSizeLine } from '../../src/cf/chunked.js';
import { ChunkedEncodingError } from '../../src/cf/errors.js';

/** Frame payloads exactly as BBS's events handler does: `%x;\r\n<bytes>\r\n`, then `0\r\n\r\n`. */
function bbsFrame(payloads: string[], end = true): Buffer {
  const parts: Buffer[] = [];
  for (const p of payloads) {
    const b = Buffer.from(p);
    parts.push(Buffer.from(`${b.length.toString(16)};\r\n`), b, Buffer.from('\r\n'));
  }
  if (end) parts.push(Buffer.from('0\r\n\r\n'));
  return Buffer.concat(parts);
}

function decodeAll(dec: ChunkedDecoder, pieces: Uint8Array[]): string {
  const out: Buffer[] = [];
  for (const p of pieces) for (const d of dec.push(p)) out.push(Buffer.from(d));
  return Buffer.concat(out).toString();
}

const EVENTS = [
  'id: 0\nevent: actual_lrp_instance_changed\ndata: CgQKAmFi\n\n',
  'id: 1\nevent: desired_lrp_created\ndata: ' + 'QUJD'.repeat(40) + '\n\n',
  'id: 2\nevent: task_removed\ndata: \n\n',
];

describe('ChunkedDecoder', () => {
  it('decodes BBS framing (empty chunk extension) in one piece', () => {
    const dec = new ChunkedDecoder();
    assert.equal(decodeAll(dec, [bbsFrame(EVENTS)]), EVENTS.join(''));
    assert.equal(dec.done, true);
    assert.equal(dec.chunkCount, 3);
    assert.equal(dec.byteCount, Buffer.byteLength(EVENTS.join('')));
  });

  it('decodes the same bytes split at every single position', () => {
    const wire = bbsFrame(EVENTS);
    for (let cut = 0; cut <= wire.length; cut++) {
      const dec = new ChunkedDecoder();
      const got = decodeAll(dec, [wire.subarray(0, cut), wire.subarray(cut)]);
      assert.equal(got, EVENTS.join(''), `split at ${cut}`);
      assert.equal(dec.done, true, `done after split at ${cut}`);
    }
  });

  it('decodes byte by byte', () => {
    const wire = bbsFrame(EVENTS);
    const dec = new ChunkedDecoder();
    const pieces = [...wire].map((b) => Uint8Array.of(b));
    assert.equal(decodeAll(dec, pieces), EVENTS.join(''));
    assert.equal(dec.done, true);
  });

  it('property: any payloads, any split points, give the payloads back', () => {
    fc.assert(
      fc.property(
        fc.array(fc.string({ minLength: 1, maxLength: 300 }), { maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (payloads, cuts) => {
          const wire = bbsFrame(payloads);
          const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
          const pieces: Buffer[] = [];
          let prev = 0;
          for (const p of points) {
            pieces.push(wire.subarray(prev, p));
            prev = p;
          }
          pieces.push(wire.subarray(prev));
          const dec = new ChunkedDecoder();
          assert.equal(decodeAll(dec, pieces), payloads.join(''));
          assert.equal(dec.done, true);
        },
      ),
    );
  });

  it('drops chunk extensions with names, values and whitespace, and accepts upper-case hex', () => {
    const wire = Buffer.from(
      '5;name=value;x\r\nhello\r\nA ;foo="b;ar"\r\n0123456789\r\n3\r\nabc\r\n0;last\r\n\r\n',
    );
    const dec = new ChunkedDecoder();
    assert.equal(decodeAll(dec, [wire]), 'hello0123456789abc');
    assert.equal(dec.done, true);
  });

  it('reads and discards trailer fields', () => {
    const wire = Buffer.from('3;\r\nabc\r\n0\r\nX-Checksum: 123\r\nX-Other: y\r\n\r\n');
    for (let cut = 0; cut <= wire.length; cut++) {
      const dec = new ChunkedDecoder();
      assert.equal(decodeAll(dec, [wire.subarray(0, cut), wire.subarray(cut)]), 'abc');
      assert.equal(dec.done, true);
    }
  });

  it('is not done until the terminating empty line arrives', () => {
    const dec = new ChunkedDecoder();
    decodeAll(dec, [Buffer.from('3;\r\nabc\r\n0\r\n')]);
    assert.equal(dec.done, false);
    dec.push(Buffer.from('\r\n'));
    assert.equal(dec.done, true);
  });

  it('ignores bytes after the end of the body', () => {
    const dec = new ChunkedDecoder();
    const got = decodeAll(dec, [Buffer.from('2;\r\nok\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n')]);
    assert.equal(got, 'ok');
    assert.equal(dec.done, true);
  });

  it('returns views only for the data bytes of an open stream', () => {
    const dec = new ChunkedDecoder();
    const out = dec.push(Buffer.from('a;\r\n01234'));
    assert.deepEqual(
      out.map((b) => Buffer.from(b).toString()),
      ['01234'],
    );
    assert.deepEqual(
      dec.push(Buffer.from('56789\r\n')).map((b) => Buffer.from(b).toString()),
      ['56789'],
    );
    assert.equal(dec.done, false);
  });

  it('rejects a size that is not hexadecimal', () => {
    const dec = new ChunkedDecoder();
    assert.throws(() => dec.push(Buffer.from('zz;\r\n')), ChunkedEncodingError);
    assert.throws(() => new ChunkedDecoder().push(Buffer.from(';\r\n')), ChunkedEncodingError);
    assert.throws(() => new ChunkedDecoder().push(Buffer.from('-1\r\n')), ChunkedEncodingError);
  });

  it('rejects data not followed by CRLF', () => {
    const dec = new ChunkedDecoder();
    assert.throws(
      () => dec.push(Buffer.from('3;\r\nabcd\r\n')),
      (err: unknown) => err instanceof ChunkedEncodingError && err.code === 'CFNET_CHUNKED_ENCODING',
    );
  });

  it('rejects an over-long size line and a malformed trailer', () => {
    assert.throws(
      () => new ChunkedDecoder().push(Buffer.from(`1;${'x'.repeat(5000)}`)),
      ChunkedEncodingError,
    );
    assert.throws(
      () => new ChunkedDecoder().push(Buffer.from('0\r\nnot a field\r\n\r\n')),
      ChunkedEncodingError,
    );
  });

  it('parseSizeLine: size before `;`, nothing after it matters', () => {
    assert.equal(parseSizeLine('4c;'), 0x4c);
    assert.equal(parseSizeLine('4C'), 0x4c);
    assert.equal(parseSizeLine('ff ; a=b'), 255);
    assert.throws(() => parseSizeLine('123456789'), ChunkedEncodingError);
    assert.throws(() => parseSizeLine('10000001'), ChunkedEncodingError);
  });
});
