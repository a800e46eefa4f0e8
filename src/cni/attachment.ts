/**
 * A CNI attachment is identified by (container ID, interface name), as the spec says. Its *name* is
 * the one key everything on the cell uses for it: the datastore key, the dataplane's container
 * handle (nft element comment, log prefixes), the input of the host veth's name, the agent's
 * inventory handle. CF's case, where garden-external-networker always attaches `eth0`, keeps the
 * bare container ID (the Garden handle): Silk's store.json shape and every handle the controller
 * knows stay as they were. Any other interface appends `:<ifname>`; `:` never occurs in a container
 * ID, so two attachments' names never collide.
 */
import { CNI_ERR, CniError } from './errors.js';
import type { StoreData, StoreEntry } from './store.js';

/** The interface garden-external-networker (and most runtimes' first network) attaches. */
export const DEFAULT_IFNAME = 'eth0';
/** Handles are at most 128 characters everywhere (dataplane, agent API). */
export const ATTACHMENT_NAME_MAX = 128;
/** Interface names a name can carry (the characters a handle may hold). */
const NAMEABLE_IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export interface AttachmentId {
  containerId: string;
  ifname: string;
}

/** The attachment's name: the container ID for eth0, `<container ID>:<ifname>` otherwise. */
export function attachmentName(containerId: string, ifname: string): string {
  if (ifname === DEFAULT_IFNAME) return containerId;
  if (!NAMEABLE_IFNAME.test(ifname)) {
    throw new CniError(
      CNI_ERR.INVALID_ENV,
      `invalid CNI_IFNAME ${JSON.stringify(ifname)}: cfnet-cni supports interface names of letters, digits, "_", "." and "-"`,
      ifname,
      { variable: 'CNI_IFNAME' },
    );
  }
  const name = `${containerId}:${ifname}`;
  if (name.length > ATTACHMENT_NAME_MAX) {
    throw new CniError(
      CNI_ERR.INVALID_ENV,
      `CNI_CONTAINERID ${JSON.stringify(containerId)} is too long for an attachment on ${ifname}: container ID, ":" and interface name must fit in ${ATTACHMENT_NAME_MAX} characters`,
      containerId,
      { variable: 'CNI_CONTAINERID' },
    );
  }
  return name;
}

/** The interface a record was attached with (records without cfnet's part are Silk's: eth0). */
export function recordIfname(entry: StoreEntry): string {
  return entry.cfnet?.ifname ?? DEFAULT_IFNAME;
}

/** The container ID of a record (Silk's `handle` field; its key when the field is missing). */
export function recordContainerId(key: string, entry: StoreEntry): string {
  return typeof entry.handle === 'string' && entry.handle !== '' ? entry.handle : key;
}

/** Whether a record is the attachment (containerId, ifname). */
export function isAttachment(key: string, entry: StoreEntry | undefined, id: AttachmentId): boolean {
  return (
    entry !== undefined &&
    entry !== null &&
    typeof entry === 'object' &&
    recordContainerId(key, entry) === id.containerId &&
    recordIfname(entry) === id.ifname
  );
}

/**
 * The record of an attachment: under its name, or (a record written before attachments were keyed
 * by interface) under another key with the same container ID and interface. Null when none.
 */
export function findAttachment(data: StoreData, id: AttachmentId): { key: string; entry: StoreEntry } | null {
  const name = attachmentName(id.containerId, id.ifname);
  if (isAttachment(name, data[name], id)) return { key: name, entry: data[name]! };
  for (const [key, entry] of Object.entries(data)) {
    if (isAttachment(key, entry, id)) return { key, entry };
  }
  return null;
}
