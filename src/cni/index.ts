/** cfnet's CNI plugin: library, warm executor and one-off runner (docs/cni.md). */
export { AGENT_EVENTS_PATH, type CniEvent, postEvent } from './agent-client.js';
export {
  type AddInput,
  type Attachment,
  DEFAULTS,
  decodeStdin,
  type NetConfig,
  parseAddInput,
  parseNetConfig,
  parsePortMappings,
  parseValidAttachments,
} from './config.js';
export { nftDataplaneFactory } from './dataplane.js';
export { checkEnv, pickCniEnv } from './env.js';
export { CNI_ERR, CniConfigError, CniError, cniErrorJson, toCniError } from './errors.js';
export {
  type CniExecutor,
  type CniExecutorOptions,
  type CniExecutorStats,
  EXECUTOR_PATH,
  startCniExecutor,
} from './executor.js';
export { allocate, type CellSubnet, makeSubnet, readSubnet } from './ipam.js';
export { containerMtu, MtuCache, VXLAN_OVERHEAD } from './mtu.js';
export { containerMac, GATEWAY, HOST_IF, hostIfName, hostMac } from './names.js';
export { type CniDeps, type ContainerDataplane, invokeCni, type TableView } from './plugin/index.js';
export { runCniOnce } from './run.js';
export { type AttachmentRecord, Datastore, type StoreData, type StoreEntry } from './store.js';
export * from './types.js';
export { formatResult, SUPPORTED_VERSIONS, versionInfo } from './version.js';
