/**
 * The agent's log events: a stable `event` field on the log lines that report what the agent did
 * to the kernel, so tools and tests match a name instead of the human message text (which may be
 * reworded). The lab reads them with `CellNode.events(name)`.
 */
export const AGENT_EVENTS = {
  /** A rule set (snapshot or patch) was applied: `mode`, `ms`, `summary`. */
  rulesApplied: 'rules_applied',
  /** The read-back found a difference and the table was rewritten: what differed. */
  driftRepaired: 'drift_repaired',
  /** At start, the saved rule set was re-applied in one transaction. */
  savedRulesRestored: 'saved_rules_restored',
  /** At start, the kernel already held the saved rule set: nothing applied. */
  kernelHoldsSavedRules: 'kernel_holds_saved_rules',
  /** The VXLAN device was created or changed: `done`. */
  vxlanConfigured: 'vxlan_configured',
  /** Routes, neighbours and FDB entries to peers changed: `changes`, `peers`. */
  overlayUpdated: 'overlay_updated',
} as const;

export type AgentEvent = (typeof AGENT_EVENTS)[keyof typeof AGENT_EVENTS];
