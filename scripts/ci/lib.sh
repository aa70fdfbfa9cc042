# shellcheck shell=bash
# Helpers shared by the CI provisioning scripts (sourced, never run).
#
# Model: each provision-*.sh brings one machine service up and, only when it had to start the
# service itself, leaves a marker in $CTLL_CI_STATE. The matching stop-*.sh reads that marker, so a
# service that was already running before CI (a developer's own dockerd or postgres) is never stopped.
# Progress goes to stderr; stdout stays free for values a caller captures (DATABASE_URL).

CTLL_CI_STATE="${CTLL_CI_STATE:-${TMPDIR:-/tmp}/ctll-ci}"
export CTLL_CI_STATE
mkdir -p "$CTLL_CI_STATE"

# Daemons live in sbin, which a non-login PATH may lack.
case ":$PATH:" in
  *:/usr/sbin:*) ;;
  *) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;;
esac
export PATH

log() { printf '%s: %s\n' "${CTLL_CI_COMPONENT:-ci}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and starts system services)"
}

# Another engineer or job may hold the apt/dpkg locks: wait for them instead of failing.
APT_OPTS=(-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3)
_ctll_apt_updated=""

apt_install() {
  need_root
  if [ -z "$_ctll_apt_updated" ]; then
    log "apt-get update"
    local try
    for try in 1 2 3; do
      if DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update -qq >&2; then break; fi
      [ "$try" -eq 3 ] && die "apt-get update failed"
      sleep 5
    done
    _ctll_apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "$@" >&2 \
    || die "apt-get install $* failed"
}

# pid_is <pid> <command name>: true when that pid is alive and runs that program.
pid_is() {
  [ -n "$1" ] && [ -r "/proc/$1/comm" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]
}

# await_engine <pid> <log file> <what> <docker command...>: waits up to START_TIMEOUT_S for
# `<docker command> info` to answer. True once it does; false when dockerd (<pid>) exits first (its
# last log lines shown) or the time runs out (then it is stopped).
await_engine() {
  local pid="$1" logfile="$2" what="$3" waited=0
  shift 3
  while [ "$waited" -lt "${START_TIMEOUT_S:-60}" ]; do
    if "$@" info >/dev/null 2>&1; then
      log "$what: engine ready after ${waited}s (dockerd pid $pid)"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      log "$what: dockerd exited during start-up; last log lines:"
      tail -n 8 "$logfile" >&2 || true
      return 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  log "$what: dockerd did not answer within ${START_TIMEOUT_S:-60}s; stopping it"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  return 1
}
