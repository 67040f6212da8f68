# flowtest dispatcher: one image for the server, the agent and the CLI.
#   docker build -t flowtest-dispatcher .
#   docker run -p 8080:8080 flowtest-dispatcher                      # server, dev tokens printed
#   docker run -e FLOWTEST_TOKEN=… flowtest-dispatcher agent --server ws://HOST:8080 --suite S --name P
#
# Node 24 is an LTS line (supported until April 2028), pinned to an exact release so that
# a rebuild gives the same runtime; move the tag on purpose (and on security releases).
# The image runs compiled JavaScript with plain node: no TypeScript at run time, nothing
# written anywhere (`docker run --read-only` works), node is PID 1 and gets SIGTERM itself.
ARG NODE_IMAGE=node:24.19.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-static.js scripts/demo-target.ts scripts/
COPY shared shared
COPY server server
COPY worker-agent worker-agent
COPY cli cli
COPY client client
RUN npm run build

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` (the build) ran in the build stage.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY bin bin
COPY --from=build /app/dist dist

# Run as the image's unprivileged user; the app never writes to its own tree.
USER node
EXPOSE 8080
# The server binds 0.0.0.0:8080 by default (FLOWTEST_HOST / FLOWTEST_PORT to change).
# Slim images have no curl: node's fetch probes /healthz. An agent container is probed on
# its FLOWTEST_HEALTH_PORT when that is set (the agent's --health-port).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const p = process.env.FLOWTEST_HEALTH_PORT || process.env.FLOWTEST_PORT || 8080; fetch('http://127.0.0.1:' + p + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Server and agent handle SIGTERM themselves (drain, grace, exit 0); exit 2 (bad options)
# and 3 (agent refused by the server) mean "fix the configuration", not "restart".
ENTRYPOINT ["node", "bin/flowtest.js"]
CMD ["server"]
