/**
 * The lab creates a container as Garden does from its desired LRP: the desired LRP's egress_rules
 * as Garden NetOutRules. Read back by the CNI plugin, they are the very rule set (same content
 * hash) the controller computes from the BBS snapshot with static ASGs, so a static-ASG container
 * keeps one rule set from creation on.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gardenNetOutRules, gardenNetOutRulesOfBbs } from '../../src/lab/garden-rules.js';
import { parseBbsRules, parseCapiRule, parseGardenNetOutRules } from '../../src/model/asg-rule.js';
import { snapshotOf } from '../../src/rules/records.js';
import { generateWorld } from '../../src/sim/generate.js';

describe('lab: Garden NetOutRules from BBS egress_rules', () => {
  it('round-trips every desired LRP of a generated foundation to the same rule-set hash', () => {
    const world = generateWorld(5, 'small');
    let checked = 0;
    for (const d of world.desiredLrps.values()) {
      const fromBbs = snapshotOf(parseBbsRules([...d.egressRules]));
      const viaGarden = snapshotOf(parseGardenNetOutRules(gardenNetOutRulesOfBbs(d.egressRules)));
      assert.equal(viaGarden.hash, fromBbs.hash, d.processGuid);
      checked++;
    }
    assert.ok(checked > 0);
  });

  it('keeps protocols, ranges, ICMP “any” and logging', () => {
    const rules = [
      parseCapiRule({ protocol: 'tcp', destination: '10.0.0.1-10.0.0.9', ports: '8000-8080', log: true }),
      parseCapiRule({ protocol: 'udp', destination: '8.8.8.8', ports: '53' }),
      parseCapiRule({ protocol: 'icmp', destination: '0.0.0.0/0', type: -1, code: -1 }),
      parseCapiRule({ protocol: 'icmp', destination: '192.0.2.0/24', type: 8, code: 0 }),
      parseCapiRule({ protocol: 'all', destination: '198.51.100.0/24' }),
    ];
    const garden = gardenNetOutRules(rules);
    assert.deepEqual(
      garden.map((g) => g.protocol),
      [1, 2, 3, 3, 0],
    );
    assert.deepEqual(garden[2]!.icmps, { type: 255, code: 255 });
    assert.equal(garden[0]!.log, true);
    assert.equal(snapshotOf(parseGardenNetOutRules(garden)).hash, snapshotOf(rules).hash);
  });
});
