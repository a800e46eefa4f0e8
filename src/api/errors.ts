/**
 * The error answer every route of the agent API shares: HTTP status ≥ 400 with
 * `{error: {code, message, field?}}`. `code` is one of cfnet's stable error codes
 * (src/lib/error-codes.ts); `field` names the request field a 400 refers to.
 */
import { z } from 'zod';
import type { ErrorCode } from '../lib/error-codes.js';

export const ErrorAnswer = z.object({
  error: z.object({
    code: z.string().min(1),
    message: z.string(),
    field: z.string().optional(),
  }),
});
export type ErrorAnswer = z.infer<typeof ErrorAnswer>;

/** What the server sends: the code is one of the table's. */
export interface ErrorAnswerBody {
  error: { code: ErrorCode; message: string; field?: string };
}

/**
 * The `apiCode` a client gives an answer that does not match its route's schema (a 2xx body of the
 * wrong shape): the controller is not speaking this contract. Not an error code of the table: the
 * controller never sends it.
 */
export const BAD_ANSWER = 'BAD_ANSWER';
