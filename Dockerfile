# sluice worker image. Node 24 runs the TypeScript sources directly; no build step.
FROM node:24-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY src ./src
COPY config ./config
# the audit log's directory (mount a volume here: see docker-compose.yml)
RUN mkdir -p /var/lib/sluice/audit && chown node:node /var/lib/sluice/audit
USER node
# /metrics, /healthz, /readyz (set http.host to 0.0.0.0 in the config, as config/sluice.compose.yaml does)
EXPOSE 9464
# kafkajs 2.2.4 sets a negative timeout in its request queue (harmless, clamped to 1 ms)
ENTRYPOINT ["node", "--disable-warning=TimeoutNegativeWarning", "src/cli.ts"]
CMD ["run", "--config", "config/sluice.yaml"]
