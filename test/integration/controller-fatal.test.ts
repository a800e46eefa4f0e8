/**
 * A leader that cannot start leading (here: a BBS client certificate file that vanished after the
 * settings were checked) gives leadership up at once — the lease is released, not left to expire —
 * and reports the error through `onFatal` (the CLI then exits 1).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Controller } from '../../src/controller/controller.js';
import { controllerConfig } from '../../src/controller/settings.js';
import { defaultLogger } from '../../src/lib/log.js';
import { closeRedis, createRedis, deleteKeys } from '../../src/lib/redis.js';
import { DEFAULT_CELL_CONFIG } from '../../src/model/types.js';
import { Keys } from '../../src/state/keys.js';
import { waitUntil } from '../helpers/wait.js';
import { REDIS_URL, testNamespace } from './controller-helpers.js';

describe('controller: a fatal error of the leader releases leadership', () => {
  const ns = testNamespace('fatal');
  const redis = createRedis(REDIS_URL);
  let ctl: Controller | null = null;
  after(async () => {
    await ctl?.stop().catch(() => {});
    await deleteKeys(redis, `${ns}:*`);
    await closeRedis(redis);
  });

  it('releases the leader lease and calls onFatal with the error', async () => {
    const fatal: unknown[] = [];
    ctl = new Controller(
      controllerConfig({
        redisUrl: REDIS_URL,
        namespace: ns,
        instanceId: 'doomed',
        leaseMs: 30_000,
        bbs: { url: 'https://127.0.0.1:1', tls: { caFile: '/nonexistent/ca.crt' } },
        cellConfig: DEFAULT_CELL_CONFIG,
        logger: defaultLogger('controller-fatal'),
        onFatal: (err) => fatal.push(err),
      }),
    );
    const started = Date.now();
    await ctl.start();
    await waitUntil('onFatal called', async () => fatal.length > 0, 10_000, 25);
    assert.match(String((fatal[0] as Error).message), /nonexistent/);
    // released at once, long before the 30 s lease would have run out
    assert.equal(await redis.get(new Keys(ns).leader), null);
    assert.ok(Date.now() - started < 10_000);
  });
});
