/**
 * The multi-cell topology lives in the lab foundation (src/lab/cluster.ts), shared with the
 * benches and `cfnet demo`; tests import it from here.
 */
export {
  type AppRef,
  CellNode,
  Cluster,
  type ClusterOptions,
  type ContainerRef,
  EXTERNAL_IP,
  REDIS_URL,
  UNDERLAY_GW,
} from '../../src/lab/cluster.js';
