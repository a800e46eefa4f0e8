import type { Command } from 'commander';
import { startCniExecutor } from '../cni/executor.js';
import { runCniOnce } from '../cni/run.js';
import { createLogger } from '../lib/log.js';

/** `cfnet cni` (one CNI invocation in-process) and `cfnet cni-executor` (the warm executor). */
export function registerCniCommands(program: Command): void {
  program
    .command('cni')
    .description(
      'run one CNI invocation in this process: CNI_* environment and the network config on stdin, result or CNI error JSON on stdout (what bin/cfnet-cni falls back to when no executor is reachable)',
    )
    .action(async () => {
      const out = await runCniOnce();
      if (out.about) process.stderr.write(out.about);
      await new Promise<void>((resolve) => process.stdout.write(out.stdout, () => resolve()));
      process.exitCode = out.exitCode;
    });

  program
    .command('cni-executor')
    .description(
      'serve CNI invocations from the cfnet-cni shim on a unix socket (normally hosted by the cell agent); run it in the cell network namespace',
    )
    .requiredOption('--socket <path>', 'unix socket to listen on (the plugin config key executor_socket)')
    .option('--mode <octal>', 'socket file permissions', '600')
    .option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)', 'info')
    .action(async (opts: { socket: string; mode: string; logLevel: string }) => {
      const logger = createLogger('cni-executor', { level: opts.logLevel });
      const ex = await startCniExecutor({ socket: opts.socket, logger, mode: Number.parseInt(opts.mode, 8) });
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      await ex.close();
    });
}
