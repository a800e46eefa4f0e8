// One conformance suite for both implementations of the agent's dataplane (`AgentDataplane`,
// src/agent/dry-run.ts): the kernel's `NftDataplane` (in a network namespace made for the run) and
// the dry-run stand-in the agent uses with `--dry-run`. Both must answer a sequence of rule-set
// applies the same way — modes, diff summaries, what reads back, drift — so a dry-run agent reports
// what a real one would do. Only the CNI path differs by design (a dry run attaches nothing).
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AgentDataplane, DryRunDataplane } from '../../src/agent/dry-run.js';
import { NftDataplane } from '../../src/dataplane/apply.js';
import { parseCapiRule } from '../../src/model/asg-rule.js';
import type { CellRuleSet } from '../../src/model/types.js';
import { container, ruleSetOf } from '../helpers/fixtures.js';
import { createNetns, deleteNetns, uniqueName } from '../helpers/netns.js';

const https = parseCapiRule({ protocol: 'tcp', destination: '10.0.0.0/8', ports: '443' });
const a1 = container('a1', '10.255.1.2', { appGuid: 'app-a', tag: 1 });
const a2 = container('a2', '10.255.1.3', { appGuid: 'app-a', tag: 1 });
const b1 = container('b1', '10.255.1.4', {
  appGuid: 'app-b',
  egress: 'k',
  netIn: [{ hostPort: 61001, containerPort: 8080 }],
});

/** The sequence every implementation goes through, from an empty table. */
const STEPS: Array<{ name: string; rs: CellRuleSet }> = [
  { name: 'two containers', rs: ruleSetOf([a1, a2]) },
  {
    name: 'a third with NetIn, its own ASG set, a c2c entry',
    rs: ruleSetOf([a1, a2, b1], {
      version: 2,
      asgSets: { h: [], k: [https] },
      c2c: [{ srcTag: 1, dstIp: b1.ip, protocol: 'tcp', ports: { start: 8080, end: 8080 } }],
    }),
  },
  { name: 'one container gone', rs: ruleSetOf([a1, b1], { version: 3, asgSets: { h: [], k: [https] } }) },
];

interface Observed {
  modes: string[];
  summaries: string[];
  sets: string[];
  driftAfterEach: boolean[];
  reapplyMode: string;
  repaired: boolean;
}

/** Runs the sequence and records what the contract compares. */
async function observe(dp: AgentDataplane): Promise<Observed> {
  const out: Observed = {
    modes: [],
    summaries: [],
    sets: [],
    driftAfterEach: [],
    reapplyMode: '',
    repaired: true,
  };
  for (const step of STEPS) {
    const r = await dp.apply(step.rs);
    out.modes.push(r.mode);
    out.summaries.push(JSON.stringify(r.summary ?? null));
    out.driftAfterEach.push((await dp.detectDrift(step.rs)).drift);
    const back = await dp.readBack();
    out.sets.push(
      `${[...back.chains.keys()].sort().join(',')} ` +
        JSON.stringify(
          [...back.sets.entries()]
            .map(([name, elements]) => [name, [...elements.keys()].sort()])
            .sort((x, y) => String(x[0]).localeCompare(String(y[0]))),
        ),
    );
  }
  const last = STEPS[STEPS.length - 1]!.rs;
  out.reapplyMode = (await dp.apply(last)).mode;
  out.repaired = (await dp.repair(last)).repaired;
  return out;
}

describe('AgentDataplane contract: the kernel (NftDataplane) and the dry run answer alike', () => {
  const ns = uniqueName('cfdpc');
  let stateDir: string;
  let kernel: NftDataplane;
  let kernelSeen: Observed;
  let drySeen: Observed;

  before(async () => {
    await createNetns(ns);
    stateDir = await mkdtemp(join(tmpdir(), 'cfnet-dp-contract-'));
    kernel = new NftDataplane({ netns: ns, stateDir, session: true });
    kernelSeen = await observe(kernel);
    drySeen = await observe(new DryRunDataplane('cfnet'));
  });
  after(async () => {
    await kernel?.close();
    await deleteNetns(ns);
    await rm(stateDir, { recursive: true, force: true });
  });

  it('the first apply is a full one, the next ones incremental, with the same diff summaries', () => {
    assert.equal(kernelSeen.modes[0], 'full');
    assert.deepEqual(drySeen.modes, kernelSeen.modes);
    assert.deepEqual(kernelSeen.modes.slice(1), ['incremental', 'incremental']);
    assert.deepEqual(drySeen.summaries, kernelSeen.summaries);
  });

  it('what reads back holds the same set and map elements after every step', () => {
    assert.deepEqual(drySeen.sets, kernelSeen.sets);
    assert.ok(kernelSeen.sets.every((s) => s.includes('10.255.1.2')));
  });

  it('no drift after any step; applying the same rule set again is a no-op; repair finds nothing', () => {
    for (const seen of [kernelSeen, drySeen]) {
      assert.deepEqual(seen.driftAfterEach, [false, false, false]);
      assert.equal(seen.reapplyMode, 'noop');
      assert.equal(seen.repaired, false);
    }
  });
});
