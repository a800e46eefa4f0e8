// Generates typed static protobuf code from proto/*.proto into src/gen/ (and dist/gen/ when built).
// protobufjs' ESM wrapper imports "protobufjs/minimal", which Node's ESM resolver cannot find
// (the package has no exports map), so the import is rewritten to the CommonJS default export.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const protoDir = join(root, 'proto');
const genDir = join(root, 'src', 'gen');
const distGenDir = join(root, 'dist', 'gen');
mkdirSync(genDir, { recursive: true });
mkdirSync(distGenDir, { recursive: true });

const protos = readdirSync(protoDir)
  .filter((f) => f.endsWith('.proto'))
  .sort()
  .map((f) => join(protoDir, f));
const out = join(genDir, 'bbs.js');
const bin = (name) => join(root, 'node_modules', '.bin', name);
execFileSync(
  bin('pbjs'),
  ['-t', 'static-module', '-w', 'esm', '--force-long', '--no-beautify', '-p', protoDir, '-o', out, ...protos],
  { stdio: 'inherit' },
);
// pbjs writes `import * as $protobuf from "protobufjs/minimal";`. Node's ESM resolver needs the file
// name, and the CommonJS module's namespace is only reachable as the default export.
const ESM_IMPORT = 'import $protobuf from "protobufjs/minimal.js";';
const js = readFileSync(out, 'utf8').replace(
  /^import \* as \$protobuf from "protobufjs\/minimal";$/m,
  ESM_IMPORT,
);
if (!js.includes(ESM_IMPORT))
  throw new Error('gen-proto: pbjs output has no protobufjs/minimal import to rewrite');
writeFileSync(out, js);
// The declarations only need protobufjs' types (`import * as $protobuf from "protobufjs"`, kept as is).
execFileSync(bin('pbts'), ['--no-comments', '-o', join(genDir, 'bbs.d.ts'), out], { stdio: 'inherit' });
for (const f of ['bbs.js', 'bbs.d.ts']) copyFileSync(join(genDir, f), join(distGenDir, f));
console.log(`gen-proto: ${protos.length} .proto files -> src/gen/bbs.js`);
