/**
 * What this machine allows the demo: the kernel dataplane (cells in network namespaces, nft, VXLAN,
 * containers through the real CNI plugin) needs root and the tools the agent and the CNI shim run;
 * otherwise the agents run with a dry-run dataplane.
 */
import { accessSync, constants } from 'node:fs';
import { join } from 'node:path';
import type { LabDataplane } from '../lab/cluster.js';
import { CfnetError } from '../lib/errors.js';

export type DataplaneChoice = 'auto' | LabDataplane;

export class DemoEnvironmentError extends CfnetError {
  constructor(message: string) {
    super('CFNET_DEMO_ENVIRONMENT', message);
  }
}

/** True when `name` is an executable file in a directory of PATH. */
export function onPath(name: string, path = process.env.PATH ?? ''): boolean {
  return path
    .split(':')
    .filter(Boolean)
    .some((dir) => {
      try {
        accessSync(join(dir, name), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
}

/** Why the kernel dataplane cannot run here ('' when it can). */
export function kernelBlocker(
  isRoot = process.getuid?.() === 0,
  has: (name: string) => boolean = (n) => onPath(n),
): string {
  const problems: string[] = [];
  if (!isRoot) problems.push('not running as root');
  const missing = ['ip', 'bridge', 'nft'].filter((n) => !has(n));
  // the CNI shim reaches the agent's executor with nc.openbsd or curl
  if (!has('nc.openbsd') && !has('curl')) missing.push('curl (or nc.openbsd)');
  if (missing.length > 0) problems.push(`missing on PATH: ${missing.join(', ')}`);
  return problems.join('; ');
}

/** The dataplane to run and why. */
export function chooseDataplane(
  requested: DataplaneChoice,
  blocker: string = kernelBlocker(),
): { dataplane: LabDataplane; why: string } {
  if (requested === 'dry-run') return { dataplane: 'dry-run', why: 'asked for with --dataplane dry-run' };
  if (blocker === '') return { dataplane: 'kernel', why: 'root, with ip, bridge and nft' };
  if (requested === 'kernel') {
    throw new DemoEnvironmentError(
      `the kernel dataplane cannot run here (${blocker}); run as root with iproute2 and nftables, or use --dataplane dry-run`,
    );
  }
  return { dataplane: 'dry-run', why: blocker };
}
