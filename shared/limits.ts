/** Protocol constants and defaults shared by server, agent and CLI. Units are in the names. */

/** WebSocket subprotocol both sides must speak. */
export const PROTOCOL_VERSION = 'flowtest.v1';

/** Pattern for suite and pool names. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export const DEFAULTS = {
  host: '0.0.0.0',
  port: 8080,
  heartbeatMs: 15_000,
  maxPayloadBytes: 10 * 1024 * 1024,
  defaultTimeoutMs: 30_000,
  maxQueue: 1000,
  /** Grace for jobs in flight when the server shuts down. Below Kubernetes' 30 s default. */
  shutdownGraceMs: 25_000,
  agentConcurrency: 8,
  maxResponseBytes: 10 * 1024 * 1024,
  drainTimeoutMs: 30_000,
  /** Highest `concurrency` a worker may claim at the handshake. */
  maxWorkerConcurrency: 256,
  /** Node's own defaults (300 s body, 60 s headers) let one slow client hold a socket for minutes. */
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  /** File descriptors kept back from the open-file limit when --max-connections is derived from it. */
  connectionsFdReserve: 64,
} as const;

/** Upper bounds that keep a single value from exhausting the server. */
export const BOUNDS = {
  maxTimeoutMs: 10 * 60_000,
  maxWaitForWorkerMs: 10 * 60_000,
  maxConcurrency: 1024,
  /** Header lines in a job's request (a name with an array of values counts each value). */
  maxRequestHeaders: 256,
  /** Ceiling of --max-payload-bytes. */
  maxPayloadBytes: 1024 ** 3,
  /**
   * Room a job frame needs beyond the dispatch body it carries (type, id, timeoutMs):
   * a body accepted at --max-payload-bytes makes a job frame slightly larger, so agents
   * accept frames up to maxPayloadBytes + this from the server.
   */
  frameEnvelopeBytes: 64 * 1024,
} as const;

/** Agent reconnect backoff: full jitter, 0.5 s doubling to 30 s, reset after a 10 s connection. */
export const BACKOFF = {
  baseMs: 500,
  maxMs: 30_000,
  resetAfterMs: 10_000,
} as const;

/** pino levels accepted by `--log-level` (server and agent). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Path of the worker socket endpoint. */
export const WORKER_CONNECT_PATH = '/v1/workers/connect';
