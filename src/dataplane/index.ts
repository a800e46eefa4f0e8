/** cfnet's nftables dataplane: rendering (pure), applying (one transaction per change), read-back. */
export {
  AddressTakenError,
  type ApplyResult,
  type AttachmentRef,
  type ContainerOpResult,
  DataplaneStateError,
  NftDataplane,
  type NftDataplaneOptions,
} from './apply.js';
export {
  asgRuleLines,
  checkHandle,
  desiredState,
  emptyState,
  logPrefix,
  type TableState,
} from './desired.js';
export { type Element, elementId, SET_DEFS, type SetDef } from './elements.js';
export { asgChainName, type ChainSpec, DEFAULT_TABLE, logChainName, staticChains } from './layout.js';
export { applyScript, checkScript, failingLine, NftApplyError, type NftRunOptions, runNft } from './nft.js';
export {
  compareStates,
  type DriftReport,
  type ExpectedCanon,
  emptyCanon,
  expectedHeader,
  type KernelState,
  NftParseError,
  parseKernelState,
} from './readback.js';
export {
  type DiffSummary,
  diffStates,
  type RenderOptions,
  renderFull,
  renderStateFull,
  renderUpdate,
} from './render.js';
