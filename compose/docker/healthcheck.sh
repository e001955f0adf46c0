#!/bin/bash
# healthcheck PORT [PATH]: exit 0 when GET http://127.0.0.1:PORT/PATH (default
# /health/ready) answers 2xx. Uses bash's /dev/tcp, so the runtime image needs no HTTP
# client; Docker's HEALTHCHECK --timeout bounds the wait.
set -euo pipefail
port=${1:?usage: healthcheck PORT [PATH]}
path=${2:-/health/ready}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' "$path" >&3
read -r _ status _ <&3
[[ $status == 2[0-9][0-9] ]]
