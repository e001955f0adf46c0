#!/bin/sh
# Validate the gateway configuration with `nginx -t`: once plain, once with TLS (using a
# throw-away self-signed certificate). Exits non-zero when nginx rejects either.
#
#   sh compose/gateway/check.sh
#
# Needs nginx (Debian: apt-get install -y nginx) and, for the TLS case, openssl. The
# rendered files go to a temporary prefix that is removed afterwards; the settings of
# render.sh (GATEWAY_*) apply, so a deployment's values can be checked the same way.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
NGINX=${NGINX:-nginx}
if ! command -v "$NGINX" >/dev/null 2>&1; then
    echo "check.sh: nginx not found (apt-get install -y nginx)" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# nginx -t only needs the root to exist; an empty one stands in for an unbuilt ui/dist.
: "${GATEWAY_UI_ROOT:=$work/ui-dist}"
export GATEWAY_UI_ROOT
mkdir -p "$GATEWAY_UI_ROOT"

echo "== plain HTTP"
(unset GATEWAY_TLS_CERT GATEWAY_TLS_KEY; sh "$here/render.sh" "$work/plain")
"$NGINX" -t -q -p "$work/plain" -c conf/nginx.conf -e stderr
echo "ok"

echo "== with TLS"
if command -v openssl >/dev/null 2>&1; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
        -keyout "$work/key.pem" -out "$work/cert.pem" >/dev/null 2>&1
    GATEWAY_TLS_CERT="$work/cert.pem" GATEWAY_TLS_KEY="$work/key.pem" \
        sh "$here/render.sh" "$work/tls"
    "$NGINX" -t -q -p "$work/tls" -c conf/nginx.conf -e stderr
    echo "ok"
else
    echo "skipped: openssl not found"
fi
echo "gateway config valid"
