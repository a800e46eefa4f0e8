/**
 * A small world for the reconcile queue's tests: one global running ASG, `perCell` apps with one
 * instance on each of `cells`, and a policy app-0 → app-1 on tcp 8080.
 */
import { parseCapiRule } from '../../src/model/asg-rule.js';
import { snapshotOf } from '../../src/rules/records.js';
import { type Trigger, World } from '../../src/rules/world.js';

export const T: Trigger = { kind: 'lrp', id: 'x', at: Date.now() };
const rule = parseCapiRule({ protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' });
const snap = snapshotOf([rule]);

export function buildWorld(cells: string[], perCell: number): World {
  const w = new World();
  w.setAsgs(
    [
      {
        guid: 'g',
        name: 'g',
        rules: [rule],
        runningDefault: true,
        stagingDefault: false,
        runningSpaces: [],
        stagingSpaces: [],
      },
    ],
    1,
    T,
  );
  for (let a = 0; a < perCell; a++) {
    const pg = `pg-${a}`;
    w.upsertDesired(
      {
        processGuid: pg,
        appGuid: `app-${a}`,
        spaceGuid: 's',
        orgGuid: 'o',
        workload: 'app',
        snapshot: snap.hash,
        desiredAt: 0,
      },
      snap,
      T,
    );
    cells.forEach((cell, ci) => {
      w.upsertInstance(
        {
          handle: `${cell}-h${a}`,
          processGuid: pg,
          index: ci,
          cellId: cell,
          state: 'RUNNING',
          ip: `10.255.${ci + 1}.${a + 2}`,
          netIn: [],
        },
        T,
      );
    });
  }
  w.setPolicies(
    [
      {
        source: { appGuid: 'app-0', tag: 1 },
        destination: { appGuid: 'app-1', tag: 2, protocol: 'tcp', ports: { start: 8080, end: 8080 } },
      },
    ],
    T,
  );
  return w;
}
