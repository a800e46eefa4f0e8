/** Errors of the Redis contract: fencing, compare-and-set, incomplete world (stable codes). */
import { CfnetError } from '../lib/errors.js';

/** The world in Redis is not (yet) complete, e.g. after Redis lost its data: nothing is computed. */
export class WorldNotReadyError extends CfnetError {
  constructor(context: Record<string, unknown> = {}) {
    super('CFNET_WORLD_NOT_READY', 'the leader has not finished writing the world state to Redis', context);
  }
}

/** A write was refused because this replica is not (any more) the leader holding the fence. */
export class FencedOffError extends CfnetError {
  constructor(context: Record<string, unknown> = {}) {
    super('CFNET_FENCED_OFF', 'write refused: this replica no longer holds the leadership lease', context);
  }
}

/** Compare-and-set of a cell's rule set lost against a newer version. */
export class StaleWriteError extends CfnetError {
  constructor(cellId: string, expected: number, actual: number) {
    super(
      'CFNET_STALE_WRITE',
      `rule set of cell ${cellId}: expected stored version ${expected}, found ${actual}; write refused`,
      { cellId, expected, actual },
    );
  }
}

/** A stored cell snapshot names a tag table Redis does not hold (read kept racing with writes). */
export class MissingAsgSetError extends CfnetError {
  constructor(cellId: string, keys: string) {
    super('CFNET_MISSING_ASG_SET', `rule set of cell ${cellId} names ASG sets not all stored: ${keys}`, {
      cellId,
      keys,
    });
  }
}

export class MissingTagTableError extends CfnetError {
  constructor(cellId: string, ref: string) {
    super(
      'CFNET_MISSING_TAG_TABLE',
      `rule set of cell ${cellId} names tag table ${ref}, which is not stored`,
      {
        cellId,
        ref,
      },
    );
  }
}
