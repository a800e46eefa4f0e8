#!/usr/bin/env bash
# Stages the cfnet program into bosh/src/cfnet/ for `bosh create-release`: package.json, bin/
# (cfnet.js and the cfnet-cni shim), native/cfnet-cni.c (the cni package compiles it), the compiled dist/ and the production node_modules.
#
#   bosh/scripts/stage-src.sh [--no-build] [--fresh] [OUT_DIR]
#
# --no-build  use the existing dist/ (default: `npm run build` first)
# --fresh     install production dependencies from the registry for linux-x64
#             (`npm ci --omit=dev --os=linux --cpu=x64`); default: copy the checkout's node_modules
#             and `npm prune --omit=dev` (offline; fine when building on linux-x64)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=1
fresh=0
out="${root}/bosh/src/cfnet"
for arg in "$@"; do
  case "${arg}" in
    --no-build) build=0 ;;
    --fresh) fresh=1 ;;
    -*) echo "stage-src: unknown option ${arg}" >&2; exit 2 ;;
    *) out="${arg}" ;;
  esac
done

cd "${root}"
if [ "${build}" = 1 ]; then
  npm run build
fi
test -f dist/cli/main.js || { echo "stage-src: dist/ is missing; run npm run build" >&2; exit 1; }
# the Redis scripts are copied by the build (scripts/copy-lua.mjs), not emitted by tsc
ls dist/state/lua/*.lua dist/lib/lua/*.lua >/dev/null 2>&1 || { echo "stage-src: dist/**/lua/*.lua is missing; run npm run build" >&2; exit 1; }

rm -rf "${out}"
mkdir -p "${out}/bin"
cp package.json package-lock.json "${out}/"
install -m 0755 bin/cfnet.js "${out}/bin/cfnet.js"
if [ -f bin/cfnet-cni ]; then
  install -m 0755 bin/cfnet-cni "${out}/bin/cfnet-cni"
else
  echo "stage-src: warning: bin/cfnet-cni does not exist yet; the cni package will not build" >&2
fi
# the compiled CNI entry point's source: the cni package compiles it on the compilation VM
mkdir -p "${out}/native"
install -m 0644 native/cfnet-cni.c "${out}/native/cfnet-cni.c"
cp -a dist "${out}/dist"
# Source maps are not needed on a VM.
find "${out}/dist" -name '*.map' -delete

if [ "${fresh}" = 1 ]; then
  (cd "${out}" && npm ci --omit=dev --ignore-scripts --os=linux --cpu=x64 --no-audit --no-fund)
else
  cp -a node_modules "${out}/node_modules"
  (cd "${out}" && npm prune --omit=dev --ignore-scripts --no-audit --no-fund >/dev/null)
fi
rm -f "${out}/package-lock.json"
echo "stage-src: staged $(du -sh "${out}" | cut -f1) into ${out}"
