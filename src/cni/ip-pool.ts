/**
 * Ready-started `ip -batch -` processes for the warm executor. Starting a process from Node blocks
 * its event loop for the fork (a few ms for a process of Node's size on a small VM) and the program
 * then needs ~2-4 ms to load: both off an ADD's critical path when the process is already waiting
 * for its script. Two kinds: in the executor's (cell) namespace, and "any netns" (told the
 * container's netns path first, see link.ts). Refilled after each answer, not during an ADD; an
 * empty pool (many concurrent ADDs) just starts processes on demand.
 */
import type { PendingCommand } from '../host/index.js';
import { enterNetns, startIpBatch, startIpBatchAnyNetns } from './link.js';

export interface IpBatchSource {
  /** An `ip -batch -` in this (the cell's) namespace. */
  host(): PendingCommand;
  /** An `ip -batch -` in the network namespace at path `netns`. */
  container(netns: string): PendingCommand;
}

/** No pool: starts each process on demand (the one-off fallback process). */
export const ON_DEMAND: IpBatchSource = {
  host: () => startIpBatch(),
  container: (netns) => startIpBatch(netns),
};

function take(list: PendingCommand[]): PendingCommand | undefined {
  for (let p = list.shift(); p; p = list.shift()) if (p.ready) return p;
  return undefined;
}

export class IpPool implements IpBatchSource {
  private readonly size: number;
  private readonly hosts: PendingCommand[] = [];
  private readonly ctrs: PendingCommand[] = [];
  private closed = false;

  /** `size`: processes of each kind kept ready. */
  constructor(size = 2) {
    this.size = size;
  }

  host(): PendingCommand {
    return take(this.hosts) ?? startIpBatch();
  }

  container(netns: string): PendingCommand {
    const p = take(this.ctrs);
    return p ? enterNetns(p, netns) : startIpBatch(netns);
  }

  /** Tops both kinds up to `size` (call when idle: each start blocks the event loop briefly). */
  refill(): void {
    if (this.closed) return;
    const alive = (l: PendingCommand[]) => {
      for (let i = l.length - 1; i >= 0; i--) if (!l[i]!.ready) l.splice(i, 1);
    };
    alive(this.hosts);
    alive(this.ctrs);
    while (this.hosts.length < this.size) this.hosts.push(startIpBatch(undefined, null));
    while (this.ctrs.length < this.size) this.ctrs.push(startIpBatchAnyNetns(null));
  }

  /** Process ids of the processes waiting in the pool (diagnostics, tests). */
  readyPids(): number[] {
    return [...this.hosts, ...this.ctrs].filter((p) => p.ready && p.pid !== undefined).map((p) => p.pid!);
  }

  /** Lets every waiting process exit (stdin closed). */
  close(): void {
    this.closed = true;
    for (const p of this.hosts.splice(0)) p.cancel();
    for (const p of this.ctrs.splice(0)) p.cancel();
  }
}
