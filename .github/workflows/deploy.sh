#!/bin/sh
# Deploys this commit's images to one host of a GitHub environment (ci.yml's deploy
# jobs): copies compose/ (never compose/secrets/, which the host keeps) and runs
# `docker compose up --wait` there with the base file and $OVERRIDE.
#
# Environment: DEPLOY_HOST, DEPLOY_USER, DEPLOY_PATH (the compose directory on the host),
# DEPLOY_SSH_KEY, DEPLOY_KNOWN_HOSTS, LEDGER_ORIGIN, OVERRIDE, and GitHub's
# GITHUB_SHA and GITHUB_REPOSITORY_OWNER.
set -eu
: "${DEPLOY_HOST:?}" "${DEPLOY_USER:?}" "${DEPLOY_PATH:?}" "${DEPLOY_SSH_KEY:?}"
: "${DEPLOY_KNOWN_HOSTS:?}" "${LEDGER_ORIGIN:?}" "${OVERRIDE:?}" "${GITHUB_SHA:?}"
owner=$(printf '%s' "${GITHUB_REPOSITORY_OWNER:?}" | tr '[:upper:]' '[:lower:]')

ssh_dir=$(mktemp -d)
trap 'rm -rf "$ssh_dir"' EXIT
printf '%s\n' "$DEPLOY_SSH_KEY" > "$ssh_dir/key"
printf '%s\n' "$DEPLOY_KNOWN_HOSTS" > "$ssh_dir/known_hosts"
chmod 600 "$ssh_dir/key"
ssh_opts="-i $ssh_dir/key -o UserKnownHostsFile=$ssh_dir/known_hosts -o StrictHostKeyChecking=yes"
target="$DEPLOY_USER@$DEPLOY_HOST"

tar -C compose --exclude=./secrets -cf - . |
    ssh $ssh_opts "$target" "mkdir -p '$DEPLOY_PATH' && tar -C '$DEPLOY_PATH' -xf -"
ssh $ssh_opts "$target" \
    "cd '$DEPLOY_PATH' && \
     export LEDGER_IMAGE_PREFIX='ghcr.io/$owner/ledger' LEDGER_TAG='$GITHUB_SHA' LEDGER_ORIGIN='$LEDGER_ORIGIN' && \
     docker compose -f compose.yaml -f '$OVERRIDE' pull --quiet && \
     docker compose -f compose.yaml -f '$OVERRIDE' up -d --wait --remove-orphans"
echo "deployed $GITHUB_SHA to $DEPLOY_HOST with $OVERRIDE"
