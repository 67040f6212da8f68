/**
 * Puts the server together — HTTP API, worker gateway, router, metrics — and takes
 * it apart again in a fixed order (see `close`).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WORKER_CONNECT_PATH } from '../shared/limits.ts';
import { TokenStore } from './auth.ts';
import { parseServerConfig, type ServerConfig, type ServerOptions } from './config.ts';
import { ConsoleGateway } from './console/console-gateway.ts';
import { CONSOLE_PATH } from './console/console-protocol.ts';
import { createConsoleRoutes } from './console/console-routes.ts';
import { createHttpApi } from './http-api.ts';
import { refuseUpgrade } from './http-reply.ts';
import { LocalRouter } from './local-router.ts';
import { createLogger, type Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { WorkerGateway } from './worker-gateway.ts';

export interface StartOptions {
  /** Tokens to use; by default read from config.tokensFile, else dev tokens are generated. */
  tokens?: TokenStore;
  logger?: Logger;
}

export interface FlowtestServer {
  readonly config: ServerConfig;
  /** `http://host:port` as bound (0.0.0.0 shown as 127.0.0.1). */
  readonly url: string;
  readonly port: number;
  readonly router: LocalRouter;
  readonly metrics: Metrics;
  /** The debug console's socket endpoint (and its feed). */
  readonly console: ConsoleGateway;
  /** Dev tokens when none were configured. */
  readonly devTokens: { admin: string; worker: string; client: string } | null;
  /** Graceful shutdown; idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startServer(options: ServerOptions, start: StartOptions = {}): Promise<FlowtestServer> {
  const config = parseServerConfig(options);
  const log = start.logger ?? createLogger();
  let devTokens: FlowtestServer['devTokens'] = null;
  let tokens = start.tokens;
  if (!tokens && config.tokensFile) tokens = TokenStore.fromFile(config.tokensFile);
  if (!tokens) {
    const dev = TokenStore.generateDev();
    tokens = dev.store;
    devTokens = dev.tokens;
  }

  const router = new LocalRouter({ defaultTimeoutMs: config.defaultTimeoutMs, maxQueue: config.maxQueue }, log);
  const metrics = new Metrics({
    workerCounts: () => router.workerCounts(),
    jobsInFlight: () => router.stats().inFlight,
    jobsQueued: () => router.stats().queued,
  });
  router.useMetrics(metrics);
  const gateway = new WorkerGateway(
    router,
    tokens,
    // A socket backed up by four full frames takes no new job until it drains.
    { heartbeatMs: config.heartbeatMs, maxPayloadBytes: config.maxPayloadBytes, highWaterBytes: 4 * config.maxPayloadBytes },
    log,
  );
  const consoleGateway = new ConsoleGateway({ router, tokens, log, allowedOrigins: config.consoleOrigin }, { maxRequestBytes: config.maxPayloadBytes });
  let shuttingDown = false;
  const http: Server = createServer(
    createHttpApi({
      router, tokens, metrics, log, maxPayloadBytes: config.maxPayloadBytes, isShuttingDown: () => shuttingDown,
      extraRoutes: createConsoleRoutes({ tokens }),
    }),
  );
  http.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === WORKER_CONNECT_PATH) gateway.handleUpgrade(req, socket, head, url);
    else if (url.pathname === CONSOLE_PATH) consoleGateway.handleUpgrade(req, socket, head);
    else refuseUpgrade(socket, 404, 'not_found', `no socket endpoint at ${url.pathname}`);
  });
  http.on('clientError', (err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  http.on('error', (err) => log.error({ err }, 'http server error'));
  const { port } = http.address() as AddressInfo;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  log.info({ url, heartbeatMs: config.heartbeatMs, maxQueue: config.maxQueue }, 'server listening');

  let closing: Promise<void> | null = null;
  /**
   * Shutdown order: stop accepting (dispatch → shutting_down, no new workers, listener
   * closed) → close consoles with 1001 and stop their feed (tick, router observer) →
   * wait for jobs in flight up to the grace → fail the rest → close worker sockets
   * with 1001 → close the socket server and every remaining HTTP connection.
   */
  const close = (): Promise<void> => {
    closing ??= (async () => {
      log.info({ graceMs: config.shutdownGraceMs, pending: router.stats().pending }, 'shutting down');
      shuttingDown = true;
      gateway.stopAccepting();
      const consoleClosed = consoleGateway.close();
      const listenerClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      await router.shutdown(config.shutdownGraceMs);
      gateway.close();
      http.closeIdleConnections();
      // Answers just written are flushed before the last connections are cut.
      setImmediate(() => http.closeAllConnections());
      await consoleClosed;
      await listenerClosed;
      log.info('server closed');
    })();
    return closing;
  };

  return { config, url, port, router, metrics, console: consoleGateway, devTokens, close, [Symbol.asyncDispose]: close };
}
