/**
 * Helper of bench/controller-queue.ts: an extra reconcile worker process on the same Redis
 * namespace (like another controller replica). Prints `ready` once started and, on SIGTERM, its peak
 * heap (`peak-heap <bytes>`, sampled every 250 ms) before it exits.
 *
 *   npx tsx bench/controller-queue-worker.ts <namespace> <concurrency> <overlayNetwork>
 */

import { Reconciler } from '../src/controller/reconcile/reconciler.js';
import { ReconcileWorkers } from '../src/controller/reconcile/worker.js';
import { closeRedis, createRedis } from '../src/lib/redis.js';
import { DEFAULT_CELL_CONFIG } from '../src/model/types.js';
import { Keys } from '../src/state/keys.js';
import { RuleSetStore } from '../src/state/ruleset-store.js';
import { WorldStore } from '../src/state/world-store.js';

if (process.argv.includes('--help')) {
  console.log(
    'usage: npx tsx bench/controller-queue-worker.ts <namespace> <concurrency> <overlayNetwork>\n  (started by bench/controller-queue.ts)',
  );
  process.exit(0);
}

const [ns, conc, overlay] = process.argv.slice(2);
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const keys = new Keys(ns);
const redis = createRedis(url);
const conn = createRedis(url, { role: 'blocking' });
const reconciler = new Reconciler(new WorldStore(redis, keys), new RuleSetStore(redis, keys), {
  config: { ...DEFAULT_CELL_CONFIG, overlayNetwork: overlay ?? DEFAULT_CELL_CONFIG.overlayNetwork },
});
const workers = new ReconcileWorkers(conn, reconciler, { prefix: keys.ns, concurrency: Number(conc ?? 8) });
workers.start();
process.stdout.write('ready\n');
// peak heap, sampled: the parent prints it beside its rounds
let peakHeap = 0;
const sampler = setInterval(() => {
  peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
}, 250);
process.on('SIGTERM', () => {
  clearInterval(sampler);
  process.stdout.write(`peak-heap ${peakHeap}\n`);
  void workers
    .close()
    .then(() => Promise.all([closeRedis(redis), closeRedis(conn)]))
    .finally(() => process.exit(0));
});
