#!/usr/bin/env bash
# Installs nginx and shellcheck (Debian) when missing and makes sure no system nginx service holds
# port 80: tests start their own nginx instances with their own configs and ports.
# The stock default site is disabled (the symlink only; sites-available/default stays) so that a later
# `service nginx start` or reboot cannot grab port 80 either.
set -euo pipefail
export CTLL_CI_COMPONENT=nginx
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PACKAGES=(nginx shellcheck)
SYSTEM_PIDFILE=/run/nginx.pid
DEFAULT_SITE=/etc/nginx/sites-enabled/default

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
else
  log "packages already installed: ${PACKAGES[*]}"
fi

if [ -L "$DEFAULT_SITE" ]; then
  need_root
  rm -f "$DEFAULT_SITE"
  log "disabled the stock default site ($DEFAULT_SITE)"
fi

# Only the system service (its master writes /run/nginx.pid); test instances use their own pid files.
pid="$(cat "$SYSTEM_PIDFILE" 2>/dev/null || true)"
if pid_is "$pid" nginx; then
  need_root
  log "stopping the system nginx service (master pid $pid)"
  if [ -d /run/systemd/system ]; then
    systemctl stop nginx
  else
    kill -QUIT "$pid"
  fi
  for _ in $(seq 20); do
    pid_is "$pid" nginx || break
    sleep 0.5
  done
  if pid_is "$pid" nginx; then
    log "nginx did not quit gracefully; terminating it"
    kill -TERM "$pid" 2>/dev/null || true
  fi
fi

if command -v ss >/dev/null && [ -n "$(ss -Htln 'sport = :80')" ]; then
  log "warning: something still listens on port 80: $(ss -Htlnp 'sport = :80' | head -n 1)"
fi
log "ready: $(nginx -v 2>&1), $(shellcheck --version | sed -n 's/^version: /shellcheck /p')"
