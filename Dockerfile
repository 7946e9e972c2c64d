# syntax=docker/dockerfile:1
# certgate container: multi-stage, non-root, production dependencies and dist/ only.
# Build:  docker build -t certgate .
# Run:    docker run -p 8443:8443 -v $PWD/config:/etc/certgate:ro -v $PWD/certs:/etc/certgate/certs:ro certgate
# Stop:   SIGTERM drains in-flight requests before exiting 0 (give it the drain time: docker stop -t 30).

FROM node:20.20.2-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production \
    CERTGATE_CONFIG=/etc/certgate/certgate.yaml
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER node
EXPOSE 8443 9090
VOLUME ["/etc/certgate"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9090/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["serve"]
