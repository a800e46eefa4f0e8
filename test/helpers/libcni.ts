/**
 * A real libcni client for the tests and the bench: test/libcni/driver.go, built offline in GOPATH
 * mode against Debian's libcni source (packages golang-go and golang-github-appc-cni-dev; .ci/run
 * installs them). It calls libcni as garden-external-networker does (InjectConf of `metadata` and
 * `runtimeConfig`, AddNetworkList, CheckNetworkList, DelNetworkList) plus ValidateNetworkList and
 * GetVersionInfo. Never skipped: without Go or the libcni source the build fails, naming the packages.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Cell } from './cni.js';
import { REPO, runWithStdin } from './cni.js';

export const DRIVER_SOURCE = join(REPO, 'test', 'libcni', 'driver.go');
/** Where Debian's golang-github-appc-cni-dev puts libcni (a GOPATH). */
export const LIBCNI_GOPATH = '/usr/share/gocode';
const WORK = join(tmpdir(), 'cfnet-libcni-driver');

let built: Promise<string> | null = null;

/** Builds the driver once per source version (cached in the temp dir); resolves to its path. */
export function libcniDriver(): Promise<string> {
  built ??= (async () => {
    if (!existsSync(join(LIBCNI_GOPATH, 'src/github.com/containernetworking/cni/libcni'))) {
      throw new Error(
        `libcni source missing under ${LIBCNI_GOPATH}: apt-get install golang-go golang-github-appc-cni-dev (.ci/run does)`,
      );
    }
    const source = await readFile(DRIVER_SOURCE);
    const bin = join(WORK, `driver-${createHash('sha256').update(source).digest('hex').slice(0, 16)}`);
    if (existsSync(bin)) return bin;
    await mkdir(WORK, { recursive: true });
    const tmp = `${bin}.${process.pid}`;
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: WORK,
      GO111MODULE: 'off',
      GOPATH: LIBCNI_GOPATH,
      GOCACHE: join(WORK, 'gocache'),
      GOFLAGS: '',
      CGO_ENABLED: '0',
    };
    const r = await runWithStdin(['go', 'build', '-o', tmp, DRIVER_SOURCE], env, '').catch((err: Error) => ({
      code: -1,
      stdout: '',
      stderr: err.message,
    }));
    if (r.code !== 0) {
      throw new Error(
        `building the libcni driver failed (needs golang-go and golang-github-appc-cni-dev): ${r.stderr}`,
      );
    }
    await rename(tmp, bin);
    return bin;
  })();
  return built;
}

export interface LibcniCall {
  op: 'add' | 'check' | 'del' | 'validate' | 'version' | 'bench';
  /** A conflist object (written to a file) or the path of one. */
  conflist?: Record<string, unknown> | string;
  id?: string;
  /** Container netns name (under /run/netns) or an absolute path. */
  netns?: string;
  ifname?: string;
  runtimeConfig?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  plugin?: string;
  /** Extra arguments (bench). */
  args?: string[];
}

export interface LibcniOutcome {
  code: number | null;
  ok: boolean;
  error?: string;
  result?: Record<string, unknown>;
  capabilities?: string[];
  supportedVersions?: string[];
  [key: string]: unknown;
  stderr: string;
}

/** CNI_PATH for the cell: cfnet-cni from the cell's install, then Debian's plugins. */
export function pluginPath(cell: Cell): string {
  return `${join(cell.install.home, 'bin')}:/usr/lib/cni`;
}

let files = 0;

/** Runs the driver inside the cell's network namespace (as garden-external-networker runs on a cell). */
export async function libcni(cell: Cell, c: LibcniCall): Promise<LibcniOutcome> {
  const driver = await libcniDriver();
  const argv = ['-op', c.op, '-path', pluginPath(cell), '-cache', join(cell.dir, 'libcni-cache')];
  if (c.conflist !== undefined) {
    let file = c.conflist;
    if (typeof file !== 'string') {
      file = join(cell.dir, `conflist-${++files}.conflist`);
      await writeFile(file, JSON.stringify(c.conflist));
    }
    argv.push('-conflist', file);
  }
  if (c.id !== undefined) argv.push('-id', c.id);
  if (c.netns !== undefined) argv.push('-netns', c.netns.startsWith('/') ? c.netns : `/run/netns/${c.netns}`);
  if (c.ifname !== undefined) argv.push('-ifname', c.ifname);
  if (c.runtimeConfig !== undefined) argv.push('-runtime-config', JSON.stringify(c.runtimeConfig));
  if (c.metadata !== undefined) argv.push('-metadata', JSON.stringify(c.metadata));
  if (c.plugin !== undefined) argv.push('-plugin', c.plugin);
  argv.push(...(c.args ?? []));
  const env = { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin' };
  const r = await runWithStdin(['nsenter', `--net=/run/netns/${cell.ns}`, driver, ...argv], env, '');
  if (!r.json) throw new Error(`libcni driver printed no JSON (exit ${r.code}): ${r.stdout}${r.stderr}`);
  return { ...(r.json as { ok: boolean }), code: r.code, stderr: r.stderr };
}
