#!/bin/sh
# Entry point of the Rust service images: puts passwords from mounted secret files into
# the connection URLs the services read, then runs the command (`exec`, so the service is
# PID 1 and gets SIGTERM from `docker stop` directly).
#
# For each URL variable below, when <NAME>_PASSWORD_FILE is set, the first line of that
# file becomes the password of the URL's user:
#
#   DATABASE_URL=mysql://example_writer@mariadb:3306/example
#   DATABASE_PASSWORD_FILE=/run/secrets/db-writer-password
#     -> DATABASE_URL=mysql://example_writer:<password>@mariadb:3306/example
#
#   DATABASE_URL         DATABASE_PASSWORD_FILE
#   EVENTS_DATABASE_URL  EVENTS_DATABASE_PASSWORD_FILE   (query-api)
#   WRITER_DATABASE_URL  WRITER_DATABASE_PASSWORD_FILE   (migrate)
#   RELAY_DATABASE_URL, PROJECTOR_DATABASE_URL, READER_DATABASE_URL with their
#   *_PASSWORD_FILE                                      (migrate: the service accounts)
#   AMQP_URL             AMQP_PASSWORD_FILE
#
# Passwords must be URL-safe as they are ([A-Za-z0-9._~-]; compose/gen-secrets.sh makes
# such): anything else is refused rather than silently mangled. The keys the services read
# from files themselves (MASTER_KEYS_FILE, BLIND_INDEX_KEY_FILE, JWKS_FILE) pass through.
set -eu

with_password() {
    url_var=$1
    file_var=$2
    eval "file=\${$file_var:-}"
    [ -n "$file" ] || return 0
    eval "url=\${$url_var:-}"
    if [ -z "$url" ]; then
        echo "entrypoint: $file_var is set but $url_var is not" >&2
        exit 64
    fi
    if [ ! -r "$file" ]; then
        echo "entrypoint: $file_var: cannot read $file" >&2
        exit 66
    fi
    password=$(head -n 1 "$file" | tr -d '\r\n')
    case "$password" in
        "" | *[!A-Za-z0-9._~-]*)
            echo "entrypoint: the password in $file is empty or not URL-safe ([A-Za-z0-9._~-])" >&2
            exit 65
            ;;
    esac
    case "$url" in
        *://*:*@*)
            echo "entrypoint: $url_var already holds a password; unset $file_var or drop it" >&2
            exit 64
            ;;
        *://*@*) ;;
        *)
            echo "entrypoint: $url_var must name a user (scheme://user@host/...)" >&2
            exit 64
            ;;
    esac
    url=$(printf '%s' "$url" | sed "s|^\([a-z][a-z0-9+.-]*://[^:@/]*\)@|\1:$password@|")
    export "$url_var=$url"
    unset "$file_var"
}

with_password DATABASE_URL DATABASE_PASSWORD_FILE
with_password EVENTS_DATABASE_URL EVENTS_DATABASE_PASSWORD_FILE
with_password WRITER_DATABASE_URL WRITER_DATABASE_PASSWORD_FILE
with_password RELAY_DATABASE_URL RELAY_DATABASE_PASSWORD_FILE
with_password PROJECTOR_DATABASE_URL PROJECTOR_DATABASE_PASSWORD_FILE
with_password READER_DATABASE_URL READER_DATABASE_PASSWORD_FILE
with_password AMQP_URL AMQP_PASSWORD_FILE

exec "$@"
