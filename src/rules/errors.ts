/** Errors of the pure rule computation (stable codes for logs, metrics and tests). */
import { CfnetError } from '../lib/errors.js';

/** A container references an egress snapshot the world does not hold (inconsistent read: retry). */
export class MissingSnapshotError extends CfnetError {
  constructor(cellId: string, handle: string, snapshot: string) {
    super(
      'CFNET_MISSING_SNAPSHOT',
      `container ${handle} on cell ${cellId} references egress snapshot ${snapshot}, which is not stored`,
      { cellId, handle, snapshot },
    );
  }
}
