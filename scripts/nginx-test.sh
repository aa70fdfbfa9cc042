#!/usr/bin/env bash
# Renders nginx/relay.conf.template the way production does and checks it with a real nginx.
#
#   scripts/nginx-test.sh
#       Renders for the test domain relay.test into a temporary folder (self-signed certificate,
#       root-free nginx.conf around the template) and runs `nginx -t` on it.
#
#   scripts/nginx-test.sh render OUTDIR UPSTREAM HTTP_PORT HTTPS_PORT
#       Renders into OUTDIR (created if missing) with api-backend at UPSTREAM (host:port), nginx
#       listening on 127.0.0.1:HTTP_PORT and 127.0.0.1:HTTPS_PORT, and prints the path of the
#       top-level nginx.conf. Start it in the foreground with
#           /usr/sbin/nginx -p OUTDIR -e OUTDIR/logs/error.log -c OUTDIR/nginx.conf
#       and stop it with SIGQUIT (graceful) or SIGTERM. Everything nginx writes (pid, logs, temp
#       files) stays in OUTDIR. The certificate is for relay.test, localhost and 127.0.0.1: a
#       client that trusts OUTDIR/certs/fullchain.pem (NODE_EXTRA_CA_CERTS, curl --cacert)
#       verifies https://127.0.0.1:HTTPS_PORT without any SNI or --resolve trick.
#
# Environment: NGINX_BIN (default /usr/sbin/nginx, Debian's), MAX_BODY_BYTES (default 104857600),
# RATE_LIMIT_AUTH_FAILURES, RATE_LIMIT_UPGRADES, RATE_LIMIT_HEALTH (per minute; default 30, 60, 120).
# Needs nginx, openssl and envsubst (Debian: nginx, openssl, gettext-base).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly TEMPLATE="$REPO_ROOT/nginx/relay.conf.template"
readonly NGINX_BIN="${NGINX_BIN:-/usr/sbin/nginx}"
readonly TEST_DOMAIN="relay.test"
# The placeholders the template may use; envsubst replaces these and nothing else.
# shellcheck disable=SC2016 # literal ${...}: this is envsubst's argument, not a shell expansion
readonly PLACEHOLDERS='${DOMAIN} ${MAX_BODY_SIZE} ${UPSTREAM} ${CERT_DIR} ${ACME_ROOT} ${HTTP_LISTEN} ${HTTPS_LISTEN} ${ACCESS_LOG} ${RATE_LIMIT_AUTH_FAILURES} ${RATE_LIMIT_UPGRADES} ${RATE_LIMIT_HEALTH}'

die() {
    echo "nginx-test: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

require_tools() {
    [[ -x "$NGINX_BIN" ]] || die "nginx not found at $NGINX_BIN (apt-get install -y nginx, or set NGINX_BIN)"
    command -v openssl >/dev/null || die "openssl not found (apt-get install -y openssl)"
    command -v envsubst >/dev/null || die "envsubst not found (apt-get install -y gettext-base)"
}

nginx_version() {
    "$NGINX_BIN" -v 2>&1 | sed -n 's|.*nginx/\([0-9.]*\).*|\1|p'
}

# True when the nginx here is older than 1.25.1, which introduced the "http2 on;" directive.
nginx_needs_listen_http2() {
    local version
    version="$(nginx_version)"
    [[ -n "$version" ]] || die "cannot read the version of $NGINX_BIN"
    [[ "$(printf '%s\n' "$version" 1.25.1 | sort -V | head -n1)" != 1.25.1 ]]
}

# A self-signed certificate for the test domain, made once per OUTDIR.
make_certificate() {
    local dir="$1"
    [[ -s "$dir/fullchain.pem" && -s "$dir/privkey.pem" ]] && return 0
    mkdir -p "$dir"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
        -subj "/CN=$TEST_DOMAIN" -addext "subjectAltName=DNS:$TEST_DOMAIN,DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/privkey.pem" -out "$dir/fullchain.pem" 2>/dev/null \
        || die "openssl could not make a test certificate in $dir"
}

# render OUTDIR UPSTREAM HTTP_LISTEN HTTPS_LISTEN: writes OUTDIR/nginx.conf and its include.
render() {
    local out="$1" upstream="$2" http_listen="$3" https_listen="$4"
    local conf="$out/nginx.conf" site="$out/conf.d/relay.conf"

    # Paths go into nginx.conf unquoted, so keep them to plain characters.
    [[ "$out" =~ ^[A-Za-z0-9._/-]+$ ]] || die "OUTDIR may hold only letters, digits and . _ / -: $out"
    local limit
    for limit in RATE_LIMIT_AUTH_FAILURES RATE_LIMIT_UPGRADES RATE_LIMIT_HEALTH; do
        [[ "${!limit:-1}" =~ ^[1-9][0-9]*$ ]] || die "$limit must be a whole number of requests per minute, at least 1: ${!limit}"
    done
    mkdir -p "$out/conf.d" "$out/logs" "$out/tmp" "$out/acme/.well-known/acme-challenge"
    # nginx workers run unprivileged when started as root: they must reach the temp and ACME folders.
    chmod 755 "$out" "$out/tmp" "$out/acme" "$out/acme/.well-known" "$out/acme/.well-known/acme-challenge"
    make_certificate "$out/certs"

    DOMAIN="$TEST_DOMAIN" \
    MAX_BODY_SIZE="${MAX_BODY_BYTES:-104857600}" \
    UPSTREAM="$upstream" \
    CERT_DIR="$out/certs" \
    ACME_ROOT="$out/acme" \
    HTTP_LISTEN="$http_listen" \
    HTTPS_LISTEN="$https_listen" \
    ACCESS_LOG="$out/logs/access.log" \
    RATE_LIMIT_AUTH_FAILURES="${RATE_LIMIT_AUTH_FAILURES:-30}" \
    RATE_LIMIT_UPGRADES="${RATE_LIMIT_UPGRADES:-60}" \
    RATE_LIMIT_HEALTH="${RATE_LIMIT_HEALTH:-120}" \
        envsubst "$PLACEHOLDERS" < "$TEMPLATE" > "$site.tmp"

    if nginx_needs_listen_http2; then
        # Same meaning, older syntax: "listen ... ssl http2" instead of the "http2 on;" directive.
        sed -i -e '/^[[:space:]]*http2 on;/d' -e 's|^\([[:space:]]*listen .* ssl\)\( default_server;\)|\1 http2\2|' "$site.tmp"
    fi

    if grep -nF "\${" "$site.tmp" >&2; then
        die "the template uses placeholders this script does not know (above); add them to PLACEHOLDERS"
    fi
    mv "$site.tmp" "$site"

    cat > "$conf" <<EOF
# Generated by scripts/nginx-test.sh: a root-free nginx around nginx/relay.conf.template.
daemon off;
worker_processes 1;
pid $out/nginx.pid;
error_log $out/logs/error.log warn;

events {
    worker_connections 1024;
}

http {
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    client_body_temp_path $out/tmp/client_body;
    proxy_temp_path $out/tmp/proxy;
    fastcgi_temp_path $out/tmp/fastcgi;
    uwsgi_temp_path $out/tmp/uwsgi;
    scgi_temp_path $out/tmp/scgi;
    access_log $out/logs/access.log;

    include $site;
}
EOF
    printf '%s\n' "$conf"
}

check() {
    local out status=0
    out="$(mktemp -d "${TMPDIR:-/tmp}/ctll-nginx-test.XXXXXX")"
    # shellcheck disable=SC2064 # expand now: $out is local
    trap "rm -rf '$out'" EXIT
    local conf
    conf="$(render "$out" 127.0.0.1:8080 127.0.0.1:8088 127.0.0.1:8443)"
    echo "nginx-test: rendered $TEMPLATE for $TEST_DOMAIN with nginx $(nginx_version)"
    "$NGINX_BIN" -t -p "$out" -e "$out/logs/error.log" -c "$conf" 2>&1 || status=$?
    if [[ $status -ne 0 ]]; then
        echo "nginx-test: rendered site config follows" >&2
        cat -n "$out/conf.d/relay.conf" >&2
        die "nginx -t failed"
    fi
    echo "nginx-test: ok"
}

main() {
    case "${1:-check}" in
        -h | --help | help)
            usage
            ;;
        check)
            [[ $# -le 1 ]] || die "check takes no arguments (see --help)"
            require_tools
            check
            ;;
        render)
            [[ $# -eq 5 ]] || die "usage: $0 render OUTDIR UPSTREAM HTTP_PORT HTTPS_PORT"
            [[ "$4" =~ ^[0-9]+$ && "$5" =~ ^[0-9]+$ ]] || die "HTTP_PORT and HTTPS_PORT must be numbers"
            [[ "$3" =~ ^[^[:space:]\;]+:[0-9]+$ ]] || die "UPSTREAM must be host:port, got: $3"
            require_tools
            mkdir -p "$2"
            render "$(cd "$2" && pwd)" "$3" "127.0.0.1:$4" "127.0.0.1:$5"
            ;;
        *)
            die "unknown mode: $1 (see --help)"
            ;;
    esac
}

main "$@"
