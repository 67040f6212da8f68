/**
 * Puts the server together — HTTP API, worker gateway and registry, router, metrics — and takes
 * it apart again in a fixed order (see `close`).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
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
import { RefusalLog } from './refusal-log.ts';
import type { Router } from './router.ts';
import { WorkerGateway } from './worker-gateway.ts';
import { WorkerRegistry } from './worker-registry.ts';

/** How long shutdown lets answers already being written finish before cutting their connections. */
const RESPONSE_FLUSH_MS = 10_000;

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
  readonly router: Router;
  /** This node's open worker sessions. */
  readonly workers: WorkerRegistry;
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
  const metrics = new Metrics({ workerCounts: () => router.workerCounts(), poolJobs: () => router.poolJobs(), knowsSuite: (suite) => tokens.knowsSuite(suite) });
  router.useMetrics(metrics);
  const workers = new WorkerRegistry(router, log);
  const refusals = new RefusalLog(metrics, log);
  const gateway = new WorkerGateway(
    workers,
    tokens,
    // A socket backed up by four full frames takes no new job until it drains.
    { heartbeatMs: config.heartbeatMs, maxPayloadBytes: config.maxPayloadBytes, highWaterBytes: 4 * config.maxPayloadBytes },
    log,
    refusals,
  );
  const consoleGateway = new ConsoleGateway({ router, tokens, log, allowedOrigins: config.consoleOrigin, refusals }, { maxRequestBytes: config.maxPayloadBytes });
  let shuttingDown = false;
  const api = createHttpApi({
    router, tokens, metrics, log, maxPayloadBytes: config.maxPayloadBytes, isShuttingDown: () => shuttingDown, refusals,
    extraRoutes: createConsoleRoutes({ tokens, refusals }),
  });
  // Responses not yet finished; owner: this handler (added here, removed on 'close').
  // Shutdown waits for them so that no answer is cut off mid-body.
  const openResponses = new Set<ServerResponse>();
  let onResponsesDone: (() => void) | null = null;
  const http: Server = createServer((req, res) => {
    // While shutting down every answer closes its connection: nothing is kept alive.
    if (shuttingDown) res.setHeader('connection', 'close');
    openResponses.add(res);
    res.once('close', () => {
      openResponses.delete(res);
      if (openResponses.size === 0) onResponsesDone?.();
    });
    api(req, res);
  });
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
   * Shutdown order: stop taking work while still listening (dispatch → 503
   * shutting_down, /readyz → 503, new workers → 503; every answer closes its
   * connection) → close consoles with 1001 and stop their feed → wait for jobs up to
   * the grace → fail the rest → close worker sockets with 1001 → let every answer
   * finish writing (bounded) → stop listening and close the (now idle) connections.
   * Idle connections are closed only at the end: Node counts a connection whose
   * answer is ended but still being written as idle, and would cut that answer.
   */
  const close = (): Promise<void> => {
    closing ??= (async () => {
      log.info({ graceMs: config.shutdownGraceMs, pending: router.stats().pending }, 'shutting down');
      shuttingDown = true;
      for (const res of openResponses) if (!res.headersSent) res.setHeader('connection', 'close');
      gateway.stopAccepting();
      const consoleClosed = consoleGateway.close();
      await router.shutdown(config.shutdownGraceMs);
      workers.closeAll(1001, 'server shutting down');
      gateway.close();
      if (openResponses.size > 0) {
        let flush: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          onResponsesDone = resolve;
          flush = setTimeout(resolve, RESPONSE_FLUSH_MS);
        });
        clearTimeout(flush);
        onResponsesDone = null;
      }
      const listenerClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
      await consoleClosed;
      await listenerClosed;
      log.info('server closed');
    })();
    return closing;
  };

  return { config, url, port, router, workers, metrics, console: consoleGateway, devTokens, close, [Symbol.asyncDispose]: close };
}
