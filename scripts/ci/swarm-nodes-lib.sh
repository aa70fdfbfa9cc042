# shellcheck shell=bash
# Names and paths of the two-node test swarm, shared by provision-swarm-nodes.sh and
# stop-swarm-nodes.sh (sourced after lib.sh, never run). Node <n> is 1 or 2.

SWARM_NODES_DIR="$CTLL_CI_STATE/swarm-nodes"
# shellcheck disable=SC2034  # used by the scripts that source this file
LAN_NS=ctll-nodes-lan
# shellcheck disable=SC2034
LAN_BRIDGE=br0

node_ns() { printf 'ctll-node%s' "$1"; }
node_ip() { printf '10.231.0.1%s' "$1"; }
node_sock() { printf '/run/ctll-node%s.sock' "$1"; }
node_dir() { printf '%s/node%s' "$SWARM_NODES_DIR" "$1"; }
lan_port() { printf 'node%s' "$1"; }
node_docker() { local n="$1"; shift; docker -H "unix://$(node_sock "$n")" "$@"; }
netns_exists() { [ -e "/run/netns/$1" ]; }
