import { CfnetError } from '../../lib/errors.js';

export type IdentityErrorCode =
  /** Neither a valid certificate of the cell nor its bootstrap token. */
  | 'CFNET_IDENTITY_UNAUTHENTICATED'
  /** Too many failed attempts from this client. */
  | 'CFNET_IDENTITY_THROTTLED'
  /** BBS presents no such cell (or no address for it). */
  | 'CFNET_IDENTITY_UNKNOWN_CELL'
  /** The request comes from another address than BBS gives the cell. */
  | 'CFNET_IDENTITY_ADDRESS_MISMATCH'
  /** The controller signs no certificates (no CA key configured). */
  | 'CFNET_IDENTITY_DISABLED'
  /** A lease was asked for an underlay address that is not the cell's own. */
  | 'CFNET_LEASE_FOREIGN_UNDERLAY';

/** A refused identity decision; `status` is the HTTP status the agent API answers with. */
export class IdentityError extends CfnetError {
  constructor(
    code: IdentityErrorCode,
    message: string,
    readonly status: number,
    context: Record<string, unknown> = {},
  ) {
    super(code, message, context);
  }
}
