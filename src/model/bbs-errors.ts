/**
 * Typed errors of the BBS protocol layer (docs/cf-interfaces.md, "BBS transport and errors", "BBS event streams"):
 * - `BbsError`: a response carried its `error` field (field 1). Present means failure, even with
 *   type 0 (`UnknownError`), because a 0 type is not on the wire.
 * - `BbsDecodeError`: bytes that do not decode: bad base64 in an SSE `data:` line, an empty event
 *   payload (the Go client's `ErrNoData`), or a truncated / malformed protobuf.
 */
import { models } from '../gen/bbs.js';
import { CfnetError, type ErrorCode } from '../lib/errors.js';

/** The shape of BBS `models.Error` as decoded (type may be absent when it is 0). */
export interface BbsErrorPayload {
  type?: number | null;
  message?: string | null;
}

/** Name of an `Error.Type` number, e.g. 13 → `ResourceNotFound`; unknown numbers → `Type<n>`. */
export function bbsErrorTypeName(type: number): string {
  const name = (models.Error.Type as unknown as Record<number, string | undefined>)[type];
  return typeof name === 'string' ? name : `Type${type}`;
}

/** A BBS response's `error` field: the request failed on the server. */
export class BbsError extends CfnetError {
  /** `Error.Type` number (0 = UnknownError). */
  readonly type: number;
  /** `Error.Type` name, e.g. `ResourceNotFound`. */
  readonly typeName: string;
  /** BBS's message text (may be empty). */
  readonly bbsMessage: string;

  constructor(payload: BbsErrorPayload, context: Record<string, unknown> = {}) {
    const type = payload.type ?? 0;
    const typeName = bbsErrorTypeName(type);
    const bbsMessage = payload.message ?? '';
    const where = typeof context.path === 'string' ? `bbs ${context.path}: ` : 'bbs: ';
    super('CFNET_BBS_ERROR', `${where}${typeName}${bbsMessage ? `: ${bbsMessage}` : ''}`, {
      ...context,
      type,
      typeName,
      bbsMessage,
    });
    this.type = type;
    this.typeName = typeName;
    this.bbsMessage = bbsMessage;
  }

  /** True when this is the given `Error.Type` (e.g. `models.Error.Type.ResourceNotFound`). */
  is(type: models.Error.Type): boolean {
    return this.type === type;
  }
}

/**
 * Throws `BbsError` when a decoded response has its `error` field present (even an empty Error),
 * otherwise returns the response unchanged.
 */
export function throwIfBbsError<T extends { error?: BbsErrorPayload | null }>(
  response: T,
  context: Record<string, unknown> = {},
): T {
  if (response.error != null) throw new BbsError(response.error, context);
  return response;
}

export type BbsDecodeReason = 'base64' | 'empty' | 'protobuf';

const DECODE_CODES: Record<BbsDecodeReason, ErrorCode> = {
  base64: 'CFNET_BBS_BAD_BASE64',
  empty: 'CFNET_BBS_EMPTY_PAYLOAD',
  protobuf: 'CFNET_BBS_BAD_PROTOBUF',
};

/** Bytes from BBS (an SSE event or a response body) that cannot be decoded. Nothing was applied. */
export class BbsDecodeError extends CfnetError {
  readonly reason: BbsDecodeReason;

  /** `what` names the thing being decoded, e.g. `event actual_lrp_instance_changed` or a message type. */
  constructor(
    reason: BbsDecodeReason,
    what: string,
    detail: string,
    context: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(
      DECODE_CODES[reason],
      `cannot decode bbs ${what}: ${detail}`,
      { ...context, what, reason },
      options,
    );
    this.reason = reason;
  }
}
