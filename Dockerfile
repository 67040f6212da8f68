# flowtest dispatcher: one image for the server, the agent and the CLI.
#   docker build -t flowtest-dispatcher .
#   docker run -p 8080:8080 flowtest-dispatcher                      # server, dev tokens printed
#   docker run -e FLOWTEST_TOKEN=… flowtest-dispatcher agent --server ws://HOST:8080 --suite S --name P
# TypeScript runs through tsx (a runtime dependency), so there is no build stage.
FROM node:20-slim

ENV NODE_ENV=production
WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY . .

# Run as the image's unprivileged user; the app never writes to its own tree.
USER node
EXPOSE 8080
# The server binds 0.0.0.0:8080 by default (FLOWTEST_HOST / FLOWTEST_PORT to change).
# node is PID 1 here: server and agent handle SIGTERM themselves (drain, grace, exit 0).
ENTRYPOINT ["node", "--import", "tsx", "cli/flowtest.ts"]
CMD ["server"]
