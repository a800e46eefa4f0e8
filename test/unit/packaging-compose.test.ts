// docker-compose.yml and the Dockerfile cannot run here (no Docker engine), so this checks what can
// be checked without one: the file parses (ruby's YAML, merge keys resolved), every service built
// from the repo runs a cfnet subcommand that exists with options and CFNET_* variables it documents
// (`cfnet <sub> --help`, in-process on the source), agents are privileged and each holds
// its own simulated cell's certificate, dependencies resolve, the Dockerfile copies paths that
// exist, and the helper docker/compose-setup.mjs makes certificates that verify and a controller
// config with the same keys as the BOSH job's.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cellIdFromCertificate } from '../../src/controller/serve/server.js';
import { parseControllerSettings } from '../../src/controller/settings.js';
import { makeCell } from '../../src/sim/generate.js';
import { SIM_SERVER_NAMES } from '../../src/sim/index.js';
import { cfnetHelp } from '../helpers/cli-help.js';

const root = new URL('../..', import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), 'cfnet-packaging-compose-'));
after(() => rmSync(work, { recursive: true, force: true }));

interface Service {
  image?: string;
  build?: { context: string; dockerfile: string } | string;
  entrypoint?: string[] | string;
  command?: string[] | string;
  environment?: Record<string, string>;
  privileged?: boolean;
  cap_add?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  networks?: Record<string, { aliases?: string[] } | null>;
  ports?: string[];
  volumes?: string[];
}

function loadCompose(file = 'docker-compose.yml'): {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
} {
  const res = spawnSync(
    'ruby',
    [
      '-ryaml',
      '-rjson',
      '-e',
      'puts JSON.generate(YAML.safe_load(File.read(ARGV[0]), aliases: true))',
      join(root, file),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(res.status, 0, `${file} does not parse: ${res.stderr}`);
  return JSON.parse(res.stdout);
}

const compose = loadCompose();
const services = compose.services;

const builtFromRepo = Object.entries(services).filter(([, s]) => s.build !== undefined);

/** The argv of the container's main process: entrypoint (the image's when absent) + command. */
function argv(s: Service): string[] {
  const ep = s.entrypoint ?? ['node', '/opt/cfnet/bin/cfnet.js'];
  const cmd = s.command ?? [];
  return [...(Array.isArray(ep) ? ep : [ep]), ...(Array.isArray(cmd) ? cmd : [cmd])];
}

interface CfnetCall {
  sub: string[];
  flags: string[];
}

/** Every `cfnet.js <subcommand...> --flags` a service runs (directly or through `sh -c`). */
function cfnetCalls(s: Service): CfnetCall[] {
  const words = argv(s)
    .flatMap((a) => a.split(/\s+/))
    .filter((w) => w !== '');
  const calls: CfnetCall[] = [];
  words.forEach((w, i) => {
    if (!w.endsWith('/bin/cfnet.js') && w !== 'bin/cfnet.js') return;
    const sub: string[] = [];
    const flags: string[] = [];
    for (let j = i + 1; j < words.length; j++) {
      const x = words[j]!;
      if (['|', '&&', '||', ';', '>'].includes(x)) break;
      if (x.startsWith('--')) flags.push(x.split('=')[0]!);
      else if (flags.length === 0 && /^[a-z][a-z-]*$/.test(x)) sub.push(x);
    }
    calls.push({ sub, flags });
  });
  return calls;
}

const help = cfnetHelp;

describe('docker-compose.yml', () => {
  it('has Redis, the setup step, the simulator, the controller and agents', () => {
    for (const name of ['redis', 'setup', 'sim', 'controller', 'agent-0', 'agent-1', 'agent-2']) {
      assert.ok(services[name], `service ${name} is missing`);
    }
    for (const [name, s] of builtFromRepo) {
      assert.deepEqual(s.build, { context: '.', dockerfile: 'Dockerfile' }, name);
    }
  });

  // One test per subcommand, so a missing one fails by name.
  const needed = new Map<string, { flags: Set<string>; services: string[] }>();
  for (const [name, s] of builtFromRepo) {
    for (const call of cfnetCalls(s)) {
      const key = call.sub.join(' ');
      const entry = needed.get(key) ?? { flags: new Set<string>(), services: [] };
      for (const f of call.flags) entry.flags.add(f);
      entry.services.push(name);
      needed.set(key, entry);
    }
  }

  it('runs cfnet sim, controller and agent', () => {
    assert.deepEqual([...needed.keys()].sort(), ['agent', 'controller', 'sim']);
  });

  for (const [sub, { flags, services: users }] of needed) {
    it(`\`cfnet ${sub}\` exists with the options compose gives it (${users.join(', ')})`, () => {
      const h = help(sub.split(' '));
      assert.equal(
        h.status,
        0,
        `\`cfnet ${sub} --help\` failed, the subcommand is missing: ${h.text.slice(0, 300)}`,
      );
      assert.doesNotMatch(
        h.text,
        /^Usage: cfnet \[options\] \[command\]/m,
        `\`cfnet ${sub}\` is not a subcommand`,
      );
      for (const f of flags) assert.ok(h.text.includes(f), `\`cfnet ${sub}\` has no option ${f}`);
    });
  }

  it('agents set only CFNET_AGENT_* variables that `cfnet agent` documents as options', () => {
    const h = help(['agent']);
    assert.equal(
      h.status,
      0,
      `\`cfnet agent --help\` failed, the subcommand is missing: ${h.text.slice(0, 300)}`,
    );
    for (const [name, s] of Object.entries(services).filter(([n]) => n.startsWith('agent-'))) {
      for (const key of Object.keys(s.environment ?? {})) {
        assert.match(key, /^CFNET_AGENT_[A-Z0-9_]+$/, `${name}: ${key}`);
        const flag = `--${key.slice('CFNET_AGENT_'.length).toLowerCase().replace(/_/g, '-')}`;
        assert.ok(h.text.includes(flag), `${name}: ${key} has no matching option ${flag}`);
      }
    }
  });

  it('agents are privileged cells of the simulated foundation, each with its own certificate', () => {
    const agents = Object.entries(services).filter(([n]) => n.startsWith('agent-'));
    const setupCells = argv(services.setup!).slice(argv(services.setup!).indexOf('certs') + 2);
    const seen = new Set<string>();
    agents.forEach(([name, s], i) => {
      assert.ok(s.privileged === true || s.cap_add?.includes('NET_ADMIN'), `${name} cannot manage its netns`);
      const env = s.environment ?? {};
      const cell = env.CFNET_AGENT_CELL_ID!;
      assert.equal(cell, makeCell(i, 3).id, `${name} is not the simulator's cell ${i}`);
      assert.ok(!seen.has(cell), `${cell} twice`);
      seen.add(cell);
      assert.ok(setupCells.includes(cell), `setup makes no certificate for ${cell}`);
      for (const k of ['CFNET_AGENT_CA_CERT', 'CFNET_AGENT_CLIENT_CERT', 'CFNET_AGENT_CLIENT_KEY']) {
        assert.ok(env[k]?.startsWith(`/shared/cfnet/cells/${cell}/`), `${name}: ${k}`);
      }
      assert.equal(new URL(env.CFNET_AGENT_CONTROLLER_URL!).hostname, 'controller');
      assert.ok(s.volumes?.includes('shared:/shared'));
    });
  });

  it('dependencies name existing services, conditions are valid, and there is no cycle', () => {
    const conditions = ['service_started', 'service_healthy', 'service_completed_successfully'];
    const edges = new Map<string, string[]>();
    for (const [name, s] of Object.entries(services)) {
      const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
      for (const d of deps) assert.ok(services[d], `${name} depends on unknown ${d}`);
      if (s.depends_on && !Array.isArray(s.depends_on)) {
        for (const [d, c] of Object.entries(s.depends_on)) {
          assert.ok(conditions.includes(c.condition), `${name} -> ${d}: ${c.condition}`);
          if (c.condition === 'service_healthy')
            assert.ok((services[d] as { healthcheck?: unknown }).healthcheck);
        }
      }
      edges.set(name, deps);
    }
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (n: string, path: string[]) => {
      if (state.get(n) === 'done') return;
      assert.notEqual(state.get(n), 'visiting', `dependency cycle: ${[...path, n].join(' -> ')}`);
      state.set(n, 'visiting');
      for (const d of edges.get(n) ?? []) visit(d, [...path, n]);
      state.set(n, 'done');
    };
    for (const n of edges.keys()) visit(n, []);
  });

  it('the simulator answers to the names its certificates carry', () => {
    const aliases = services.sim?.networks?.default?.aliases ?? [];
    const setup = readFileSync(join(root, 'docker', 'compose-setup.mjs'), 'utf8');
    const sim: string[] = Object.values(SIM_SERVER_NAMES);
    const names = [...setup.matchAll(/: '([a-z.-]+\.(?:internal))'/g)].map((m) => m[1]!);
    assert.ok(names.length >= 5);
    for (const n of names) {
      assert.ok(aliases.includes(n), `sim has no network alias ${n}`);
      assert.ok(sim.includes(n), `the simulator's certificates do not carry ${n}`);
    }
  });
});

describe('Dockerfile', () => {
  const text = readFileSync(join(root, 'Dockerfile'), 'utf8');

  it('builds on the Node.js the BOSH release ships (24) with npm ci and npm run build, and ships nft and ip', () => {
    // the version of the release's node blob: the image and the VMs run the same runtime
    const pinned = /node\/node-v(24\.\d+\.\d+)-linux-x64\.tar\.xz/.exec(
      readFileSync(join(root, 'bosh', 'config', 'blob-sources.yml'), 'utf8'),
    )?.[1];
    assert.ok(pinned, 'no Node.js 24 blob pinned');
    assert.match(
      text,
      new RegExp(`^FROM node:${pinned.replaceAll('.', '\\.')}-bookworm-slim AS build$`, 'm'),
    );
    assert.match(text, new RegExp(`^FROM node:${pinned.replaceAll('.', '\\.')}-bookworm-slim$`, 'm'));
    assert.match(text, /RUN npm ci\b/);
    assert.match(text, /npm run build/);
    assert.match(text, /apt-get install[^\n]*\bnftables\b[^\n]*\biproute2\b/);
    assert.match(text, /apt-get install[^\n]*\biptables\b/, "the agent's default filterMode needs iptables");
    assert.match(text, /apt-get install[^\n]*\bnetcat-openbsd\b/, 'the cfnet-cni shim prefers nc.openbsd');
    assert.match(text, /apt-get install[^\n]*\bcurl\b/, 'the cfnet-cni shim falls back to curl');
    assert.match(text, /^ENTRYPOINT \["node", "\/opt\/cfnet\/bin\/cfnet\.js"\]$/m);
  });

  it('copies only paths that exist in the repository', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    for (const m of text.matchAll(/^COPY (?!--from)(.+) \S+$/gm)) {
      for (const src of m[1]!.split(/\s+/)) {
        assert.ok(existsSync(join(root, src)), `COPY ${src}: no such path`);
        assert.ok(!ignored.includes(src), `COPY ${src} is excluded by .dockerignore`);
      }
    }
  });
});

describe('docker/compose-setup.mjs', () => {
  const setup = join(root, 'docker', 'compose-setup.mjs');

  it('makes an agent-API CA, a controller server certificate and one client certificate per cell', () => {
    const dir = join(work, 'certs');
    const res = spawnSync(process.execPath, [setup, 'certs', dir, 'cell-000', 'cell-001'], {
      encoding: 'utf8',
    });
    assert.equal(res.status, 0, res.stderr);
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    const server = new X509Certificate(readFileSync(join(dir, 'controller.crt')));
    assert.ok(server.verify(ca.publicKey));
    assert.ok(server.checkHost('controller'), 'agents dial https://controller:4190');
    assert.ok(server.checkHost('cfnet-controller.service.cf.internal'));
    for (const cell of ['cell-000', 'cell-001']) {
      const c = new X509Certificate(readFileSync(join(dir, 'cells', cell, 'client.crt')));
      assert.ok(c.verify(ca.publicKey));
      assert.match(c.subject, new RegExp(`CN=${cell}`));
      // The controller derives the cell id from this certificate.
      assert.equal(cellIdFromCertificate({ subject: { CN: cell }, subjectaltname: c.subjectAltName! }), cell);
      assert.equal(
        readFileSync(join(dir, 'cells', cell, 'ca.crt'), 'utf8'),
        readFileSync(join(dir, 'ca.crt'), 'utf8'),
      );
    }
    // Idempotent: a restart keeps the CA and certificates.
    const before = readFileSync(join(dir, 'cells', 'cell-000', 'client.crt'), 'utf8');
    assert.equal(spawnSync(process.execPath, [setup, 'certs', dir, 'cell-000']).status, 0);
    assert.equal(readFileSync(join(dir, 'cells', 'cell-000', 'client.crt'), 'utf8'), before);
  });

  it('writes a controller config for the running simulator that the controller accepts', () => {
    const simLine = {
      event: 'sim-started',
      urls: {
        bbs: 'https://0.0.0.0:8889',
        capi: 'https://0.0.0.0:9443',
        uaa: 'https://0.0.0.0:8443',
        ccInternal: 'https://0.0.0.0:9023',
        policyServer: 'https://0.0.0.0:4003',
        admin: 'http://0.0.0.0:8899',
      },
      uaaClient: { id: 'cfnet-network-policy', secret: 's3cret' },
    };
    const jsonl = join(work, 'sim.jsonl');
    writeFileSync(jsonl, `${JSON.stringify(simLine)}\n`);
    const res = spawnSync(
      process.execPath,
      [setup, 'controller-config', jsonl, '/shared/cfnet', '/shared/sim-certs'],
      // the compose default, whatever Redis the test run itself uses
      { encoding: 'utf8', env: { ...process.env, REDIS_URL: '' } },
    );
    assert.equal(res.status, 0, res.stderr);
    // The controller's own settings parser (it rejects unknown keys and checks combinations).
    const s = parseControllerSettings({ file: JSON.parse(res.stdout) as Record<string, unknown> });
    assert.equal(s.bbsUrl, 'https://bbs.service.cf.internal:8889');
    assert.equal(s.policyServerUrl, 'https://policy-server.service.cf.internal:4003');
    assert.equal(s.ccInternalUrl, 'https://cloud-controller-ng.service.cf.internal:9023');
    assert.equal(s.capiUrl, 'https://api.sim.internal:9443');
    assert.equal(s.uaaClientSecret, 's3cret');
    assert.equal(s.redisUrl, 'redis://redis:6379/0');
    assert.deepEqual(s.apiListen, { host: '0.0.0.0', port: 4190 });
    assert.equal(s.apiCaCert, '/shared/cfnet/ca.crt');
    // The ports compose publishes and the agents dial are the ones configured.
    assert.ok(
      services.controller?.ports?.includes(`127.0.0.1:${s.operatorListen!.port}:${s.operatorListen!.port}`),
    );
    for (const [, a] of Object.entries(services).filter(([n]) => n.startsWith('agent-'))) {
      assert.equal(new URL(a.environment!.CFNET_AGENT_CONTROLLER_URL!).port, String(s.apiListen!.port));
    }
  });

  it('publishes ports on 127.0.0.1 only', () => {
    const published = Object.entries(services).flatMap(([name, svc]) =>
      (svc.ports ?? []).map((p) => [name, p]),
    );
    assert.ok(published.length >= 2);
    for (const [name, p] of published) assert.match(p!, /^127\.0\.0\.1:\d+:\d+$/, `${name} publishes ${p}`);
  });

  it('generates an operator token once, prints it, and puts it into the controller config', () => {
    const dir = join(work, 'token-certs');
    const res = spawnSync(process.execPath, [setup, 'certs', dir, 'cell-000'], { encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    const token = readFileSync(join(dir, 'operator-token'), 'utf8').trim();
    assert.ok(token.length >= 32);
    assert.equal(statSync(join(dir, 'operator-token')).mode & 0o777, 0o600);
    assert.ok(res.stdout.includes(token), 'the setup log shows the token');
    const again = spawnSync(process.execPath, [setup, 'certs', dir, 'cell-000'], { encoding: 'utf8' });
    assert.equal(readFileSync(join(dir, 'operator-token'), 'utf8').trim(), token, 'kept across restarts');
    assert.ok(again.stdout.includes(token));
    const jsonl = join(work, 'sim-token.jsonl');
    writeFileSync(
      jsonl,
      `${JSON.stringify({ event: 'sim-started', urls: { bbs: 'https://0.0.0.0:8889', capi: 'https://0.0.0.0:9443', uaa: 'https://0.0.0.0:8443', ccInternal: 'https://0.0.0.0:9023', policyServer: 'https://0.0.0.0:4003' }, uaaClient: { id: 'c', secret: 's' } })}\n`,
    );
    const cfg = spawnSync(process.execPath, [setup, 'controller-config', jsonl, dir, '/b'], {
      encoding: 'utf8',
    });
    assert.equal(cfg.status, 0, cfg.stderr);
    const s = parseControllerSettings({ file: JSON.parse(cfg.stdout) as Record<string, unknown> });
    assert.equal(s.operatorToken, token);
  });

  it('refuses to write a controller config before the simulator started', () => {
    const jsonl = join(work, 'empty.jsonl');
    writeFileSync(jsonl, '');
    const res = spawnSync(process.execPath, [setup, 'controller-config', jsonl, '/a', '/b'], {
      encoding: 'utf8',
    });
    assert.notEqual(res.status, 0);
    assert.match(res.stderr, /no sim-started line/);
  });
});

describe('docker-compose.sentinel.yml (the Redis Sentinel option)', () => {
  const extra = loadCompose('docker-compose.sentinel.yml').services;
  it('parses, adds two replicas and three sentinels of the base redis, publishes nothing', () => {
    const sentinels = Object.keys(extra).filter((n) => n.startsWith('sentinel-'));
    assert.equal(sentinels.length, 3);
    for (const n of ['redis-replica-1', 'redis-replica-2'])
      assert.deepEqual(argv(extra[n]!).slice(-3), ['--replicaof', 'redis', '6379']);
    for (const n of sentinels)
      assert.match(argv(extra[n]!).join(' '), /sentinel monitor cfnet redis 6379 2.*--sentinel/);
    for (const s of Object.values(extra)) assert.equal(s.ports, undefined);
    assert.ok(services.redis, 'the base file has the master');
  });

  it("the controller's Redis URL goes through the three sentinels and is valid for cfnet", () => {
    const url = extra.controller!.environment!.REDIS_URL!;
    assert.match(
      url,
      /^redis\+sentinel:\/\/cfnet\/0\?sentinels=sentinel-0:26379,sentinel-1:26379,sentinel-2:26379$/,
    );
    const s = parseControllerSettings({ flags: { campaign: 'false', apiListen: 'off', redisUrl: url } });
    assert.equal(s.redisUrl, url);
  });
});
