#!/usr/bin/env bash
# Installs the command-line tools the deploy smoke and the bench use, when missing (Debian):
# docker-compose (only when there is no `docker compose` plugin), envsubst for the nginx stand-in,
# curl and openssl for deploy.sh, OpenSSH (client and server) for the bench's ssh -R peer, and
# systemd (only when systemd-analyze is missing) to check the unit `ctll-bridge service install` writes,
# promtool (Debian's prometheus package) for the shipped alert rules, and chromium, the browser
# the web console's tests drive with playwright-core (which downloads no browser of its own).
# A new CI machine has none of what an earlier session installed by hand, so this list is the truth.
set -euo pipefail
export CTLL_CI_COMPONENT=tools
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

PACKAGES=(gettext-base curl openssl openssh-client openssh-server)
docker compose version >/dev/null 2>&1 || PACKAGES+=(docker-compose)
command -v systemd-analyze >/dev/null 2>&1 || PACKAGES+=(systemd)
# promtool checks the shipped alert rules and scrape config (tests/alert-rules.test.ts); Debian
# ships it only inside the prometheus server package, whose daemon is stopped again below.
command -v promtool >/dev/null 2>&1 || PACKAGES+=(prometheus)
# The web console's browser tests (tests/console*.e2e.test.ts) run Debian's Chromium headless.
PACKAGES+=(chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  installed "$pkg" || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  need_root
  apt_install "${missing[@]}"
else
  log "packages already installed: ${PACKAGES[*]}"
fi
# The bench starts its own throwaway sshd on a high loopback port; the system one stays off.
if command -v systemctl >/dev/null 2>&1; then systemctl stop ssh >/dev/null 2>&1 || true; fi
# Only promtool is wanted: a Prometheus server the package may have started stays off.
if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus prometheus-node-exporter >/dev/null 2>&1 || true; fi
