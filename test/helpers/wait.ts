/**
 * The one poll-until helper of the tests: `waitUntil(what, fn, timeoutMs, intervalMs)` calls `fn`
 * every `intervalMs` until it returns a truthy value (which it returns; a throw counts as not yet)
 * and fails naming `what` (and the last error) after `timeoutMs`. It is the lab's own
 * (src/lab/process.ts, which the demo uses too); tests import it from here. Poll only what cannot
 * be awaited: another process's state, counters of a stream, a clock we do not own.
 */
export { waitUntil } from '../../src/lab/process.js';
