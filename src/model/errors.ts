/**
 * Model-specific errors. Invalid input in general is `ValidationError` (src/lib/errors.ts); this
 * module adds what is not about one input field.
 */
import { CfnetError, type ValidationError } from '../lib/errors.js';

/** A rule-set patch cannot be applied to the given base (wrong cell, wrong version, dangling refs). */
export class RuleSetPatchError extends CfnetError {
  constructor(
    code: 'CFNET_PATCH_VERSION_MISMATCH' | 'CFNET_PATCH_CELL_MISMATCH' | 'CFNET_PATCH_DANGLING_ASG_SET',
    message: string,
    context: Record<string, unknown> = {},
  ) {
    super(code, message, context);
  }
}

/** The reason part of a ValidationError's message (what follows `invalid <field> <value>: `). */
export function validationReason(err: ValidationError): string {
  const marker = `${JSON.stringify(err.value)}: `;
  const at = err.message.indexOf(marker);
  return at >= 0 ? err.message.slice(at + marker.length) : err.message;
}
