/**
 * The routers' tag in the controller: asked of the policy server once (Silk's INGRESS_ROUTER of
 * type router), kept after the first answer, concurrent first leases share one request, and a
 * failure (or no policy server) is a typed 503 error, retried at the next lease.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROUTER_TAG_ID, ROUTER_TAG_TYPE, RouterTag } from '../../src/controller/serve/router-tag.js';
import { CfnetError } from '../../src/lib/errors.js';
import { createLogger } from '../../src/lib/log.js';

const log = createLogger('test', { level: 'silent' });

describe('router tag', () => {
  it('asks once for INGRESS_ROUTER of type router and keeps the tag; concurrent callers share the request', async () => {
    const calls: string[] = [];
    const t = new RouterTag(
      {
        createOrGetTag: async (id, type) => {
          calls.push(`${id}/${type}`);
          await new Promise((r) => setTimeout(r, 10));
          return 0x1f;
        },
      },
      log,
    );
    assert.deepEqual(await Promise.all([t.get(), t.get(), t.get()]), [0x1f, 0x1f, 0x1f]);
    assert.equal(await t.get(), 0x1f);
    assert.deepEqual(calls, [`${ROUTER_TAG_ID}/${ROUTER_TAG_TYPE}`]);
    assert.equal(ROUTER_TAG_ID, 'INGRESS_ROUTER');
    assert.equal(ROUTER_TAG_TYPE, 'router');
  });

  it('a policy-server failure is CFNET_ROUTER_TAG_UNAVAILABLE and the next call asks again', async () => {
    let n = 0;
    const t = new RouterTag(
      {
        createOrGetTag: async () => {
          n++;
          if (n === 1) throw new Error('policy server down');
          return 7;
        },
      },
      log,
    );
    await assert.rejects(
      t.get(),
      (err: unknown) => err instanceof CfnetError && err.code === 'CFNET_ROUTER_TAG_UNAVAILABLE',
    );
    assert.equal(await t.get(), 7);
    assert.equal(n, 2);
  });

  it('without a policy server there is no tag', async () => {
    await assert.rejects(
      new RouterTag(null, log).get(),
      (err: unknown) => err instanceof CfnetError && err.code === 'CFNET_ROUTER_TAG_UNAVAILABLE',
    );
  });
});
