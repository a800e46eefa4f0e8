/**
 * What the agent persists in its state directory, so a restart re-applies without asking anyone:
 * the lease, the last known leases of the other cells, the controller's rule set (its version is
 * the `since` of the next long-poll) and the CNI-time containers the controller did not know yet.
 * One JSON file, written atomically (temp file, fsync, rename, fsync of the directory).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { CellRuleSet } from '../model/types.js';
import type { OverlayLease } from './client.js';
import type { LocalContainer } from './merge.js';

export const STATE_FORMAT = 1;

export interface PersistedState {
  format: number;
  cellId: string;
  lease: OverlayLease | null;
  leases: OverlayLease[];
  base: CellRuleSet | null;
  local: Record<string, LocalContainer>;
  savedAt: number;
}

/** Writes `text` to `path` atomically and durably. */
export async function writeFileAtomic(path: string, text: string, mode = 0o644): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const fh = await open(tmp, 'w', mode);
    try {
      await fh.writeFile(text, 'utf8');
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  try {
    const dir = await open(dirname(path), 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  } catch {
    // fsync of a directory is best effort (not supported everywhere)
  }
}

export class StateFile {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'agent-state.json');
  }

  /** The saved state, or null when there is none, it belongs to another cell or is unreadable. */
  async load(cellId: string): Promise<{ state: PersistedState | null; problem?: string }> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: null };
      return { state: null, problem: `cannot read ${this.path}: ${(err as Error).message}` };
    }
    let s: PersistedState;
    try {
      s = JSON.parse(text) as PersistedState;
    } catch {
      return { state: null, problem: `${this.path} is not valid JSON` };
    }
    if (typeof s !== 'object' || s === null || s.format !== STATE_FORMAT) {
      return { state: null, problem: `${this.path} has an unknown format` };
    }
    if (s.cellId !== cellId) {
      return { state: null, problem: `${this.path} belongs to cell ${s.cellId}, not ${cellId}` };
    }
    return {
      state: {
        format: STATE_FORMAT,
        cellId,
        lease: s.lease ?? null,
        leases: Array.isArray(s.leases) ? s.leases : [],
        base: s.base ?? null,
        local: s.local && typeof s.local === 'object' ? s.local : {},
        savedAt: s.savedAt ?? 0,
      },
    };
  }

  async save(state: Omit<PersistedState, 'format' | 'savedAt'>): Promise<void> {
    const full: PersistedState = { format: STATE_FORMAT, ...state, savedAt: Date.now() };
    await writeFileAtomic(this.path, JSON.stringify(full), 0o600);
  }
}
