/**
 * The dataplane the plugin uses by default: NftDataplane (src/dataplane) on the config's table and
 * state dir, one instance per (table, state dir) so the executor's concurrent invocations share its
 * in-process queue; across processes NftDataplane locks `<state_dir>/nft-<table>`.
 */
import { NftDataplane } from '../dataplane/apply.js';
import type { Logger } from '../lib/log.js';
import type { NetConfig } from './config.js';
import type { ContainerDataplane } from './plugin/index.js';

export interface DataplaneFactoryOptions {
  logger?: Logger;
  /**
   * Keep a long-lived `nft -i` process per table for small transactions (NftDataplane `session`):
   * for the warm executor, where it saves a process start on every ADD. A one-off process
   * (the fallback) has nothing to keep it for.
   */
  session?: boolean;
}

/** A dataplane per configuration, plus close() for the long-lived processes it may hold. */
export type DataplaneFactory = ((cfg: NetConfig) => ContainerDataplane) & { close(): Promise<void> };

export function nftDataplaneFactory(opts: DataplaneFactoryOptions | Logger = {}): DataplaneFactory {
  const o: DataplaneFactoryOptions = 'child' in opts ? { logger: opts as Logger } : opts;
  const cache = new Map<string, NftDataplane>();
  const factory = (cfg: NetConfig): ContainerDataplane => {
    const key = `${cfg.nftTable}\u0000${cfg.stateDir}`;
    let dp = cache.get(key);
    if (!dp) {
      dp = new NftDataplane({
        table: cfg.nftTable,
        stateDir: cfg.stateDir,
        session: o.session ?? false,
        ...(o.logger ? { logger: o.logger } : {}),
      });
      cache.set(key, dp);
    }
    return dp;
  };
  return Object.assign(factory, {
    close: async () => {
      const all = [...cache.values()];
      cache.clear();
      await Promise.all(all.map((dp) => dp.close()));
    },
  });
}
