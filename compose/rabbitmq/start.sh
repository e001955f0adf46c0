#!/bin/sh
# Start of a RabbitMQ container: the ledger's broker user from the amqp-password secret
# (RabbitMQ 3.10 reads RABBITMQ_DEFAULT_USER/PASS itself; the image's *_FILE variables
# are gone since 3.9), the Erlang cookie from a secret when clustering, then the image's
# own entrypoint (which drops to the rabbitmq user).
set -eu
RABBITMQ_DEFAULT_PASS=$(head -n 1 /run/secrets/amqp-password | tr -d '\r\n')
export RABBITMQ_DEFAULT_PASS
if [ -r /run/secrets/rabbitmq-erlang-cookie ]; then
    install -m 0400 -o rabbitmq -g rabbitmq /run/secrets/rabbitmq-erlang-cookie \
        /var/lib/rabbitmq/.erlang.cookie
fi
exec docker-entrypoint.sh rabbitmq-server
