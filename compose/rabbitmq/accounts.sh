#!/bin/sh
# One shot after RabbitMQ is healthy (service broker-accounts, in the RabbitMQ image for
# its rabbitmqadmin): the relay's and the projector's own broker accounts, and the one
# downstream subscribers get, each with
# exactly the rights event_store::relay::Topology gives it (ADR 0014), made through the
# management API as the administrator `ledger`.
#
#   example_relay      configure and write on the four names of the topology; read on
#                      the two exchanges and on queue.example.events (RabbitMQ requires
#                      that much to declare a queue's dead-lettering): it declares the
#                      topology and publishes to example.events
#   example_projector  read on queue.example.events, nothing else: it consumes, and can
#                      neither publish nor declare
#   example_subscriber configure, write and read on queues named subscriber.*, read on
#                      example.events (to bind them to it): a downstream consumer's own
#                      queues; it may publish to no exchange and never reads
#                      queue.example.events
#
# `cargo xtask ops-check` checks that the rights below are the code's. Idempotent:
# passwords are reset to the secrets' values on every run.
set -eu

secret() { head -n 1 "$1" | tr -d '\r\n'; }
host=${RABBITMQ_HOST:-rabbitmq}
vhost=${RABBITMQ_VHOST:-/}
admin_password=$(secret /run/secrets/amqp-password)
relay_password=$(secret /run/secrets/amqp-relay-password)
projector_password=$(secret /run/secrets/amqp-projector-password)
subscriber_password=$(secret /run/secrets/amqp-subscriber-password)
for p in "$relay_password" "$projector_password" "$subscriber_password"; do
    case "$p" in "" | *[!A-Za-z0-9._~-]*)
        echo "broker-accounts: passwords must be non-empty and URL-safe ([A-Za-z0-9._~-])" >&2
        exit 65 ;;
    esac
done

api() { rabbitmqadmin --host="$host" --username=ledger --password="$admin_password" "$@"; }

# The management API answers a little after the AMQP port that the health check probes.
tries=0
until api list vhosts >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ "$tries" -ge 60 ]; then
        echo "broker-accounts: the management API on $host does not answer" >&2
        exit 69
    fi
    sleep 2
done

api declare user name=example_relay password="$relay_password" tags=
api declare permission vhost="$vhost" user=example_relay \
    configure='^(example\.events|example\.events\.dlx|queue\.example\.events|queue\.example\.events\.dead)$' \
    write='^(example\.events|example\.events\.dlx|queue\.example\.events|queue\.example\.events\.dead)$' \
    read='^(example\.events|example\.events\.dlx|queue\.example\.events)$'
api declare user name=example_projector password="$projector_password" tags=
api declare permission vhost="$vhost" user=example_projector \
    configure='^$' \
    write='^$' \
    read='^(queue\.example\.events)$'
api declare user name=example_subscriber password="$subscriber_password" tags=
api declare permission vhost="$vhost" user=example_subscriber \
    configure='^subscriber\..*$' \
    write='^subscriber\..*$' \
    read='^(subscriber\..*|example\.events)$'
echo "broker-accounts: example_relay, example_projector and example_subscriber ready on $host, vhost $vhost"
