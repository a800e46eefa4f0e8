/**
 * Shared pieces of the operator commands: where they write (OpsIo), the Redis connection options
 * (flag > environment > controller config file > default), `--json`, and how an action's error
 * becomes one line on stderr and an exit status.
 */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CfnetError, errorMessage, ValidationError } from '../../lib/errors.js';
import { EXIT } from '../../lib/exit-codes.js';
import type { RedisAuth } from '../../lib/redis.js';
import { loadPem } from '../../lib/tls.js';
import type { OpsConnectOptions, OpsContext } from '../../ops/connect.js';
import { exitCodeOf } from '../../ops/errors.js';
import { parseDuration } from '../../ops/format.js';

/** Where the commands write, and how they end (tests pass their own). */
export interface OpsIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** The progress bar's stream (stderr); a bar is drawn when it is a terminal or `--progress`. */
  progress: NodeJS.WritableStream & { isTTY?: boolean };
  setExitCode(code: number): void;
  env: Record<string, string | undefined>;
  /** Ends `--follow` (default: SIGINT / SIGTERM). */
  signal?: AbortSignal;
}

export const processIo: OpsIo = {
  stdout: (t) => process.stdout.write(t),
  stderr: (t) => process.stderr.write(t),
  progress: process.stderr,
  setExitCode: (c) => {
    process.exitCode = c;
  },
  env: process.env,
};

export interface ConnFlags {
  redisUrl?: string;
  redisUsername?: string;
  redisCaCert?: string;
  redisNamespace?: string;
  config?: string;
  connectTimeout?: string;
}

export interface JsonFlag {
  json?: boolean;
}

export { EXIT_HELP } from '../../lib/exit-codes.js';

/** Connection settings: flag > environment (CFNET_…) > controller config file > default. */
export function connectionOf(o: ConnFlags, env: Record<string, string | undefined>): OpsConnectOptions {
  const path = o.config ?? env.CFNET_CONFIG;
  let file: Record<string, unknown> = {};
  if (path) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new ValidationError('config', path, `cannot read: ${errorMessage(err)}`);
    }
    try {
      file = JSON.parse(text) as Record<string, unknown>;
    } catch (err) {
      throw new ValidationError('config', path, `not valid JSON: ${errorMessage(err)}`);
    }
    if (typeof file !== 'object' || file === null || Array.isArray(file)) {
      throw new ValidationError('config', path, 'must hold a JSON object');
    }
  }
  const fromFile = (camel: string, snake: string): string | undefined => {
    const v = file[camel] ?? file[snake];
    return typeof v === 'string' && v !== '' ? v : undefined;
  };
  const pick = (flag: string | undefined, envName: string, camel: string, snake: string) =>
    flag ?? (env[envName] || undefined) ?? fromFile(camel, snake);
  const out: OpsConnectOptions = {};
  const url = pick(o.redisUrl, 'CFNET_REDIS_URL', 'redisUrl', 'redis_url');
  if (url) out.redisUrl = url;
  const ns = pick(o.redisNamespace, 'CFNET_REDIS_NAMESPACE', 'redisNamespace', 'redis_namespace');
  if (ns) out.namespace = ns;
  const auth: RedisAuth = {};
  const user = pick(o.redisUsername, 'CFNET_REDIS_USERNAME', 'redisUsername', 'redis_username');
  if (user) auth.username = user;
  // the password only from the environment or the config file: never on a command line
  const password = (env.CFNET_REDIS_PASSWORD || undefined) ?? fromFile('redisPassword', 'redis_password');
  if (password) auth.password = password;
  const ca = pick(o.redisCaCert, 'CFNET_REDIS_CA_CERT', 'redisCaCert', 'redis_ca_cert');
  if (ca) auth.tlsCa = loadPem(ca);
  if (Object.keys(auth).length > 0) out.auth = auth;
  if (o.connectTimeout !== undefined)
    out.connectTimeoutMs = parseDuration(o.connectTimeout, 'connect-timeout');
  return out;
}

export function connectionOptions(cmd: Command): Command {
  return cmd
    .option(
      '--redis-url <url>',
      "the controller's Redis (env CFNET_REDIS_URL) [default: redis://127.0.0.1:6379/0]",
    )
    .option(
      '--redis-namespace <ns>',
      "the controller's key namespace and BullMQ prefix (env CFNET_REDIS_NAMESPACE) [default: {cfnet}]",
    )
    .option(
      '--redis-username <user>',
      'Redis ACL user (env CFNET_REDIS_USERNAME); the password comes from env CFNET_REDIS_PASSWORD or the config file',
    )
    .option(
      '--redis-ca-cert <file>',
      'CA (PEM file) of a rediss:// server certificate (env CFNET_REDIS_CA_CERT) [default: public CAs]',
    )
    .option(
      '--config <file>',
      "read redisUrl, redisNamespace, redisUsername, redisPassword, redisCaCert from the controller's JSON config file (env CFNET_CONFIG)",
    )
    .option('--connect-timeout <duration>', 'give up connecting to Redis after this long', '3s');
}

export function jsonOption(cmd: Command, what: string): Command {
  return cmd.option('--json', `print ${what} as JSON instead of a table`);
}

/**
 * Run an action: errors become one line on stderr and the exit status (src/lib/exit-codes.ts); an
 * invalid input also points at `--help`, as commander's usage errors do.
 */
export function run<A extends unknown[]>(io: OpsIo, name: string, fn: (...args: A) => Promise<void>) {
  return async (...args: A): Promise<void> => {
    try {
      await fn(...args);
    } catch (err) {
      const msg = err instanceof CfnetError ? err.message : errorMessage(err);
      const code = exitCodeOf(err);
      io.stderr(`cfnet ${name}: ${msg}\n${code === EXIT.invalid ? `(see 'cfnet ${name} --help')\n` : ''}`);
      io.setExitCode(code);
    }
  };
}

/**
 * Connect, check that a controller wrote its world into the namespace (a wrong --redis-namespace
 * reads as empty, not as "nothing to show": exit 4, as explain does), then run `fn`. Commands that
 * must work before a controller ever ran (enqueueing, queue state) pass `controller: false`.
 */
export async function withContext<T>(
  io: OpsIo,
  o: ConnFlags,
  fn: (ctx: OpsContext) => Promise<T>,
  opts: { controller?: boolean } = {},
): Promise<T> {
  const { withOps } = await import('../../ops/connect.js');
  return withOps(connectionOf(o, io.env), async (ctx) => {
    if (opts.controller !== false) {
      const { requireController } = await import('../../ops/connect.js');
      await requireController(ctx);
    }
    return fn(ctx);
  });
}

export function printJson(io: OpsIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}

export function list(text: string | undefined): string[] {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
