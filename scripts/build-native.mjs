// Compiles the CNI plugin entry point native/cfnet-cni.c with the machine's C compiler (CC, default
// cc): into dist/native/cfnet-cni for `npm run build`, or into OUT (the lab's install trees,
// src/lab/install.ts). Without a compiler the sh shim bin/cfnet-cni stays the entry point
// (docs/cni.md, "The entry point"): the script says so, writes nothing and exits 3 when OUT was
// given (0 for the build, which goes on); a compiler that fails on the source fails (exit 1).
// The BOSH cni package's packaging script compiles with the same flags.
// Usage: node scripts/build-native.mjs [OUT]
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';

const CFLAGS = ['-O2', '-Wall', '-Wextra', '-std=gnu11'];

const root = new URL('..', import.meta.url).pathname;
const out = process.argv[2] ?? join(root, 'dist', 'native', 'cfnet-cni');
rmSync(out, { force: true });
const cc = process.env.CC || 'cc';
if (spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cc]).status !== 0) {
  console.log(
    `build-native: no C compiler (${cc}) on PATH: the sh shim bin/cfnet-cni stays the CNI entry point`,
  );
  process.exit(process.argv[2] ? 3 : 0);
}
mkdirSync(dirname(out), { recursive: true });
// static when the C library allows it (libc.a, in libc6-dev): no dynamic loader at each start,
// ~0.4 ms less per call on the 2-core VM
const compile = (extra) =>
  spawnSync(cc, [...CFLAGS, ...extra, '-o', out, join(root, 'native', 'cfnet-cni.c')], { encoding: 'utf8' });
let res = compile(['-static']);
if (res.status !== 0) res = compile([]);
if (res.status !== 0) {
  console.error(`build-native: ${cc} failed on native/cfnet-cni.c:\n${res.stderr}`);
  process.exit(1);
}
// started by hand it prints the about text: proof the binary runs on this machine
const v = spawnSync(out, [], { encoding: 'utf8', env: {} });
if (v.status !== 0 || !v.stderr.startsWith('CNI cfnet-cni plugin')) {
  console.error(`build-native: the compiled ${out} does not run (${v.status}): ${v.stderr}`);
  process.exit(1);
}
console.log(`build-native: ${out} (${cc})`);
