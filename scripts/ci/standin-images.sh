#!/usr/bin/env bash
# Builds stand-ins for the three third-party images of docker-compose.production.yml (nginx,
# postgres, certbot) from this machine's own Debian packages, for machines with no registry:
# each is the host's binaries plus exactly the libraries ldd lists for them, and a
# small POSIX shell entrypoint that behaves like the official image's where the stack relies on it.
#
#   scripts/ci/standin-images.sh [--force] [--print-env]
#
#   --force       rebuild even when an image was already made by this same script and packages
#   --print-env   print the .env lines that select the stand-ins (NGINX_IMAGE=... and so on)
#
# What each stand-in keeps of its official image:
#   ctll/nginx-standin:local     Debian's nginx (1.22). /docker-entrypoint.sh renders
#       /etc/nginx/templates/*.template into /etc/nginx/conf.d/ with envsubst, limited to the
#       variables NGINX_ENVSUBST_FILTER matches, then runs its arguments; nginx.conf includes
#       conf.d/*.conf in http {}; the access log goes to stdout. Because nginx is older than
#       1.25.1, the rendered "http2 on;" becomes "listen ... ssl http2" (as scripts/nginx-test.sh does).
#   ctll/postgres-standin:local  Debian's PostgreSQL 15. On an empty data directory the entrypoint
#       runs initdb with POSTGRES_USER/POSTGRES_PASSWORD, creates POSTGRES_DB and allows password
#       (scram-sha-256) logins over TCP; then runs postgres listening on all addresses. Runs as uid
#       999; pg_isready is on PATH (the compose health check).
#   ctll/certbot-standin:local   a shell, sleep, and a `certbot` that says it is a stand-in:
#       `certbot renew` has nothing to renew (exit 0), anything else fails. Only for deploy.sh
#       --no-certbot, which never asks for a certificate.
#
# Needs root (the postgres data directory is owned by uid 999 in the image), docker, and the
# Debian packages nginx, postgresql-15, gettext-base, coreutils, dash.
set -euo pipefail

readonly NGINX_TAG="ctll/nginx-standin:local"
readonly POSTGRES_TAG="ctll/postgres-standin:local"
readonly CERTBOT_TAG="ctll/certbot-standin:local"
readonly NGINX_BIN=/usr/sbin/nginx
readonly PG_DIR=/usr/lib/postgresql/15
readonly PG_SHARE=/usr/share/postgresql/15
readonly PG_UID=999
readonly NGINX_UID=101

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
log() { printf 'standin-images: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

force=""
print_env=""
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --print-env) print_env=1 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $arg (see --help)" ;;
    esac
done

if [[ -n "$print_env" ]]; then
    printf 'NGINX_IMAGE=%s\nPOSTGRES_IMAGE=%s\nCERTBOT_IMAGE=%s\n' "$NGINX_TAG" "$POSTGRES_TAG" "$CERTBOT_TAG"
    exit 0
fi

[[ "$(id -u)" -eq 0 ]] || die "must run as root (image files get their owners' uids)"
docker info >/dev/null 2>&1 || die "Docker engine unreachable (run scripts/ci/provision-docker.sh)"
[[ -x "$NGINX_BIN" ]] || die "$NGINX_BIN not found (apt-get install -y nginx)"
[[ -x "$PG_DIR/bin/postgres" ]] || die "$PG_DIR/bin/postgres not found (apt-get install -y postgresql-15)"
command -v envsubst >/dev/null || die "envsubst not found (apt-get install -y gettext-base)"

# Same script, same packages: same images. The fingerprint is stored as a label.
fingerprint="$(
    {
        cat "${BASH_SOURCE[0]}"
        "$NGINX_BIN" -v 2>&1
        "$PG_DIR/bin/postgres" --version
        dpkg-query -W -f='${Package} ${Version}\n' dash coreutils gettext-base libc6 2>/dev/null || true
    } | sha256sum | cut -c1-16
)"

up_to_date() {
    [[ -z "$force" ]] || return 1
    [[ "$(docker image inspect -f '{{index .Config.Labels "ctll.standin.fingerprint"}}' "$1" 2>/dev/null)" == "$fingerprint" ]]
}

stage=""
cleanup() { [[ -z "$stage" ]] || rm -rf "$stage"; }
trap cleanup EXIT

new_stage() {
    cleanup
    stage="$(mktemp -d "${TMPDIR:-/tmp}/ctll-standin.XXXXXX")"
    chmod 755 "$stage"
    mkdir -p "$stage/etc" "$stage/tmp" "$stage/bin" "$stage/usr/bin"
    chmod 1777 "$stage/tmp"
    printf 'hosts: files dns\n' >"$stage/etc/nsswitch.conf"
    # A POSIX shell and the few tools the entrypoints use.
    add_program /usr/bin/dash /bin/sh
    local tool
    for tool in env sed grep cat mkdir rm sleep cksum; do
        add_program "$(command -v "$tool")" "/usr/bin/$tool"
    done
}

# copy_in HOST_PATH [IMAGE_PATH]: the file (symlinks followed) at the same or the given path.
copy_in() {
    local dest="$stage${2:-$1}"
    mkdir -p "$(dirname "$dest")"
    cp -L "$1" "$dest"
}

# add_program HOST_PATH [IMAGE_PATH]: an ELF program or shared object and every library ldd lists.
add_program() {
    local lib
    copy_in "$1" "${2:-$1}"
    while IFS= read -r lib; do
        [[ -e "$stage$lib" ]] || copy_in "$lib"
    done < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
}

# import TAG DESCRIPTION docker-import-change...: the stage as a one-layer image.
import() {
    local tag="$1" what="$2"
    shift 2
    local changes=() change
    for change in "$@" "LABEL ctll.standin.fingerprint=$fingerprint" "LABEL ctll.standin.of=\"$what\""; do
        changes+=(--change "$change")
    done
    local previous
    previous="$(docker image inspect -f '{{.Id}}' "$tag" 2>/dev/null || true)"
    tar -C "$stage" --numeric-owner -c . \
        | docker import "${changes[@]}" --message "$what from this machine's packages (scripts/ci/standin-images.sh)" - "$tag" >/dev/null
    # The image this one replaces would linger untagged; it goes unless a container still uses it.
    if [[ -n "$previous" && "$previous" != "$(docker image inspect -f '{{.Id}}' "$tag")" ]]; then
        docker image rm "$previous" >/dev/null 2>&1 || true
    fi
    log "$tag ready ($what, $(docker image inspect -f '{{.Size}}' "$tag" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
}

# ----- nginx -----------------------------------------------------------------------------------

build_nginx() {
    new_stage
    add_program "$NGINX_BIN"
    add_program "$(command -v envsubst)" /usr/bin/envsubst
    add_program "$(command -v basename)" /usr/bin/basename
    mkdir -p "$stage/etc/nginx/conf.d" "$stage/etc/nginx/templates" "$stage/var/log/nginx" \
        "$stage/var/lib/nginx" "$stage/var/cache/nginx" "$stage/run" "$stage/var/lock" "$stage/usr/share/nginx/html"
    cp /etc/nginx/mime.types "$stage/etc/nginx/mime.types"
    ln -s /dev/stdout "$stage/var/log/nginx/access.log"
    ln -s /dev/stderr "$stage/var/log/nginx/error.log"
    printf 'root:x:0:0:root:/root:/bin/sh\nnginx:x:%s:%s:nginx:/nonexistent:/bin/false\n' "$NGINX_UID" "$NGINX_UID" >"$stage/etc/passwd"
    printf 'root:x:0:\nnginx:x:%s:\n' "$NGINX_UID" >"$stage/etc/group"

    cat >"$stage/etc/nginx/nginx.conf" <<'EOF'
# nginx stand-in (scripts/ci/standin-images.sh): the official image's layout.
user nginx;
worker_processes auto;
error_log /var/log/nginx/error.log notice;
pid /run/nginx.pid;

events {
    worker_connections 1024;
}

http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log /var/log/nginx/access.log;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 65;
    include /etc/nginx/conf.d/*.conf;
}
EOF

    cat >"$stage/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# nginx stand-in entrypoint: renders /etc/nginx/templates/*.template like the official image
# (only the variables NGINX_ENVSUBST_FILTER matches), then runs the command.
set -eu
if [ "${1:-}" = nginx ]; then
    names=$(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | grep -E "${NGINX_ENVSUBST_FILTER:-.}" || true)
    defined=""
    for name in $names; do defined="$defined \${$name}"; done
    for template in /etc/nginx/templates/*.template; do
        [ -f "$template" ] || continue
        out="/etc/nginx/conf.d/$(basename "$template" .template)"
        envsubst "$defined" < "$template" \
            | sed -e '/^[[:space:]]*http2 on;/d' -e 's|^\([[:space:]]*listen .* ssl\)\( default_server;\)|\1 http2\2|' > "$out"
        echo "standin-entrypoint: rendered $template to $out" >&2
    done
fi
exec "$@"
EOF
    chmod 755 "$stage/docker-entrypoint.sh"

    import "$NGINX_TAG" "nginx $("$NGINX_BIN" -v 2>&1 | sed 's|.*nginx/||')" \
        'ENV PATH=/usr/sbin:/usr/bin:/bin' \
        'ENTRYPOINT ["/docker-entrypoint.sh"]' \
        'CMD ["nginx", "-g", "daemon off;"]' \
        'EXPOSE 80 443'
}

# ----- postgres --------------------------------------------------------------------------------

build_postgres() {
    new_stage
    local program lib
    for program in postgres initdb pg_ctl pg_isready psql; do
        add_program "$PG_DIR/bin/$program"
    done
    # Loaded at run time by initdb and the server.
    for lib in plpgsql.so dict_snowball.so; do
        add_program "$PG_DIR/lib/$lib"
    done
    mkdir -p "$stage$PG_SHARE"
    cp -a "$PG_SHARE/." "$stage$PG_SHARE/"
    rm -rf "$stage$PG_SHARE/man" "$stage$PG_SHARE/contrib" "$stage$PG_SHARE/extension"
    mkdir -p "$stage$PG_SHARE/extension"
    cp "$PG_SHARE/extension/plpgsql"* "$stage$PG_SHARE/extension/"
    mkdir -p "$stage/usr/share/zoneinfo"
    cp -a /usr/share/zoneinfo/. "$stage/usr/share/zoneinfo/"
    printf 'root:x:0:0:root:/root:/bin/sh\npostgres:x:%s:%s:PostgreSQL:/var/lib/postgresql:/bin/sh\n' "$PG_UID" "$PG_UID" >"$stage/etc/passwd"
    printf 'root:x:0:\npostgres:x:%s:\n' "$PG_UID" >"$stage/etc/group"
    mkdir -p "$stage/var/lib/postgresql/data" "$stage/var/run/postgresql"
    chown -R "$PG_UID:$PG_UID" "$stage/var/lib/postgresql" "$stage/var/run/postgresql"
    chmod 700 "$stage/var/lib/postgresql/data"
    chmod 2775 "$stage/var/run/postgresql"

    cat >"$stage/docker-entrypoint.sh" <<'EOF'
#!/bin/sh
# postgres stand-in entrypoint: the first start initialises PGDATA from POSTGRES_USER,
# POSTGRES_PASSWORD and POSTGRES_DB like the official image; every start then runs postgres.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-$user}"
PGDATA="${PGDATA:-/var/lib/postgresql/data}"
case "$user$db" in
    *[!A-Za-z0-9_]*) echo "standin-entrypoint: POSTGRES_USER and POSTGRES_DB may hold only letters, digits and _" >&2; exit 1 ;;
esac
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "standin-entrypoint: initialising $PGDATA for user $user, database $db" >&2
    pwfile="/tmp/.pw.$$"
    (umask 077 && printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile")
    initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --auth-local=trust --auth-host=scram-sha-256 \
        --encoding=UTF8 --locale=C >&2
    rm -f "$pwfile"
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" -j postgres >/dev/null
    fi
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
EOF
    chmod 755 "$stage/docker-entrypoint.sh"

    import "$POSTGRES_TAG" "PostgreSQL $("$PG_DIR/bin/postgres" --version | awk '{ print $3 }')" \
        "ENV PATH=$PG_DIR/bin:/usr/bin:/bin" \
        'ENV PGDATA=/var/lib/postgresql/data' \
        'ENV TZ=UTC' \
        "USER $PG_UID:$PG_UID" \
        'ENTRYPOINT ["/docker-entrypoint.sh"]' \
        'EXPOSE 5432'
}

# ----- certbot ---------------------------------------------------------------------------------

build_certbot() {
    new_stage
    printf 'root:x:0:0:root:/root:/bin/sh\n' >"$stage/etc/passwd"
    printf 'root:x:0:\n' >"$stage/etc/group"
    mkdir -p "$stage/usr/local/bin" "$stage/etc/letsencrypt" "$stage/var/www/certbot"
    cat >"$stage/usr/local/bin/certbot" <<'EOF'
#!/bin/sh
# certbot stand-in (scripts/ci/standin-images.sh): this machine has no ACME server to talk to.
if [ "${1:-}" = renew ]; then
    echo "certbot stand-in: nothing to renew" >&2
    exit 0
fi
echo "certbot stand-in: cannot '$*' here (no registry, no ACME); deploy with --no-certbot" >&2
exit 1
EOF
    chmod 755 "$stage/usr/local/bin/certbot"
    import "$CERTBOT_TAG" "certbot stand-in" \
        'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
        'ENTRYPOINT ["certbot"]'
}

for spec in "nginx:$NGINX_TAG" "postgres:$POSTGRES_TAG" "certbot:$CERTBOT_TAG"; do
    name="${spec%%:*}"
    tag="${spec#*:}"
    if up_to_date "$tag"; then
        log "$tag is up to date (fingerprint $fingerprint); --force rebuilds it"
        continue
    fi
    "build_$name"
done
