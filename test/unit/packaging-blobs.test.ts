// The BOSH release is buildable: every blob is pinned (upstream URL, version, SHA-256) in
// bosh/config/blob-sources.yml and config/blobs.yml agrees; every package's `files` are either a
// pinned blob or what bosh/scripts/stage-src.sh stages; every job and package spec parses and names
// packages that exist; scripts/fetch-blobs places only files whose SHA-256 matches (here from a
// --source directory of stand-ins, as in CI), --verify-only fails on a missing or altered blob;
// final.yml names a real blobstore; use-cfnet-release-url.yml names the release by URL and SHA-1.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, it } from 'node:test';

const root = new URL('../..', import.meta.url).pathname;
const release = join(root, 'bosh');
const fetchBlobs = join(root, 'scripts', 'fetch-blobs');
const work = mkdtempSync(join(tmpdir(), 'cfnet-packaging-blobs-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** A YAML file read through ruby's YAML (what the BOSH CLI's format is checked with here). */
function yaml<T>(file: string): T {
  const res = spawnSync(
    'ruby',
    ['-ryaml', '-rjson', '-e', 'puts JSON.generate(YAML.safe_load(File.read(ARGV[0])))', file],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(res.status, 0, `${file} does not parse: ${res.stderr}`);
  return JSON.parse(res.stdout) as T;
}

/** For each glob, the paths it selects: ruby's File.fnmatch with BOSH's flags (`**` spans directories). */
function globMatches(globs: string[], paths: string[]): Record<string, string[]> {
  const res = spawnSync(
    'ruby',
    [
      '-rjson',
      '-e',
      'g, ps = JSON.parse(STDIN.read); puts JSON.generate(g.to_h { |pat| [pat, ps.select { |p| File.fnmatch(pat, p, File::FNM_PATHNAME | File::FNM_DOTMATCH) }] })',
    ],
    { encoding: 'utf8', input: JSON.stringify([globs, paths]) },
  );
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout) as Record<string, string[]>;
}

interface Pin {
  path: string;
  name?: string;
  version: string;
  url: string;
  sha256: string;
  size?: number;
}
interface PackageSpec {
  name: string;
  files?: string[];
  dependencies?: string[];
}
interface JobSpec {
  name: string;
  packages?: string[];
  templates?: Record<string, string>;
}

const pins = yaml<Pin[]>(join(release, 'config', 'blob-sources.yml'));
const packages = readdirSync(join(release, 'packages')).sort();
const packageSpecs = packages.map((p) => yaml<PackageSpec>(join(release, 'packages', p, 'spec')));
const jobs = readdirSync(join(release, 'jobs')).sort();

/** What bosh/scripts/stage-src.sh stages under bosh/src (a representative file of each part). */
const STAGED = [
  'cfnet/package.json',
  'cfnet/bin/cfnet.js',
  'cfnet/bin/cfnet-cni',
  'cfnet/native/cfnet-cni.c',
  'cfnet/dist/cli/main.js',
  'cfnet/dist/state/lua/lease-renew.lua',
  'cfnet/node_modules/pino/package.json',
];

describe('every blob is pinned', () => {
  it('blob-sources.yml pins each blob to an https URL of its version and a real SHA-256', () => {
    assert.ok(pins.length >= 7);
    for (const pin of pins) {
      assert.match(pin.sha256, /^[0-9a-f]{64}$/, pin.path);
      assert.notEqual(pin.sha256, '0'.repeat(64), `${pin.path} has a placeholder checksum`);
      assert.match(pin.url, /^https:\/\//, pin.path);
      assert.equal(
        basename(new URL(pin.url).pathname),
        basename(pin.path),
        `${pin.path}: the URL is of another file`,
      );
      assert.ok(pin.path.includes(String(pin.version)), `${pin.path} is not version ${pin.version}`);
    }
    assert.equal(new Set(pins.map((p) => p.sha256)).size, pins.length, 'two blobs with one checksum');
  });

  it('the runtime blob is Node.js 24 from nodejs.org', () => {
    const node = pins.find((p) => p.path.startsWith('node/'));
    assert.ok(node);
    assert.match(String(node.version), /^24\./);
    assert.match(node.url, /^https:\/\/nodejs\.org\/dist\/v24\./);
  });

  it('config/blobs.yml has exactly the pinned blobs with their SHA-256', () => {
    const blobs = yaml<Record<string, { size?: number; sha: string }>>(join(release, 'config', 'blobs.yml'));
    assert.deepEqual(Object.keys(blobs).sort(), pins.map((p) => p.path).sort());
    for (const pin of pins) {
      assert.equal(blobs[pin.path]!.sha, `sha256:${pin.sha256}`, pin.path);
      if (pin.size !== undefined) assert.equal(blobs[pin.path]!.size, pin.size, pin.path);
    }
  });

  it('final.yml names the release and a remote blobstore (no local path)', () => {
    const final = yaml<{ name: string; blobstore: { provider: string; options: Record<string, string> } }>(
      join(release, 'config', 'final.yml'),
    );
    assert.equal(final.name, 'cfnet');
    assert.notEqual(final.blobstore.provider, 'local');
    assert.ok(!JSON.stringify(final.blobstore).includes('/tmp'));
    assert.ok(final.blobstore.options.bucket_name);
  });
});

describe('every package file is a pinned blob or staged by stage-src.sh; every spec parses', () => {
  it('each `files` glob of each package selects a pinned blob or a staged path', () => {
    const candidates = [...pins.map((p) => p.path), ...STAGED];
    const globs = packageSpecs.flatMap((s) => s.files ?? []);
    const selected = globMatches(globs, candidates);
    for (const spec of packageSpecs) {
      for (const glob of spec.files ?? [])
        assert.ok(selected[glob]!.length > 0, `${spec.name}: ${glob} matches no blob and nothing staged`);
    }
  });

  it('each pinned blob is used by a package', () => {
    const selected = Object.values(
      globMatches(
        packageSpecs.flatMap((s) => s.files ?? []),
        pins.map((p) => p.path),
      ),
    ).flat();
    for (const pin of pins)
      assert.ok(selected.includes(pin.path), `${pin.path} is pinned but no package uses it`);
  });

  it('package specs are named after their directory and depend on packages that exist', () => {
    packageSpecs.forEach((spec, i) => {
      assert.equal(spec.name, packages[i]);
      assert.ok(existsSync(join(release, 'packages', packages[i]!, 'packaging')));
      for (const dep of spec.dependencies ?? [])
        assert.ok(packages.includes(dep), `${spec.name} needs ${dep}`);
    });
  });

  it('job specs parse, name packages that exist and templates that exist', () => {
    for (const job of jobs) {
      const spec = yaml<JobSpec>(join(release, 'jobs', job, 'spec'));
      assert.equal(spec.name, job);
      for (const pkg of spec.packages ?? []) assert.ok(packages.includes(pkg), `${job} needs package ${pkg}`);
      for (const tpl of Object.keys(spec.templates ?? {}))
        assert.ok(existsSync(join(release, 'jobs', job, 'templates', tpl)), `${job}: no template ${tpl}`);
    }
  });

  it('every package the jobs run with is node24 (no other Node.js runtime package)', () => {
    assert.ok(packages.includes('node24'));
    assert.deepEqual(
      packages.filter((p) => /^node\d+$/.test(p)),
      ['node24'],
    );
  });
});

describe('scripts/fetch-blobs', () => {
  // A release directory whose pins are stand-in files (the real blobs are not reachable in CI).
  function standInRelease(name: string): { dir: string; source: string; pinned: Pin[] } {
    const dir = join(work, name);
    const source = join(work, `${name}-source`);
    mkdirSync(join(dir, 'config'), { recursive: true });
    mkdirSync(join(source, 'node'), { recursive: true });
    const files = {
      'node/node-v24.99.0-linux-x64.tar.xz': 'a node tarball\n',
      'redis/redis-7.2.99.tar.gz': 'redis\n',
    };
    const pinned: Pin[] = Object.entries(files).map(([path, body]) => ({
      path,
      version: path.match(/\d+\.\d+\.\d+/)![0],
      url: `https://example.invalid/${basename(path)}`,
      sha256: createHash('sha256').update(body).digest('hex'),
      size: Buffer.byteLength(body),
    }));
    // one under its blob path, one by file name only (a flat mirror directory)
    writeFileSync(
      join(source, 'node', 'node-v24.99.0-linux-x64.tar.xz'),
      files['node/node-v24.99.0-linux-x64.tar.xz'],
    );
    writeFileSync(join(source, 'redis-7.2.99.tar.gz'), files['redis/redis-7.2.99.tar.gz']);
    writeFileSync(join(dir, 'config', 'blob-sources.yml'), JSON.stringify(pinned));
    return { dir, source, pinned };
  }
  const run = (args: string[]) => spawnSync('ruby', [fetchBlobs, ...args], { encoding: 'utf8' });

  it('copies verified blobs from --source into blobs/ and writes blobs.yml as bosh add-blob would', () => {
    const { dir, source, pinned } = standInRelease('fetch-ok');
    const res = run(['--release', dir, '--source', source]);
    assert.equal(res.status, 0, res.stdout + res.stderr);
    for (const pin of pinned) assert.ok(existsSync(join(dir, 'blobs', pin.path)), pin.path);
    const blobs = yaml<Record<string, { size: number; sha: string }>>(join(dir, 'config', 'blobs.yml'));
    assert.deepEqual(blobs['node/node-v24.99.0-linux-x64.tar.xz'], {
      size: pinned[0]!.size,
      sha: `sha256:${pinned[0]!.sha256}`,
    });
    // Already there and verified: --verify-only passes and fetches nothing.
    const again = run(['--release', dir, '--verify-only']);
    assert.equal(again.status, 0, again.stderr);
    assert.doesNotMatch(again.stdout, /fetched/);
  });

  it('refuses a file whose SHA-256 differs from its pin, naming both digests', () => {
    const { dir, source, pinned } = standInRelease('fetch-bad');
    writeFileSync(join(source, 'redis-7.2.99.tar.gz'), 'tampered\n');
    const res = run(['--release', dir, '--source', source]);
    assert.equal(res.status, 1);
    assert.match(res.stderr, new RegExp(`redis-7\\.2\\.99\\.tar\\.gz: .*pinned ${pinned[1]!.sha256}`));
    assert.ok(!existsSync(join(dir, 'blobs', 'redis', 'redis-7.2.99.tar.gz')), 'the bad file is not placed');
    assert.ok(!existsSync(join(dir, 'config', 'blobs.yml')), 'blobs.yml is not written while a blob fails');
  });

  it('--verify-only fails on a missing blob and on a blob altered after fetching', () => {
    const { dir, source } = standInRelease('fetch-verify');
    const missing = run(['--release', dir, '--verify-only']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /node-v24\.99\.0-linux-x64\.tar\.xz: missing/);
    assert.equal(run(['--release', dir, '--source', source]).status, 0);
    writeFileSync(join(dir, 'blobs', 'node', 'node-v24.99.0-linux-x64.tar.xz'), 'changed\n');
    const altered = run(['--release', dir, '--verify-only']);
    assert.equal(altered.status, 1);
    assert.match(altered.stderr, /node-v24\.99\.0-linux-x64\.tar\.xz: sha256 [0-9a-f]{64}, pinned/);
  });

  it('a placeholder or malformed pin is a usage error (exit 2)', () => {
    const { dir, pinned } = standInRelease('fetch-placeholder');
    writeFileSync(
      join(dir, 'config', 'blob-sources.yml'),
      JSON.stringify([{ ...pinned[0], sha256: '0'.repeat(64) }]),
    );
    const res = run(['--release', dir, '--verify-only']);
    assert.equal(res.status, 2);
    assert.match(res.stderr, /placeholder/);
  });

  it("the release's own pins load (the script's checks pass on them)", () => {
    const copy = join(work, 'own-pins');
    mkdirSync(join(copy, 'config'), { recursive: true });
    cpSync(join(release, 'config', 'blob-sources.yml'), join(copy, 'config', 'blob-sources.yml'));
    const res = run(['--release', copy, '--verify-only', '--no-write']);
    assert.equal(res.status, 1, 'no blobs present here: each is reported missing, not a usage error');
    assert.equal((res.stdout.match(/FAILED/g) ?? []).length, pins.length);
  });
});

describe('operations/use-cfnet-release-url.yml', () => {
  it('names the cfnet release by version, URL and SHA-1 after use-cfnet.yml', () => {
    const out = join(work, 'release-url');
    const res = spawnSync(
      'ruby',
      [
        join(root, 'scripts', 'render-bosh-templates.rb'),
        '--out',
        out,
        '--deployment',
        join(release, 'test', 'cf-deployment-fixture.yml'),
        '--ops',
        join(release, 'operations', 'use-cfnet.yml'),
        '--ops',
        join(release, 'operations', 'use-cfnet-release-url.yml'),
      ],
      { encoding: 'utf8' },
    );
    const report = JSON.parse(res.stdout) as { manifest: string; errors: unknown[] };
    assert.deepEqual(report.errors, []);
    const manifest = JSON.parse(readFileSync(report.manifest, 'utf8')) as {
      releases: { name: string; version: string; url?: string; sha1?: string }[];
    };
    const cfnet = manifest.releases.filter((r) => r.name === 'cfnet');
    assert.deepEqual(cfnet, [
      {
        name: 'cfnet',
        version: '((cfnet_release_version))',
        url: '((cfnet_release_url))',
        sha1: '((cfnet_release_sha1))',
      },
    ]);
  });
});
