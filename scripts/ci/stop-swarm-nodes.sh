#!/usr/bin/env bash
# Takes down the two-node test swarm provision-swarm-nodes.sh built: stops both node engines (each
# takes its managed containerd and its containers with it), removes their namespaces (which removes
# the veth pairs and the LAN bridge inside them) and deletes $CTLL_CI_STATE/swarm-nodes. The host's
# Docker engine and its swarm are never addressed. Safe to run when nothing (or only part) is up.
set -euo pipefail
export CTLL_CI_COMPONENT=swarm-nodes
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=swarm-nodes-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/swarm-nodes-lib.sh"

STOP_TIMEOUT_S="${SWARM_NODES_STOP_TIMEOUT_S:-30}"

need_root

# Both engines are told to stop at once (each takes some 5-15 s to leave the swarm and stop), then
# awaited: SIGTERM to the dockerd its pidfile names, only if that pid still runs dockerd; SIGKILL
# after the timeout.
pids=()
for n in 1 2; do
  pid="$(cat "$(node_dir "$n")/dockerd.pid" 2>/dev/null || true)"
  if pid_is "$pid" dockerd; then
    kill "$pid"
    pids+=("$pid")
  else
    log "node $n: no engine running"
  fi
done
waited=0
for pid in "${pids[@]}"; do
  while pid_is "$pid" dockerd && [ "$waited" -lt "$STOP_TIMEOUT_S" ]; do
    sleep 1
    waited=$((waited + 1))
  done
  if pid_is "$pid" dockerd; then
    log "dockerd $pid still running after ${STOP_TIMEOUT_S}s; killing it"
    kill -9 "$pid" 2>/dev/null || true
    sleep 1
  fi
done
[ "${#pids[@]}" -eq 0 ] || log "engines stopped (dockerd ${pids[*]})"

for n in 1 2; do
  rm -f "$(node_sock "$n")"
  if netns_exists "$(node_ns "$n")"; then
    ip netns del "$(node_ns "$n")"
    log "netns $(node_ns "$n") removed"
  fi
done
if netns_exists "$LAN_NS"; then
  ip netns del "$LAN_NS"
  log "netns $LAN_NS removed"
fi
# The engines' mounts lived in their own mount namespaces, which ended with them; should one still
# be visible here, it is unmounted before the directory goes.
if [ -d "$SWARM_NODES_DIR" ]; then
  while read -r mountpoint; do
    umount -l "$mountpoint" 2>/dev/null || true
  done < <(awk -v dir="$SWARM_NODES_DIR/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r)
  rm -rf "$SWARM_NODES_DIR"
  log "removed $SWARM_NODES_DIR"
fi
