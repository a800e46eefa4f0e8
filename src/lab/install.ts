/**
 * Install trees the lab starts cfnet's processes from (CFNET_HOME layout: bin/, dist/,
 * node_modules/), and running a program the way a CNI runtime does (env + stdin, stdout parsed).
 * Shared with the tests' helpers (test/helpers/cni.ts re-exports these).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { run as runHost } from '../host/index.js';
import { run } from './netns.js';

/** The working copy (this file is src/lab/install.ts, or dist/lab/install.js once built). */
export const REPO = new URL('../..', import.meta.url).pathname.replace(/\/$/, '');

export interface Install {
  /** CFNET_HOME: bin/, dist/, node_modules/, package.json. */
  home: string;
  /**
   * The CNI plugin entry point the install uses: the compiled native/cfnet-cni.c when a C compiler
   * was there to build it, else the sh shim (docs/cni.md, "The entry point").
   */
  shim: string;
  /** Which one `shim` is. */
  entry: 'compiled' | 'sh';
  /** The sh shim bin/cfnet-cni (its nc and curl transports), whichever `shim` is. */
  shShim: string;
  /** bin/cfnet.js inside the install. */
  cli: string;
}

/**
 * The working copy itself as the install: what runs when the lab runs from the built dist/. Its
 * compiled entry is dist/native/cfnet-cni (`npm run build`), whose fallback finds the install
 * through CFNET_HOME (the lab passes it), not through its own location.
 */
export function repoInstall(): Install {
  const compiled = join(REPO, 'dist', 'native', 'cfnet-cni');
  const sh = join(REPO, 'bin', 'cfnet-cni');
  const entry = existsSync(compiled) ? 'compiled' : 'sh';
  return {
    home: REPO,
    shim: entry === 'compiled' ? compiled : sh,
    entry,
    shShim: sh,
    cli: join(REPO, 'bin', 'cfnet.js'),
  };
}

/**
 * The install the lab starts its processes from: the working copy when the lab itself runs from
 * dist/ (it is built, e.g. `cfnet demo`), otherwise a fresh transpiled copy of src/ (tests and
 * benches under tsx see their edits without a build).
 */
export function labInstall(): Promise<Install> {
  return import.meta.url.includes('/dist/lab/') ? Promise.resolve(repoInstall()) : buildInstall();
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else out.push(p);
  }
  return out;
}

let installPromise: Promise<Install> | null = null;
const installRoots: string[] = [];

/**
 * Builds (once per process) an install tree from the working copy: every src/**.ts transpiled to
 * dist/**.js (what `tsc` emits; types are not checked here), src/**.js and the Lua scripts
 * (src/**.lua, what `npm run build` copies) copied, bin/ copied, and
 * node_modules linked. Removed by `removeInstalls()`.
 */
export function buildInstall(): Promise<Install> {
  installPromise ??= (async () => {
    // a devDependency: loaded only here, so a built install runs without it
    const { default: ts } = await import('typescript');
    const home = await mkdtemp(join(tmpdir(), 'cfnet-cni-install-'));
    installRoots.push(home);
    for (const file of await walk(join(REPO, 'src'))) {
      const rel = relative(join(REPO, 'src'), file);
      if (file.endsWith('.d.ts')) continue;
      const target = join(home, 'dist', rel.replace(/\.ts$/, '.js'));
      await mkdir(dirname(target), { recursive: true });
      if (file.endsWith('.ts')) {
        const src = await readFile(file, 'utf8');
        const out = ts.transpileModule(src, {
          fileName: file,
          compilerOptions: {
            module: ts.ModuleKind.ESNext,
            target: ts.ScriptTarget.ES2022,
            esModuleInterop: true,
            sourceMap: false,
          },
        });
        await writeFile(target, out.outputText);
      } else if (file.endsWith('.js') || file.endsWith('.lua')) {
        await copyFile(file, target);
      }
    }
    await mkdir(join(home, 'bin'), { recursive: true });
    const shim = join(home, 'bin', 'cfnet-cni');
    const shShim = join(home, 'bin', 'cfnet-cni.sh');
    await copyFile(join(REPO, 'bin', 'cfnet-cni'), shShim);
    await copyFile(join(REPO, 'bin', 'cfnet.js'), join(home, 'bin', 'cfnet.js'));
    await run(['chmod', '755', shShim]);
    // the plugin as cfnet installs it: compiled from native/ (as `npm run build` and the BOSH
    // package do) when a C compiler is there, else the sh shim under the plugin's name
    const built = await runHost([process.execPath, join(REPO, 'scripts', 'build-native.mjs'), shim], {
      allowFail: true,
    });
    if (built.code !== 0 && built.code !== 3)
      throw new Error(`compiling native/cfnet-cni.c failed: ${built.stdout}${built.stderr}`);
    const entry = built.code === 0 ? 'compiled' : 'sh';
    if (entry === 'sh') {
      await copyFile(shShim, shim);
      await run(['chmod', '755', shim]);
    }
    await copyFile(join(REPO, 'package.json'), join(home, 'package.json'));
    await symlink(join(REPO, 'node_modules'), join(home, 'node_modules'));
    return { home, shim, entry, shShim, cli: join(home, 'bin', 'cfnet.js') };
  })();
  return installPromise;
}

export async function removeInstalls(): Promise<void> {
  for (const r of installRoots.splice(0)) await rm(r, { recursive: true, force: true });
  installPromise = null;
}

export interface CniOutcome {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (null when empty or not JSON). */
  json: Record<string, unknown> | null;
  ms: number;
}

/** Runs argv with `env` only and `stdin`; stdout parsed as JSON when it is JSON. Never rejects on exit codes. */
export async function runWithStdin(
  argv: string[],
  env: Record<string, string>,
  stdin: string,
): Promise<CniOutcome> {
  const t0 = performance.now();
  const { code, stdout, stderr } = await runHost(argv, {
    env,
    input: stdin,
    timeoutMs: 60_000,
    allowFail: true,
  });
  const ms = performance.now() - t0;
  let json: Record<string, unknown> | null = null;
  try {
    json = stdout.trim() ? (JSON.parse(stdout) as Record<string, unknown>) : null;
  } catch {
    json = null;
  }
  return { code, stdout, stderr, json, ms };
}
