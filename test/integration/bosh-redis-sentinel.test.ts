/**
 * The cfnet-redis BOSH job with `sentinel.enabled`, rendered for a 3-instance group and run for
 * real: three redis-server and three sentinel processes started from the rendered files (as bpm
 * would; only the loopback ports differ, since the three "VMs" share one address here). Replicas
 * authenticate as cfnet-replica, sentinels as cfnet-sentinel, clients as the ACL user; the
 * controller's rendered URL goes through the sentinels; killing the master promotes a replica and a
 * client following that URL writes again.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { freePorts, waitExit } from '../../src/lab/process.js';
import { closeRedis, createRedis } from '../../src/lib/redis.js';
import { waitUntil } from '../helpers/wait.js';

const root = join(import.meta.dirname, '..', '..');
const renderer = join(root, 'scripts', 'render-bosh-templates.rb');
const PASSWORD = 'sentinel-test-password-0123456789';

interface Report {
  out: string;
  files: { job: string; dest: string; path: string; parsed?: unknown }[];
  errors: unknown[];
}

/** The sample manifest as JSON (YAML is a superset: the renderer reads it back). */
function sample(): Record<string, unknown> {
  const res = spawnSync(
    'ruby',
    [
      '-ryaml',
      '-rjson',
      '-e',
      'puts JSON.dump(YAML.load_file(ARGV[0]))',
      join(root, 'bosh', 'test', 'sample-properties.yml'),
    ],
    { encoding: 'utf8' },
  );
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as Record<string, unknown>;
}

describe('BOSH cfnet-redis with Sentinel: three rendered instances fail over', () => {
  const work = mkdtempSync(join(tmpdir(), 'cfnet-bosh-sentinel-'));
  const children: ChildProcess[] = [];
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    for (const c of children) await waitExit(c, 5000);
    rmSync(work, { recursive: true, force: true });
  });

  function render(
    jobs: string[],
    instance: Record<string, unknown>,
    links: Record<string, unknown>,
    sets: string[],
  ): Report {
    const s = sample() as {
      instance?: Record<string, unknown>;
      jobs: Record<string, { properties?: unknown; links?: unknown }>;
    };
    s.instance = { ...s.instance, ...instance };
    for (const [job, l] of Object.entries(links)) s.jobs[job] = { ...s.jobs[job], links: l };
    const file = join(work, `sample-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(file, JSON.stringify(s));
    const args = [
      renderer,
      '--sample',
      file,
      '--out',
      join(work, `out-${Math.random().toString(36).slice(2)}`),
    ];
    for (const j of jobs) args.push('--job', j);
    for (const x of sets) args.push('--set', x);
    const res = spawnSync('ruby', args, { encoding: 'utf8' });
    const report = JSON.parse(res.stdout) as Report;
    assert.deepEqual(report.errors, []);
    return report;
  }

  /** stdout and stderr of a process into `<name>.log` in the work dir (Redis logs to stdout here). */
  const logTo = (name: string): ['ignore', number, number] => {
    const fd = openSync(join(work, `${name}.log`), 'w');
    return ['ignore', fd, fd];
  };
  const logs = (name: string) =>
    `--- ${name}.log ---\n${readFileSync(join(work, `${name}.log`), 'utf8').slice(-2000)}`;

  const text = (r: Report, job: string, dest: string) =>
    readFileSync(r.files.find((f) => f.job === job && f.dest === dest)!.path, 'utf8');

  it('replicas and sentinels authenticate with their ACL users; the controller follows a failover', async () => {
    const all = await freePorts(6);
    const ports = all.slice(0, 3);
    const sports = all.slice(3);
    const instances = [0, 1, 2].map((i) => ({
      name: 'cfnet-redis',
      id: `r${i}`,
      index: i,
      az: 'z1',
      address: '127.0.0.1',
      bootstrap: i === 0,
    }));
    const redisLink = {
      properties: {
        port: ports[0],
        password: PASSWORD,
        acl: { username: 'cfnet', key_prefix: '{cfnet}' },
        tls: { enabled: false },
        sentinel: { enabled: true, port: 26379, master_name: 'cfnet' },
      },
      instances: instances.map((i) => ({ ...i, address: `10.0.1.${i.index + 10}` })),
    };
    // the controller's Redis URL goes through every instance's sentinel
    const ctl = render(['cfnet-controller'], {}, { 'cfnet-controller': { cfnet_redis: redisLink } }, []);
    const config = JSON.parse(text(ctl, 'cfnet-controller', 'config/controller.json')) as Record<
      string,
      string
    >;
    assert.equal(
      config.redisUrl,
      'redis+sentinel://cfnet/0?sentinels=10.0.1.10:26379,10.0.1.11:26379,10.0.1.12:26379&sentinelAuth=1',
    );
    assert.equal(config.redisUsername, 'cfnet');

    // each instance rendered as its own VM
    for (const i of [0, 1, 2]) {
      const r = render(
        ['cfnet-redis'],
        { address: '127.0.0.1', ip: '127.0.0.1', index: i, bootstrap: i === 0 },
        { 'cfnet-redis': { cfnet_redis_peers: { properties: {}, instances } } },
        [
          `cfnet-redis:port=${ports[i]}`,
          'cfnet-redis:bind=127.0.0.1',
          `cfnet-redis:password=${PASSWORD}`,
          'cfnet-redis:persistence=false',
          'cfnet-redis:sentinel.enabled=true',
          `cfnet-redis:sentinel.port=${sports[i]}`,
          'cfnet-redis:sentinel.down_after_ms=1000',
          'cfnet-redis:sentinel.failover_timeout_ms=5000',
        ],
      );
      const jobDir = join(r.out, 'cfnet-redis');
      // on BOSH every instance listens on the same port; here the master's is ports[0]
      const conf = text(r, 'cfnet-redis', 'config/redis.conf')
        .replaceAll('/var/vcap/jobs/cfnet-redis', jobDir)
        .replace(/^replicaof 127\.0\.0\.1 \d+$/m, `replicaof 127.0.0.1 ${ports[0]}`);
      if (i > 0)
        assert.match(conf, /^replicaof 127\.0\.0\.1 \d+$/m, 'non-bootstrap instances start as replicas');
      else assert.doesNotMatch(conf, /^replicaof/m);
      const sconf = text(r, 'cfnet-redis', 'config/sentinel.conf').replace(
        /^sentinel monitor cfnet 127\.0\.0\.1 \d+ 2$/m,
        `sentinel monitor cfnet 127.0.0.1 ${ports[0]} 2`,
      );
      writeFileSync(join(work, `redis-${i}.conf`), conf);
      writeFileSync(join(work, `sentinel-${i}.conf`), sconf);
      const bpm = text(r, 'cfnet-redis', 'config/bpm.yml');
      assert.match(bpm, /name: cfnet-sentinel/);
      assert.match(text(r, 'cfnet-redis', 'monit'), /check process cfnet-sentinel/);
    }
    for (const i of [0, 1, 2]) {
      children.push(
        spawn('redis-server', [join(work, `redis-${i}.conf`), '--dir', work], { stdio: logTo(`redis-${i}`) }),
      );
    }
    const url = `redis+sentinel://cfnet/0?sentinels=${sports.map((p) => `127.0.0.1:${p}`).join(',')}&sentinelAuth=1`;
    const masterOf = async () => {
      const out = spawnSync(
        'redis-cli',
        [
          '-p',
          String(sports[0]),
          '-a',
          PASSWORD,
          '--no-auth-warning',
          'sentinel',
          'get-master-addr-by-name',
          'cfnet',
        ],
        { encoding: 'utf8' },
      );
      return Number(out.stdout.trim().split('\n')[1] ?? 0);
    };
    // replicas in sync through cfnet-replica
    await waitUntil(
      'both replicas online',
      async () => {
        const info = spawnSync(
          'redis-cli',
          [
            '-p',
            String(ports[0]),
            '--user',
            'cfnet-sentinel',
            '-a',
            PASSWORD,
            '--no-auth-warning',
            'info',
            'replication',
          ],
          { encoding: 'utf8' },
        ).stdout;
        return (info.match(/state=online/g) ?? []).length === 2;
      },
      15_000,
    );
    for (const i of [0, 1, 2]) {
      children.push(
        spawn('redis-server', [join(work, `sentinel-${i}.conf`), '--sentinel'], {
          stdio: logTo(`sentinel-${i}`),
        }),
      );
    }
    await waitUntil(
      'the sentinels name the master',
      async () => (await masterOf()) === ports[0],
      15_000,
    ).catch((e: Error) => {
      // what the processes said is the only clue to a failure here (a port taken, a config refused)
      throw new Error(`${e.message}\n${logs('sentinel-0')}\n${logs('redis-0')}`);
    });

    const client = createRedis(url, {
      name: 'bosh-sentinel-test',
      auth: { username: 'cfnet', password: PASSWORD },
    });
    client.on('error', () => {});
    try {
      assert.equal(await client.set('{cfnet}:probe', '1'), 'OK');
      children[0]!.kill('SIGKILL'); // the master's VM dies
      await waitUntil(
        'a replica is promoted',
        async () => {
          const m = await masterOf();
          return m !== 0 && m !== ports[0];
        },
        30_000,
      );
      await waitUntil(
        'the client writes to the new master',
        async () => {
          try {
            return (await client.incr('{cfnet}:probe')) >= 2;
          } catch {
            return false;
          }
        },
        30_000,
      );
      assert.match(String(await client.set('other:key', '1').catch((e: Error) => e.message)), /NOPERM/);
    } finally {
      await closeRedis(client);
    }
  });
});
