/**
 * `cfnet explain`: can app A reach app B (or an address) on a port, by which policy or ASG, enforced where.
 * Apps are named as the `cf` CLI names them (name, narrowed by space and org), or by guid
 * (ops/names.ts); the output names them `org/space/app`, with guids on request (`--guids`).
 * Like `kubectl auth can-i`, the exit status is the answer: 0 allowed, 1 denied (src/lib/exit-codes.ts).
 */
import { type Command, Option } from 'commander';
import { helpFooter } from '../../lib/command.js';
import { EXIT, exitHelp } from '../../lib/exit-codes.js';
import type { Explanation } from '../../ops/explain.js';
import { appText, verdictLine } from '../../ops/explain-named.js';
import { table, versionText } from '../../ops/format.js';
import {
  type ConnFlags,
  connectionOptions,
  type JsonFlag,
  jsonOption,
  type OpsIo,
  printJson,
  run,
  withContext,
} from './common.js';

/** The exit status of an explanation: 0 only when allowed for every container. */
export function explainExit(x: Pick<Explanation, 'allowed'>): number {
  return x.allowed === true ? EXIT.ok : EXIT.denied;
}

export { appText, verdictLine };

function printExplanation(io: OpsIo, x: Explanation, guids: boolean): void {
  const q = x.query;
  const lines: string[] = [];
  lines.push(verdictLine(x));
  if (x.kind === 'c2c') {
    const from = appText(x.from, guids);
    const to = appText(x.to, guids);
    if (x.resolvedFrom) lines.push(`(${x.resolvedFrom} is a container of app ${to})`);
    lines.push(
      `from app ${from} (policy tag ${x.sourceTag ?? 'none'}, ${x.sourceContainers} containers) to app ${to} (${x.destinationContainers} containers), ${q.protocol} port ${q.port}`,
    );
    if (x.otherPolicies.length > 0) {
      lines.push(
        `other policies ${from} → ${to}: ${x.otherPolicies.map((p) => `${p.protocol} ${p.ports}`).join(', ')}`,
      );
    }
  } else {
    lines.push(`from app ${appText(x.from, guids)}`);
    lines.push('');
    lines.push(
      table(
        x.decisions.map((d) => ({
          cell: d.cellId,
          container: d.handle,
          workload: d.workload,
          verdict: d.by === 'not-yet-addressed' ? 'not yet addressed' : d.allowed ? 'allow' : 'deny',
          by: d.by,
          path: d.local ? `input (${d.local})` : d.chains.length > 0 ? 'forward' : '',
          rules: d.rules
            .map((r) => `${r.rule}${r.groups.length ? ` [${r.groups.map((g) => g.name).join(',')}]` : ''}`)
            .join('; '),
          source:
            d.local === null && (d.by === 'asg' || d.by === 'default-deny')
              ? d.fromCurrentAsgs
                ? 'current ASGs'
                : 'BBS snapshot'
              : '',
        })),
        ['cell', 'container', 'workload', 'verdict', 'by', 'path', 'rules', 'source'],
      ),
    );
  }
  lines.push('');
  lines.push('enforced on:');
  lines.push(
    x.cells.length === 0
      ? '  no cell runs a container of these apps'
      : table(
          x.cells.map((c) => ({
            cell: c.cellId,
            role: c.role,
            containers: c.containers.length,
            stored: versionText(c.storedVersion),
            applied: versionText(c.appliedVersion),
            rules: c.agrees ? 'agree' : 'DISAGREE',
            enforced: c.enforced ? 'yes' : c.storedVersion ? 'pending' : 'no',
            detail: c.detail,
          })),
          ['cell', 'role', 'containers', 'stored', 'applied', 'rules', 'enforced', 'detail'],
        ),
  );
  if (!x.consistent) {
    lines.push('');
    lines.push(
      'note: some stored rule sets do not agree with the decision yet (a reconcile is pending, or see cfnet queue list --state failed)',
    );
  }
  io.stdout(`${lines.join('\n')}\n`);
}

interface ExplainFlags {
  from: string;
  space?: string;
  org?: string;
  to: string;
  toSpace?: string;
  toOrg?: string;
  port?: string;
  protocol: string;
  guids?: boolean;
}

export function registerExplain(program: Command, io: OpsIo): void {
  const cmd = program
    .command('explain')
    .description(
      'can app A reach app B (or an address) on a port? allowed or not, by which c2c policy or ASG, enforced on which cells at which version',
    )
    .requiredOption('--from <app>', 'source app: name, org/space/app, or guid')
    .option('--space <space>', 'space of the --from app (name or guid), when its name is not unique')
    .option('--org <org>', 'org of the --from app (name or guid)')
    .requiredOption(
      '--to <app|ip>',
      'destination app (name, org/space/app, or guid), or an IP address (egress through ASGs)',
    )
    .option('--to-space <space>', 'space of the --to app (name or guid)')
    .option('--to-org <org>', 'org of the --to app (name or guid)')
    .option('--port <port>', 'destination port (tcp/udp)')
    .addOption(new Option('--protocol <protocol>', 'protocol').choices(['tcp', 'udp', 'icmp']).default('tcp'))
    .option('--guids', 'show app guids next to their org/space/app names');
  helpFooter(jsonOption(connectionOptions(cmd), 'the explanation'), {
    examples: [
      'cfnet explain --from frontend --to backend --port 8080',
      'cfnet explain --from web --space prod --to api --to-space dev --port 8080',
      'cfnet explain --from acme/prod/web --to 10.0.5.3 --port 443  # egress',
      'cfnet explain --from <app-guid> --to 169.254.0.2 --port 53 --protocol udp',
      'cfnet explain --from a --to b --port 8080 >/dev/null && echo allowed',
    ],
    exit: exitHelp(['ok', 'denied', 'invalid', 'redisUnreachable', 'noController', 'notFound', 'error'], {
      ok: 'allowed',
      denied: 'denied, or allowed for only some containers (DEPENDS), as kubectl auth can-i',
      error: 'an error (message on stderr, nothing on stdout)',
    }),
  }).action(
    run(io, 'explain', async (o: ConnFlags & JsonFlag & ExplainFlags) => {
      const { checkNamedQuery, explainNamed } = await import('../../ops/explain-named.js');
      checkNamedQuery(o);
      const x = await withContext(io, o, (ctx) => explainNamed(ctx, o));
      if (o.json) printJson(io, x);
      else printExplanation(io, x, o.guids === true);
      io.setExitCode(explainExit(x));
    }),
  );
}
