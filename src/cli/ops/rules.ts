/**
 * `cfnet rules`: a cell's stored rule set (or one container's part) as a summary, JSON or nft text.
 * Both the summary and the JSON name each container's app, space and org.
 */
import { type Command, Option } from 'commander';
import { helpFooter } from '../../lib/command.js';
import { ValidationError } from '../../lib/errors.js';
import { exitHelp } from '../../lib/exit-codes.js';
import { isoTime, table, versionText } from '../../ops/format.js';
import { type ConnFlags, connectionOptions, type OpsIo, printJson, run, withContext } from './common.js';

export function registerRules(program: Command, io: OpsIo): void {
  const cmd = program
    .command('rules')
    .description(
      "a cell's rule set as the controller stored it (what its agent pulls), or one container's part of it",
    )
    .requiredOption('--cell <cell>', 'cell id')
    .option('--container <handle>', "only this container's part: it, its egress rules, the c2c entries to it")
    .option('--app <app>', "only this app's containers on the cell: name, org/space/app, or guid")
    .option('--space <space>', 'space of the --app app (name or guid), when its name is not unique')
    .option('--org <org>', 'org of the --app app (name or guid)')
    .option('--guids', 'show app and space guids instead of org/space/app names')
    .addOption(
      new Option(
        '--format <format>',
        'summary tables, the stored JSON (each container with its app, space and org names added as `names`), or the nft script a full apply runs',
      )
        .choices(['summary', 'json', 'nft'])
        .default('summary'),
    )
    .option('--json', 'same as --format json')
    .option('--nft', 'same as --format nft')
    .option('--table <name>', 'nft table name used on the cells', 'cfnet');
  helpFooter(connectionOptions(cmd), {
    examples: [
      'cfnet rules --cell cell-7                       # summary tables',
      'cfnet rules --cell cell-7 --container <handle>  # one container',
      'cfnet rules --cell cell-7 --app web --space prod # one app',
      'cfnet rules --cell cell-7 --nft                 # the nft script',
      'cfnet rules --cell cell-7 --json                # stored rule set + names',
      'cfnet rules --cell cell-7 --json | jq ".containers[] | {handle, ip, names}"',
    ],
    exit: exitHelp(),
  }).action(
    run(
      io,
      'rules',
      async (
        o: ConnFlags & {
          cell: string;
          container?: string;
          app?: string;
          space?: string;
          org?: string;
          guids?: boolean;
          format: string;
          json?: boolean;
          nft?: boolean;
          table: string;
        },
      ) => {
        if (o.json && o.nft)
          throw new ValidationError('format', 'json+nft', 'give --json or --nft, not both');
        const format = o.json ? 'json' : o.nft ? 'nft' : o.format;
        if ((o.space !== undefined || o.org !== undefined) && o.app === undefined)
          throw new ValidationError('app', undefined, '--space and --org narrow --app');
        const { loadRules, nftText, withNames } = await import('../../ops/rules.js');
        const { loadNames } = await import('../../ops/world-reader.js');
        const { r, names } = await withContext(io, o, async (ctx) => {
          const names = await loadNames(ctx.redis, ctx.keys);
          const ref = {
            app: o.app ?? '',
            ...(o.space !== undefined ? { space: o.space } : {}),
            ...(o.org !== undefined ? { org: o.org } : {}),
          };
          const r = await loadRules(
            ctx.store,
            o.cell,
            o.container,
            o.app !== undefined ? { ref, names } : undefined,
          );
          return { r, names };
        });
        if (format === 'json') return printJson(io, withNames(r.ruleSet, names));
        if (format === 'nft') {
          io.stdout(nftText(r.ruleSet, o.table));
          return;
        }
        const rs = r.ruleSet;
        const applied = r.status?.appliedVersion ?? 0;
        const head = [
          `cell ${rs.cellId}${r.container ? `, container ${r.container}` : ''}${
            r.app ? `, app ${o.guids ? r.app : names.appLabel(r.app)}` : ''
          }`,
          `version ${versionText(rs.version)} (${rs.version}; stored ${isoTime(r.meta.updatedAt)}, hash ${r.meta.hash})`,
          `agent applied ${applied ? versionText(applied) : 'nothing reported'}${
            applied === rs.version ? ' (converged)' : applied ? ' (behind)' : ''
          }${r.status?.error ? `, error: ${r.status.error}` : ''}`,
        ];
        const users = new Map<string, number>();
        for (const c of rs.containers) users.set(c.egress, (users.get(c.egress) ?? 0) + 1);
        const out = [
          head.join('\n'),
          '',
          `containers (${rs.containers.length}):`,
          rs.containers.length === 0
            ? '  none'
            : table(
                rs.containers.map((c) => ({
                  handle: c.handle,
                  ip: c.ip,
                  // org/space/app names the space too; --guids shows both guids instead
                  app: o.guids ? c.appGuid : names.appLabel(c.appGuid),
                  space: c.spaceGuid,
                  workload: c.workload,
                  tag: c.tag ?? '',
                  egress: c.egress,
                  netin: c.netIn.map((m) => `${m.hostPort}->${m.containerPort}`),
                })),
                // the space column stays when a label cannot name it (an app CAPI has no name for)
                o.guids || rs.containers.some((c) => names.app(c.appGuid) === undefined)
                  ? ['handle', 'ip', 'app', 'space', 'workload', 'tag', 'egress', 'netin']
                  : ['handle', 'ip', 'app', 'workload', 'tag', 'egress', 'netin'],
              ),
          '',
          `egress rule sets (${Object.keys(rs.asgSets).length}):`,
          Object.keys(rs.asgSets).length === 0
            ? '  none'
            : table(
                Object.entries(rs.asgSets).map(([hash, rules]) => ({
                  hash,
                  rules: rules.length,
                  containers: users.get(hash) ?? 0,
                })),
                ['hash', 'rules', 'containers'],
              ),
          '',
          `c2c allow entries (${rs.c2c.length}):`,
          rs.c2c.length === 0
            ? '  none'
            : table(
                rs.c2c.map((e) => ({
                  tag: e.srcTag,
                  destination: e.dstIp,
                  protocol: e.protocol,
                  ports:
                    e.ports.start === e.ports.end ? String(e.ports.start) : `${e.ports.start}-${e.ports.end}`,
                })),
                ['tag', 'destination', 'protocol', 'ports'],
              ),
          '',
          `source tag table (tags new containers at CNI ADD): ${Object.keys(rs.tags ?? {}).length} apps`,
          '',
          '(--format json for the stored rule set, --format nft for the nft script)',
        ];
        io.stdout(`${out.join('\n')}\n`);
      },
    ),
  );
}
