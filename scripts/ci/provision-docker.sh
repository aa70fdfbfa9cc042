#!/usr/bin/env bash
# Makes a Docker engine answer `docker info`. Uses a running engine when there is one; otherwise
# installs docker.io (Debian) if dockerd is missing and starts dockerd in the background, recording
# its pid in $CTLL_CI_STATE/dockerd.pid so that stop-docker.sh stops only the engine we started.
#
# Networks: dockerd keeps its default address pools (172.17-31.0.0/16, 192.168.0.0/16 in /20s).
# Per-user proxy networks get explicit subnets from PROXY_SUBNET_POOL (default 10.200.0.0/16), which
# lies outside those pools; we only check that no host route already claims that range.
set -euo pipefail
export CTLL_CI_COMPONENT=docker
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

START_TIMEOUT_S="${DOCKER_START_TIMEOUT_S:-60}"
STORAGE_DRIVER="${DOCKER_STORAGE_DRIVER:-overlay2}"
PIDFILE="$CTLL_CI_STATE/dockerd.pid"
LOGFILE="$CTLL_CI_STATE/dockerd.log"

ip_to_int() {
  local a b c d
  IFS=. read -r a b c d <<<"$1"
  echo $(( (a << 24) | (b << 16) | (c << 8) | d ))
}

# cidrs_overlap A/n B/m: true when the two IPv4 ranges share an address.
cidrs_overlap() {
  local a="${1%/*}" an="${1#*/}" b="${2%/*}" bn="${2#*/}" n mask
  n=$(( an < bn ? an : bn ))
  mask=$(( n == 0 ? 0 : (0xFFFFFFFF << (32 - n)) & 0xFFFFFFFF ))
  [ $(( $(ip_to_int "$a") & mask )) -eq $(( $(ip_to_int "$b") & mask )) ]
}

check_subnet_pool() {
  local pool="${PROXY_SUBNET_POOL:-10.200.0.0/16}" route
  command -v ip >/dev/null || return 0
  [[ "$pool" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+$ ]] || { log "warning: PROXY_SUBNET_POOL=$pool is not an IPv4 CIDR; not checked"; return 0; }
  while read -r route _; do
    [ "$route" = default ] && continue
    [[ "$route" == */* ]] || route="$route/32"
    [[ "$route" =~ ^[0-9.]+/[0-9]+$ ]] || continue
    if cidrs_overlap "$pool" "$route"; then
      log "warning: host route $route overlaps PROXY_SUBNET_POOL=$pool; per-user proxy networks may be unreachable"
    fi
  done < <(ip -4 route show)
}

# start_dockerd <storage driver>: starts dockerd detached from our session; true once `docker info`
# answers, false (with dockerd gone) when it exits or times out.
start_dockerd() {
  local driver="$1" pid
  log "starting dockerd --storage-driver=$driver (log: $LOGFILE)"
  # setsid: the engine must outlive this script and ignore the CI shell's Ctrl-C / hangups.
  setsid dockerd --storage-driver="$driver" >>"$LOGFILE" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  if await_engine "$pid" "$LOGFILE" "dockerd --storage-driver=$driver" docker; then return 0; fi
  rm -f "$PIDFILE"
  return 1
}

main() {
  if docker info >/dev/null 2>&1; then
    log "engine already running"
    check_subnet_pool
    return 0
  fi
  need_root
  if pid_is "$(cat "$PIDFILE" 2>/dev/null || true)" dockerd; then
    die "dockerd we started earlier (pid $(cat "$PIDFILE")) is running but not answering; see $LOGFILE"
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || die "docker CLI not found after installing docker.io"
  : >"$LOGFILE"

  if ! start_dockerd "$STORAGE_DRIVER"; then
    [ "$STORAGE_DRIVER" != vfs ] || die "dockerd would not start; see $LOGFILE"
    log "$STORAGE_DRIVER did not work on this kernel/filesystem; falling back to the (slower, larger) vfs driver"
    start_dockerd vfs || die "dockerd would not start with $STORAGE_DRIVER or vfs; see $LOGFILE"
  fi
  check_subnet_pool
}

main "$@"
