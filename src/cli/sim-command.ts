/**
 * `cfnet sim`: run the foundation simulator; `cfnet sim change|churn|summary|fault` talk to a
 * running simulator's admin API.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { helpFooter } from '../lib/command.js';
import { exitHelp } from '../lib/exit-codes.js';
import {
  CHANGE_KINDS,
  type FoundationSize,
  type SimChangeKind,
  type SimOptions,
  startSimulator,
} from '../sim/index.js';

const SIM_EXIT = exitHelp(['ok', 'error', 'invalid']);

export const SIM_DEFAULT_PORTS = {
  bbs: 8889,
  capi: 9443,
  uaa: 8443,
  ccInternal: 9023,
  policy: 4003,
  admin: 8899,
};
type SimPortName = keyof typeof SIM_DEFAULT_PORTS;

/** One `--<service>-port` option per listening service (commander names the value `<service>Port`). */
const PORT_OPTIONS: readonly { service: SimPortName; flag: string; what: string }[] = [
  { service: 'bbs', flag: '--bbs-port', what: 'BBS (mTLS, protobuf + SSE) port; 0 = ephemeral' },
  { service: 'capi', flag: '--capi-port', what: 'Cloud Controller API (HTTPS) port' },
  { service: 'uaa', flag: '--uaa-port', what: 'UAA (HTTPS) port' },
  {
    service: 'ccInternal',
    flag: '--cc-internal-port',
    what: 'Cloud Controller internal mTLS port (asg_latest_update)',
  },
  { service: 'policy', flag: '--policy-port', what: 'policy server internal API (mTLS) port' },
  { service: 'admin', flag: '--admin-port', what: 'admin API (plain HTTP) port' },
];

const DEFAULT_ADMIN = process.env.CFNET_SIM_ADMIN ?? `http://127.0.0.1:${SIM_DEFAULT_PORTS.admin}`;

function intArg(name: string, min = 0, max = Number.MAX_SAFE_INTEGER) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${name} must be an integer in ${min}..${max}`);
    return n;
  };
}

function positiveNumber(v: string): number {
  const n = Number(v);
  if (!(n > 0)) throw new InvalidArgumentError('must be a positive number');
  return n;
}

/** `500ms`, `30s`, `2m`, or plain milliseconds. */
export function parseDuration(v: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError(`invalid duration "${v}" (use e.g. 500ms, 30s, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 'ms';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h']);
}

function jsonArg(v: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch (err) {
    throw new InvalidArgumentError(
      `--json is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('--json must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

interface AdminConn {
  admin: string;
  adminToken?: string;
}

async function adminCall(conn: AdminConn, method: string, path: string, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (conn.adminToken) headers.authorization = `Bearer ${conn.adminToken}`;
  let res: Response;
  try {
    res = await fetch(new URL(path, conn.admin), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new Error(
      `cannot reach the simulator admin API at ${conn.admin}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // keep text
  }
  if (!res.ok) {
    const msg =
      typeof parsed === 'object' && parsed !== null && 'error' in parsed ? String(parsed.error) : text;
    throw new Error(`simulator admin API ${method} ${path}: ${res.status} ${msg}`);
  }
  return parsed;
}

function print(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}

function adminOptions(cmd: Command): Command {
  return cmd
    .option('--admin <url>', 'admin API of the running simulator (env CFNET_SIM_ADMIN)', DEFAULT_ADMIN)
    .option(
      '--admin-token <token>',
      'bearer token of the admin API, when the simulator was started with one',
    );
}

type PortOpts = { [S in SimPortName as `${S}Port`]: number };

interface RunOpts extends PortOpts {
  seed: number;
  size: FoundationSize;
  host: string;
  certDir?: string;
  v2: boolean;
  tokenTtl: number;
  churnRate?: number;
  churnSeed: number;
  adminToken?: string;
  cells?: number;
  apps?: number;
  containers?: number;
  spaces?: number;
}

async function runSimulator(o: RunOpts): Promise<void> {
  const certDir = o.certDir ?? mkdtempSync(join(tmpdir(), 'cfnet-sim-certs-'));
  const opts: SimOptions = {
    seed: o.seed,
    size: o.size,
    host: o.host,
    ports: Object.fromEntries(PORT_OPTIONS.map(({ service }) => [service, o[`${service}Port`]])),
    certDir,
    capiV2: o.v2,
    tokenTtlSeconds: o.tokenTtl,
    adminToken: o.adminToken,
    cells: o.cells,
    apps: o.apps,
    containers: o.containers,
    spaces: o.spaces,
  };
  const t0 = Date.now();
  const sim = await startSimulator(opts);
  const churn = o.churnRate ? sim.runChurn({ rate: o.churnRate, seed: o.churnSeed }) : undefined;
  print({
    event: 'sim-started',
    startupMs: Date.now() - t0,
    seed: o.seed,
    size: o.size,
    urls: sim.urls,
    tls: sim.tls.files,
    uaaClient: sim.uaaClient,
    uaaAdminClient: sim.uaaAdminClient,
    counts: sim.summary().counts,
    churn: churn ? { id: churn.id, rate: o.churnRate } : null,
  });
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  churn?.stop();
  await sim.stop();
  print({ event: 'sim-stopped', churn: churn ? await churn.done : null });
}

export function registerSimCommands(program: Command): void {
  const sim = program
    .command('sim')
    .description(
      'run the CF foundation simulator (Diego BBS, Cloud Controller v2/v3 + internal, UAA, policy server) until SIGINT/SIGTERM; prints one JSON line with URLs and certificate paths',
    )
    .option(
      '--seed <n>',
      'generation seed: the same seed and size give the same foundation',
      intArg('--seed'),
      1,
    )
    .addOption(
      new Option('--size <size>', 'foundation size (docs/architecture.md, "Foundation sizes")')
        .choices(['small', 'medium', 'large'])
        .default('small'),
    )
    .option('--host <ip>', 'address every server listens on', '127.0.0.1');
  for (const { service, flag, what } of PORT_OPTIONS) {
    sim.option(`${flag} <port>`, what, intArg(flag, 0, 65535), SIM_DEFAULT_PORTS[service]);
  }
  sim
    .option(
      '--cert-dir <dir>',
      'write ca.crt, ca.key, client.crt/key, server.crt/key here (default: a new temp dir)',
    )
    .option(
      '--no-v2',
      'disable CAPI v2 (nginx-style 404 "V2 endpoints disabled", no cloud_controller_v2 link)',
    )
    .option('--token-ttl <seconds>', 'UAA token lifetime (expires_in)', intArg('--token-ttl', 1), 3600)
    .option('--churn-rate <n>', 'drive random changes at n per second while running', positiveNumber)
    .option('--churn-seed <n>', 'seed of the churn mix', intArg('--churn-seed'), 1)
    .option('--admin-token <token>', 'require this bearer token on the admin API')
    .option('--cells <n>', 'override the number of cells of the size', intArg('--cells', 1, 4095))
    .option('--apps <n>', 'override the number of apps', intArg('--apps', 0))
    .option(
      '--containers <n>',
      'override the number of app instances (ActualLRPs)',
      intArg('--containers', 0),
    )
    .option('--spaces <n>', 'override the number of spaces', intArg('--spaces', 1));
  helpFooter(sim, {
    examples: [
      'cfnet sim                                  # small foundation, default ports',
      'cfnet sim --size medium --seed 7 --churn-rate 5',
      'cfnet sim --bbs-port 0 --capi-port 0 --admin-port 0   # ephemeral ports',
    ],
    exit: SIM_EXIT,
  }).action(async (o: RunOpts) => runSimulator(o));

  const change = adminOptions(
    sim
      .command('change <kind>')
      .description(
        `apply a named change through the admin API and print the AppliedChange (kinds: ${CHANGE_KINDS.join(', ')})`,
      )
      .option(
        '--json <object>',
        'the change\'s fields as a JSON object, e.g. \'{"appGuid":"…","instances":3}\'',
        jsonArg,
        {},
      ),
  );
  helpFooter(change, {
    examples: [
      'cfnet sim change app-scale --json \'{"appGuid":"<guid>","instances":3}\'',
      'cfnet sim change policy-add --json \\',
      '  \'{"source":"<a>","destination":"<b>","port":8080}\'',
    ],
    exit: SIM_EXIT,
  });
  change.action(async (kind: string, o: AdminConn & { json: Record<string, unknown> }) => {
    if (!CHANGE_KINDS.includes(kind as SimChangeKind)) {
      throw new InvalidArgumentError(`unknown change kind "${kind}" (one of ${CHANGE_KINDS.join(', ')})`);
    }
    print(await adminCall(o, 'POST', '/v1/changes', { ...o.json, kind }));
  });

  const churn = adminOptions(
    sim
      .command('churn')
      .description(
        'drive a random mix of changes through the admin API; waits and prints the result unless --no-wait',
      )
      .option('--rate <n>', 'changes per second', positiveNumber, 5)
      .option('--duration <d>', 'how long (e.g. 30s, 2m, 500ms)', parseDuration, 10_000)
      .option('--seed <n>', 'seed of the random mix', intArg('--seed'), 1)
      .option('--kinds <list>', 'comma-separated change kinds to draw from (default: all churn kinds)')
      .option('--no-wait', 'return at once with the churn id'),
  );
  helpFooter(churn, {
    examples: ['cfnet sim churn --rate 10 --duration 30s', 'cfnet sim churn --kinds app-scale --no-wait'],
    exit: SIM_EXIT,
  });
  churn.action(
    async (
      o: AdminConn & { rate: number; duration: number; seed: number; kinds?: string; wait: boolean },
    ) => {
      print(
        await adminCall(o, 'POST', '/v1/churn', {
          rate: o.rate,
          durationMs: o.duration,
          seed: o.seed,
          kinds: o.kinds ? o.kinds.split(',').map((k) => k.trim()) : undefined,
          wait: o.wait,
        }),
      );
    },
  );

  helpFooter(
    adminOptions(sim.command('summary').description("print the running simulator's world summary")),
    {
      examples: ['cfnet sim summary', 'cfnet sim summary --admin http://127.0.0.1:8899'],
      exit: SIM_EXIT,
    },
  ).action(async (o: AdminConn) => print(await adminCall(o, 'GET', '/v1/world/summary')));

  const fault = adminOptions(
    sim
      .command('fault <fault>')
      .description(
        'inject a fault: fail, delay, rate-limit, corrupt, expire-tokens, drop-streams, inject-event, reset',
      )
      .option(
        '--json <object>',
        'fault parameters, e.g. \'{"service":"capi","count":2,"status":503}\'',
        jsonArg,
        {},
      ),
  );
  helpFooter(fault, {
    examples: [
      'cfnet sim fault fail --json \'{"service":"capi","count":2,"status":503}\'',
      'cfnet sim fault reset',
    ],
    exit: SIM_EXIT,
  });
  fault.action(async (fault: string, o: AdminConn & { json: Record<string, unknown> }) =>
    print(await adminCall(o, 'POST', `/v1/faults/${encodeURIComponent(fault)}`, o.json)),
  );
}
