#!/usr/bin/env bash
# Removes what earlier test runs on this engine left behind: proxy containers and networks whose
# scope label is a test scope (test-*). Docker proxies outlive the relay that made them (that is
# the point: a restart adopts them), so a test run that was killed leaves its proxies, whose fixed
# names (ctll-proxy-<hash of the user>) would collide with the next run's. Resources of any other
# scope (a deployment on the same engine) are never touched.
set -euo pipefail

label=io.cloudtolocalllm.scope
containers=$(docker ps -a --filter "label=io.cloudtolocalllm.managed=true" --format "{{.ID}} {{.Label \"$label\"}}" | awk '$2 ~ /^test-/ { print $1 }')
if [ -n "$containers" ]; then
  # shellcheck disable=SC2086  # one id per word
  docker rm -f $containers >/dev/null
fi
networks=$(docker network ls --filter "label=io.cloudtolocalllm.managed=true" --format "{{.ID}} {{.Label \"$label\"}}" | awk '$2 ~ /^test-/ { print $1 }')
if [ -n "$networks" ]; then
  # shellcheck disable=SC2086
  docker network rm $networks >/dev/null
fi
echo "clean-test-leftovers: removed $(printf '%s' "$containers" | grep -c . || true) container(s), $(printf '%s' "$networks" | grep -c . || true) network(s)"
