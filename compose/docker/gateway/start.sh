#!/bin/sh
# Start of the gateway container: render the shared templates into a writable prefix
# (compose/gateway/render.sh; GATEWAY_* from the environment), add the compose-only routes,
# then run nginx in the foreground as PID 1 (SIGQUIT from `docker stop` drains it).
#
#   GATEWAY_KEYCLOAK   host:port of Keycloak, served under /auth/ on the gateway's origin
#                      (unset: no /auth/ route)
#   GATEWAY_RESOLVER   DNS server for that route (Docker's embedded DNS by default)
#
# `start.sh --check` renders into a temporary prefix and runs `nginx -t` instead;
# `start.sh --render PREFIX` only renders (`cargo xtask ops-check` reads the result).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
templates=${GATEWAY_TEMPLATES:-$(cd "$here/.." && pwd)}
check=false
render_only=false
if [ "${1:-}" = "--render" ]; then
    render_only=true
    GATEWAY_PREFIX=$2
fi
if [ "${1:-}" = "--check" ]; then
    check=true
    GATEWAY_PREFIX=$(mktemp -d)
    trap 'rm -rf "$GATEWAY_PREFIX"' EXIT INT TERM
fi
prefix=${GATEWAY_PREFIX:-/var/run/gateway}
: "${GATEWAY_RESOLVER:=127.0.0.11}"

sh "$templates/render.sh" "$prefix"
if [ -n "${GATEWAY_KEYCLOAK:-}" ]; then
    sed -e "s|\${GATEWAY_KEYCLOAK}|$GATEWAY_KEYCLOAK|g" \
        -e "s|\${GATEWAY_RESOLVER}|$GATEWAY_RESOLVER|g" \
        "$here/keycloak.conf" >> "$prefix/conf/routes.conf"
fi

if $render_only; then
    echo "gateway (compose) config rendered into $prefix/conf"
elif $check; then
    "${NGINX:-nginx}" -t -q -p "$prefix" -c conf/nginx.conf -e stderr
    echo "gateway (compose) config valid"
else
    exec nginx -p "$prefix" -c conf/nginx.conf -e stderr -g 'daemon off;'
fi
