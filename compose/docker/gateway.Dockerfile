# syntax=docker/dockerfile:1.7
#
# The gateway with the UI: the React build from ui/, served by nginx with the shared
# templates of compose/gateway/ (rendered by render.sh at start, so TLS paths and upstreams
# come from the environment). Build from the repository root:
#
#   docker build -f compose/docker/gateway.Dockerfile -t ledger/gateway .

ARG NODE_VERSION=20
ARG NGINX_VERSION=1.27

FROM node:${NODE_VERSION}-bookworm-slim AS ui
WORKDIR /ui
# Dependencies first: this layer stays cached until the lock file changes.
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
RUN npm run build

FROM nginx:${NGINX_VERSION}-alpine
# nginx runs as the image's unprivileged `nginx` user (uid 101): the config has no `user`
# directive, listens on ports above 1024 and keeps its pid and temp files in the prefix.
RUN mkdir -p /etc/gateway/compose /var/run/gateway \
 && chown nginx:nginx /var/run/gateway
COPY compose/gateway/nginx.conf compose/gateway/routes.conf compose/gateway/proxy.conf \
     compose/gateway/tls.conf compose/gateway/render.sh /etc/gateway/
COPY compose/docker/gateway/ /etc/gateway/compose/
COPY --from=ui /ui/dist /srv/ui
ENV GATEWAY_PREFIX=/var/run/gateway \
    GATEWAY_LISTEN=0.0.0.0:8080 \
    GATEWAY_TLS_LISTEN=0.0.0.0:8443 \
    GATEWAY_COMMAND_API=command-api:8081 \
    GATEWAY_QUERY_API=query-api:8082 \
    GATEWAY_UI_ROOT=/srv/ui
USER nginx
EXPOSE 8080 8443
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8080/gateway/health"]
ENTRYPOINT ["/bin/sh", "/etc/gateway/compose/start.sh"]
