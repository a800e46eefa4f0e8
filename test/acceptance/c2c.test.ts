/**
 * cf-networking-release's c2c acceptance scenarios and its smoke test, translated to the lab: three
 * cells in network namespaces, the simulator as CF, containers made by the real CNI plugin, real
 * packets. Each `it` is named after CF's test (file and spec) and keeps its actors, ports,
 * protocols, outcomes and time bounds; the controller polls at its production cadence. How each
 * maps, and cfnet's measured times: docs/acceptance.md.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { AppRef, CellNode, ContainerRef } from '../helpers/cluster.js';
import { Cluster, EXTERNAL_IP } from '../helpers/cluster.js';
import { FlowWatch } from '../helpers/flow-watch.js';
import { LongConnection } from '../helpers/netns.js';
import { waitUntil } from '../helpers/wait.js';
import {
  CONNECTION_EVENTUALLY_MS,
  outcome,
  POLICY_WAIT_MS,
  productionCadence,
  SCALE_BOUND_MS,
  SMOKE_POLICY_SLEEP_MS,
  SMOKE_STAGE_MS,
  TASK_CURL_BOUND_MS,
  tcp,
  within,
} from './cf-bounds.js';

describe('CF acceptance: c2c policies (inter_container_connectivity, source_ip, asg_overlay_interaction, policy_cleanup, space_developer, task_connectivity) and the smoke test', () => {
  let cluster: Cluster;
  let cells: CellNode[];

  /** Instances of `app` on the given cells (index = position), each serving `ports`. */
  async function instances(app: AppRef, on: CellNode[], ports: number[]): Promise<ContainerRef[]> {
    const refs = await Promise.all(on.map((cell, i) => cluster.container(cell, app, i)));
    if (ports.length > 0) for (const r of refs) await cluster.serve(r.ns, ports);
    return refs;
  }

  /** Does any cell's nft table still mention `ip` (as an element or in a rule)? */
  async function anyTableHolds(ip: string): Promise<boolean> {
    const re = new RegExp(`(^|[^0-9.])${ip.replaceAll('.', '\\.')}([^0-9]|$)`);
    for (const c of cells) if (re.test(await c.table())) return true;
    return false;
  }

  /** Is the container in its cell's rule set as the controller serves it (it learnt it from BBS)? */
  async function controllerHas(ref: ContainerRef): Promise<boolean> {
    const client = cluster.controllerClient(ref.cell.id);
    try {
      const answer = await client.rules(0, 0);
      return answer.kind === 'snapshot' && answer.ruleSet.containers.some((c) => c.ip === ref.ip);
    } finally {
      await client.close();
    }
  }

  /** The peer address the echo server saw for one connection from `from` to `to:port`. */
  async function sourceSeenBy(from: ContainerRef, to: ContainerRef, port: number): Promise<string> {
    const conn = await LongConnection.open(from.ns, to.ip, port);
    try {
      const reply = await conn.send('whoami');
      const m = /^data pong:\d+:([0-9.]+):whoami$/.exec(reply);
      assert.ok(m, `unexpected echo ${reply}`);
      return m[1]!;
    } finally {
      conn.close();
    }
  }

  before(async () => {
    cluster = await Cluster.start({ cells: 3, controller: productionCadence() });
    cells = cluster.cells;
    await cluster.serve(cluster.underlay, [80, 9000], [EXTERNAL_IP]);
  });
  after(async () => {
    await cluster?.stop();
  });

  it('inter_container_connectivity: "allows policies to whitelist traffic between applications" (ports 8080 and extra 7000+, policies on within 7 s, off within 7 s, scaling within 60 s)', async (t) => {
    const [c1, c2, c3] = cells as [CellNode, CellNode, CellNode];
    const ports = [8080, 7000, 7001];
    const space = await cluster.app('icc-proxy-0');
    const proxies = [space, await cluster.app('icc-proxy-1', space.spaceGuid)];
    const ticks = [
      await cluster.app('icc-tick-0', space.spaceGuid),
      await cluster.app('icc-tick-1', space.spaceGuid),
    ];
    const proxyCtrs = [
      ...(await instances(proxies[0]!, [c1], [])),
      ...(await instances(proxies[1]!, [c2], [])),
    ];
    const tickCtrs = [
      ...(await instances(ticks[0]!, [c1, c2], ports)),
      ...(await instances(ticks[1]!, [c3, c2], ports)),
    ];
    const everyTarget = tickCtrs.flatMap((d) => ports.map((p) => tcp(d.ip, p)));
    const all = (v: 'open' | 'closed') => everyTarget.map(() => v);

    for (const p of proxyCtrs) {
      await within(
        t,
        `proxy on ${p.cell.id} can NOT reach the ticks`,
        CONNECTION_EVENTUALLY_MS,
        p.ns,
        everyTarget,
        all('closed'),
      );
    }
    const created = Date.now();
    for (const src of proxies)
      for (const dst of ticks)
        for (const port of ports)
          await cluster.sim.apply({
            kind: 'policy-add',
            source: src.appGuid,
            destination: dst.appGuid,
            port,
          });
    for (const p of proxyCtrs) {
      await within(
        t,
        `policies in force for the proxy on ${p.cell.id}`,
        POLICY_WAIT_MS,
        p.ns,
        everyTarget,
        all('open'),
        { since: created },
      );
    }
    const deleted = Date.now();
    for (const src of proxies)
      for (const dst of ticks)
        for (const port of ports)
          await cluster.sim.apply({
            kind: 'policy-remove',
            source: src.appGuid,
            destination: dst.appGuid,
            port,
          });
    for (const p of proxyCtrs) {
      await within(
        t,
        `policies gone for the proxy on ${p.cell.id}`,
        POLICY_WAIT_MS,
        p.ns,
        everyTarget,
        all('closed'),
        { since: deleted },
      );
    }

    // "the registry updates when apps are scaled": down to one instance each, then back up
    const scaledDown = Date.now();
    const gone = [tickCtrs[1]!, tickCtrs[3]!];
    for (const g of gone) await cluster.removeContainer(g);
    await waitUntil(
      'scaled-down instances leave every cell',
      async () => {
        for (const g of gone) if (await anyTableHolds(g.ip)) return false;
        return true;
      },
      SCALE_BOUND_MS,
    );
    t.diagnostic(
      `scale down reflected on every cell: cfnet ${Date.now() - scaledDown} ms (CF bound ${SCALE_BOUND_MS} ms)`,
    );
    const scaledUp = Date.now();
    const back = [await cluster.container(c2, ticks[0]!, 1), await cluster.container(c2, ticks[1]!, 1)];
    for (const b of back) await cluster.serve(b.ns, ports);
    await waitUntil(
      "scaled-up instances are in their cell's rule set",
      async () => {
        for (const b of back) if (!(await controllerHas(b))) return false;
        return true;
      },
      SCALE_BOUND_MS,
    );
    t.diagnostic(`scale up reflected: cfnet ${Date.now() - scaledUp} ms (CF bound ${SCALE_BOUND_MS} ms)`);
    // and policy applies to the new instances like to the old ones
    const readded = Date.now();
    await cluster.sim.apply({
      kind: 'policy-add',
      source: proxies[0]!.appGuid,
      destination: ticks[1]!.appGuid,
      port: 8080,
    });
    await within(
      t,
      'a policy reaches a scaled-up instance',
      POLICY_WAIT_MS,
      proxyCtrs[0]!.ns,
      [tcp(back[1]!.ip, 8080), tcp(back[0]!.ip, 8080)],
      ['open', 'closed'],
      { since: readded },
    );
  });

  it('source_ip: "should be the container\'s ip" (self-policy on 8080, instances on the same and on different cells)', async (t) => {
    const [c1, c2, c3] = cells as [CellNode, CellNode, CellNode];
    const app = await cluster.app('srcip');
    const inst = await instances(app, [c1, c1, c2, c3, c2], [8080]);
    const added = Date.now();
    await cluster.sim.apply({
      kind: 'policy-add',
      source: app.appGuid,
      destination: app.appGuid,
      port: 8080,
    });
    const [sameA, sameB, other] = [inst[0]!, inst[1]!, inst[2]!];
    assert.equal(sameA.cell.id, sameB.cell.id);
    assert.notEqual(sameA.cell.id, other.cell.id);
    await within(
      t,
      'self-policy in force',
      POLICY_WAIT_MS,
      sameA.ns,
      [tcp(sameB.ip, 8080), tcp(other.ip, 8080)],
      ['open', 'open'],
      { since: added },
    );
    assert.equal(
      await sourceSeenBy(sameA, sameB, 8080),
      sameA.ip,
      'same cell: the peer sees the container address',
    );
    assert.equal(
      await sourceSeenBy(sameA, other, 8080),
      sameA.ip,
      'other cell: the peer sees the container address',
    );
    assert.equal(await sourceSeenBy(inst[3]!, sameB, 8080), inst[3]!.ip);
  });

  it('asg_overlay_interaction: "when a wide open ASG is configured" it does not allow traffic on the overlay without a policy, and does with one (same cell and different cells)', async (t) => {
    const [c1, c2, c3] = cells as [CellNode, CellNode, CellNode];
    const app = await cluster.app('wide-open');
    const inst = await instances(app, [c1, c1, c2, c3, c2], [8080]);
    const asg = await cluster.sim.apply({
      kind: 'asg-create',
      name: 'wide-open-asg',
      rules: [{ protocol: 'all', destination: '0.0.0.0/0' }],
    });
    await cluster.sim.apply({
      kind: 'asg-bind-space',
      guid: asg.result.guid as string,
      spaceGuid: app.spaceGuid,
    });
    // the ASG is in force (egress anywhere outside the overlay) ...
    await within(t, 'wide-open ASG in force', 180_000, inst[0]!.ns, [tcp(EXTERNAL_IP, 9000)], ['open']);
    // ... and still no c2c: overlay destinations are not egress
    const [app1, app2, app3] = [inst[0]!, inst[1]!, inst[2]!];
    assert.deepEqual(await outcome(app1.ns, [tcp(app2.ip, 8080), tcp(app3.ip, 8080)]), ['closed', 'closed']);
    const added = Date.now();
    await cluster.sim.apply({
      kind: 'policy-add',
      source: app.appGuid,
      destination: app.appGuid,
      port: 8080,
    });
    await within(
      t,
      'self-policy opens the overlay',
      POLICY_WAIT_MS,
      app1.ns,
      [tcp(app2.ip, 8080), tcp(app3.ip, 8080)],
      ['open', 'open'],
      { since: added },
    );
  });

  it('asg_overlay_interaction: "when overlay policies are in place" it continues to enforce ASGs default deny (a c2c policy grants no egress)', async () => {
    const app = await cluster.app('ovl-deny');
    const [a] = await instances(app, [cells[0]!], [7777]);
    await cluster.sim.apply({
      kind: 'policy-add',
      source: app.appGuid,
      destination: app.appGuid,
      port: 7777,
    });
    // CF: the app, through its own route on port 80, gets "request failed"; here the router's address
    await new Promise((r) => setTimeout(r, POLICY_WAIT_MS));
    assert.deepEqual(await outcome(a!.ns, [tcp(EXTERNAL_IP, 80)]), ['closed']);
  });

  it('policy_cleanup: "cleans up stale policies for deleted apps" — a deleted app\'s addresses leave every cell, its stale policy and the cleanup touch no other flow', async (t) => {
    const [c1, c2] = cells as [CellNode, CellNode];
    const a = await cluster.app('cleanup-a');
    const b = await cluster.app('cleanup-b', a.spaceGuid);
    const aInst = await instances(a, [c1, c2], [1234]);
    const bInst = await instances(b, [c1, c2], [1234]);
    await cluster.sim.apply({ kind: 'policy-add', source: a.appGuid, destination: a.appGuid, port: 1234 });
    await cluster.sim.apply({ kind: 'policy-add', source: b.appGuid, destination: b.appGuid, port: 1234 });
    await within(
      t,
      'both self-policies in force',
      POLICY_WAIT_MS,
      aInst[0]!.ns,
      [tcp(aInst[1]!.ip, 1234)],
      ['open'],
    );
    await within(
      t,
      'both self-policies in force (b)',
      POLICY_WAIT_MS,
      bInst[0]!.ns,
      [tcp(bInst[1]!.ip, 1234)],
      ['open'],
    );
    const watch = await FlowWatch.start([
      { name: 'b0→b1:1234', ns: bInst[0]!.ns, proto: 'tcp', host: bInst[1]!.ip, port: 1234, expect: 'open' },
      { name: 'b1→b0:1234', ns: bInst[1]!.ns, proto: 'tcp', host: bInst[0]!.ip, port: 1234, expect: 'open' },
    ]);
    try {
      // "deleting app so policy becomes stale": its instances go, the policy stays in the policy server
      await cluster.sim.apply({ kind: 'app-stop', appGuid: a.appGuid });
      for (const i of aInst) await cluster.removeContainer(i, { registered: false });
      await waitUntil(
        'the deleted app leaves every cell',
        async () => {
          for (const i of aInst) if (await anyTableHolds(i.ip)) return false;
          return true;
        },
        SCALE_BOUND_MS,
      );
      // "cleaning up stale policies"
      await cluster.sim.apply({
        kind: 'policy-remove',
        source: a.appGuid,
        destination: a.appGuid,
        port: 1234,
      });
      await new Promise((r) => setTimeout(r, 2 * defaultPoll()));
    } finally {
      const report = await watch.stop();
      assert.equal(report.failed, 0, report.summary());
      assert.ok(report.sent > 0);
    }
  });

  it('space_developer: a policy between two spaces of one org, created and deleted as a space developer would (tcp 1234), is enforced and then removed', async (t) => {
    const a = await cluster.app('spacedev-a');
    const orgGuid = cluster.sim.world.spaces.get(a.spaceGuid)!.orgGuid;
    const s = await cluster.sim.apply({ kind: 'space-create', name: 'space-B', orgGuid });
    const b = await cluster.app('spacedev-b', (s.result.spaceGuids as string[])[0]);
    assert.equal(b.orgGuid, a.orgGuid);
    assert.notEqual(b.spaceGuid, a.spaceGuid);
    const [aI] = await instances(a, [cells[0]!], []);
    const [bI] = await instances(b, [cells[1]!], [1234]);
    const added = Date.now();
    await cluster.sim.apply({
      kind: 'policy-add',
      source: a.appGuid,
      destination: b.appGuid,
      port: 1234,
      protocol: 'tcp',
    });
    await within(
      t,
      'space developer policy in force',
      POLICY_WAIT_MS,
      aI!.ns,
      [tcp(bI!.ip, 1234)],
      ['open'],
      { since: added },
    );
    const removed = Date.now();
    await cluster.sim.apply({
      kind: 'policy-remove',
      source: a.appGuid,
      destination: b.appGuid,
      port: 1234,
      protocol: 'tcp',
    });
    await within(
      t,
      'space developer policy removed',
      POLICY_WAIT_MS,
      aI!.ns,
      [tcp(bI!.ip, 1234)],
      ['closed'],
      { since: removed },
    );
  });

  it('task_connectivity: "allows tasks to talk to app instances" — a task of proxy1 reaches proxy2 on 8080 on its very first attempt (CF loops curl for up to 1 minute)', async (t) => {
    const [c1, c2, c3] = cells as [CellNode, CellNode, CellNode];
    const proxy1 = await cluster.app('proxy-task-connectivity-1');
    const proxy2 = await cluster.app('proxy-task-connectivity-2', proxy1.spaceGuid);
    const [p1] = await instances(proxy1, [c1], []);
    const [p2] = await instances(proxy2, [c2], [8080]);
    const added = Date.now();
    await cluster.sim.apply({
      kind: 'policy-add',
      source: proxy1.appGuid,
      destination: proxy2.appGuid,
      port: 8080,
    });
    // CF pushes both apps, adds the policy and then starts the task, minutes of CF work later;
    // here: once proxy1's own instance is let through, the policy is on the cells
    await within(
      t,
      'policy proxy1 → proxy2 in force',
      POLICY_WAIT_MS,
      p1!.ns,
      [tcp(p2!.ip, 8080)],
      ['open'],
      { since: added },
    );
    // the task runs on a cell where proxy1 has no instance: its tag can only come from the cell's
    // copy of the foundation's tag table, put in place by the CNI ADD itself
    const started = Date.now();
    const task = await cluster.container(c3, proxy1, 0, {
      register: false,
      metadata: {
        policy_group_id: proxy1.appGuid,
        app_id: proxy1.appGuid,
        space_id: proxy1.spaceGuid,
        org_id: proxy1.orgGuid,
        container_workload: 'task',
      },
    });
    const [first] = await outcome(task.ns, [tcp(p2!.ip, 8080)]);
    assert.equal(first, 'open', "the task's first connection");
    t.diagnostic(
      `task created and connected on the first attempt: cfnet ${Date.now() - started} ms (CF bound ${TASK_CURL_BOUND_MS} ms)`,
    );
  });

  it('smoke: "allows the user to configure policies" (proxy → every smoke instance on 8080: fails, works after the policy, fails after its deletion)', async (t) => {
    const proxy = await cluster.app('smoke-proxy');
    const smoke = await cluster.app('smoke-smoke', proxy.spaceGuid);
    const [p] = await instances(proxy, [cells[0]!], []);
    const smokes = await instances(smoke, [cells[1]!, cells[2]!], [8080]);
    const targets = smokes.map((s) => tcp(s.ip, 8080));
    await within(t, 'check connection failures', SMOKE_STAGE_MS, p!.ns, targets, ['closed', 'closed']);
    const created = Date.now();
    await cluster.sim.apply({
      kind: 'policy-add',
      source: proxy.appGuid,
      destination: smoke.appGuid,
      port: 8080,
    });
    await within(
      t,
      'check connection success (CF sleeps 10 s first)',
      SMOKE_POLICY_SLEEP_MS,
      p!.ns,
      targets,
      ['open', 'open'],
      { since: created },
    );
    const deleted = Date.now();
    await cluster.sim.apply({
      kind: 'policy-remove',
      source: proxy.appGuid,
      destination: smoke.appGuid,
      port: 8080,
    });
    await within(
      t,
      'check connection failures, again',
      CONNECTION_EVENTUALLY_MS,
      p!.ns,
      targets,
      ['closed', 'closed'],
      { since: deleted },
    );
  });
});

function defaultPoll(): number {
  return productionCadence().policyPollIntervalMs!;
}
