#!/bin/bash
# Runs once, when the MariaDB container initialises an empty data directory (the image
# sources every *.sh in /docker-entrypoint-initdb.d/ as root on a local socket).
#
# Creates what `cargo xtask dev` makes with MariaDB's root in development
# (xtask/src/database.rs, prepare_test_account): the owner account that runs the
# migrations, with everything on the ledger database, GRANT OPTION on it and CREATE USER
# (to provision the writer, relay and reader accounts). The database, migrations and
# writer come from the `migrate` service; the relay and reader accounts from `db-grants`.
# Also Keycloak's own database and account.
set -euo pipefail

secret() {
    local value
    IFS= read -r value < "$1" || [ -n "$value" ]
    printf '%s' "$value"
}
sql_string() {
    local s=${1//\\/\\\\}
    printf "'%s'" "${s//\'/\\\'}"
}

db=${LEDGER_DB_NAME:-example}
owner=${LEDGER_DB_OWNER:-example}
owner_password=$(sql_string "$(secret /run/secrets/db-owner-password)")

docker_process_sql <<SQL
CREATE USER IF NOT EXISTS '${owner}'@'%' IDENTIFIED BY ${owner_password};
GRANT ALL PRIVILEGES ON \`${db}\`.* TO '${owner}'@'%' WITH GRANT OPTION;
GRANT CREATE USER ON *.* TO '${owner}'@'%';
SQL

if [ -r /run/secrets/keycloak-db-password ]; then
    keycloak_password=$(sql_string "$(secret /run/secrets/keycloak-db-password)")
    docker_process_sql <<SQL
CREATE DATABASE IF NOT EXISTS keycloak CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'keycloak'@'%' IDENTIFIED BY ${keycloak_password};
GRANT ALL PRIVILEGES ON keycloak.* TO 'keycloak'@'%';
SQL
fi
echo "ledger: created the owner account ${owner} for database ${db}"
