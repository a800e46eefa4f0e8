import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jittered, Poller } from '../../src/controller/sources/poller.js';

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

  it('polls on the interval, backs off exponentially after failures and recovers after a success', async () => {
    const at: number[] = [];
    let fail = 3;
    let done!: () => void;
    const finished = new Promise<void>((r) => {
      done = r;
    });
    const errors: number[] = [];
    const poller = new Poller(
      async () => {
        at.push(performance.now());
        if (at.length === 7) done();
        if (at.length >= 2 && fail > 0) {
          fail--;
          throw new Error('source down');
        }
      },
      { intervalMs: 100, jitter: 0, onError: (_e, n) => errors.push(n) },
    );
    poller.start();
    await finished;
    await poller.stop();
    const gaps = at.slice(1).map((t, i) => t - at[i]!);
    // tick 1 ok; ticks 2-4 fail (next delays 200, 400, 800 ms); tick 5 ok → back to 100 ms.
    // Timers never fire early, but late by any amount on a loaded machine: lower bounds are exact,
    // upper bounds leave 400 ms for scheduling delays.
    assert.deepEqual(errors, [1, 2, 3]);
    assert.ok(gaps[0]! >= 98 && gaps[0]! < 500, `normal interval ${gaps[0]}`);
    assert.ok(gaps[1]! >= 198, `after 1 failure ${gaps[1]}`);
    assert.ok(gaps[2]! >= 398, `after 2 failures ${gaps[2]}`);
    assert.ok(gaps[3]! >= 798, `after 3 failures ${gaps[3]}`);
    assert.ok(gaps[5]! < 500, `back to the interval after a success (${gaps[5]})`);
  });
});
