#!/bin/sh
# One-shot after `migrate` (service db-grants, in the MariaDB image for its client): the
# least-privilege accounts of the services that are neither the owner nor the writer.
#
#   example_relay   SELECT on events; SELECT, INSERT, UPDATE on relay_checkpoints and
#                   on anchors (its anchor signer) (what event_store::relay::grant_relay
#                   grants)
#   example_webhooks  SELECT on events; SELECT, UPDATE on webhook_subscriptions (the
#                   deliverer records its progress; command-api makes the rows)
#   example_reader  SELECT on the whole database, for query-api: the read tables, events
#                   (audit) and data_keys (opening personal data). Database-level on
#                   purpose: `projector rebuild` swaps in freshly created read tables,
#                   and a table-level grant would not follow the new tables.
#
# Runs as the owner (GRANT OPTION on the database, CREATE USER). Idempotent: passwords
# are reset to the secrets' values on every run.
set -eu

secret() { head -n 1 "$1" | tr -d '\r\n'; }
host=${DB_HOST:-mariadb}
db=${LEDGER_DB_NAME:-example}
owner=${LEDGER_DB_OWNER:-example}
relay_password=$(secret /run/secrets/db-relay-password)
reader_password=$(secret /run/secrets/db-reader-password)
webhooks_password=$(secret /run/secrets/db-webhooks-password)
for p in "$relay_password" "$reader_password" "$webhooks_password"; do
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
CREATE USER IF NOT EXISTS 'example_reader'@'%' IDENTIFIED BY '$reader_password';
ALTER USER 'example_reader'@'%' IDENTIFIED BY '$reader_password';
GRANT SELECT ON \`$db\`.* TO 'example_reader'@'%';
SQL
echo "db-grants: example_relay, example_webhooks and example_reader ready on $host/$db"
