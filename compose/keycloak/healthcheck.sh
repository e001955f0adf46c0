#!/bin/bash
# Keycloak's readiness on its management port (KC_HEALTH_ENABLED=true), through bash's
# /dev/tcp: the image has no curl.
set -euo pipefail
exec 3<>/dev/tcp/127.0.0.1/9000
printf 'GET /health/ready HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
read -r _ status _ <&3
[[ $status == 200 ]]
