/**
 * `cfnet demo`: see demo.ts. Options are checked here; the demo's modules (and Redis's client) load
 * only when it runs, so other commands do not pay for them.
 */
import { type Command, InvalidArgumentError, Option } from 'commander';
import { helpFooter } from '../lib/command.js';
import type { DataplaneChoice } from './environment.js';

function intArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^\s*\d+\s*$/.test(v) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
}

function numberArg(name: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be a number in ${min}..${max}`);
    return n;
  };
}

function redisArg(v: string): string {
  if (v === 'throwaway' || /^rediss?:\/\/./.test(v)) return v;
  throw new InvalidArgumentError('use throwaway or a redis:// (rediss://) URL');
}

export function registerDemoCommand(program: Command): void {
  const demo = program
    .command('demo')
    .description(
      'bring up a whole cfnet foundation on this machine and show it converge under churn: a throwaway redis-server ' +
        '(or the Redis named by --redis; never one it was not pointed at), the simulator, the controller (its dashboard URL is printed) and ' +
        'one agent per cell. As root with ip, bridge and nft the cells are network namespaces with containers made ' +
        'through the real CNI plugin; otherwise the agents use a dry-run dataplane (they render and report, the kernel ' +
        'is untouched). Shows desired vs applied rule-set version and lag per cell, live, and prints how to point the ' +
        'operator tools at it. Ctrl-C, SIGTERM, closing the terminal or --duration stops it and removes everything it ' +
        'created; --cleanup removes what a killed demo left. Exit status 1 when a cell did not converge.',
    )
    .option(
      '--duration <seconds>',
      'run the churn this long, then settle and exit; 0 = until Ctrl-C',
      intArg('--duration', 0, 86_400),
      0,
    )
    .option('--cells <n>', 'number of cells (agents)', intArg('--cells', 2, 50), 3)
    .option(
      '--churn-rate <changes/s>',
      'simulated platform changes per second; 0 = none',
      numberArg('--churn-rate', 0, 100),
      2,
    )
    .option(
      '--seed <n>',
      'seed of the simulated foundation and of the churn',
      intArg('--seed', 1, 2 ** 31 - 1),
      1,
    )
    .addOption(
      new Option('--dataplane <mode>', 'kernel (root), dry-run, or auto: kernel when possible')
        .choices(['auto', 'kernel', 'dry-run'])
        .default('auto'),
    )
    .option(
      '--redis <throwaway|url>',
      'Redis to use: a throwaway redis-server started for the demo, or this URL (its keys of the demo are removed at exit)',
      redisArg,
      'throwaway',
    )
    .option(
      '--cleanup',
      'start nothing: remove what demos that were killed left behind (processes, network namespaces, Redis keys or servers, files)',
    )
    .option(
      '--containers <n>',
      'containers per cell made through the real CNI plugin (kernel dataplane)',
      intArg('--containers', 0, 50),
      2,
    )
    .option(
      '--interval <seconds>',
      'refresh the table this often (default 1 on a terminal, 5 otherwise)',
      numberArg('--interval', 0.2, 3600),
    )
    .option(
      '--settle <seconds>',
      'after --duration, wait at most this long for every cell to converge',
      intArg('--settle', 1, 600),
      30,
    )
    .option('--keep-logs', 'keep the controller and agent logs (their directory is printed)');
  helpFooter(demo, {
    examples: [
      'cfnet demo                               # until Ctrl-C',
      'cfnet demo --duration 60 --cells 5 --churn-rate 5',
      'cfnet demo --dataplane dry-run --redis redis://127.0.0.1:6380/0',
      'cfnet demo --cleanup                     # after a demo was killed',
    ],
    exit: 'Exit status: 0 every cell converged, 1 a cell did not converge (or an error), 2 invalid input.',
  }).action(async (o: Record<string, unknown>, cmd: Command) => {
    if (o.cleanup === true) {
      const { cleanupLeftovers } = await import('./leftovers.js');
      const cleaned = await cleanupLeftovers();
      for (const c of cleaned) {
        process.stdout.write(
          `demo ${c.pid}: removed ${c.processes} processes, ${c.namespaces} network namespaces, ${c.redisKeys} Redis keys${
            c.redisServer ? ', its throwaway redis-server' : ''
          }, its files\n`,
        );
      }
      if (cleaned.length === 0) process.stdout.write('no leftovers of a demo found\n');
      process.exit(0);
    }
    const redis = o.redis as string;
    if (redis !== 'throwaway') {
      const { parseRedisUrl } = await import('../lib/redis.js');
      try {
        parseRedisUrl(redis, '--redis');
      } catch (err) {
        cmd.error(`error: ${(err as Error).message}`);
      }
    }
    const { runDemo } = await import('./demo.js');
    const code = await runDemo({
      durationS: o.duration as number,
      cells: o.cells as number,
      churnRate: o.churnRate as number,
      seed: o.seed as number,
      dataplane: o.dataplane as DataplaneChoice,
      redis,
      ...(o.interval !== undefined ? { intervalS: o.interval as number } : {}),
      containers: o.containers as number,
      settleS: o.settle as number,
      keepLogs: o.keepLogs === true,
    });
    // every process, connection and timer of the demo is gone: exit with its verdict
    process.exit(code);
  });
}
