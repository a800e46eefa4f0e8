/**
 * `PUT /v1/cells/{cell}/status`: what the agent applied, its last error, its local containers,
 * what its dataplane refused, its overlay's health and whether it runs in dry-run. 200 `{inventoryChanged}`: true when the containers differ from the
 * stored inventory (the controller stores them and recomputes the cell).
 *
 * The containers are checked item by item by the controller (IngestGate.inventory: one bad entry is
 * left out by itself and counted), so the body schema takes them as an array of anything.
 */

import { z } from 'zod';
import type { OverlayHealth } from '../model/types.js';

export const StatusBody = z.object({
  appliedVersion: z.number().int().nonnegative(),
  /** ms since the epoch; the controller's clock when absent. */
  appliedAt: z.number().int().nonnegative().optional(),
  error: z.string().max(4096).optional(),
  /** How often the agent reports (s): the controller calls a cell silent for a few intervals stale. */
  statusIntervalSeconds: z.number().int().positive().max(86_400).optional(),
  containers: z.array(z.unknown()).max(10_000).optional(),
  /** The agent runs in dry-run: it computes and logs but enforces nothing. */
  dryRun: z.boolean().optional(),
  /**
   * Its overlay as read from its kernel for this report: the peer cells its lease list asks for,
   * how many lack an entry (route, neighbour or FDB), whether it holds its own lease.
   */
  overlay: z
    .object({
      expectedPeers: z.number().int().nonnegative().max(1_000_000),
      missingPeers: z.number().int().nonnegative().max(1_000_000),
      leaseHeld: z.boolean(),
    })
    .refine((o) => o.missingPeers <= o.expectedPeers, {
      message: 'missingPeers must not exceed expectedPeers',
      path: ['missingPeers'],
    })
    .optional(),
  /** Containers the agent's dataplane refused (the rest of the rule set is applied). */
  refused: z
    .array(z.object({ handle: z.string().max(256), reason: z.string().max(4096) }))
    .max(10_000)
    .optional(),
});

/** One local container as the agent reports it (Garden's metadata as the CNI plugin got it). */
export interface InventoryItem {
  handle: string;
  ip: string;
  metadata: Record<string, unknown>;
}

/** The report an agent sends: StatusBody with its containers typed. */
export type StatusReport = Omit<z.input<typeof StatusBody>, 'containers'> & { containers?: InventoryItem[] };

/** The overlay's health in a status report (the shape convergence reads; model/types.ts). */
export type { OverlayHealth };

export const StatusAnswer = z.object({ inventoryChanged: z.boolean() });
export type StatusAnswer = z.infer<typeof StatusAnswer>;
