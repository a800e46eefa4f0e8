/**
 * The cell's container inventory, read from the CNI plugin's datastore (Silk's store.json shape:
 * handle → {handle, ip, metadata}). The file is rewritten by atomic rename, so reads need no lock;
 * `store.json_version` changes with every write, so an unchanged store is not re-parsed.
 */
import { readFile } from 'node:fs/promises';
import { Datastore } from '../cni/store.js';
import { isHandle } from '../model/identifiers.js';
import type { InventoryItem } from './client.js';

const IP4 = /^\d{1,3}(\.\d{1,3}){3}$/;

export interface Inventory {
  items: InventoryItem[];
  /** handle → ip */
  attached: Map<string, string>;
  /** `store.json_version` when read ('' when absent). */
  version: string;
}

export class InventoryReader {
  private readonly store: Datastore;
  private cache: Inventory | null = null;

  constructor(path: string) {
    this.store = new Datastore(path);
  }

  get path(): string {
    return this.store.path;
  }

  private async versionText(): Promise<string> {
    try {
      return (await readFile(this.store.versionPath, 'utf8')).trim();
    } catch {
      return '';
    }
  }

  /** The inventory now (cached while `store.json_version` is unchanged, unless `fresh`). */
  async read(fresh = false): Promise<Inventory> {
    const version = await this.versionText();
    if (!fresh && this.cache && version !== '' && this.cache.version === version) return this.cache;
    const data = await this.store.read();
    const items: InventoryItem[] = [];
    const attached = new Map<string, string>();
    for (const [handle, e] of Object.entries(data)) {
      if (!e || typeof e !== 'object' || !isHandle(handle) || typeof e.ip !== 'string' || !IP4.test(e.ip))
        continue;
      const metadata = reportedMetadata(e.metadata);
      items.push({ handle, ip: e.ip, metadata });
      attached.set(handle, e.ip);
    }
    items.sort((a, b) => (a.handle < b.handle ? -1 : a.handle > b.handle ? 1 : 0));
    this.cache = { items, attached, version };
    return this.cache;
  }
}

/** The metadata keys the controller reads (identityFromMetadata); nothing else is reported. */
export const REPORTED_METADATA_KEYS = [
  'policy_group_id',
  'app_id',
  'space_id',
  'org_id',
  'container_workload',
] as const;
/** Longer values are left out: a GUID is 36 characters. */
export const REPORTED_METADATA_MAX_CHARS = 256;

/**
 * What the status report carries of one container's Garden metadata: the identity keys, as
 * bounded strings. So one record's size (whatever a datastore holds) never makes the cell's status
 * report too large to send: the report stays a few hundred bytes per container.
 */
export function reportedMetadata(meta: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!meta || typeof meta !== 'object' || Array.isArray(meta)) return out;
  for (const k of REPORTED_METADATA_KEYS) {
    const v = (meta as Record<string, unknown>)[k];
    if (typeof v === 'string' && v.length <= REPORTED_METADATA_MAX_CHARS) out[k] = v;
  }
  return out;
}

/** A stable fingerprint of an inventory (to report it only when it changed). */
export function inventoryKey(items: readonly InventoryItem[]): string {
  return JSON.stringify(items.map((i) => [i.handle, i.ip, i.metadata]));
}
