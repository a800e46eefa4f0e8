/**
 * CNI errors: every failure of a CNI invocation becomes `{cniVersion, code, msg, details}` on stdout
 * with a non-zero exit (libcni parses stdout, as the CNI spec says). Codes are the spec's
 * well-known ones plus libcni's 8 and 999.
 */
import { CfnetError, ValidationError } from '../lib/errors.js';

export const CNI_ERR = {
  INCOMPATIBLE_VERSION: 1,
  UNSUPPORTED_FIELD: 2,
  UNKNOWN_CONTAINER: 3,
  INVALID_ENV: 4,
  IO: 5,
  DECODE: 6,
  INVALID_CONFIG: 7,
  INVALID_NETNS: 8,
  TRY_AGAIN: 11,
  NOT_AVAILABLE: 50,
  LIMITED_CONNECTIVITY: 51,
  INTERNAL: 999,
} as const;

export type CniErrorCode = (typeof CNI_ERR)[keyof typeof CNI_ERR];

/** A CNI error with its wire code. `details` is free text (the spec's optional field). */
export class CniError extends CfnetError {
  readonly cniCode: CniErrorCode;
  readonly details: string;

  constructor(
    cniCode: CniErrorCode,
    msg: string,
    details = '',
    context: Record<string, unknown> = {},
    cause?: unknown,
  ) {
    super(`CFNET_CNI_${cniCode}`, msg, { ...context, cniCode }, cause === undefined ? undefined : { cause });
    this.cniCode = cniCode;
    this.details = details;
  }
}

/** Invalid network configuration (code 7) naming the field, from a ValidationError. */
export class CniConfigError extends CniError {
  readonly field: string;
  readonly value: unknown;

  constructor(err: ValidationError) {
    super(CNI_ERR.INVALID_CONFIG, err.message, '', { field: err.field, value: err.value }, err);
    this.field = err.field;
    this.value = err.value;
  }
}

/** A field the plugin understands but does not support (code 2); names the key and value. */
export function unsupportedField(field: string, value: unknown, reason: string): CniError {
  return new CniError(
    CNI_ERR.UNSUPPORTED_FIELD,
    `unsupported field ${field} ${JSON.stringify(value)}: ${reason}`,
    '',
    { field, value },
  );
}

/** Maps anything thrown during an invocation to a CniError (ValidationError → 7, else 999). */
export function toCniError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  if (err instanceof ValidationError) return new CniConfigError(err);
  const msg = err instanceof Error ? err.message : String(err);
  return new CniError(CNI_ERR.INTERNAL, msg, '', {}, err);
}

/** The error JSON object as printed on stdout. */
export function cniErrorJson(err: CniError, cniVersion: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion, code: err.cniCode, msg: err.message };
  if (err.details) out.details = err.details;
  return out;
}
