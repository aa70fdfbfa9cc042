#!/usr/bin/env bash
# Builds the streaming-proxy image (what `npm run docker:build` runs).
#
#   scripts/docker-build.sh [--rebuild]
#
#   --rebuild     run `npm run build` even when streaming-proxy/dist/streaming-proxy.js exists
#   BASE_IMAGE    base image (default node:20-alpine; ctll/node-base:local on machines without a registry)
#   PROXY_IMAGE   tag to build (default ctll/streaming-proxy:latest)
#
# The build context is streaming-proxy/ alone; its .dockerignore lets only the bundle in.
set -euo pipefail

BASE_IMAGE="${BASE_IMAGE:-node:20-alpine}"
PROXY_IMAGE="${PROXY_IMAGE:-ctll/streaming-proxy:latest}"
BUNDLE=streaming-proxy/dist/streaming-proxy.js

usage() { sed -n '2,10s/^# \{0,1\}//p' "$0"; }
die() { printf 'docker-build: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'docker-build: %s\n' "$*" >&2; }

rebuild=""
for arg in "$@"; do
  case "$arg" in
    --rebuild) rebuild=1 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$arg' (see --help)" ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

docker info >/dev/null 2>&1 \
  || die "Docker engine unreachable${DOCKER_HOST:+ at DOCKER_HOST=$DOCKER_HOST} (start it, or run scripts/ci/provision-docker.sh as root)"

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base image $BASE_IMAGE is not local; pulling it"
  if ! pull_error="$(docker pull -q "$BASE_IMAGE" 2>&1 >/dev/null)"; then
    log "pull failed: $pull_error"
    die "base image $BASE_IMAGE is not available locally and could not be pulled; run scripts/docker-base-image.sh on machines without a registry, then BASE_IMAGE=ctll/node-base:local $0"
  fi
fi

if [ -n "$rebuild" ] || [ ! -s "$BUNDLE" ]; then
  log "bundling (npm run build)"
  npm run --silent build
  [ -s "$BUNDLE" ] || die "npm run build did not produce $BUNDLE"
fi

version="$(node -p 'require("./streaming-proxy/package.json").version')"
revision="$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)"
log "building $PROXY_IMAGE from $BASE_IMAGE (version $version, revision $revision)"
docker build \
  -f streaming-proxy/Dockerfile \
  --build-arg BASE_IMAGE="$BASE_IMAGE" \
  --build-arg VERSION="$version" \
  --build-arg REVISION="$revision" \
  -t "$PROXY_IMAGE" \
  streaming-proxy >&2
log "$PROXY_IMAGE built: $(docker image inspect --format '{{.Size}}' "$PROXY_IMAGE" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
