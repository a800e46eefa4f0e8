import type { Command } from 'commander';
import { startCniExecutor } from '../cni/executor.js';
import { runCniOnce } from '../cni/run.js';
import { helpFooter } from '../lib/command.js';
import { exitHelp } from '../lib/exit-codes.js';
import { createLogger } from '../lib/log.js';

/** `cfnet cni` (one CNI invocation in-process) and `cfnet cni-executor` (the warm executor). */
export function registerCniCommands(program: Command): void {
  helpFooter(
    program
      .command('cni')
      .description(
        'run one CNI invocation in this process: CNI_* environment and the network config on stdin, result or CNI error JSON on stdout (what bin/cfnet-cni falls back to when no executor is reachable)',
      ),
    {
      examples: [
        'CNI_COMMAND=VERSION cfnet cni </dev/null',
        'CNI_COMMAND=ADD CNI_CONTAINERID=c1 CNI_NETNS=/var/run/netns/c1 \\',
        '  CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin cfnet cni <cfnet.conf',
      ],
      notes:
        "Exit status: 0 success, non-zero with the CNI error JSON on stdout, as the CNI specification says (the plugin is the one command outside cfnet's exit-code table).",
    },
  ).action(async () => {
    const out = await runCniOnce();
    if (out.about) process.stderr.write(out.about);
    await new Promise<void>((resolve) => process.stdout.write(out.stdout, () => resolve()));
    process.exitCode = out.exitCode;
  });

  const executor = program
    .command('cni-executor')
    .description(
      'serve CNI invocations from the cfnet-cni shim on a unix socket (normally hosted by the cell agent); run it in the cell network namespace',
    )
    .requiredOption('--socket <path>', 'unix socket to listen on (the plugin config key executor_socket)')
    .option('--mode <octal>', 'socket file permissions', '600')
    .option('--log-level <level>', 'log level (fatal, error, warn, info, debug, trace, silent)', 'info');
  helpFooter(executor, {
    examples: ['cfnet cni-executor --socket /var/vcap/data/cfnet/cni.sock'],
    exit: exitHelp(['ok', 'error', 'invalid']),
  }).action(async (opts: { socket: string; mode: string; logLevel: string }) => {
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
