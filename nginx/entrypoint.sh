#!/bin/sh
# Entrypoint of the nginx service in docker-compose.production.yml.
#
# It hands over to the official image's /docker-entrypoint.sh (which renders
# /etc/nginx/templates/*.template into conf.d/ and then runs nginx), and keeps one small
# background loop: every CERT_CHECK_SECONDS it compares the certificate's checksum with the one
# nginx loaded and, when certbot has renewed it, tells nginx to reload. A renewal therefore needs no
# restart, and nginx is never reloaded for nothing (a reload keeps old workers alive until their
# WebSocket tunnels close).
set -eu

cert="${CERT_DIR:?CERT_DIR must be set}/fullchain.pem"
interval="${CERT_CHECK_SECONDS:-21600}"

(
    loaded=$(cksum < "$cert" 2>/dev/null || true)
    while sleep "$interval"; do
        current=$(cksum < "$cert" 2>/dev/null || true)
        if [ -n "$current" ] && [ "$current" != "$loaded" ]; then
            echo "ctll-entrypoint: certificate changed, reloading nginx"
            if nginx -s reload; then
                loaded=$current
            fi
        fi
    done
) &

exec /docker-entrypoint.sh "$@"
