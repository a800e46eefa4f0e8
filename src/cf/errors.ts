/**
 * Typed errors of the CF clients (BBS, CAPI, UAA, policy server). Every error carries the context
 * needed to act on it: `service`, `method`, `path` (url path, never a query holding secrets), and
 * `status` when an HTTP status was received. BBS protocol errors (`BbsError`, `BbsDecodeError`) live
 * in `src/model/bbs-errors.ts`.
 */
import { CfnetError, type ErrorCode } from '../lib/errors.js';

export type CfService = 'bbs' | 'capi' | 'uaa' | 'ccInternal' | 'policy';

export interface CfRequestContext {
  service: CfService;
  method: string;
  path: string;
  status?: number;
  [key: string]: unknown;
}

/** Base of every error raised while talking to a CF component. */
export class CfClientError extends CfnetError {
  readonly service: CfService;
  readonly status: number | undefined;

  constructor(code: ErrorCode, message: string, context: CfRequestContext, options?: { cause?: unknown }) {
    super(code, message, context, options);
    this.service = context.service;
    this.status = context.status;
  }
}

/** The server answered with an unexpected HTTP status (after any retries). */
export class CfHttpStatusError extends CfClientError {
  /** First bytes of the response body (for diagnosis; never holds a token). */
  readonly body: string;
  constructor(context: CfRequestContext & { status: number }, body = '', options?: { cause?: unknown }) {
    super(
      'CFNET_CF_HTTP_STATUS',
      `${context.service} ${context.method} ${context.path} answered HTTP ${context.status}${body ? `: ${body}` : ''}`,
      context,
      options,
    );
    this.body = body;
  }
}

/** No (complete) answer within the request timeout (after any retries). */
export class CfTimeoutError extends CfClientError {
  constructor(context: CfRequestContext & { timeoutMs: number }, options?: { cause?: unknown }) {
    super(
      'CFNET_CF_TIMEOUT',
      `${context.service} ${context.method} ${context.path} timed out after ${context.timeoutMs} ms`,
      context,
      options,
    );
  }
}

/** TCP/TLS level failure: refused, reset, handshake failure (after any retries). */
export class CfConnectionError extends CfClientError {
  constructor(context: CfRequestContext & { reason: string }, options?: { cause?: unknown }) {
    super(
      'CFNET_CF_CONNECTION',
      `${context.service} ${context.method} ${context.path}: connection failed: ${context.reason}`,
      context,
      options,
    );
  }
}

/** 429 Too Many Requests, and the retry budget is spent. */
export class CfRateLimitedError extends CfClientError {
  constructor(context: CfRequestContext & { retryAfterMs: number }, options?: { cause?: unknown }) {
    super(
      'CFNET_CF_RATE_LIMITED',
      `${context.service} ${context.method} ${context.path} is rate limited (retry after ${context.retryAfterMs} ms)`,
      context,
      options,
    );
  }
}

/** The body is not what the API promises: invalid JSON, wrong shape, wrong content type. */
export class CfMalformedResponseError extends CfClientError {
  constructor(context: CfRequestContext & { reason: string }, options?: { cause?: unknown }) {
    super(
      'CFNET_CF_MALFORMED_RESPONSE',
      `${context.service} ${context.method} ${context.path}: malformed response: ${context.reason}`,
      context,
      options,
    );
  }
}

/** UAA refused the client credentials, or CAPI still answers 401 after a token refresh. */
export class CfAuthError extends CfClientError {
  constructor(context: CfRequestContext & { reason: string }, options?: { cause?: unknown }) {
    super(
      'CFNET_CF_AUTH',
      `${context.service} ${context.method} ${context.path}: authentication failed: ${context.reason}`,
      context,
      options,
    );
  }
}

/**
 * One security group's rules are invalid. Reported per group (in `SecurityGroupListing.invalid`), so
 * one bad group never hides the others. `cause` is the model's ValidationError naming the field.
 */
export class CfInvalidSecurityGroupError extends CfClientError {
  readonly guid: string;
  constructor(
    context: CfRequestContext & { guid: string; name: string; reason: string },
    options?: { cause?: unknown },
  ) {
    super(
      'CFNET_CF_INVALID_SECURITY_GROUP',
      `${context.service} security group ${context.guid} (${JSON.stringify(context.name)}) is invalid: ${context.reason}`,
      context,
      options,
    );
    this.guid = context.guid;
  }
}

/** A c2c policy from the policy server is invalid (bad tag, protocol or ports). */
export class CfInvalidPolicyError extends CfClientError {
  constructor(context: CfRequestContext & { reason: string }, options?: { cause?: unknown }) {
    super(
      'CFNET_CF_INVALID_POLICY',
      `${context.service} policy is invalid: ${context.reason}`,
      context,
      options,
    );
  }
}

/** `asg_latest_update` moved while the security groups were being paged, on every try. */
export class CapiUnstableListError extends CfClientError {
  constructor(context: CfRequestContext & { tries: number }) {
    super(
      'CFNET_CAPI_UNSTABLE_LIST',
      `capi security group list changed while paging, ${context.tries} tries in a row`,
      context,
    );
  }
}

/** BBS answered 503: its migrations have not finished. */
export class BbsUnavailableError extends CfClientError {
  constructor(context: CfRequestContext) {
    super('CFNET_BBS_UNAVAILABLE', `bbs ${context.path}: 503, migrations not finished`, context);
  }
}

/**
 * BBS answered something that is not a protobuf response: an unknown route (404), another status,
 * a wrong content type, or a router error (`X-Cf-Routererror`). Mirrors the Go client's
 * `InvalidResponse` / `RouterError`.
 */
export class BbsInvalidResponseError extends CfClientError {
  constructor(context: CfRequestContext & { reason: string }, options?: { cause?: unknown }) {
    super(
      'CFNET_BBS_INVALID_RESPONSE',
      `bbs ${context.method} ${context.path}: invalid response: ${context.reason}`,
      context,
      options,
    );
  }
}

/** The HTTP/1.1 chunked body does not follow RFC 9112 §7.1 (as BBS frames it). */
export class ChunkedEncodingError extends CfnetError {
  constructor(reason: string, context: Record<string, unknown> = {}) {
    super('CFNET_CHUNKED_ENCODING', `invalid chunked encoding: ${reason}`, context);
  }
}

/** The raw HTTP/1.1 response head (status line, headers) could not be parsed. */
export class HttpHeadError extends CfnetError {
  constructor(reason: string, context: Record<string, unknown> = {}) {
    super('CFNET_HTTP_HEAD', `invalid HTTP response head: ${reason}`, context);
  }
}
