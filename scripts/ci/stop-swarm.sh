#!/usr/bin/env bash
# Leaves the swarm that provision-swarm.sh initialised, and nothing else: a swarm that was there
# before CI (no marker) is left alone.
set -euo pipefail
export CTLL_CI_COMPONENT=swarm
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MARKER="$CTLL_CI_STATE/swarm.initialised"
if [ ! -e "$MARKER" ]; then
  log "no swarm initialised by us; leaving it alone"
  exit 0
fi
if docker info >/dev/null 2>&1; then
  docker swarm leave --force >/dev/null 2>&1 || log "docker swarm leave failed (already left?)"
  log "left the swarm"
fi
rm -f "$MARKER"
