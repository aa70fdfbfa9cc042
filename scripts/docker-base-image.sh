#!/usr/bin/env bash
# Builds a Node base image without any registry: the host's own `node` binary plus exactly the shared
# libraries it links against, imported as a one-layer image. It has no shell and no package manager,
# which is why streaming-proxy/Dockerfile uses no RUN.
#
#   scripts/docker-base-image.sh [--force] [TAG]     (TAG default: $NODE_BASE_IMAGE or ctll/node-base:local)
#
# Skips the work when TAG exists and was made from the same node version, unless --force.
# Then build the proxy with: BASE_IMAGE=ctll/node-base:local scripts/docker-build.sh
set -euo pipefail

usage() { sed -n '2,9s/^# \{0,1\}//p' "$0"; }
die() { printf 'docker-base-image: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'docker-base-image: %s\n' "$*" >&2; }

force=""
tag="${NODE_BASE_IMAGE:-ctll/node-base:local}"
while [ $# -gt 0 ]; do
  case "$1" in
    --force) force=1 ;;
    -h|--help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) tag="$1" ;;
  esac
  shift
done
# A locally imported image must never shadow the official one production pulls.
case "$tag" in
  node:*|node|docker.io/*|library/*) die "refusing to tag a local import as '$tag'; pick a name like ctll/node-base:local" ;;
esac

node_bin="$(command -v node)" || die "node not found on PATH"
node_bin="$(readlink -f "$node_bin")"
node_version="$("$node_bin" -p process.version)"
docker info >/dev/null 2>&1 || die "Docker engine unreachable (run scripts/ci/provision-docker.sh)"

if [ -z "$force" ] && docker image inspect "$tag" >/dev/null 2>&1; then
  have="$(docker image inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$tag" | sed -n 's/^NODE_VERSION=//p')"
  if [ "$have" = "$node_version" ]; then
    log "$tag already exists (node $have); use --force to rebuild"
    exit 0
  fi
  log "$tag holds node '${have:-unknown}', host has $node_version: rebuilding"
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/ctll-node-base.XXXXXX")"
trap 'rm -rf "$stage"' EXIT

# copy_in <host path> [image path]: copies a file (following symlinks) to the same path in the image.
copy_in() {
  local dest="$stage${2:-$1}"
  mkdir -p "$(dirname "$dest")"
  cp -L "$1" "$dest"
}

copy_in "$node_bin" /usr/local/bin/node
# ldd lines: "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
# the vdso has no file and is skipped.
libs="$(ldd "$node_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)"
[ -n "$libs" ] || die "ldd listed no libraries for $node_bin (is it static? then nothing else is needed)"
while IFS= read -r lib; do
  copy_in "$lib"
done <<<"$libs"

mkdir -p "$stage/etc" "$stage/tmp" "$stage/app"
chmod 1777 "$stage/tmp"
cat >"$stage/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
proxyuser:x:1001:1001:streaming-proxy:/app:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$stage/etc/group" <<'GROUP'
root:x:0:
proxyuser:x:1001:
nogroup:x:65534:
GROUP
printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"

log "importing $tag from $node_bin ($node_version) and $(wc -l <<<"$libs") libraries"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
      --change "ENV NODE_VERSION=$node_version" \
      --change 'CMD ["node"]' \
      --message "node $node_version from $node_bin (scripts/docker-base-image.sh)" \
      - "$tag" >/dev/null

got="$(docker run --rm "$tag" node -e 'console.log(process.version)')" || die "$tag was imported but node does not run in it"
[ "$got" = "$node_version" ] || die "$tag runs node $got, expected $node_version"
log "$tag ready: node $got, $(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
