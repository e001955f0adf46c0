#!/bin/bash
# Start of the Keycloak container: secrets from files into the variables Keycloak reads
# (it has no *_FILE variables), then kc.sh with the compose command's arguments. Bash
# builtins only: the image is ubi-micro.
#
#   /run/secrets/keycloak-admin-password          KC_BOOTSTRAP_ADMIN_PASSWORD (first start)
#   /run/secrets/keycloak-db-password             KC_DB_PASSWORD
#   /run/secrets/keycloak-service-client-secret   LEDGER_SERVICE_CLIENT_SECRET, the
#                                                 ${...} placeholder in ledger-realm.json
set -euo pipefail

load() {
    local var=$1 file=$2 value=
    [ -r "$file" ] || { echo "keycloak: missing secret $file" >&2; exit 66; }
    IFS= read -r value < "$file" || [ -n "$value" ]
    export "$var=$value"
}

load KC_BOOTSTRAP_ADMIN_PASSWORD /run/secrets/keycloak-admin-password
load KC_DB_PASSWORD /run/secrets/keycloak-db-password
load LEDGER_SERVICE_CLIENT_SECRET /run/secrets/keycloak-service-client-secret
exec /opt/keycloak/bin/kc.sh "$@"
