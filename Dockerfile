# capi-chatops: the Slack front, the agents and the terminal front. Build: docker build -t capi-chatops .
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The product only: tsconfig.build.json compiles src/ (no simulator, no fake Slack, no benchmarks, no test key).
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm ci installs exactly the lockfile's tree (and fails when package.json and the lockfile disagree); its
# prepare script builds dist/src. Then the dev dependencies go.
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

# The image holds the product only: compiled sources, production dependencies, the runbooks.
FROM node:20-bookworm-slim
RUN useradd --create-home --uid 10001 capi \
  && mkdir -p /var/log/capi-chatops \
  && chown 10001:10001 /var/log/capi-chatops
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
COPY bin ./bin
COPY commands ./commands
# A numeric user, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENV NODE_ENV=production
# /healthz, /readyz and /metrics for every process (serve in both Slack modes, agent), on 127.0.0.1 unless
# METRICS_HOST says otherwise; PORT is Slack's HTTP and nothing else.
ENV METRICS_PORT=9464
EXPOSE 3000 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["node", "bin/healthcheck.js", "/healthz"]
# SIGTERM: no new runs; the running step may finish, then its run is handed over to another agent.
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "bin/capi-chatops.js"]
# npm start: the Slack front and an agent. `agent` runs an agent alone.
CMD ["serve"]
