# sluice worker image, from the same build as the npm package (npm run build: src compiled to
# dist/ with source maps, the Kafka client bundled into vendor/; Node does not strip types under
# node_modules, and compiled code starts faster than type stripping at run time).
FROM node:24-bookworm-slim AS build
WORKDIR /build
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund
COPY src ./src
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json && node scripts/bundle-kafka-client.ts

FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /build/dist ./dist
COPY --from=build /build/vendor ./vendor
COPY config ./config
# everything sluice writes (the audit log, the Sparkplug state, a file sink's file): mount a
# persistent volume here (docker-compose.yml does)
RUN mkdir -p /var/lib/sluice && chown node:node /var/lib/sluice
VOLUME /var/lib/sluice
USER node
# /metrics, /healthz, /readyz (config/sluice.container.yaml listens on every interface)
EXPOSE 9464
# --max-semi-space-size, --heap-growing-percent, --no-allocation-site-pretenuring, --no-maglev,
# --no-parallel-scavenge: the young generation bounded, the old one collected at twice the live
# heap, short-lived objects kept young, no mid-tier compiler (~20 MiB less at a few % more CPU),
# young collections on the main thread alone (no helper threads competing with it for the pod's
# CPU), as by the `sluice` command's first line (docs/operations.md, Memory); kafkajs 2.2.4 sets
# a negative timeout in its request queue (harmless, clamped to 1 ms)
ENTRYPOINT ["node", "--max-semi-space-size=4", "--heap-growing-percent=100", "--no-allocation-site-pretenuring", "--no-maglev", "--no-parallel-scavenge", "--enable-source-maps", "--disable-warning=TimeoutNegativeWarning", "dist/cli.js"]
# the servers' addresses from SLUICE_MQTT_URL, SLUICE_KAFKA_BROKERS, SLUICE_INFLUX_URL (see the file)
CMD ["run", "--config", "config/sluice.container.yaml"]
