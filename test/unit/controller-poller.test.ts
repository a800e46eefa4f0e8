import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jittered, Poller } from '../../src/controller/sources/poller.js';
import { ManualClock } from '../../src/lib/clock.js';

describe('informer polls: jitter and backoff', () => {
  it('jitters an interval within ±fraction, not to a constant', () => {
    const seen = new Set<number>();
    for (let i = 0; i < 500; i++) {
      const v = jittered(1000, 0.2);
      assert.ok(v >= 800 && v <= 1200, `${v} within 1000 ±20 %`);
      seen.add(v);
    }
    assert.ok(seen.size > 50, `${seen.size} distinct delays`);
    assert.equal(jittered(1000, 0), 1000);
  });

  it('polls on the interval, backs off exponentially after failures and recovers after a success (manual clock)', async () => {
    const clock = new ManualClock(0);
    const at: number[] = [];
    let fail = 3;
    const errors: number[] = [];
    const poller = new Poller(
      async () => {
        at.push(clock.now());
        if (at.length >= 2 && fail > 0) {
          fail--;
          throw new Error('source down');
        }
      },
      { intervalMs: 100, jitter: 0, clock, onError: (_e, n) => errors.push(n) },
    );
    poller.start();
    await clock.advance(0);
    assert.deepEqual(at, [0], 'the first tick runs at once');
    await clock.advance(100 + 200 + 400 + 800 + 100 + 100);
    await poller.stop();
    // tick 1 ok; ticks 2-4 fail (next delays 200, 400, 800 ms); tick 5 ok → back to 100 ms
    assert.deepEqual(errors, [1, 2, 3]);
    assert.deepEqual(at, [0, 100, 300, 700, 1500, 1600, 1700]);
    assert.equal(clock.pending, 0, 'stop leaves no timer behind');
  });

  it('does not tick before its interval, nor after stop', async () => {
    const clock = new ManualClock(0);
    let ticks = 0;
    const poller = new Poller(
      async () => {
        ticks++;
      },
      { intervalMs: 1000, jitter: 0, immediate: false, clock },
    );
    poller.start();
    await clock.advance(999);
    assert.equal(ticks, 0);
    await clock.advance(1);
    assert.equal(ticks, 1);
    await poller.stop();
    await clock.advance(10_000);
    assert.equal(ticks, 1);
  });
});
