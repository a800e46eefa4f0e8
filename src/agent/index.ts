/** cfnet's cell agent: overlay lease and VXLAN, rule-set long-poll and apply, CNI executor host. */
export { type AgentOptions, type AgentStatus, CellAgent } from './agent.js';
export {
  ControllerClient,
  type ControllerClientOptions,
  ControllerRequestError,
  type InventoryItem,
  type OverlayLease,
  type RulesAnswer,
  type StatusReport,
} from './client.js';
export {
  AGENT_SETTINGS,
  type AgentConfig,
  type ConfigSources,
  envName,
  flagName,
  readConfigFile,
  resolveAgentConfig,
} from './config.js';
export { type LocalContainer, type MergeResult, mergeLocal } from './merge.js';
export {
  type DesiredOverlay,
  desiredOverlay,
  diffOverlay,
  emptyOverlay,
  type OverlayDiff,
  type OverlayState,
  parseFdb,
  parseNeighs,
  parseRoutes,
  vtepIpOf,
  vtepMacOf,
} from './overlay.js';
export { type PullUpdate, RulePuller, type RulePullerOptions, type RulesSource } from './pull.js';
export { type PersistedState, StateFile, writeFileAtomic } from './state.js';
export { detectUnderlay, type Underlay, type VtepSpec, VXLAN_OVERHEAD, Vxlan } from './vxlan.js';
