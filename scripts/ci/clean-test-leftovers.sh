#!/usr/bin/env bash
# Removes what earlier test runs on this engine left behind: proxy containers and networks whose
# scope label is a test scope (test-*). Docker proxies outlive the relay that made them (that is
# the point: a restart adopts them), so a test run that was killed leaves its proxies, whose fixed
# names (ctll-proxy-<hash of the user>) would collide with the next run's. Resources of any other
# scope (a deployment on the same engine) are never touched.
set -euo pipefail

label=io.cloudtolocalllm.scope
# The deploy smoke's swarm stack (scripts/ci/deploy-smoke.sh), if a killed run left it.
if docker stack ls --format '{{.Name}}' 2>/dev/null | grep -qx ctllsmoke; then
  docker stack rm ctllsmoke >/dev/null
fi
# Swarm proxies (PROXY_DRIVER=swarm) first: their tasks hold the overlays until they have stopped.
services=""
if [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = true ]; then
  services=$(docker service ls --filter "label=io.cloudtolocalllm.managed=true" --format "{{.ID}} {{.Name}}" | awk '{ print $1 }' |
    while read -r id; do [[ "$(docker service inspect "$id" --format "{{index .Spec.Labels \"$label\"}}")" == test-* ]] && echo "$id"; done || true)
  if [ -n "$services" ]; then
    # shellcheck disable=SC2086  # one id per word
    docker service rm $services >/dev/null
    sleep 5 # tasks stop within their grace period; the network removal below needs them gone
  fi
fi
containers=$(docker ps -a --filter "label=io.cloudtolocalllm.managed=true" --format "{{.ID}} {{.Label \"$label\"}}" | awk '$2 ~ /^test-/ { print $1 }')
if [ -n "$containers" ]; then
  # shellcheck disable=SC2086  # one id per word
  docker rm -f $containers >/dev/null
fi
# Node anchors of test scopes (the swarm driver's, api-backend/src/proxy/swarm-anchor.ts), after
# the proxies: an anchor leaves a user's overlay last.
anchor=io.cloudtolocalllm.anchor-of
anchors=$(docker ps -a --filter "label=$anchor" --format "{{.ID}} {{.Label \"$anchor\"}}" | awk '$2 ~ /^test-/ { print $1 }')
if [ -n "$anchors" ]; then
  # shellcheck disable=SC2086  # one id per word
  docker rm -f $anchors >/dev/null
fi
networks=$( (docker network ls --filter "label=io.cloudtolocalllm.managed=true" --format "{{.ID}} {{.Label \"$label\"}}"
  docker network ls --filter "label=$anchor" --format "{{.ID}} {{.Label \"$anchor\"}}") | awk '$2 ~ /^test-/ { print $1 }')
if [ -n "$networks" ]; then
  # shellcheck disable=SC2086
  docker network rm $networks >/dev/null
fi
echo "clean-test-leftovers: removed $(printf '%s' "$services" | grep -c . || true) service(s), $(printf '%s\n%s' "$containers" "$anchors" | grep -c . || true) container(s), $(printf '%s' "$networks" | grep -c . || true) network(s)"
