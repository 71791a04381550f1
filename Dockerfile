# capi-chatops: the agent and the terminal front. Build: docker build -t capi-chatops .
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The product only: tsconfig.build.json compiles src/ (no simulator, no fake Slack, no benchmarks, no test key).
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm ci refuses this lockfile (bullmq's optional platform packages); install resolves the same tree.
RUN npm install --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN useradd --create-home --uid 10001 capi
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY commands ./commands
USER capi
ENV NODE_ENV=production
ENTRYPOINT ["node", "bin/capi-chatops.js"]
# npm start: the Slack front and an agent. `agent` runs an agent alone.
CMD ["serve"]
