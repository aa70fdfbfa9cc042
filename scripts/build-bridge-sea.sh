#!/usr/bin/env bash
# Builds the bridge as one executable file with Node's single executable applications: the bundled
# bridge (bridge/dist/cli.js) is injected with postject into a copy of the node binary running this
# script. The result runs on computers of the same OS and CPU that have no Node installed.
# Linux and macOS; Windows steps are in bridge/README.md.
# Usage: scripts/build-bridge-sea.sh [output file]    (default bridge/dist/sea/ctll-bridge-<os>-<arch>)
set -euo pipefail
# An output path given relative to where the script was called from, not to the repository.
out="${1:-}"
case "$out" in '' | /*) ;; *) out="$PWD/$out" ;; esac
cd "$(dirname "$0")/.."

os="$(node -p process.platform)"
arch="$(node -p process.arch)"
out="${out:-bridge/dist/sea/ctll-bridge-$os-$arch}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

node scripts/bridge-sea-blob.mjs "$work"

mkdir -p "$(dirname "$out")"
cp "$(command -v node)" "$out.tmp"
chmod u+w "$out.tmp"
# NODE_SEA_FUSE_... is the fixed marker Node's binary checks to know it carries an application.
fuse=NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2
if [ "$os" = darwin ]; then
  codesign --remove-signature "$out.tmp"
  npx --no-install postject "$out.tmp" NODE_SEA_BLOB "$work/sea-prep.blob" --sentinel-fuse "$fuse" --macho-segment-name NODE_SEA
  codesign --sign - "$out.tmp"
else
  npx --no-install postject "$out.tmp" NODE_SEA_BLOB "$work/sea-prep.blob" --sentinel-fuse "$fuse"
fi
mv "$out.tmp" "$out"
echo "built $out ($("$out" --version))"
