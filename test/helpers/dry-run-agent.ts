/**
 * Settings every in-process dry-run agent of the integration tests shares: its files under one
 * directory, no sockets, no metrics port, no drift checks, silent logs.
 */
import { join } from 'node:path';

export function dryRunAgentFiles(dir: string) {
  return {
    driftCheckIntervalSeconds: 0,
    stateDir: join(dir, 'state'),
    executorSocket: '',
    agentSocket: '',
    datastore: join(dir, 'store.json'),
    subnetFile: join(dir, 'subnet.json'),
    cniStateDir: join(dir, 'cni'),
    metricsPort: 0,
    logLevel: 'silent',
  };
}
