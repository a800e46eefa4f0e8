/**
 * `cfnet leases`: every cell's overlay subnet lease, the recovery window after a loss of the lease
 * table, recent releases; `cfnet leases move <cell>`: the operator's way to put a cell on a new
 * subnet (the only way a cell with containers ever changes subnet).
 */
import type { Command } from 'commander';
import { helpFooter } from '../../lib/command.js';
import { exitHelp } from '../../lib/exit-codes.js';
import { ago, table } from '../../ops/format.js';
import { validateCellId } from '../../state/keys.js';
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

export function registerLeases(program: Command, io: OpsIo): void {
  const cmd = program
    .command('leases')
    .description(
      "overlay subnet leases: each cell's subnet (KIND cell) or router's single address (KIND router), underlay address, last renewal and expiry; the recovery window after the lease table was lost; recent releases",
    );
  helpFooter(jsonOption(connectionOptions(cmd), 'the leases'), {
    examples: [
      'cfnet leases',
      'cfnet leases --json',
      'cfnet leases move cell-7   # to resolve a lease conflict',
    ],
    exit: exitHelp(),
  }).action(
    run(io, 'leases', async (o: ConnFlags & JsonFlag) => {
      const { LeaseManager } = await import('../../state/lease-store.js');
      const { SINGLE_IP_KIND } = await import('../../state/single-ip-lease.js');
      const now = Date.now();
      const { leases, released, opensAt } = await withContext(io, o, async (ctx) => {
        const m = new LeaseManager(ctx.redis, ctx.keys);
        const [l, r, open] = await Promise.all([
          m.list(now),
          m.released(now),
          ctx.redis.get(ctx.keys.leaseRecovery),
        ]);
        return { leases: l, released: r, opensAt: open === null ? null : Number(open) };
      });
      if (o.json) return printJson(io, { leases, released, freshSubnetsFrom: opensAt });
      const rows = leases.map((l) => ({
        cell: l.cellId,
        // a router (`cfnet agent --router`) holds one address of the reserved first subnet
        kind: l.kind === SINGLE_IP_KIND ? 'router' : 'cell',
        subnet: l.subnet,
        underlay: l.underlayIp,
        renewed: ago(l.renewedAt, now),
        expires: new Date(l.expiresAt).toISOString(),
      }));
      const lines = [
        leases.length === 0
          ? 'no leases in this namespace'
          : table(rows, ['cell', 'kind', 'subnet', 'underlay', 'renewed', 'expires']),
      ];
      if (opensAt !== null && opensAt > now) {
        lines.push(
          `recovering: the lease table was found empty; cells claim their subnets back, new cells get subnets in ${Math.ceil((opensAt - now) / 1000)} s`,
        );
      }
      for (const r of released) lines.push(`released: ${r.cellId} ${r.subnet} ${ago(r.releasedAt, now)}`);
      io.stdout(`${lines.join('\n')}\n`);
    }),
  );
  const move = cmd
    .command('move <cell>')
    .description(
      'put the cell on a new subnet at its next lease renewal (its containers on the old subnet lose overlay connectivity until they are recreated): only to resolve a lease conflict',
    );
  helpFooter(connectionOptions(move), {
    examples: ['cfnet leases move cell-7'],
    exit: exitHelp(),
  }).action(
    run(io, 'leases move', async (cell: string, o: ConnFlags) => {
      const id = validateCellId(cell, 'cell');
      const { LeaseManager } = await import('../../state/lease-store.js');
      await withContext(io, o, (ctx) => new LeaseManager(ctx.redis, ctx.keys).requestMove(id), {
        controller: false,
      });
      io.stdout(`cell ${id} moves to a new subnet at its next lease renewal\n`);
    }),
  );
}
