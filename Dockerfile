# syntax=docker/dockerfile:1
# certgate container: multi-stage; the runtime stage holds production dependencies and dist/ only,
# runs as a non-root numeric user, and never contains a key or certificate (mount them).
#
# Build:  docker build -t certgate:0.1.0 .
# Run:    docker run --rm -p 8443:8443 -v /srv/certgate:/etc/certgate:ro certgate:0.1.0
#         (/srv/certgate holds certgate.yaml, listen: 0.0.0.0:8443, and the PEM files it names);
#         with an app: docker compose -f examples/docker/compose.yaml up --build
# Check:  docker run --rm -v /srv/certgate:/etc/certgate:ro certgate:0.1.0 check --config /etc/certgate/certgate.yaml
# Reload: docker kill -s HUP <container>   (or just replace the mounted files: certgate watches them)
# Stop:   SIGTERM (docker stop) drains in-flight requests for up to shutdown.drain_timeout_ms (25 s by
#         default), then exits 0. Docker's default stop timeout is 10 s: use `docker stop -t 30`
#         (compose: stop_grace_period: 30s) so the drain is not cut short by SIGKILL.
# Keys:   the mounted private key must not be world-readable (certgate refuses it, CG_KEY_PERMISSIONS);
#         uid 1000 must be able to read it: chmod 640 + chgrp 1000, or 600 + chown 1000.

# Pinned by version: Node 26 (Active LTS), Debian trixie slim, the exact version CI runs the suite on
# (.ci/run EXTRA_NODES; test/e2e/deploy.test.ts checks they agree). Bump both stages and .ci/run together.
FROM node:26.12.1-trixie-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# No install scripts: nothing certgate depends on needs one, and it keeps the build hermetic.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:26.12.1-trixie-slim
LABEL org.opencontainers.image.title="certgate" \
      org.opencontainers.image.description="mTLS-terminating reverse proxy that forwards verified client identity as headers" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production \
    CERTGATE_CONFIG=/etc/certgate/certgate.yaml \
    CERTGATE_HEALTH_URL=http://127.0.0.1:9090/healthz
WORKDIR /app
# Owned by root and not writable by the runtime user: the process cannot modify its own code.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# 1000 is the image's `node` user. Numeric, so Kubernetes' runAsNonRoot can verify it without runAsUser.
USER 1000:1000
EXPOSE 8443 9090
# The config (certgate.yaml) and the TLS material it names are mounted here, read-only.
VOLUME ["/etc/certgate"]
# certgate handles SIGTERM itself (stop accepting, /readyz 503, drain, exit 0), also as PID 1.
STOPSIGNAL SIGTERM
# /healthz on the admin listener (admin.listen; loopback inside the container is enough). It stays open
# when admin.token_file is set. Set CERTGATE_HEALTH_URL if the admin listener is elsewhere.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch(process.env.CERTGATE_HEALTH_URL,{signal:AbortSignal.timeout(2500)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve"]
