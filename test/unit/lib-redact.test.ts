import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/lib/log.js';
import { redactUrlCredentials } from '../../src/lib/redact.js';

describe('credentials in URLs are never printed', () => {
  it('keeps the user, hides the password, for any scheme', () => {
    assert.equal(
      redactUrlCredentials('redis://cfnet:s3cret@10.0.0.5:6379/0'),
      'redis://cfnet:***@10.0.0.5:6379/0',
    );
    assert.equal(
      redactUrlCredentials('rediss://:s3cret@redis.internal:6380'),
      'rediss://:***@redis.internal:6380',
    );
    assert.equal(redactUrlCredentials('https://tok3n@api.example.com/v3'), 'https://***@api.example.com/v3');
    assert.equal(
      redactUrlCredentials('from redis://a:b@h1 to redis://c:d@h2'),
      'from redis://a:***@h1 to redis://c:***@h2',
    );
  });

  it('leaves text without credentials as it is', () => {
    for (const t of ['redis://127.0.0.1:6379/0', 'mail me@example.com', 'https://api.example.com/a@b', '']) {
      assert.equal(redactUrlCredentials(t), t);
    }
  });

  it('every log line is redacted: fields, messages and errors', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(String(chunk));
        cb();
      },
    });
    const log = createLogger('t', { level: 'info' }, sink);
    log.info({ redisUrl: 'redis://u:pw1@h:6379' }, 'connecting to redis://u:pw2@h:6379');
    log.error({ err: new Error('connect ECONNREFUSED redis://u:pw3@h:6379') }, 'failed');
    const text = lines.join('');
    for (const pw of ['pw1', 'pw2', 'pw3']) assert.ok(!text.includes(pw), `${pw} leaked: ${text}`);
    assert.ok(text.includes('redis://u:***@h:6379'));
  });
});
