/** The agent's Prometheus metrics (all `cfnet_agent_…`). */
import { counter, DURATION_BUCKETS, gauge, histogram, type Registry } from '../lib/metrics.js';

export const AGENT_METRICS = {
  appliedVersion: 'cfnet_agent_applied_ruleset_version',
  controllerVersion: 'cfnet_agent_controller_ruleset_version',
  applies: 'cfnet_agent_applies_total',
  applyDuration: 'cfnet_agent_apply_duration_seconds',
  receiveToEnforce: 'cfnet_agent_receive_to_enforce_seconds',
  polls: 'cfnet_agent_rule_polls_total',
  controllerUp: 'cfnet_agent_controller_reachable',
  controllerErrors: 'cfnet_agent_controller_errors_total',
  overlayPeers: 'cfnet_agent_overlay_peers',
  leaseConflicts: 'cfnet_agent_lease_conflicts_total',
  overlayChanges: 'cfnet_agent_overlay_entry_changes_total',
  driftRepairs: 'cfnet_agent_drift_repairs_total',
  foreignChanges: 'cfnet_agent_nft_foreign_changes_total',
  refused: 'cfnet_agent_refused_items',
  localContainers: 'cfnet_agent_local_containers',
  pendingContainers: 'cfnet_agent_cni_only_containers',
  cniLocalTags: 'cfnet_agent_cni_local_tags_total',
  statusReports: 'cfnet_agent_status_reports_total',
  certificateNotAfter: 'cfnet_agent_certificate_not_after_seconds',
  certificateRenewals: 'cfnet_agent_certificate_renewals_total',
  auditLinesWritten: 'cfnet_agent_audit_lines_written_total',
  auditLinesDropped: 'cfnet_agent_audit_lines_dropped_total',
} as const;

export function agentMetrics(registry: Registry) {
  return {
    appliedVersion: gauge(
      registry,
      AGENT_METRICS.appliedVersion,
      'Version of the controller rule set in force',
    ),
    controllerVersion: gauge(
      registry,
      AGENT_METRICS.controllerVersion,
      'Version of the newest controller rule set received',
    ),
    applies: counter(registry, AGENT_METRICS.applies, 'nft transactions by mode and outcome', [
      'mode',
      'outcome',
    ]),
    applyDuration: histogram(
      registry,
      AGENT_METRICS.applyDuration,
      'Duration of one rule-set apply (merge, render, nft)',
      ['mode'],
      DURATION_BUCKETS,
    ),
    receiveToEnforce: histogram(
      registry,
      AGENT_METRICS.receiveToEnforce,
      'From receiving a rule-set change to the end of its nft transaction',
      [],
      DURATION_BUCKETS,
    ),
    polls: counter(registry, AGENT_METRICS.polls, 'Rule-set long-poll answers by kind', ['kind']),
    controllerUp: gauge(registry, AGENT_METRICS.controllerUp, '1 when the last controller request succeeded'),
    controllerErrors: counter(
      registry,
      AGENT_METRICS.controllerErrors,
      'Failed controller requests by operation',
      ['op'],
    ),
    overlayPeers: gauge(registry, AGENT_METRICS.overlayPeers, 'Other cells with overlay routes on this cell'),
    leaseConflicts: counter(
      registry,
      AGENT_METRICS.leaseConflicts,
      'Lease answers refused because they would move the cell off the subnet it holds (claim conflicts, offered moves)',
    ),
    overlayChanges: counter(
      registry,
      AGENT_METRICS.overlayChanges,
      'Route/neighbour/FDB entries added, replaced or deleted',
    ),
    driftRepairs: counter(registry, AGENT_METRICS.driftRepairs, 'Kernel drift found and repaired', ['what']),
    foreignChanges: counter(
      registry,
      AGENT_METRICS.foreignChanges,
      'Transactions on the nft table made by another process (seen by nft monitor)',
    ),
    refused: gauge(
      registry,
      AGENT_METRICS.refused,
      'Containers, NetIn mappings and c2c entries of the rule set the dataplane refused (the rest is applied)',
    ),
    localContainers: gauge(registry, AGENT_METRICS.localContainers, 'Containers in the CNI datastore'),
    pendingContainers: gauge(
      registry,
      AGENT_METRICS.pendingContainers,
      'Containers enforced with CNI-time rules (not yet in the controller rule set)',
    ),
    cniLocalTags: counter(
      registry,
      AGENT_METRICS.cniLocalTags,
      'CNI ADDs whose container got its c2c source tag from the local tag table in the admitting transaction',
      [],
    ),
    statusReports: counter(registry, AGENT_METRICS.statusReports, 'Status reports by outcome', ['outcome']),
    certificateNotAfter: gauge(
      registry,
      AGENT_METRICS.certificateNotAfter,
      "End of the cell certificate's validity (Unix seconds)",
    ),
    certificateRenewals: counter(
      registry,
      AGENT_METRICS.certificateRenewals,
      'Cell certificate requests by method (certificate, token) and outcome',
      ['method', 'outcome'],
    ),
  };
}

export type AgentMetrics = ReturnType<typeof agentMetrics>;
