#!/usr/bin/env bash
# Builds a two-node swarm on this one machine, beside (and apart from) the host's Docker engine, for
# the tests that need a swarm spanning several nodes (tests/docker/swarm-nodes.test.ts).
#
# Each node is a dockerd of its own in a network namespace of its own:
#   netns ctll-node<N>   eth0 10.231.0.1<N>/24, dockerd -H unix:///run/ctll-node<N>.sock
#   netns ctll-nodes-lan a bridge joining the nodes' veth pairs (the nodes' private "LAN")
# Node 1 initialises the swarm (manager, advertising its LAN address); node 2 joins as a manager too,
# because api-backend replicas run on managers (they create services) and the tests put one on each
# node. Two managers keep Raft quorum only together, which a test swarm can afford (a production
# swarm that must survive a manager's loss runs three).
# Swarm control (2377/tcp, 7946), the overlays' VXLAN (4789/udp) and the nodes' iptables all live in
# those namespaces, so nothing is added to the host's network namespace, and the host's own swarm
# (which also uses 4789) is not touched. No address outside 10.231.0.0/24 is routed anywhere.
#
# Each dockerd starts its own managed containerd under its exec-root (Docker 20.10 does so when no
# --containerd is given), so the nodes share no containerd, image store or container state with the
# host engine. Everything lives under $CTLL_CI_STATE/swarm-nodes; stop-swarm-nodes.sh removes it all.
#
# Idempotent: a node whose engine already answers is kept, a node already in the swarm is not
# joined again, and an image already present (same id) is not loaded again.
# Images loaded into both nodes: SWARM_NODES_IMAGES (default: the base and proxy images).
set -euo pipefail
export CTLL_CI_COMPONENT=swarm-nodes
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source-path=SCRIPTDIR source=swarm-nodes-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/swarm-nodes-lib.sh"

START_TIMEOUT_S="${SWARM_NODES_START_TIMEOUT_S:-60}"
read -r -a IMAGES <<<"${SWARM_NODES_IMAGES:-ctll/node-base:local ctll/streaming-proxy:latest}"

need_root
command -v ip >/dev/null || die "ip (iproute2) is missing"
command -v unshare >/dev/null || die "unshare (util-linux) is missing"
command -v nsenter >/dev/null || die "nsenter (util-linux) is missing"
command -v dockerd >/dev/null || die "dockerd is missing (scripts/ci/provision-docker.sh installs it)"

# The LAN: one namespace holding a bridge. Its iptables are empty (policy ACCEPT), so frames between
# the nodes are not filtered even where br_netfilter is loaded.
make_lan() {
  if ! netns_exists "$LAN_NS"; then
    ip netns add "$LAN_NS"
    log "netns $LAN_NS created"
  fi
  ip -n "$LAN_NS" link set lo up
  if ! ip -n "$LAN_NS" link show "$LAN_BRIDGE" >/dev/null 2>&1; then
    ip -n "$LAN_NS" link add "$LAN_BRIDGE" type bridge
  fi
  ip -n "$LAN_NS" link set "$LAN_BRIDGE" up
}

# make_node_net <n>: the node's namespace, with eth0 on the LAN bridge.
make_node_net() {
  local n="$1" ns port
  ns="$(node_ns "$n")"
  port="$(lan_port "$n")"
  if ! netns_exists "$ns"; then
    ip netns add "$ns"
    log "netns $ns created"
  fi
  ip -n "$ns" link set lo up
  if ! ip -n "$ns" link show eth0 >/dev/null 2>&1; then
    # Made in the LAN namespace, then one end moved: nothing is ever created in the host namespace.
    ip -n "$LAN_NS" link del "$port" >/dev/null 2>&1 || true
    ip -n "$LAN_NS" link add "$port" type veth peer name eth0 netns "$ns"
  fi
  ip -n "$LAN_NS" link set "$port" master "$LAN_BRIDGE" up
  if ! ip -n "$ns" -4 addr show dev eth0 | grep -q "inet $(node_ip "$n")/"; then
    ip -n "$ns" addr add "$(node_ip "$n")/24" dev eth0
  fi
  ip -n "$ns" link set eth0 up
}

# start_node_engine <n>: dockerd in the node's namespace; true once it answers on its socket.
start_node_engine() {
  local n="$1" dir pid
  dir="$(node_dir "$n")"
  if node_docker "$n" info >/dev/null 2>&1; then
    log "node $n: engine already answers on $(node_sock "$n")"
    return 0
  fi
  mkdir -p "$dir/data" "$dir/exec"
  rm -f "$(node_sock "$n")"
  log "node $n: starting dockerd in netns $(node_ns "$n") (log: $dir/dockerd.log)"
  # setsid: the engine outlives this script. unshare gives dockerd a mount namespace of its own (a
  # slave of the host's), so its overlay and netns mounts never show on the host. Not `ip netns
  # exec`: that mounts a fresh /sys, which hides the cgroup mounts ("Devices cgroup isn't mounted").
  # --cgroup-parent keeps its containers' cgroups apart from the host engine's /docker.
  setsid unshare --mount --propagation slave \
    nsenter --net="/run/netns/$(node_ns "$n")" dockerd \
    --host "unix://$(node_sock "$n")" \
    --data-root "$dir/data" \
    --exec-root "$dir/exec" \
    --pidfile "$dir/dockerd.pid" \
    --cgroup-parent "ctll-node$n" \
    --storage-driver overlay2 \
    --log-level warn \
    >>"$dir/dockerd.log" 2>&1 </dev/null &
  pid=$!
  await_engine "$pid" "$dir/dockerd.log" "node $n" node_docker "$n"
}

swarm_state() { node_docker "$1" info --format '{{.Swarm.LocalNodeState}}'; }

form_swarm() {
  local state token
  state="$(swarm_state 1)"
  case "$state" in
    active) log "node 1: already a swarm manager" ;;
    inactive)
      # The overlays' default pool is moved off 10.0.0.0/8's start so it can never meet the LAN.
      node_docker 1 swarm init \
        --advertise-addr "$(node_ip 1)" --listen-addr "$(node_ip 1):2377" \
        --default-addr-pool 10.232.0.0/16 --default-addr-pool-mask-length 24 >/dev/null
      log "node 1: swarm initialised (manager, $(node_ip 1))"
      ;;
    *) die "node 1: swarm state is \"$state\"; run stop-swarm-nodes.sh and try again" ;;
  esac
  state="$(swarm_state 2)"
  case "$state" in
    active)
      # A swarm made before node 2 became a manager: promote it where it stands.
      if [ "$(node_docker 2 info --format '{{.Swarm.ControlAvailable}}')" != true ]; then
        node_docker 1 node promote "$(node_docker 2 info --format '{{.Swarm.NodeID}}')" >/dev/null
        log "node 2: promoted to manager"
      else
        log "node 2: already a swarm manager"
      fi
      ;;
    inactive)
      token="$(node_docker 1 swarm join-token -q manager)"
      node_docker 2 swarm join --token "$token" \
        --advertise-addr "$(node_ip 2)" --listen-addr "$(node_ip 2):2377" "$(node_ip 1):2377" >/dev/null
      log "node 2: joined the swarm as a manager"
      ;;
    *) die "node 2: swarm state is \"$state\"; run stop-swarm-nodes.sh and try again" ;;
  esac
  # Labels let tests place tasks by constraint (node.labels.ctll-node==N) without knowing node ids.
  local n id
  for n in 1 2; do
    id="$(node_docker "$n" info --format '{{.Swarm.NodeID}}')"
    node_docker 1 node update --label-add "ctll-node=$n" "$id" >/dev/null
  done
}

load_images() {
  local n image want have missing=()
  for image in "${IMAGES[@]}"; do
    want="$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null)" \
      || die "image $image is not on the host engine (scripts/docker-base-image.sh, scripts/docker-build.sh)"
    for n in 1 2; do
      have="$(node_docker "$n" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
      [ "$have" = "$want" ] || { missing+=("$image"); break; }
    done
  done
  [ "${#missing[@]}" -gt 0 ] || { log "images already on both nodes: ${IMAGES[*]}"; return 0; }
  log "loading ${missing[*]} into both nodes"
  for n in 1 2; do
    docker save "${missing[@]}" | node_docker "$n" load >/dev/null
  done
}

make_lan
for n in 1 2; do
  make_node_net "$n"
  start_node_engine "$n" || die "node $n: no engine (see $(node_dir "$n")/dockerd.log)"
done
form_swarm
load_images
log "two-node swarm ready: managers $(node_sock 1) and $(node_sock 2)"
