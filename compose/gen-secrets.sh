#!/bin/sh
# Makes the secrets a compose stack reads, into compose/secrets/ (git-ignored), for
# development and throw-away staging. A file that exists is kept, so re-running is safe
# and real secrets put there by hand are never replaced. compose/README.md lists each file.
#
#   sh compose/gen-secrets.sh [HOSTNAME]     (HOSTNAME of the self-signed gateway
#                                             certificate, default localhost)
#
# Passwords are 48 hex digits: URL-safe, so the images put them into connection URLs as
# they are. Needs openssl.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
dir=$here/secrets
host=${1:-localhost}
mkdir -p "$dir"
chmod 700 "$dir"
umask 022

made=0
# The files are bind-mounted into containers whose processes run as other users (mysql,
# nginx, rabbitmq, keycloak): they are world-readable inside a directory only the owner
# may enter, which is what protects them on the host.
make_secret() {
    name=$1
    shift
    if [ -e "$dir/$name" ]; then
        return 0
    fi
    "$@" > "$dir/$name.tmp"
    mv "$dir/$name.tmp" "$dir/$name"
    made=$((made + 1))
    echo "made secrets/$name"
}
password() { openssl rand -hex 24; }
key32() { openssl rand -base64 32; }

for name in mariadb-root-password db-owner-password db-writer-password db-relay-password \
    db-projector-password db-reader-password db-webhooks-password db-replication-password keycloak-db-password amqp-password \
    amqp-relay-password amqp-projector-password amqp-subscriber-password \
    keycloak-admin-password keycloak-service-client-secret grafana-admin-password \
    elastic-password rabbitmq-erlang-cookie; do
    make_secret "$name" password
done

# file_key_management: `<key id>;<hex key>`; key 1 encrypts everything by default.
make_secret mariadb-encryption-keys sh -c 'printf "1;%s\n" "$(openssl rand -hex 32)"'
# command-api and query-api: master keys `version:base64` (highest version wraps new
# data keys) and the e-mail blind-index key (32 bytes, base64).
make_secret master-keys sh -c "printf '1:%s\n' \"\$(openssl rand -base64 32)\""
make_secret blind-index-key key32
# The relay's anchor signer: an Ed25519 key (PKCS#8 PEM), and the anchors' JWKS with its
# public half (kid = the RFC 7638 thumbprint) that query-api serves. A rotation adds a
# key to the JWKS and replaces the key file (docs/runbook.md, rotating the anchor key).
make_secret anchor-signing-key.pem openssl genpkey -algorithm ed25519
make_secret anchor-jwks.json sh -c "
    x=\$(openssl pkey -in '$dir/anchor-signing-key.pem' -pubout -outform DER | tail -c 32 \
        | openssl base64 -A | tr '+/' '-_' | tr -d '=')
    kid=\$(printf '{\"crv\":\"Ed25519\",\"kty\":\"OKP\",\"x\":\"%s\"}' \"\$x\" \
        | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
    printf '{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"EdDSA\"}]}\n' \"\$x\" \"\$kid\""
# Fluent Bit takes its Elasticsearch password as a config line it includes (its image
# has no shell to read a plain file with).
make_secret fluent-bit-elastic.conf sh -c "printf '@SET ELASTIC_PASSWORD=%s\n' \"\$(cat '$dir/elastic-password')\""

if [ ! -e "$dir/gateway-tls.crt" ] || [ ! -e "$dir/gateway-tls.key" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$host" \
        -addext "subjectAltName=DNS:$host,DNS:localhost,IP:127.0.0.1" \
        -keyout "$dir/gateway-tls.key" -out "$dir/gateway-tls.crt" 2>/dev/null
    chmod 644 "$dir/gateway-tls.key"
    made=$((made + 1))
    echo "made secrets/gateway-tls.crt and gateway-tls.key (self-signed for $host)"
fi

# Development sign-in: one person per role in the ledger realm (imported with the realm
# by compose.dev.yaml only). The passwords are printed once, here.
if [ ! -e "$dir/keycloak-dev-users.json" ]; then
    users=""
    for role in admin user service auditor; do
        pw=$(openssl rand -hex 8)
        users="$users${users:+,}
    {\"username\": \"dev-$role\", \"email\": \"dev-$role@example.com\", \"emailVerified\": true,
     \"firstName\": \"Dev\", \"lastName\": \"$role\", \"enabled\": true, \"realmRoles\": [\"$role\"],
     \"credentials\": [{\"type\": \"password\", \"value\": \"$pw\", \"temporary\": false}]}"
        echo "dev sign-in: dev-$role / $pw"
    done
    printf '{"realm": "ledger", "users": [%s\n]}\n' "$users" > "$dir/keycloak-dev-users.json"
    made=$((made + 1))
fi
echo "compose/secrets: $made new, the rest kept"
