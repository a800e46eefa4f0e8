/**
 * Where CF says each cell lives: the address in the cell's BBS presence (`rep_address`, e.g.
 * `http://10.0.16.5:1800`; the rep registers it itself from the cell's BOSH address). The
 * identity authority compares it with the source address of a certificate request, and the agent
 * API with a lease's `underlayIp`. Presences are listed from BBS and cached; an unknown cell
 * triggers a re-list, at most one per `minRelistMs`, so requests cannot turn into a BBS flood.
 */
import { isIP } from 'node:net';
import type { CellPresence } from '../../model/bbs-messages.js';

export interface CellDirectory {
  /** The cell's IPv4/IPv6 address per BBS, or null when BBS knows no such cell. */
  addressOf(cellId: string): Promise<string | null>;
}

/** The host of a presence's rep_address when it is an IP literal, else null. */
export function addressFromPresence(p: Pick<CellPresence, 'repAddress'>): string | null {
  const raw = p.repAddress ?? '';
  let host: string;
  try {
    host = new URL(raw).hostname.replace(/^\[|\]$/g, '');
  } catch {
    return null;
  }
  return isIP(host) ? host : null;
}

/** `::ffff:10.0.0.1` (an IPv4 peer of a dual-stack socket) → `10.0.0.1`. */
export function normaliseAddress(addr: string | undefined | null): string {
  const a = addr ?? '';
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export interface BbsCellDirectoryOptions {
  /** Lists every cell presence (BbsClient.cells). */
  list(): Promise<CellPresence[]>;
  /**
   * A listing is fresh this long (ms).
   * @defaultValue {@link DEFAULT_DIRECTORY_TTL_MS}
   */
  ttlMs?: number;
  /**
   * Shortest gap between two listings caused by an unknown cell (ms).
   * @defaultValue {@link DEFAULT_DIRECTORY_MIN_RELIST_MS}
   */
  minRelistMs?: number;
  now?: () => number;
}

/** A cell presence listing is fresh for 30 s. */
export const DEFAULT_DIRECTORY_TTL_MS = 30_000;
/** An unknown cell causes at most one listing every 2 s (a flood of bad requests cannot hammer BBS). */
export const DEFAULT_DIRECTORY_MIN_RELIST_MS = 2_000;

export class BbsCellDirectory implements CellDirectory {
  private cells = new Map<string, string | null>();
  private listedAt = Number.NEGATIVE_INFINITY;
  private listing: Promise<void> | null = null;
  private readonly ttlMs: number;
  private readonly minRelistMs: number;
  private readonly now: () => number;

  constructor(private readonly opts: BbsCellDirectoryOptions) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_DIRECTORY_TTL_MS;
    this.minRelistMs = opts.minRelistMs ?? DEFAULT_DIRECTORY_MIN_RELIST_MS;
    this.now = opts.now ?? Date.now;
  }

  private relist(): Promise<void> {
    this.listing ??= this.opts
      .list()
      .then((presences) => {
        this.cells = new Map(presences.map((p) => [p.cellId ?? '', addressFromPresence(p)]));
        this.listedAt = this.now();
      })
      .finally(() => {
        this.listing = null;
      });
    return this.listing;
  }

  async addressOf(cellId: string): Promise<string | null> {
    const age = this.now() - this.listedAt;
    if (age >= this.ttlMs || (!this.cells.has(cellId) && age >= this.minRelistMs)) await this.relist();
    return this.cells.get(cellId) ?? null;
  }
}
