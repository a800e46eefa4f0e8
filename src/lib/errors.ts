import type { ErrorCode } from './error-codes.js';

export type { ErrorCode } from './error-codes.js';

/**
 * Base of every error cfnet raises on purpose. `code` is stable (for tests, metrics and operators)
 * and one of the table in ./error-codes.ts; `context` carries the identifiers needed to act on it
 * (cell, field, value, url, …).
 */
export class CfnetError extends Error {
  readonly code: ErrorCode;
  readonly context: Record<string, unknown>;

  constructor(
    code: ErrorCode,
    message: string,
    context: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
    this.context = context;
    Object.setPrototypeOf(this, new.target.prototype);
  }

  toJSON(): Record<string, unknown> {
    return { name: this.name, code: this.code, message: this.message, context: this.context };
  }
}

/** Invalid input: names the offending field and value. Nothing was applied. */
export class ValidationError extends CfnetError {
  readonly field: string;
  readonly value: unknown;

  constructor(field: string, value: unknown, reason: string, context: Record<string, unknown> = {}) {
    // a value that was not given at all reads "missing port: …", not "invalid port undefined: …"
    const what = value === undefined ? `missing ${field}` : `invalid ${field} ${JSON.stringify(value)}`;
    super('CFNET_INVALID', `${what}: ${reason}`, {
      ...context,
      field,
      value,
    });
    this.field = field;
    this.value = value;
  }

  /** Re-raise with the field path prefixed, e.g. `rules[2].` + `ports`. */
  within(prefix: string): ValidationError {
    const err = new ValidationError(`${prefix}${this.field}`, this.value, this.reason(), this.context);
    return err;
  }

  private reason(): string {
    const marker = `${JSON.stringify(this.value)}: `;
    const at = this.message.indexOf(marker);
    return at >= 0 ? this.message.slice(at + marker.length) : this.message;
  }
}

/** Raise `fn`'s ValidationError with a field prefix (for nested structures). */
export function withFieldPrefix<T>(prefix: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof ValidationError) throw err.within(prefix);
    throw err;
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
