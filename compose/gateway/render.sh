#!/bin/sh
# Render the gateway's nginx configuration into a writable prefix.
#
#   sh compose/gateway/render.sh PREFIX
#   nginx -p PREFIX -c conf/nginx.conf -e stderr -g 'daemon off;'
#
# Writes PREFIX/conf/{nginx.conf,routes.conf,proxy.conf}, PREFIX/conf/tls.d/ (tls.conf
# rendered there only when GATEWAY_TLS_CERT and GATEWAY_TLS_KEY are both set) and creates
# PREFIX/tmp/ for nginx's temp files. Only the ${GATEWAY_*} names listed below are
# replaced; nginx's own $variables are untouched. POSIX sh + sed only, so the same script
# runs in the dev stack and in the nginx container image.
#
# Settings (environment) and their dev defaults:
#   GATEWAY_LISTEN        127.0.0.1:8080
#   GATEWAY_COMMAND_API   127.0.0.1:8081          (host:port of command-api)
#   GATEWAY_QUERY_API     127.0.0.1:8082          (host:port of query-api)
#   GATEWAY_UI_ROOT       <repo>/ui/dist          (absolute path of the built UI)
#   GATEWAY_RATE_LIMIT    50r/s                   (per client address)
#   GATEWAY_RATE_BURST    200
#   GATEWAY_TLS_LISTEN    127.0.0.1:8443          (only with TLS)
#   GATEWAY_TLS_CERT      (unset: TLS off)        absolute path, PEM chain
#   GATEWAY_TLS_KEY       (unset: TLS off)        absolute path, PEM key
#   GATEWAY_OIDC_ISSUER   (unset: dev sign-in only) the identity provider's issuer URL;
#                         served to the UI in /config.json and allowed in CSP connect-src
#   GATEWAY_OIDC_CLIENT_ID ledger-ui
#   GATEWAY_OIDC_SCOPE    openid
#   GATEWAY_DEV_TOKENS    false                   (true: route /dev/token, dev stack only)
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 PREFIX" >&2
    exit 2
fi

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
prefix=$1
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)

: "${GATEWAY_LISTEN:=127.0.0.1:8080}"
: "${GATEWAY_COMMAND_API:=127.0.0.1:8081}"
: "${GATEWAY_QUERY_API:=127.0.0.1:8082}"
: "${GATEWAY_UI_ROOT:=$repo/ui/dist}"
: "${GATEWAY_RATE_LIMIT:=50r/s}"
: "${GATEWAY_RATE_BURST:=200}"
: "${GATEWAY_TLS_LISTEN:=127.0.0.1:8443}"
: "${GATEWAY_TLS_CERT:=}"
: "${GATEWAY_TLS_KEY:=}"
: "${GATEWAY_OIDC_ISSUER:=}"
: "${GATEWAY_OIDC_CLIENT_ID:=ledger-ui}"
: "${GATEWAY_OIDC_SCOPE:=openid}"
: "${GATEWAY_DEV_TOKENS:=false}"

case "$GATEWAY_UI_ROOT" in
    /*) ;;
    *) echo "GATEWAY_UI_ROOT must be an absolute path: $GATEWAY_UI_ROOT" >&2; exit 2 ;;
esac
if { [ -n "$GATEWAY_TLS_CERT" ] && [ -z "$GATEWAY_TLS_KEY" ]; } ||
   { [ -z "$GATEWAY_TLS_CERT" ] && [ -n "$GATEWAY_TLS_KEY" ]; }; then
    echo "set both GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, or neither" >&2
    exit 2
fi

# The UI's runtime config (/config.json) and the origins its scripts may fetch from. The
# values end up inside an nginx string and a JSON string: only URL-safe characters pass.
if [ -n "$GATEWAY_OIDC_ISSUER" ]; then
    if ! printf '%s' "$GATEWAY_OIDC_ISSUER" | grep -Eq '^https?://[A-Za-z0-9._~:/?#@!&()*+,;=%-]+$'; then
        echo "GATEWAY_OIDC_ISSUER must be an http(s) URL without quotes, spaces, \$ or braces: $GATEWAY_OIDC_ISSUER" >&2
        exit 2
    fi
    for v in "$GATEWAY_OIDC_CLIENT_ID" "$GATEWAY_OIDC_SCOPE"; do
        if ! printf '%s' "$v" | grep -Eq '^[A-Za-z0-9._:/ -]+$'; then
            echo "GATEWAY_OIDC_CLIENT_ID and GATEWAY_OIDC_SCOPE take letters, digits, spaces and ._:/- only: $v" >&2
            exit 2
        fi
    done
    oidc_origin=$(printf '%s' "$GATEWAY_OIDC_ISSUER" | sed -E 's#^(https?://[^/?#]+).*#\1#')
    GATEWAY_UI_CONFIG="{\"oidc\":{\"issuer\":\"$GATEWAY_OIDC_ISSUER\",\"client_id\":\"$GATEWAY_OIDC_CLIENT_ID\",\"scope\":\"$GATEWAY_OIDC_SCOPE\"}}"
    GATEWAY_CSP_CONNECT_SRC="'self' $oidc_origin"
else
    GATEWAY_UI_CONFIG="{}"
    GATEWAY_CSP_CONNECT_SRC="'self'"
fi

# sed replacement text: escape the delimiter, '&' and backslashes.
esc() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

render() {
    sed \
        -e "s|\${GATEWAY_LISTEN}|$(esc "$GATEWAY_LISTEN")|g" \
        -e "s|\${GATEWAY_COMMAND_API}|$(esc "$GATEWAY_COMMAND_API")|g" \
        -e "s|\${GATEWAY_QUERY_API}|$(esc "$GATEWAY_QUERY_API")|g" \
        -e "s|\${GATEWAY_UI_ROOT}|$(esc "$GATEWAY_UI_ROOT")|g" \
        -e "s|\${GATEWAY_RATE_LIMIT}|$(esc "$GATEWAY_RATE_LIMIT")|g" \
        -e "s|\${GATEWAY_RATE_BURST}|$(esc "$GATEWAY_RATE_BURST")|g" \
        -e "s|\${GATEWAY_TLS_LISTEN}|$(esc "$GATEWAY_TLS_LISTEN")|g" \
        -e "s|\${GATEWAY_TLS_CERT}|$(esc "$GATEWAY_TLS_CERT")|g" \
        -e "s|\${GATEWAY_TLS_KEY}|$(esc "$GATEWAY_TLS_KEY")|g" \
        -e "s|\${GATEWAY_UI_CONFIG}|$(esc "$GATEWAY_UI_CONFIG")|g" \
        -e "s|\${GATEWAY_CSP_CONNECT_SRC}|$(esc "$GATEWAY_CSP_CONNECT_SRC")|g" \
        "$1" > "$2"
    if grep -nE '\$\{GATEWAY_[A-Z_]+\}' "$2" >&2; then
        echo "unreplaced placeholder in $2" >&2
        exit 1
    fi
}

mkdir -p "$prefix/conf/tls.d" "$prefix/tmp"
for f in nginx.conf routes.conf proxy.conf security_headers.conf; do
    render "$here/$f" "$prefix/conf/$f"
done
# /dev/token only where dev tokens are meant to be (the dev stack).
if [ "$GATEWAY_DEV_TOKENS" = "true" ]; then
    render "$here/dev.conf" "$prefix/conf/dev.conf"
    cat "$prefix/conf/dev.conf" >> "$prefix/conf/routes.conf"
    rm -f "$prefix/conf/dev.conf"
fi
rm -f "$prefix/conf/tls.d/tls.conf"
if [ -n "$GATEWAY_TLS_CERT" ]; then
    render "$here/tls.conf" "$prefix/conf/tls.d/tls.conf"
fi
echo "rendered gateway config into $prefix/conf (TLS $( [ -n "$GATEWAY_TLS_CERT" ] && echo on || echo off ), OpenID Connect $( [ -n "$GATEWAY_OIDC_ISSUER" ] && echo "$GATEWAY_OIDC_ISSUER" || echo off ))"
