#!/usr/bin/env bash
# Stops the dockerd that provision-docker.sh started, and nothing else: an engine that was running
# before CI (no pid file) is left alone.
set -euo pipefail
export CTLL_CI_COMPONENT=docker
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PIDFILE="$CTLL_CI_STATE/dockerd.pid"
STOP_TIMEOUT_S="${DOCKER_STOP_TIMEOUT_S:-30}"

pid="$(cat "$PIDFILE" 2>/dev/null || true)"
if [ -z "$pid" ]; then
  log "no dockerd started by us; leaving the engine alone"
  exit 0
fi
if ! pid_is "$pid" dockerd; then
  log "dockerd we started (pid $pid) is no longer running"
  rm -f "$PIDFILE"
  exit 0
fi

log "stopping dockerd (pid $pid)"
kill -TERM "$pid"
for _ in $(seq "$STOP_TIMEOUT_S"); do
  pid_is "$pid" dockerd || break
  sleep 1
done
if pid_is "$pid" dockerd; then
  log "dockerd did not stop within ${STOP_TIMEOUT_S}s; killing it"
  kill -KILL "$pid" 2>/dev/null || true
fi
rm -f "$PIDFILE"
log "stopped"
