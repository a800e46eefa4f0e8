import assert from 'node:assert/strict';
import { ValidationError } from '../../src/lib/errors.js';

/** Asserts that `fn` throws a ValidationError naming `field`, with a message matching `reason`. */
export function rejectsInvalid(fn: () => unknown, field: string, reason: RegExp): ValidationError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof ValidationError, `expected ValidationError, got ${String(caught)}`);
  assert.equal(caught.field, field);
  assert.equal(caught.code, 'CFNET_INVALID');
  assert.match(caught.message, reason);
  return caught;
}
