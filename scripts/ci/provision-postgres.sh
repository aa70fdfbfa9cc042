#!/usr/bin/env bash
# Starts the machine's PostgreSQL cluster (Debian pg_ctlcluster; created if missing), makes sure a
# password login over TCP 127.0.0.1 works for role $CTLL_PG_USER on database $CTLL_PG_DATABASE, and
# prints `DATABASE_URL=postgres://...` on stdout (also written to $CTLL_CI_STATE/database_url).
# When it had to start the cluster it leaves $CTLL_CI_STATE/postgres.started for stop-postgres.sh.
#
#   eval "export $(scripts/ci/provision-postgres.sh)"   or   scripts/ci/provision-postgres.sh >/dev/null;
#   DATABASE_URL="$(cat "$CTLL_CI_STATE/database_url")"
#
# The role gets CREATEDB so tests may create throwaway databases of their own.
set -euo pipefail
export CTLL_CI_COMPONENT=postgres
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_VERSION="${PG_VERSION:-15}"
PG_CLUSTER="${PG_CLUSTER:-main}"
DB_USER="${CTLL_PG_USER:-ctll}"
DB_NAME="${CTLL_PG_DATABASE:-ctll_test}"
# A test-only credential for a server that listens on loopback only.
DB_PASSWORD="${CTLL_PG_PASSWORD:-ctll-test-password}"
MARKER="$CTLL_CI_STATE/postgres.started"
READY_TIMEOUT_S="${PG_READY_TIMEOUT_S:-30}"

for name in DB_USER DB_NAME; do
  [[ "${!name}" =~ ^[a-z_][a-z0-9_]*$ ]] || die "$name='${!name}' must be a plain lower-case SQL identifier"
done
[[ "$DB_PASSWORD" =~ ^[A-Za-z0-9._~-]+$ ]] || die "CTLL_PG_PASSWORD may hold only URL-safe characters [A-Za-z0-9._~-]"
command -v pg_ctlcluster >/dev/null || die "pg_ctlcluster not found: install postgresql-$PG_VERSION (Debian)"
need_root

as_postgres() { runuser -u postgres -- "$@"; }
cluster_port() { pg_lsclusters -h | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c { print $3 }'; }

if [ -z "$(cluster_port)" ]; then
  log "cluster $PG_VERSION/$PG_CLUSTER does not exist; creating it"
  pg_createcluster "$PG_VERSION" "$PG_CLUSTER" >&2
fi
port="$(cluster_port)"

# pg_ctlcluster status: 0 running, 3 stopped.
if pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; then
  log "cluster $PG_VERSION/$PG_CLUSTER already running on port $port"
else
  log "starting cluster $PG_VERSION/$PG_CLUSTER on port $port"
  pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2
  printf '%s %s\n' "$PG_VERSION" "$PG_CLUSTER" >"$MARKER"
fi

for _ in $(seq "$READY_TIMEOUT_S"); do
  pg_isready -q -h 127.0.0.1 -p "$port" && break
  sleep 1
done
pg_isready -q -h 127.0.0.1 -p "$port" || die "server not ready on 127.0.0.1:$port after ${READY_TIMEOUT_S}s"

# Idempotent: create what is missing, then (re)set the password so DATABASE_URL always matches.
as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$port" -d postgres -v pw="$DB_PASSWORD" >&2 <<SQL
SELECT 'CREATE ROLE $DB_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$DB_USER') \gexec
SET password_encryption = 'scram-sha-256';
ALTER ROLE $DB_USER WITH LOGIN CREATEDB PASSWORD :'pw';
SELECT 'CREATE DATABASE $DB_NAME OWNER $DB_USER' WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$DB_NAME') \gexec
SQL

url="postgres://$DB_USER:$DB_PASSWORD@127.0.0.1:$port/$DB_NAME"
can_login() { psql -X -q -At "$url" -c 'select 1' >/dev/null 2>&1; }

if ! can_login; then
  # Debian's default pg_hba.conf allows scram-sha-256 from 127.0.0.1; a customised one may not.
  hba="$(as_postgres psql -X -At -p "$port" -d postgres -c 'show hba_file')"
  log "password login over 127.0.0.1 refused; adding a scram-sha-256 rule for $DB_USER to $hba"
  sed -i "1i host all $DB_USER 127.0.0.1/32 scram-sha-256  # added by scripts/ci/provision-postgres.sh" "$hba"
  pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" reload >&2
  sleep 1
  can_login || die "cannot log in as $DB_USER over 127.0.0.1:$port even after adding a pg_hba.conf rule"
fi

printf '%s\n' "$url" >"$CTLL_CI_STATE/database_url"
log "ready: $DB_USER@127.0.0.1:$port/$DB_NAME (URL in $CTLL_CI_STATE/database_url)"
printf 'DATABASE_URL=%s\n' "$url"
