#!/usr/bin/env bash
# Makes the Docker engine a single-node swarm manager, for the swarm driver's tests
# (PROXY_DRIVER=swarm). Plain containers are unaffected by swarm mode. When this script had to
# initialise the swarm itself it leaves $CTLL_CI_STATE/swarm.initialised, so that stop-swarm.sh
# leaves the swarm again only then; a swarm that was there before CI is never touched.
#
# The swarm listens and advertises on 127.0.0.1 only. docker_gwbridge (each task's leg to the
# host, which is how a host-run api-backend reaches its proxies) is made here before the init,
# with Docker's own options for it, because the engine would make it only with the first task.
set -euo pipefail
export CTLL_CI_COMPONENT=swarm
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MARKER="$CTLL_CI_STATE/swarm.initialised"

state="$(docker info --format '{{.Swarm.LocalNodeState}}' 2>/dev/null)" || die "no Docker engine answers (run provision-docker.sh first)"
case "$state" in
  active)
    [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] || die "this engine is a swarm worker; the swarm tests need a manager"
    log "engine is already a swarm manager"
    ;;
  inactive)
    if ! docker network inspect docker_gwbridge >/dev/null 2>&1; then
      docker network create \
        -o com.docker.network.bridge.name=docker_gwbridge \
        -o com.docker.network.bridge.enable_icc=false \
        -o com.docker.network.bridge.enable_ip_masquerade=true \
        docker_gwbridge >/dev/null
    fi
    log "docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377"
    docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
    touch "$MARKER"
    log "single-node swarm ready"
    ;;
  *)
    die "swarm state is \"$state\" (pending, error or locked); see docker info"
    ;;
esac
