#!/usr/bin/env bash
# Stops the PostgreSQL cluster only if provision-postgres.sh started it (marker file present).
set -euo pipefail
export CTLL_CI_COMPONENT=postgres
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

MARKER="$CTLL_CI_STATE/postgres.started"
if [ ! -s "$MARKER" ]; then
  log "cluster not started by us; leaving it alone"
  exit 0
fi
read -r version cluster <"$MARKER"
log "stopping cluster $version/$cluster"
pg_ctlcluster "$version" "$cluster" stop -m fast >&2 || log "warning: pg_ctlcluster stop failed (already stopped?)"
rm -f "$MARKER"
