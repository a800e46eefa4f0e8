/** What the plugin's operations are given: the dataplane seam and the optional helpers. */
import type { AttachmentRef } from '../../dataplane/apply.js';
import type { Element } from '../../dataplane/elements.js';
import type { Logger } from '../../lib/log.js';
import type { C2CAllow, CellConfig, CellContainer, EgressRule } from '../../model/types.js';
import type { TableAddressUse } from '../address-use.js';
import type { CniEvent } from '../agent-client.js';
import type { NetConfig } from '../config.js';
import type { IpBatchSource } from '../ip-pool.js';
import type { MtuCache } from '../mtu.js';

/** A kernel table read back: what CHECK and GC need to see (NftDataplane's KernelState fits). */
export interface TableView {
  exists: boolean;
  sets: Map<string, Map<string, Element>>;
}

/** The container-level operations of the dataplane (NftDataplane implements them). */
export interface ContainerDataplane {
  /**
   * `fresh`: nothing of this container is in the table yet (its address was just allocated);
   * `takeOver`: whether the entries another handle holds for the address may be replaced (that
   * attachment is not on the cell), asked when the table is read;
   * `c2c`: allow entries to the container, added in the same transaction (the agent's local ones).
   */
  addContainer(
    container: CellContainer,
    egressRules: EgressRule[],
    config: CellConfig,
    opts?: { fresh?: boolean; takeOver?: (owner: string) => boolean; c2c?: readonly C2CAllow[] },
  ): Promise<unknown>;
  /** Removes one attachment by its record (NftDataplane.removeAttachment). */
  removeAttachment(ref: AttachmentRef): Promise<{ foreignOwner?: string }>;
  /** The table's ctr_addrs and netin_dnat by address (ADD's address check). */
  addressUse(): Promise<TableAddressUse>;
  readBack(): Promise<TableView>;
}

export interface CniDeps {
  /** The dataplane for a configuration (the executor keeps one per table and state dir). */
  dataplane: (cfg: NetConfig) => ContainerDataplane;
  /** Tells the agent; default: POST to `agent_socket`. Failures are logged, never fatal. */
  notify?: (event: CniEvent, cfg: NetConfig) => Promise<void>;
  mtuCache?: MtuCache;
  /** Where ADD and DEL get their `ip -batch -` processes (the executor's IpPool); default: on demand. */
  ipBatches?: IpBatchSource;
  /** Logger; when absent one is made from the config (`log_level`, `log_file`) by `loggerFor`. */
  logger?: Logger;
  loggerFor?: (cfg: NetConfig) => Logger;
}
