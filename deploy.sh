#!/usr/bin/env bash
# Deploys (or updates) the CloudToLocalLLM relay on this host with docker-compose.production.yml.
#
#   ./deploy.sh --domain relay.example.com --email admin@example.com     first run
#   ./deploy.sh                                                           later runs (reads .env)
#
# Options:
#   --domain NAME   public DNS name of the relay (first run: written to .env)
#   --email ADDR    address for Let's Encrypt expiry mail (first run: written to .env)
#   --no-certbot    do not ask Let's Encrypt: keep the certificate in data/letsencrypt/live/NAME/
#                   (a self-signed one is made if there is none) and skip the DNS check
#   --staging       use Let's Encrypt's staging CA (untrusted certificates, generous rate limits)
#   -h, --help      show this help
#
# What it does, in order, and safe to repeat (a second run with nothing changed changes nothing):
#   1. checks prerequisites: docker engine, docker compose (plugin or docker-compose), node >= 20,
#      npm, openssl, curl; the domain resolves (unless --no-certbot); ports 80/443 are free or ours
#   2. creates .env from env.template on the first run, with a generated POSTGRES_PASSWORD and the
#      Docker socket's group id; never overwrites an existing .env (edit it by hand)
#   3. builds: the bundles (npm run build), the streaming-proxy image (npm run docker:build), and
#      the api-backend image from api-backend/dist plus production node_modules staged beside it
#   4. makes a self-signed certificate if there is none, so nginx can start, then `up -d`
#   5. waits until https://DOMAIN/health answers through nginx
#   6. asks certbot for the real certificate (webroot) unless one exists or --no-certbot; the
#      certbot service renews it from then on, and nginx reloads by itself when it changes
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly ROOT
readonly COMPOSE_FILE="docker-compose.production.yml"
readonly ENV_FILE=".env"
readonly TEMPLATE="env.template"
readonly LE_DIR="data/letsencrypt"
readonly ACME_DIR="data/acme"
readonly STAGE_DIR="api-backend/dist/image"
readonly NPM_WORK_DIR="data/deploy/api-backend-deps"
readonly HEALTH_TIMEOUT_S=180

opt_domain=""
opt_email=""
opt_certbot=1
opt_staging=0
COMPOSE=()

log() { printf '[deploy] %s\n' "$*"; }
warn() { printf '[deploy] warning: %s\n' "$*" >&2; }
die() {
    printf '[deploy] error: %s\n' "$*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --domain) [[ $# -ge 2 ]] || die "--domain needs a value"; opt_domain="$2"; shift ;;
            --domain=*) opt_domain="${1#*=}" ;;
            --email) [[ $# -ge 2 ]] || die "--email needs a value"; opt_email="$2"; shift ;;
            --email=*) opt_email="${1#*=}" ;;
            --no-certbot) opt_certbot=0 ;;
            --staging) opt_staging=1 ;;
            -h | --help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
        shift
    done
    if [[ -n "$opt_domain" && ! "$opt_domain" =~ ^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$ ]]; then
        die "--domain must be a DNS name like relay.example.com, got: $opt_domain"
    fi
    if [[ -n "$opt_email" && ! "$opt_email" =~ ^[^[:space:]@=]+@[^[:space:]@=]+\.[^[:space:]@=]+$ ]]; then
        die "--email must be an address like admin@example.com, got: $opt_email"
    fi
    if [[ $opt_staging -eq 1 && $opt_certbot -eq 0 ]]; then
        die "--staging and --no-certbot exclude each other"
    fi
}

compose() { "${COMPOSE[@]}" -f "$COMPOSE_FILE" --env-file "$ENV_FILE" "$@"; }

# The value of KEY in .env ("" when absent or commented out). .env is never sourced: values such
# as the cron schedule "* * * * *" are not shell syntax.
env_get() { sed -n "s/^$1=//p" "$ENV_FILE" | tail -n 1; }

# ----- 1. prerequisites ------------------------------------------------------------------------

check_tools() {
    command -v docker >/dev/null || die "docker is not installed (https://docs.docker.com/engine/install/)"
    docker info >/dev/null 2>&1 \
        || die "cannot reach the Docker engine: is dockerd running, and may this user use it (root or the docker group)?"
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    elif command -v docker-compose >/dev/null && docker-compose version >/dev/null 2>&1; then
        COMPOSE=(docker-compose)
    else
        die "docker compose is missing: install the compose plugin (package docker-compose-plugin) or docker-compose"
    fi
    command -v node >/dev/null || die "node is not installed (needed to build; version 20 or newer)"
    node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' \
        || die "node $(node -v) is too old: version 20 or newer is needed"
    command -v npm >/dev/null || die "npm is not installed"
    command -v openssl >/dev/null || die "openssl is not installed"
    command -v curl >/dev/null || die "curl is not installed"
    log "using $("${COMPOSE[@]}" version 2>/dev/null | head -n 1)"
}

check_domain_resolves() {
    local domain="$1"
    [[ $opt_certbot -eq 1 ]] || return 0
    getent ahosts "$domain" >/dev/null \
        || die "$domain does not resolve: point its DNS A/AAAA record at this server first (or use --no-certbot)"
}

# True when the stack's nginx container is running (then it is the one holding 80 and 443).
nginx_running() {
    local id
    id="$(compose ps -q nginx 2>/dev/null || true)"
    [[ -n "$id" && "$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" == true ]]
}

check_ports_free() {
    local port holders
    if ! command -v ss >/dev/null; then
        warn "ss not found: not checking that ports 80 and 443 are free"
        return 0
    fi
    nginx_running && return 0
    for port in 80 443; do
        holders="$(ss -H -ltnp "sport = :$port" 2>/dev/null || true)"
        [[ -z "$holders" ]] || die "port $port is already in use (stop that service first):
$holders"
    done
}

check_docker_gid() {
    local socket gid
    socket="$(env_get DOCKER_SOCKET)"
    socket="${socket:-/var/run/docker.sock}"
    if [[ ! -S "$socket" ]]; then
        warn "$socket is not a socket here: cannot check DOCKER_GID"
        return 0
    fi
    gid="$(stat -c %g "$socket")"
    [[ "$(env_get DOCKER_GID)" == "$gid" ]] \
        || die "DOCKER_GID in .env is '$(env_get DOCKER_GID)' but $socket belongs to group $gid: set DOCKER_GID=$gid in .env"
}

check_auth_configured() {
    if [[ -z "$(env_get AUTH0_DOMAIN)$(env_get JWT_ISSUER)$(env_get JWT_JWKS_URI)" ]]; then
        die "no identity provider in .env: set AUTH0_DOMAIN and AUTH0_AUDIENCE (or JWT_ISSUER, JWT_AUDIENCE and JWT_JWKS_URI), then run ./deploy.sh again (api-backend refuses dev tokens in production)"
    fi
}

# ----- 2. .env ---------------------------------------------------------------------------------

# Writes .env from env.template with KEY=value replacements given as arguments.
write_env_from_template() {
    local tmp
    tmp="$(mktemp "$ENV_FILE.XXXXXX")"
    chmod 600 "$tmp"
    awk -F= '
        BEGIN { for (i = 1; i < ARGC; i++) { split(ARGV[i], kv, "="); val[kv[1]] = substr(ARGV[i], length(kv[1]) + 2); ARGV[i] = "" } }
        ($1 in val) { print $1 "=" val[$1]; next }
        { print }
    ' "$@" < "$TEMPLATE" > "$tmp"
    mv "$tmp" "$ENV_FILE"
}

ensure_env() {
    local socket gid
    if [[ -f "$ENV_FILE" ]]; then
        [[ -z "$opt_domain" || "$opt_domain" == "$(env_get DOMAIN)" ]] \
            || die "DOMAIN in .env is '$(env_get DOMAIN)', not '$opt_domain': deploy.sh never rewrites .env, edit it by hand"
        [[ -z "$opt_email" || "$opt_email" == "$(env_get LETSENCRYPT_EMAIL)" ]] \
            || die "LETSENCRYPT_EMAIL in .env is '$(env_get LETSENCRYPT_EMAIL)', not '$opt_email': edit .env by hand"
        [[ "$(env_get POSTGRES_PASSWORD)" != __GENERATE__ ]] \
            || die "POSTGRES_PASSWORD in .env is still __GENERATE__: set it to the output of 'openssl rand -hex 24'"
        return 0
    fi
    [[ -n "$opt_domain" ]] || die "first run: --domain is required (it is written to .env)"
    [[ -n "$opt_email" || $opt_certbot -eq 0 ]] || die "first run: --email is required for Let's Encrypt (or pass --no-certbot)"
    socket="/var/run/docker.sock"
    gid="$(stat -c %g "$socket" 2>/dev/null || echo 999)"
    write_env_from_template \
        "DOMAIN=$opt_domain" \
        "LETSENCRYPT_EMAIL=${opt_email:-admin@$opt_domain}" \
        "DOCKER_GID=$gid" \
        "POSTGRES_PASSWORD=$(openssl rand -hex 24)"
    log "created .env (mode 600) with a generated POSTGRES_PASSWORD; review it, it is yours from now on"
}

# ----- 3. build --------------------------------------------------------------------------------

build_bundles() {
    if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
        log "installing build dependencies (npm ci)"
        npm ci --no-audit --no-fund \
            || die "npm ci failed: package-lock.json must be in sync with package.json"
    fi
    log "bundling (npm run build)"
    npm run --silent build
    [[ -s api-backend/dist/main.js ]] || die "npm run build did not produce api-backend/dist/main.js"
}

build_proxy_image() {
    local image base
    image="$(env_get PROXY_IMAGE)"
    base="$(env_get BASE_IMAGE)"
    log "building the streaming-proxy image ${image:-ctll/streaming-proxy:latest}"
    PROXY_IMAGE="${image:-ctll/streaming-proxy:latest}" BASE_IMAGE="${base:-node:20-alpine}" npm run --silent docker:build
}

# Production dependencies of api-backend, installed from the root lockfile into a scratch copy of
# the workspace manifests (the checkout's own node_modules keeps its dev dependencies), then put
# in api-backend/dist/image/ (see api-backend/Dockerfile). Skipped when the manifests have not changed, so an unchanged
# checkout gives a byte-identical build context and the same image. The audit schema migrations
# (postgres/migrations, read by api-backend at start-up) and the web console (console/dist) are copied every time.
stage_api_backend() {
    local stamp ws
    local -a workspaces manifests=(package.json package-lock.json)
    read -r -a workspaces <<< "$(node -p 'require("./package.json").workspaces.join(" ")')"
    for ws in "${workspaces[@]}"; do manifests+=("$ws/package.json"); done
    stamp="$(cat "${manifests[@]}" | sha256sum | cut -d' ' -f1)"
    mkdir -p "$STAGE_DIR/data"
    touch "$STAGE_DIR/data/.keep"
    [[ -d postgres/migrations ]] || die "postgres/migrations is missing: api-backend cannot create its audit tables without it"
    rm -rf "$STAGE_DIR/postgres"
    mkdir -p "$STAGE_DIR/postgres"
    cp -a postgres/migrations "$STAGE_DIR/postgres/"
    # The web console's static files (npm run build), which api-backend serves at /.
    [[ -f console/dist/index.html ]] || die "console/dist is missing: run npm run build first"
    rm -rf "$STAGE_DIR/console"
    mkdir -p "$STAGE_DIR/console"
    cp -a console/dist "$STAGE_DIR/console/"
    if [[ -d "$STAGE_DIR/node_modules" && -d "$STAGE_DIR/api-backend/node_modules" && "$(cat "$STAGE_DIR/.deps-stamp" 2>/dev/null)" == "$stamp" ]]; then
        log "api-backend production dependencies unchanged"
        return 0
    fi
    log "staging api-backend production dependencies"
    rm -rf "$NPM_WORK_DIR"
    mkdir -p "$NPM_WORK_DIR"
    cp package.json package-lock.json "$NPM_WORK_DIR/"
    for ws in "${workspaces[@]}"; do
        mkdir -p "$NPM_WORK_DIR/$ws"
        cp "$ws/package.json" "$NPM_WORK_DIR/$ws/"
    done
    local npm_args=(--omit=dev --ignore-scripts --no-audit --no-fund --workspace @ctll/api-backend)
    if ! (cd "$NPM_WORK_DIR" && npm ci "${npm_args[@]}"); then
        warn "npm ci refused package-lock.json (out of sync with package.json); staging with npm install, which keeps the locked versions where they fit. Fix the lockfile."
        (cd "$NPM_WORK_DIR" && npm install "${npm_args[@]}") || die "could not install api-backend's production dependencies"
    fi
    # Our own workspaces are inlined in dist/main.js; their links would dangle in the image.
    rm -rf "$NPM_WORK_DIR/node_modules/@ctll" "$NPM_WORK_DIR/node_modules/.bin" "$NPM_WORK_DIR/api-backend/node_modules/.bin"
    # Same layout as the checkout: hoisted packages at the top, the versions only api-backend
    # uses (when another workspace needs a different one) in api-backend/node_modules.
    rm -rf "$STAGE_DIR/node_modules" "$STAGE_DIR/api-backend"
    mkdir -p "$STAGE_DIR/api-backend/node_modules"
    mv "$NPM_WORK_DIR/node_modules" "$STAGE_DIR/node_modules"
    if [[ -d "$NPM_WORK_DIR/api-backend/node_modules" ]]; then
        mv "$NPM_WORK_DIR/api-backend/node_modules" "$STAGE_DIR/api-backend/"
    fi
    touch "$STAGE_DIR/api-backend/node_modules/.keep"
    rm -rf "$NPM_WORK_DIR"
    printf '%s\n' "$stamp" > "$STAGE_DIR/.deps-stamp"
}

build_api_backend_image() {
    log "building the api-backend image $(env_get API_BACKEND_IMAGE)"
    compose build api-backend
}

# ----- 4. certificates and start ---------------------------------------------------------------

# True when certbot manages DOMAIN's certificate (its renewal config exists).
certbot_manages() { [[ -f "$LE_DIR/renewal/$1.conf" ]]; }

make_self_signed() {
    local domain="$1" live="$LE_DIR/live/$1"
    mkdir -p "$live"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
        -subj "/CN=$domain" -addext "subjectAltName=DNS:$domain" \
        -keyout "$live/privkey.pem" -out "$live/fullchain.pem" 2>/dev/null \
        || die "openssl could not make a self-signed certificate in $live"
    chmod 600 "$live/privkey.pem"
    touch "$live/.self-signed"
    log "made a self-signed certificate for $domain (so nginx can start)"
}

ensure_bootstrap_certificate() {
    local domain="$1"
    mkdir -p "$ACME_DIR" "$LE_DIR"
    certbot_manages "$domain" && return 0
    [[ -s "$LE_DIR/live/$domain/fullchain.pem" && -s "$LE_DIR/live/$domain/privkey.pem" ]] && return 0
    make_self_signed "$domain"
}

start_stack() {
    local before after nginx_before nginx_after
    before="$(compose ps -q api-backend 2>/dev/null || true)"
    nginx_before="$(compose ps -q nginx 2>/dev/null || true)"
    log "starting the stack (docker compose up -d)"
    compose up -d --no-build
    after="$(compose ps -q api-backend)"
    nginx_after="$(compose ps -q nginx)"
    # nginx resolves api-backend's address when it loads its config: a new api-backend container
    # may have a new address, so a surviving nginx reloads.
    if [[ -n "$before" && "$before" != "$after" && -n "$nginx_before" && "$nginx_before" == "$nginx_after" ]]; then
        reload_nginx
    fi
}

reload_nginx() {
    log "reloading nginx"
    # nginx -s reload re-reads the configuration and certificate first; on failure the running
    # nginx keeps serving what it has.
    compose exec -T nginx nginx -s reload \
        || die "nginx rejected its configuration or certificate (see above) and keeps serving the previous one"
}

# ----- 5. health -------------------------------------------------------------------------------

wait_for_health() {
    local domain="$1" deadline=$((SECONDS + HEALTH_TIMEOUT_S))
    log "waiting for https://$domain/health through nginx"
    until curl -fsS -k -o /dev/null --max-time 5 --resolve "$domain:443:127.0.0.1" "https://$domain/health" 2>/dev/null; do
        if ((SECONDS >= deadline)); then
            compose ps >&2 || true
            die "https://$domain/health did not answer within ${HEALTH_TIMEOUT_S}s; see: ${COMPOSE[*]} -f $COMPOSE_FILE logs api-backend nginx"
        fi
        sleep 3
    done
    log "healthy"
}

# ----- 6. Let's Encrypt ------------------------------------------------------------------------

request_certificate() {
    local domain="$1" email renewal="$LE_DIR/renewal/$1.conf"
    local args=(certonly --webroot -w /var/www/certbot -d "$domain" --agree-tos --no-eff-email --non-interactive --keep-until-expiring)
    if certbot_manages "$domain"; then
        if [[ $opt_staging -eq 0 ]] && grep -q 'acme-staging' "$renewal"; then
            log "replacing the staging certificate for $domain with a trusted one"
            args+=(--force-renewal)
        else
            log "certificate for $domain is managed by certbot (renewed automatically)"
            return 0
        fi
    fi
    email="$(env_get LETSENCRYPT_EMAIL)"
    [[ -n "$email" ]] || die "LETSENCRYPT_EMAIL is empty in .env"
    args+=(--email "$email")
    [[ $opt_staging -eq 1 ]] && args+=(--staging)

    # certbot refuses to write over a folder it did not create: the bootstrap certificate goes
    # (nginx keeps the copy it loaded) and comes back if certbot fails.
    if [[ -f "$LE_DIR/live/$domain/.self-signed" ]]; then
        rm -rf "${LE_DIR:?}/live/$domain"
    fi
    log "asking Let's Encrypt for a certificate for $domain$([[ $opt_staging -eq 1 ]] && echo ' (staging)')"
    if ! compose run --rm --no-deps --entrypoint certbot certbot "${args[@]}"; then
        certbot_manages "$domain" || make_self_signed "$domain"
        die "certbot failed (see above). The relay keeps running with its current certificate. Check that $domain points here and port 80 is reachable from the internet, then run ./deploy.sh again"
    fi
    reload_nginx
}

certificate_kind() {
    local domain="$1"
    if ! certbot_manages "$domain"; then
        if [[ -f "$LE_DIR/live/$domain/.self-signed" ]]; then echo "self-signed"; else echo "your own"; fi
    elif grep -q 'acme-staging' "$LE_DIR/renewal/$domain.conf"; then
        echo "Let's Encrypt staging (untrusted)"
    else
        echo "Let's Encrypt"
    fi
}

summary() {
    local domain="$1" c="${COMPOSE[*]} -f $COMPOSE_FILE"
    cat <<EOF

CloudToLocalLLM relay is running at https://$domain/
  certificate   $(certificate_kind "$domain"), in $LE_DIR/live/$domain/
  health        https://$domain/health        (details and /metrics: private, api-backend:9464 on the compose networks)
  desktop       npm run bridge -- --server https://$domain --token <jwt> --target http://127.0.0.1:11434
  settings      $ROOT/$ENV_FILE (secrets, mode 600; changes apply on the next ./deploy.sh)
  status        $c ps
  logs          $c logs -f api-backend    (proxy lifecycle: ... | grep StreamingProxy)
  stop          $c down                   (data stays in volumes and ./data)
EOF
}

main() {
    parse_args "$@"
    cd "$ROOT"
    [[ -f "$TEMPLATE" && -f "$COMPOSE_FILE" ]] || die "run deploy.sh from a checkout of the relay (missing $TEMPLATE or $COMPOSE_FILE)"

    check_tools
    ensure_env
    local domain
    domain="$(env_get DOMAIN)"
    [[ -n "$domain" ]] || die "DOMAIN is empty in .env"
    check_auth_configured
    check_docker_gid
    check_domain_resolves "$domain"
    check_ports_free

    build_bundles
    build_proxy_image
    stage_api_backend
    build_api_backend_image

    ensure_bootstrap_certificate "$domain"
    start_stack
    wait_for_health "$domain"
    if [[ $opt_certbot -eq 1 ]]; then
        request_certificate "$domain"
    fi
    summary "$domain"
}

# Sourcing the script (tests) defines the functions without running anything.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    main "$@"
fi
