/**
 * The lab foundation: a multi-cell cfnet foundation with real processes (simulator, Redis,
 * `cfnet controller`, `cfnet agent` per cell in network namespaces with containers from the real
 * CNI plugin, or dry-run agents without root), for tests, benches and `cfnet demo`.
 */
export {
  type AppRef,
  CellNode,
  Cluster,
  type ClusterOptions,
  type ContainerRef,
  EXTERNAL_IP,
  type LabDataplane,
  REDIS_URL,
  UNDERLAY_GW,
} from './cluster.js';
export { LabController, type LabControllerOptions, OPERATOR_TOKEN_SETTING } from './controller.js';
export { buildInstall, type Install, labInstall, REPO, removeInstalls, repoInstall } from './install.js';
export {
  alive,
  freePort,
  freePorts,
  getUnix,
  rss,
  terminate,
  waitExit,
  waitForLine,
  waitUntil,
} from './process.js';
