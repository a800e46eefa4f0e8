import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ValidationError } from '../../src/lib/errors.js';
import { redactUrlCredentials } from '../../src/lib/redact.js';
import { parseRedisUrl, sentinelOptions } from '../../src/lib/redis.js';

describe('Redis URLs, Sentinel included', () => {
  it('a Sentinel URL names the master, the sentinels, credentials, db and TLS', () => {
    const o = sentinelOptions(
      'rediss+sentinel://cfnet:s3cret@cfnet-master/2?sentinels=10.0.0.1:26379,10.0.0.2:26380',
    );
    assert.deepEqual(o.sentinels, [
      { host: '10.0.0.1', port: 26379 },
      { host: '10.0.0.2', port: 26380 },
    ]);
    assert.equal(o.name, 'cfnet-master');
    assert.equal(o.username, 'cfnet');
    assert.equal(o.password, 's3cret');
    assert.equal(o.db, 2);
    assert.equal(o.enableTLSForSentinelMode, true);
    assert.equal(o.sentinelPassword, undefined, 'sentinels get no password unless asked');
    assert.equal(o.failoverDetector, true);
    const auth = sentinelOptions('redis+sentinel://:pw@m?sentinels=h:1&sentinelAuth=1');
    assert.equal(auth.sentinelPassword, 'pw');
    assert.equal(auth.tls, undefined);
  });

  it('refuses a Sentinel URL without sentinels or with a bad one, naming the field', () => {
    for (const bad of [
      'redis+sentinel://m/0',
      'redis+sentinel://m/0?sentinels=',
      'redis+sentinel://m/0?sentinels=host',
      'redis+sentinel://m/0?sentinels=h:99999',
      'sentinel://m/0?sentinels=h:1',
    ]) {
      assert.throws(
        () => parseRedisUrl(bad),
        (err: unknown) => err instanceof ValidationError && err.field === 'redis_url',
        bad,
      );
    }
    assert.equal(parseRedisUrl('redis://127.0.0.1:6379/0').hostname, '127.0.0.1');
  });

  it('a Sentinel URL prints without its password', () => {
    assert.equal(
      redactUrlCredentials('redis+sentinel://cfnet:s3cret@m/0?sentinels=h:1'),
      'redis+sentinel://cfnet:***@m/0?sentinels=h:1',
    );
  });
});
