import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { CellAgent } from '../../src/agent/agent.js';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { DryRunDataplane } from '../../src/agent/dry-run.js';
import { IptablesBackends, IptablesMissingError, IptablesRules } from '../../src/agent/iptables.js';
import { desiredState } from '../../src/dataplane/desired.js';
import {
  backendOfVersion,
  backendRuleArgs,
  backendTransitions,
  CONFIRMED_MARK,
  checkFilterMode,
  DEFAULT_FILTER_MODE,
  DEFAULT_IPTABLES_BINARIES,
  HIGH_MASK,
  IPTABLES_CHAINS,
  iptablesComment,
  iptablesRuleArgs,
  markAfter,
  ONLY_CONFIRMED_MARK,
  ownRules,
  PENDING_MARK,
  splitRuleLine,
} from '../../src/dataplane/host-filter.js';
import { INGRESS_MARK, staticChains } from '../../src/dataplane/layout.js';
import { MonitorParser } from '../../src/dataplane/monitor.js';
import { compareStates, expectedHeader } from '../../src/dataplane/readback.js';
import { renderFull } from '../../src/dataplane/render.js';
import { CommandError, type Runner } from '../../src/host/index.js';
import { ValidationError } from '../../src/lib/errors.js';
import { SettingsError } from '../../src/lib/settings/index.js';
import { container, ruleSetOf } from '../helpers/fixtures.js';

const byName = (mode: 'iptables' | 'nftables') => new Map(staticChains(mode).map((c) => [c.name, c]));

describe('filter modes: where container→host and egress denials are decided', () => {
  it('nftables mode keeps the self-contained table: the default of a writer without iptables rules', () => {
    assert.deepEqual(staticChains(), staticChains('nftables'));
    const chains = byName('nftables');
    assert.ok(chains.get('ctr_host')!.rules.some((r) => r.startsWith('reject')));
    assert.ok(chains.get('egress_deny')!.rules.some((r) => r.startsWith('reject')));
    assert.equal(expectedHeader(chains.get('hook_input')!.hook), 'filter/input/0/accept');
    assert.ok(!chains.has('deny_input') && !chains.has('deny_forward'));
  });

  it('iptables mode classifies before iptables (priority -5), rejects after it (priority 5), and never rejects in between', () => {
    const chains = byName('iptables');
    assert.equal(expectedHeader(chains.get('hook_input')!.hook), 'filter/input/-5/accept');
    assert.equal(expectedHeader(chains.get('hook_forward')!.hook), 'filter/forward/-5/accept');
    assert.equal(expectedHeader(chains.get('deny_input')!.hook), 'filter/input/5/accept');
    assert.equal(expectedHeader(chains.get('deny_forward')!.hook), 'filter/forward/5/accept');
    for (const name of ['ctr_host', 'egress_deny']) {
      const rules = chains.get(name)!.rules;
      assert.ok(!rules.some((r) => r.includes('reject')), name);
      assert.match(rules.at(-1)!, /meta mark set meta mark & 0xffff \| 0x10000 accept/);
    }
    // DENY_ logs only for what is rejected in the end (after the operator's rules had their say)
    assert.ok(chains.get('egress_reject')!.rules[0]!.includes('@log_deny'));
    assert.ok(!chains.get('egress_deny')!.rules.some((r) => r.includes('@log_deny')));
    // c2c (destination side) and spoofed overlay sources stay cfnet's own decision
    assert.deepEqual(chains.get('ctr_in')!.rules, byName('nftables').get('ctr_in')!.rules);
  });

  it('the verdict marks keep the c2c tag bits and differ from the NetIn ingress mark as high-half values', () => {
    for (const m of [PENDING_MARK, CONFIRMED_MARK]) {
      assert.equal(m & 0xffff, 0, 'low half is the VXLAN GBP tag');
      assert.notEqual(m & HIGH_MASK, INGRESS_MARK & HIGH_MASK);
    }
    assert.notEqual(PENDING_MARK, CONFIRMED_MARK);
    const text = renderFull(ruleSetOf([container('h1', '10.255.1.2')]), { filterMode: 'iptables' });
    assert.match(text, /priority -5;/);
    assert.match(text, /meta mark & 0xffff0000 == 0x20000 ip saddr @ctr_addrs goto ctr_reject/);
  });

  it('the mode is a typed setting: iptables by default, a bad value names the field', () => {
    assert.equal(DEFAULT_FILTER_MODE, 'iptables');
    assert.equal(checkFilterMode('filterMode', 'nftables'), 'nftables');
    assert.throws(() => checkFilterMode('filterMode', 'ebtables'), ValidationError);
    const base = {
      cellId: 'c1',
      controllerUrl: 'https://c:4190',
      caCert: '/ca',
      clientCert: '/c',
      clientKey: '/k',
    };
    assert.equal(resolveAgentConfig({ file: base }).filterMode, 'iptables');
    assert.equal(resolveAgentConfig({ file: { ...base, filterMode: 'nftables' } }).filterMode, 'nftables');
    assert.throws(
      () => resolveAgentConfig({ file: base, env: { CFNET_AGENT_FILTER_MODE: 'pf' } }),
      (e: unknown) => e instanceof SettingsError && e.key === 'filterMode',
    );
  });

  it("iptables -S lines split as iptables quotes them; only this table's cfnet rules are cfnet's", () => {
    const ours = `-A INPUT ${iptablesRuleArgs('cfnet')
      .map((a) => (a.includes(' ') ? `"${a}"` : a))
      .join(' ')}`;
    const listing = [
      '-P INPUT ACCEPT',
      '-A INPUT -s 10.255.0.0/16 -d 10.0.16.5/32 -p tcp -m tcp --dport 8898 -j ACCEPT',
      ours,
      `-A INPUT -m comment --comment "${iptablesComment('cfother')}" -j ACCEPT`,
      '-A INPUT -m comment --comment "say \\"hi\\"" -j ACCEPT',
    ].join('\n');
    assert.deepEqual(ownRules(listing, 'INPUT', 'cfnet'), [iptablesRuleArgs('cfnet')]);
    assert.deepEqual(ownRules(listing, 'FORWARD', 'cfnet'), []);
    assert.deepEqual(splitRuleLine('-m comment --comment "say \\"hi\\"" -j ACCEPT'), [
      '-m',
      'comment',
      '--comment',
      'say "hi"',
      '-j',
      'ACCEPT',
    ]);
  });

  it('the dry-run stand-in holds the static chains of its mode: no drift after an apply, drift across modes', async () => {
    const rs = ruleSetOf([container('h1', '10.255.1.2')]);
    const dry = new DryRunDataplane('cfnet', 'iptables');
    await dry.applyFull(rs);
    assert.equal((await dry.detectDrift(rs)).drift, false);
    const kernel = await dry.readBack();
    assert.ok(kernel.staticChains.has('deny_input'));
    const other = compareStates(desiredState(rs), kernel, undefined, staticChains('nftables'));
    assert.equal(other.drift, true);
    assert.deepEqual(other.extraChains.sort(), ['ctr_reject', 'deny_forward', 'deny_input', 'egress_reject']);
  });
});

describe('nft monitor reports changes to iptables-nft filter INPUT/FORWARD (an iptables -F answered at once)', () => {
  it('reports transactions on ip filter INPUT/FORWARD, not other chains or tables, and not without watchIptables', () => {
    const seen: string[][] = [];
    const foreign: string[][] = [];
    const lines = [
      'delete rule ip filter INPUT handle 3',
      'delete rule ip filter INPUT handle 2',
      '# new generation 5 by process 25863 (iptables)',
      'add rule ip filter OUTPUT counter accept',
      'add rule ip nat POSTROUTING counter accept',
      '# new generation 6 by process 25864 (iptables)',
      'add rule ip filter FORWARD counter accept',
      '# new generation 7 by process 25865 (iptables)',
      'delete table ip filter',
      '# new generation 8 by process 25866 (nft)',
    ];
    const p = new MonitorParser(
      'cfnet',
      () => false,
      (c) => foreign.push(c.lines),
      (c) => seen.push(c.lines),
    );
    for (const l of lines) p.line(l);
    assert.deepEqual(seen, [
      ['delete rule ip filter INPUT handle 3', 'delete rule ip filter INPUT handle 2'],
      ['add rule ip filter FORWARD counter accept'],
      ['delete table ip filter'],
    ]);
    assert.deepEqual(foreign, [], "cfnet's own table was not touched");
    const quiet = new MonitorParser(
      'cfnet',
      () => false,
      () => undefined,
    );
    for (const l of lines) quiet.line(l); // no iptables callback: nothing to report, no error
  });
});

describe('marks across two iptables backends: rejected only when neither had an earlier accept, in either kernel order', () => {
  const both = ['legacy', 'nft'] as const;
  const orders = [
    ['legacy', 'nft'],
    ['nft', 'legacy'],
  ] as const;

  it('each backend moves PENDING to its own half-confirmed mark and the other half to CONFIRMED', () => {
    assert.deepEqual(backendTransitions('legacy', both), [
      { from: PENDING_MARK, to: ONLY_CONFIRMED_MARK.legacy },
      { from: ONLY_CONFIRMED_MARK.nft, to: CONFIRMED_MARK },
    ]);
    assert.deepEqual(backendTransitions('nft', both), [
      { from: PENDING_MARK, to: ONLY_CONFIRMED_MARK.nft },
      { from: ONLY_CONFIRMED_MARK.legacy, to: CONFIRMED_MARK },
    ]);
    // a backend's targets are none of its own sources: its two rules commute
    for (const b of both) {
      const t = backendTransitions(b, both);
      assert.ok(!t.some((x) => t.some((y) => x.to === y.from)), b);
    }
  });

  for (const order of orders) {
    it(`kernel order ${order.join(' then ')}: CONFIRMED only without an operator accept in either backend`, () => {
      for (const acceptIn of [[], ['legacy'], ['nft'], ['legacy', 'nft']] as const) {
        const passes = order.map((backend) => ({
          backend,
          operatorAccepts: (acceptIn as readonly string[]).includes(backend),
        }));
        const mark = markAfter(passes, both);
        assert.equal(mark === CONFIRMED_MARK, acceptIn.length === 0, `accept in [${acceptIn.join(',')}]`);
      }
    });
  }

  it('one backend keeps the single rule PENDING → CONFIRMED; the nft side rejects the same value either way', () => {
    for (const b of both) {
      assert.deepEqual(backendTransitions(b, [b]), [{ from: PENDING_MARK, to: CONFIRMED_MARK }]);
      assert.equal(markAfter([{ backend: b, operatorAccepts: false }], [b]), CONFIRMED_MARK);
      assert.equal(markAfter([{ backend: b, operatorAccepts: true }], [b]), PENDING_MARK);
      assert.deepEqual(backendRuleArgs('cfnet', b, [b]), [iptablesRuleArgs('cfnet')]);
    }
    assert.throws(() => backendTransitions('nft', ['legacy']));
    assert.throws(() => backendTransitions('nft', ['nft', 'nft']));
  });

  it('the four high-half values are distinct, keep the c2c tag bits and are not the NetIn ingress mark', () => {
    const marks = [PENDING_MARK, ONLY_CONFIRMED_MARK.legacy, ONLY_CONFIRMED_MARK.nft, CONFIRMED_MARK];
    assert.equal(new Set(marks).size, 4);
    for (const m of marks) {
      assert.equal(m & 0xffff, 0);
      assert.equal(m & HIGH_MASK, m);
      assert.notEqual(m, INGRESS_MARK & HIGH_MASK);
    }
  });

  it("an executable's backend is read from its --version line", () => {
    assert.equal(backendOfVersion('iptables v1.8.9 (nf_tables)\n'), 'nft');
    assert.equal(backendOfVersion('iptables v1.8.9 (legacy)\n'), 'legacy');
    assert.equal(backendOfVersion('iptables v1.6.1\n'), 'legacy');
    assert.deepEqual(DEFAULT_IPTABLES_BINARIES, ['iptables-legacy', 'iptables-nft']);
  });
});

describe("the agent's iptables rules", () => {
  /**
   * Fake iptables executables: per backend, chains as lists of `-A` argument lists; records the
   * commands run. `binaries` maps an executable to its backend (absent: cannot be run).
   */
  function fakeIptables(binaries: Record<string, 'legacy' | 'nft'> = { iptables: 'nft' }) {
    const kernel = {
      legacy: { INPUT: [], FORWARD: [] } as Record<string, string[][]>,
      nft: { INPUT: [], FORWARD: [] } as Record<string, string[][]>,
    };
    const calls: string[] = [];
    const run: Runner = async (argv) => {
      calls.push(argv.join(' '));
      const backend = binaries[argv[0]!];
      if (!backend) throw new CommandError(argv, null, `spawn ${argv[0]} ENOENT`);
      const chains = kernel[backend];
      const args = argv.slice(1).filter((a) => a !== '-w');
      if (args[0] === '--version')
        return { stdout: `iptables v1.8.9 (${backend === 'nft' ? 'nf_tables' : 'legacy'})\n`, stderr: '' };
      const [, , op, chain, ...rule] = args; // -t filter <op> <chain> …
      const list = chains[chain!]!;
      const q = (a: string) => (a.includes(' ') ? `"${a}"` : a);
      if (op === '-S')
        return { stdout: list.map((r) => `-A ${chain} ${r.map(q).join(' ')}`).join('\n'), stderr: '' };
      if (op === '-A') list.push(rule);
      if (op === '-D')
        list.splice(
          list.findIndex((r) => r.join(' ') === rule.join(' ')),
          1,
        );
      return { stdout: '', stderr: '' };
    };
    return { chains: kernel.nft, kernel, calls, run };
  }

  it('appends one rule per chain after the rules already there, once, and repairs a removal', async () => {
    const f = fakeIptables();
    const operator = ['-s', '10.255.0.0/16', '-j', 'ACCEPT'];
    f.chains.INPUT!.push(operator);
    const rules = new IptablesRules({
      binary: 'iptables',
      backend: 'nft',
      backends: ['nft'],
      table: 'cfnet',
      run: f.run,
    });
    assert.deepEqual(await rules.ensure(), ['added INPUT', 'added FORWARD']);
    assert.deepEqual(await rules.ensure(), []);
    assert.deepEqual(f.chains.INPUT, [operator, iptablesRuleArgs('cfnet')]);
    f.chains.FORWARD!.length = 0; // iptables -F FORWARD
    assert.deepEqual(await rules.ensure(), ['added FORWARD']);
    assert.ok(f.calls.every((c) => c.includes(' -w ') || c.endsWith('--version')));
  });

  it('with both backends usable each chain of each backend gets its two rules, once; one lost rule is put back', async () => {
    const f = fakeIptables({ 'iptables-legacy': 'legacy', 'iptables-nft': 'nft' });
    // a one-backend rule of an earlier configuration is replaced, not kept next to the new ones
    f.kernel.nft.INPUT!.push(iptablesRuleArgs('cfnet'));
    const set = new IptablesBackends({ binaries: DEFAULT_IPTABLES_BINARIES, table: 'cfnet', run: f.run });
    const { used, skipped } = await set.probe(true);
    assert.deepEqual(
      used.map((r) => [r.binary, r.backend]),
      [
        ['iptables-legacy', 'legacy'],
        ['iptables-nft', 'nft'],
      ],
    );
    assert.deepEqual(skipped, []);
    const done = await set.ensure();
    assert.equal(done.filter((d) => d.startsWith('iptables-legacy: added')).length, 4);
    assert.ok(done.includes('iptables-nft: removed INPUT'));
    for (const b of ['legacy', 'nft'] as const) {
      for (const chain of IPTABLES_CHAINS) {
        assert.deepEqual(f.kernel[b][chain], backendRuleArgs('cfnet', b, ['legacy', 'nft']), `${b} ${chain}`);
      }
    }
    assert.deepEqual(await set.ensure(), []);
    f.kernel.legacy.FORWARD!.splice(1, 1); // someone deleted one of cfnet's legacy rules
    assert.deepEqual(await set.ensure(), [
      'iptables-legacy: removed FORWARD',
      'iptables-legacy: added FORWARD',
      'iptables-legacy: added FORWARD',
    ]);
    assert.equal(await set.remove(), 8);
  });

  it('an executable that does not run, or writes to a backend already used, is skipped with its reason', async () => {
    const f = fakeIptables({ iptables: 'nft', 'iptables-nft': 'nft' });
    const set = new IptablesBackends({
      binaries: ['iptables', 'iptables-legacy', 'iptables-nft'],
      table: 'cfnet',
      run: f.run,
    });
    const { used, skipped } = await set.probe(true);
    assert.deepEqual(
      used.map((r) => r.binary),
      ['iptables'],
    );
    assert.deepEqual(
      skipped.map((s) => s.binary),
      ['iptables-legacy', 'iptables-nft'],
    );
    assert.match(skipped[0]!.reason, /ENOENT/);
    assert.match(skipped[1]!.reason, /same backend \(nft\) as iptables/);
    // one backend left: the single rule, as with one configured executable
    assert.deepEqual(await set.ensure(), ['iptables: added INPUT', 'iptables: added FORWARD']);
    assert.deepEqual(f.kernel.nft.INPUT, [iptablesRuleArgs('cfnet')]);
  });

  it('no runnable executable is a typed error that says what to do (only when iptables mode needs one)', async () => {
    const set = new IptablesBackends({
      binaries: ['/no/iptables', '/no/iptables-nft'],
      table: 'cfnet',
      run: fakeIptables({}).run,
    });
    await assert.rejects(
      set.probe(true),
      (e: unknown) =>
        e instanceof IptablesMissingError &&
        e.code === 'CFNET_AGENT_IPTABLES_MISSING' &&
        /filterMode nftables/.test(e.message),
    );
    assert.deepEqual((await set.probe(false)).used, []);
    assert.equal(await set.remove(), 0);
  });

  it('iptablesBinaries: both backends by default, a comma list or a JSON array, never empty', () => {
    const base = {
      cellId: 'c1',
      controllerUrl: 'https://c:4190',
      caCert: '/ca',
      clientCert: '/c',
      clientKey: '/k',
    };
    assert.deepEqual(resolveAgentConfig({ file: base }).iptablesBinaries, [
      'iptables-legacy',
      'iptables-nft',
    ]);
    assert.deepEqual(
      resolveAgentConfig({
        file: base,
        env: { CFNET_AGENT_IPTABLES_BINARIES: ' /usr/sbin/iptables-legacy , ' },
      }).iptablesBinaries,
      ['/usr/sbin/iptables-legacy'],
    );
    assert.deepEqual(
      resolveAgentConfig({ file: { ...base, iptablesBinaries: ['a', 'b'] } }).iptablesBinaries,
      ['a', 'b'],
    );
    for (const bad of [[], ',', [1], 'x\0y'])
      assert.throws(
        () => resolveAgentConfig({ file: { ...base, iptablesBinaries: bad } }),
        (e: unknown) => e instanceof SettingsError && e.key === 'iptablesBinaries',
        JSON.stringify(bad),
      );
  });

  it('an agent in iptables mode without any runnable iptables refuses to start, before touching the kernel', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cfnet-ipt-agent-'));
    try {
      const f = fakeIptables({});
      const config = resolveAgentConfig({
        file: {
          cellId: 'cell-1',
          controllerUrl: 'https://127.0.0.1:1',
          caCert: '/ca',
          clientCert: '/c',
          clientKey: '/k',
          stateDir: join(dir, 'state'),
          cniStateDir: join(dir, 'cni'),
          executorSocket: '',
          agentSocket: '',
          metricsPort: 0,
          logLevel: 'silent',
        },
      });
      const agent = new CellAgent({ config, tls: { ca: '', cert: '', key: '' }, run: f.run });
      await assert.rejects(agent.start(), IptablesMissingError);
      assert.deepEqual(f.calls, ['iptables-legacy --version', 'iptables-nft --version']);
      await agent.stop();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a dry-run agent runs no iptables at all', async () => {
    const f = fakeIptables();
    const config = resolveAgentConfig({
      file: {
        cellId: 'cell-1',
        controllerUrl: 'https://127.0.0.1:1',
        caCert: '/ca',
        clientCert: '/c',
        clientKey: '/k',
        logLevel: 'silent',
      },
    });
    const agent = new CellAgent({ config, tls: { ca: '', cert: '', key: '' }, run: f.run, dryRun: true });
    assert.deepEqual(await agent.checkIptables('periodic'), []);
    assert.deepEqual(f.calls, []);
  });
});
