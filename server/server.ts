/**
 * Puts the server together — HTTP API, worker gateway and registry, router, metrics — and takes
 * it apart again in a fixed order (see `close`).
 */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WORKER_CONNECT_PATH } from '../shared/limits.ts';
import { AuthBackoff } from './auth-backoff.ts';
import { AuthGuard } from './auth-guard.ts';
import { TokenStore } from './auth.ts';
import { ClientAddresses } from './client-address.ts';
import { defaultMaxConnections } from './connection-limits.ts';
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
import { reloadTokens, TokenSessions, type ReloadResult } from './token-reload.ts';
import type { ClusterRouter } from './cluster/cluster-router.ts';
import { WorkerGateway } from './worker-gateway.ts';
import { WorkerRegistry } from './worker-registry.ts';
import { EmptyWait } from './empty-wait.ts';

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
  /** The cluster router when started with `nats`, else null (single node: no cluster code runs). */
  readonly cluster: ClusterRouter | null;
  /** This node's open worker sessions. */
  readonly workers: WorkerRegistry;
  readonly metrics: Metrics;
  /** The debug console's socket endpoint (and its feed). */
  readonly console: ConsoleGateway;
  /** Dev tokens when none were configured. */
  readonly devTokens: { admin: string; worker: string; client: string } | null;
  /** Every authenticated entry's door: back-off and token check; `auth.onFailure` hears every refusal. */
  readonly auth: AuthGuard;
  /** The HTTP server's cap on open connections (null: none). */
  readonly maxConnections: number | null;
  /** Re-reads --tokens-file (SIGHUP); revokes workers whose token was removed. Never throws. */
  reloadTokens(): ReloadResult;
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

  // In a cluster the node that answers the caller counts each job (the cluster router), not the node holding the worker.
  const local = new LocalRouter({ defaultTimeoutMs: config.defaultTimeoutMs, maxQueue: config.maxQueue, countJobs: !config.nats }, log);
  let cluster: ClusterRouter | null = null;
  const metrics = new Metrics({
    workerCounts: () => local.workerCounts(),
    poolJobs: () => local.poolJobs(),
    knowsSuite: (suite) => tokens.knowsSuite(suite),
    ...(config.nats ? { clusterNodes: () => cluster?.liveNodes ?? 1 } : {}),
  });
  local.useMetrics(metrics);
  if (config.nats) {
    // Loaded only for a cluster: a single node never imports the cluster code.
    const { joinCluster } = await import('./cluster/cluster-node.ts');
    cluster = await joinCluster(
      { nats: config.nats, nodeId: config.nodeId, defaultTimeoutMs: config.defaultTimeoutMs, maxPayloadBytes: config.maxPayloadBytes },
      local,
      metrics,
      log,
    );
  }
  const router: Router = cluster ?? local;
  const workers = new WorkerRegistry(router, log);
  const refusals = new RefusalLog(metrics, log);
  const addresses = new ClientAddresses(config.trustProxy);
  const auth = new AuthGuard(tokens, new AuthBackoff(), refusals, log);
  const tokenSessions = new TokenSessions();
  const gateway = new WorkerGateway(
    workers,
    tokens,
    {
      heartbeatMs: config.heartbeatMs,
      maxPayloadBytes: config.maxPayloadBytes,
      // A socket backed up by four full frames takes no new job until it drains.
      highWaterBytes: 4 * config.maxPayloadBytes,
      onLateResult: () => metrics.lateResult(),
    },
    log,
    refusals,
    { guard: auth, addresses, maxWorkerConcurrency: config.maxWorkerConcurrency, onSession: (s) => tokenSessions.add(s) },
  );
  const consoleGateway = new ConsoleGateway(
    { router, tokens, log, allowedOrigins: config.consoleOrigin, refusals, guard: auth, addresses },
    { maxRequestBytes: config.maxPayloadBytes, maskHeaders: config.consoleMaskHeader },
  );
  cluster?.watchConsoles(() => consoleGateway.openConsoles);
  let shuttingDown = false;
  const api = createHttpApi({
    router, tokens, guard: auth, addresses, metrics, log, maxPayloadBytes: config.maxPayloadBytes, isShuttingDown: () => shuttingDown, refusals,
    ...(cluster ? { isClusterConnected: () => cluster.connected } : {}),
    extraRoutes: createConsoleRoutes({ tokens, refusals, guard: auth, addresses }),
  });
  // Responses not yet finished; owner: this handler (added here, removed on 'close').
  // Shutdown waits for them so that no answer is cut off mid-body.
  const openResponses = new Set<ServerResponse>();
  const responsesWait = new EmptyWait();
  // One listener for every response ('close' comes once; the listener goes with the response).
  function onResponseClose(this: ServerResponse): void {
    openResponses.delete(this);
    if (openResponses.size === 0) responsesWait.emptied();
  }
  const http: Server = createServer({
    // Node checks headersTimeout/requestTimeout only this often (30 s by default), so a 10 s limit would really be 10–40 s.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.headersTimeoutMs / 4))),
  }, (req, res) => {
    // While shutting down every answer closes its connection: nothing is kept alive.
    if (shuttingDown) res.setHeader('connection', 'close');
    openResponses.add(res);
    res.on('close', onResponseClose);
    api(req, res);
  });
  // Node's defaults (60 s for headers, 300 s for a body) let a slow client hold a socket for minutes.
  http.headersTimeout = config.headersTimeoutMs;
  http.requestTimeout = config.requestTimeoutMs;
  const maxConnections = config.maxConnections ?? defaultMaxConnections();
  if (maxConnections !== null) http.maxConnections = maxConnections;
  http.on('upgrade', (req, socket, head) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === WORKER_CONNECT_PATH) gateway.handleUpgrade(req, socket, head, url);
    else if (url.pathname === CONSOLE_PATH) consoleGateway.handleUpgrade(req, socket, head);
    else refuseUpgrade(socket, 404, 'not_found', `no socket endpoint at ${url.pathname}`);
  });
  http.on('clientError', (err: Error & { code?: string }, socket) => {
    // Headers or body not in within --headers-timeout-ms / --request-timeout-ms: 408, as Node itself would answer.
    const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
    if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    else socket.destroy();
  });

  try {
    await new Promise<void>((resolve, reject) => {
      http.once('error', reject);
      http.listen(config.port, config.host, () => {
        http.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    await cluster?.stop();
    throw err;
  }
  http.on('error', (err) => log.error({ err }, 'http server error'));
  const { port } = http.address() as AddressInfo;
  const shownHost = config.host === '0.0.0.0' || config.host === '::' ? '127.0.0.1' : config.host;
  const url = `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${port}`;
  log.info({ url, heartbeatMs: config.heartbeatMs, maxQueue: config.maxQueue, maxConnections, ...(cluster ? { nodeId: cluster.nodeId } : {}) }, 'server listening');

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
      await responsesWait.until(openResponses.size === 0, RESPONSE_FLUSH_MS);
      const listenerClosed = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
      await consoleClosed;
      await listenerClosed;
      log.info('server closed');
    })();
    return closing;
  };

  return {
    config, url, port, router, cluster, workers, metrics, console: consoleGateway, devTokens, auth, maxConnections,
    reloadTokens: () => reloadTokens(tokens, config.tokensFile, tokenSessions, log),
    close, [Symbol.asyncDispose]: close,
  };
}
