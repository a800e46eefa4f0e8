/**
 * Entry point of the one-off fallback process (`node dist/cni/fallback.js`), run by the cfnet-cni
 * shim only when the executor's socket is missing or refuses connections. Same library, same output.
 */
import { runCniMain } from './run.js';

runCniMain().catch((err) => {
  const msg = err instanceof Error ? err.message : String(err);
  process.stdout.write(`${JSON.stringify({ cniVersion: '1.0.0', code: 999, msg: `cfnet-cni: ${msg}` })}\n`);
  process.exit(1);
});
