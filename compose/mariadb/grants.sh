#!/bin/sh
# One-shot after `migrate` (service db-grants, in the MariaDB image for its client): the
# least-privilege accounts of the services that are neither the owner nor the writer.
# The same grants as `cargo xtask migrate` (xtask/src/database.rs); `cargo xtask
# ops-check` compares the two.
#
#   example_relay      SELECT on events; SELECT, INSERT, UPDATE on relay_checkpoints and
#                      on anchors (its anchor signer) (what event_store::relay::grant_relay
#                      grants)
#   example_webhooks   SELECT on events; SELECT, UPDATE on webhook_subscriptions (the
#                      deliverer records its progress; command-api makes the rows)
#   example_projector  SELECT on events, parked_events and relay_checkpoints; SELECT,
#                      INSERT, UPDATE on users_view, balances_view, transactions_view,
#                      checkpoints and relay_epochs_seen. `projector rebuild`, `verify`
#                      and `park` run as the owner.
#   example_reader     SELECT on what query-api serves: the three view tables,
#                      checkpoints, events (audit, subscriptions), data_keys (opening
#                      personal data), anchors, and for the operations page
#                      relay_checkpoints and parked_events; never claims. Table grants
#                      name tables, so they follow the tables a rebuild renames into place.
#
# Runs as the owner (GRANT OPTION on the database, CREATE USER). Idempotent: passwords
# are reset to the secrets' values on every run. A database-wide grant an older version
# of this script gave the reader is revoked.
set -eu

secret() { head -n 1 "$1" | tr -d '\r\n'; }
host=${DB_HOST:-mariadb}
db=${LEDGER_DB_NAME:-example}
owner=${LEDGER_DB_OWNER:-example}
relay_password=$(secret /run/secrets/db-relay-password)
projector_password=$(secret /run/secrets/db-projector-password)
reader_password=$(secret /run/secrets/db-reader-password)
webhooks_password=$(secret /run/secrets/db-webhooks-password)
for p in "$relay_password" "$projector_password" "$reader_password" "$webhooks_password"; do
    case "$p" in "" | *[!A-Za-z0-9._~-]*)
        echo "db-grants: passwords must be non-empty and URL-safe ([A-Za-z0-9._~-])" >&2
        exit 65 ;;
    esac
done

MYSQL_PWD=$(secret /run/secrets/db-owner-password)
export MYSQL_PWD
mariadb --host="$host" --user="$owner" --batch "$db" <<SQL
CREATE USER IF NOT EXISTS 'example_relay'@'%' IDENTIFIED BY '$relay_password';
ALTER USER 'example_relay'@'%' IDENTIFIED BY '$relay_password';
GRANT SELECT ON \`$db\`.\`events\` TO 'example_relay'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`relay_checkpoints\` TO 'example_relay'@'%';
CREATE USER IF NOT EXISTS 'example_webhooks'@'%' IDENTIFIED BY '$webhooks_password';
ALTER USER 'example_webhooks'@'%' IDENTIFIED BY '$webhooks_password';
GRANT SELECT ON \`$db\`.\`events\` TO 'example_webhooks'@'%';
GRANT SELECT, UPDATE ON \`$db\`.\`webhook_subscriptions\` TO 'example_webhooks'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`anchors\` TO 'example_relay'@'%';
CREATE USER IF NOT EXISTS 'example_projector'@'%' IDENTIFIED BY '$projector_password';
ALTER USER 'example_projector'@'%' IDENTIFIED BY '$projector_password';
GRANT SELECT ON \`$db\`.\`events\` TO 'example_projector'@'%';
GRANT SELECT ON \`$db\`.\`parked_events\` TO 'example_projector'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`users_view\` TO 'example_projector'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`balances_view\` TO 'example_projector'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`transactions_view\` TO 'example_projector'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`checkpoints\` TO 'example_projector'@'%';
GRANT SELECT, INSERT, UPDATE ON \`$db\`.\`relay_epochs_seen\` TO 'example_projector'@'%';
GRANT SELECT ON \`$db\`.\`relay_checkpoints\` TO 'example_projector'@'%';
CREATE USER IF NOT EXISTS 'example_reader'@'%' IDENTIFIED BY '$reader_password';
ALTER USER 'example_reader'@'%' IDENTIFIED BY '$reader_password';
GRANT SELECT ON \`$db\`.\`users_view\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`balances_view\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`transactions_view\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`checkpoints\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`events\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`data_keys\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`anchors\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`relay_checkpoints\` TO 'example_reader'@'%';
GRANT SELECT ON \`$db\`.\`parked_events\` TO 'example_reader'@'%';
SQL
# An older version granted the reader SELECT on the whole database; take it back (the
# statement fails when there is nothing to revoke, which is fine).
mariadb --host="$host" --user="$owner" --batch "$db" \
    -e "REVOKE SELECT ON \`$db\`.* FROM 'example_reader'@'%'" 2>/dev/null || true
echo "db-grants: example_relay, example_webhooks, example_projector and example_reader ready on $host/$db"
