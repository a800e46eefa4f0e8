/**
 * cfnet's clients of the CF components: BBS (protobuf over mTLS, SSE event streams with BBS's chunk
 * framing), UAA, Cloud Controller (v3/v2 security groups, asg_latest_update) and the policy server's
 * internal API. Errors are `CfClientError` subclasses (`errors.ts`) plus `BbsError`/`BbsDecodeError`.
 */
export * from '../lib/backoff.js';
export * from '../model/bbs-errors.js';
export * from '../model/bbs-messages.js';
export * from './bbs-client.js';
export * from './bbs-events.js';
export * from './capi-client.js';
export * from './chunked.js';
export * from './errors.js';
export * from './http.js';
export * from './policy-client.js';
export * from './raw-http.js';
export * from './tls-config.js';
export * from './uaa-client.js';
