/**
 * One worker socket from handshake to close: frame decoding, the ping watchdog and
 * a bounded close. It never reconnects; the agent's loop owns that. Every timer here is
 * a field of the Connection, cleared when the socket closes.
 */
import { STATUS_CODES } from 'node:http';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { decodeJson, decodeServerFrame } from '../shared/codec.ts';
import { CLOSE_CODES } from '../shared/errors.ts';
import { BOUNDS, DEFAULTS, PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../shared/limits.ts';
import { errorBodySchema, type CancelFrame, type JobFrame, type WelcomeFrame } from '../shared/protocol.ts';

/** Extra time past 2 × heartbeatMs before a silent server counts as dead (contract: 1 s). */
export const WATCHDOG_SLACK_MS = 1000;
/** How long the opening handshake may take. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long a clean close waits for the server's close frame before terminating. */
export const CLOSE_GRACE_MS = 2000;
/** How long, and how much of, a rejected handshake's body is read for its reason. */
const REJECTION_READ_MS = 1000;
const REJECTION_READ_BYTES = 1024;

/**
 * The worker socket URL for `server` (ws://, wss://, or http(s):// which is converted),
 * keeping any path prefix. Throws a TypeError for anything else.
 */
export function connectUrl(server: string, params: { suite: string; name: string; concurrency: number }): URL {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new TypeError(`--server ${JSON.stringify(server)} is not a URL`);
  }
  const schemes: Record<string, string> = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' };
  const scheme = schemes[url.protocol];
  if (!scheme) throw new TypeError(`--server must start with ws://, wss://, http:// or https:// (got ${url.protocol}//)`);
  if (url.username || url.password) throw new TypeError('--server must not carry credentials; use --token');
  const out = new URL(url.href.replace(/^[a-z]+:/, scheme));
  out.pathname = `${out.pathname.replace(/\/+$/, '')}${WORKER_CONNECT_PATH}`;
  out.search = new URLSearchParams({ suite: params.suite, name: params.name, concurrency: String(params.concurrency) }).toString();
  out.hash = '';
  return out;
}

/** How a connection ended. */
export type ConnectionEnd =
  /** The socket opened and later closed (either side, or the watchdog). */
  | { kind: 'closed'; code: number; reason: string; livedMs: number }
  /** The handshake was answered with an HTTP status instead of an upgrade. */
  | { kind: 'rejected'; status: number; reason: string }
  /** The socket never opened: refused, DNS, TLS, timeout, bad upgrade. */
  | { kind: 'failed'; reason: string };

/** What the agent does with server frames. Called only while the socket is open and not closing. */
export interface ConnectionHandlers {
  onWelcome(frame: WelcomeFrame): void;
  onJob(frame: JobFrame): void;
  onCancel(frame: CancelFrame): void;
}

/** Options of one {@link Connection}. */
export interface ConnectionOptions {
  url: URL;
  token?: string;
  userAgent: string;
  logger: Logger;
  watchdogSlackMs?: number;
  handshakeTimeoutMs?: number;
  closeGraceMs?: number;
}

function oneLine(text: string, max = 200): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 3)}...` : line;
}

function rejectionReason(status: number, body: string): string {
  const head = `server answered ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd();
  const decoded = decodeJson(errorBodySchema, body);
  if (decoded.ok) return `${head}: ${oneLine(decoded.value.error.message)}`;
  const text = oneLine(body);
  return text ? `${head}: ${text}` : head;
}

/** One worker socket. Construct it to connect; await {@link Connection.ended}. */
export class Connection {
  /** Resolves once, when the socket has closed or failed to open. */
  readonly ended: Promise<ConnectionEnd>;
  readonly #ws: WebSocket;
  readonly #options: ConnectionOptions;
  readonly #handlers: ConnectionHandlers;
  #resolveEnded!: (end: ConnectionEnd) => void;
  #welcome: WelcomeFrame | null = null;
  #openedAt: number | null = null;
  /** Set once we decided to close; later frames are ignored. */
  #closing = false;
  /** True while the socket is corked until the next setImmediate (sendText batches a turn's results). */
  #corked = false;
  #rejection: { status: number; reason: string } | null = null;
  #lastError: string | null = null;
  /** Ping watchdog; owned here, re-armed on open, welcome and every ping; cleared on close. */
  #watchdog: NodeJS.Timeout | undefined;
  /** Terminates a clean close that the server does not answer; cleared on close. */
  #closeTimer: NodeJS.Timeout | undefined;
  /** Bounds the read of a rejected handshake's body; cleared on close. */
  #rejectionTimer: NodeJS.Timeout | undefined;

  constructor(options: ConnectionOptions, handlers: ConnectionHandlers) {
    this.#options = options;
    this.#handlers = handlers;
    this.ended = new Promise((resolve) => {
      this.#resolveEnded = resolve;
    });
    const headers: Record<string, string> = { 'user-agent': options.userAgent };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    this.#ws = new WebSocket(options.url, PROTOCOL_VERSION, {
      headers,
      perMessageDeflate: false,
      // Jobs may carry a body of up to the server's --max-payload-bytes plus their envelope.
      maxPayload: BOUNDS.maxPayloadBytes + BOUNDS.frameEnvelopeBytes,
      followRedirects: false,
      handshakeTimeout: options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    });
    // Without an 'error' listener a socket error would crash the process.
    this.#ws.on('error', (error) => {
      this.#lastError = error.message;
    });
    this.#ws.on('unexpected-response', (_req, res) => this.#onRejected(res));
    this.#ws.on('open', () => {
      this.#openedAt = Date.now();
      this.#armWatchdog(DEFAULTS.heartbeatMs); // until welcome tells the real interval
    });
    this.#ws.on('ping', () => this.#armWatchdog(this.#welcome?.heartbeatMs ?? DEFAULTS.heartbeatMs));
    this.#ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    this.#ws.on('close', (code, reason) => this.#onClose(code, reason.toString()));
  }

  /** The server's welcome, once received. */
  get welcome(): WelcomeFrame | null {
    return this.#welcome;
  }

  /** True while frames can be sent. */
  get isOpen(): boolean {
    return this.#ws.readyState === WebSocket.OPEN;
  }

  /** Sends an already encoded frame (encodeFrame); false when the socket is not open. */
  sendText(text: string): boolean {
    if (!this.isOpen) return false;
    this.#corkUntilImmediate();
    this.#ws.send(text);
    return true;
  }

  /**
   * Results finished in one turn of the event loop leave in one write: the socket is
   * corked at the first send and uncorked once the turn's I/O callbacks have run. One
   * write per result was the agent's largest cost (writev); nothing waits past the turn.
   */
  #corkUntilImmediate(): void {
    if (this.#corked) return;
    // ws keeps its net.Socket in `_socket` (stable through ws 8); without it, sends stay unbatched.
    const socket = (this.#ws as unknown as { _socket?: import('node:net').Socket | null })._socket;
    if (!socket || socket.destroyed) return;
    this.#corked = true;
    socket.cork();
    setImmediate(() => {
      this.#corked = false;
      if (!socket.destroyed) socket.uncork();
    });
  }

  /**
   * Starts a clean close; terminates if the server does not answer within the grace.
   * Before the socket opened, it just aborts the handshake.
   */
  close(code: number, reason: string): void {
    this.#closing = true;
    if (this.#ws.readyState === WebSocket.CONNECTING) return this.#ws.terminate();
    if (this.#ws.readyState !== WebSocket.OPEN) return;
    this.#ws.close(code, reason);
    this.#closeTimer ??= setTimeout(() => this.#ws.terminate(), this.#options.closeGraceMs ?? CLOSE_GRACE_MS);
  }

  /** Drops the socket at once, without a close handshake. */
  terminate(): void {
    this.#closing = true;
    this.#ws.terminate();
  }

  #armWatchdog(heartbeatMs: number): void {
    clearTimeout(this.#watchdog);
    const limitMs = 2 * heartbeatMs + (this.#options.watchdogSlackMs ?? WATCHDOG_SLACK_MS);
    this.#watchdog = setTimeout(() => {
      this.#options.logger.warn({ limitMs }, 'no ping from the server in time; dropping the connection');
      this.terminate();
    }, limitMs);
  }

  #onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.#closing) return;
    const decoded = decodeServerFrame(data, isBinary);
    if (!decoded.ok) {
      this.#options.logger.warn({ reason: decoded.reason }, 'invalid frame from the server; closing');
      return this.close(CLOSE_CODES.policyViolation, decoded.reason);
    }
    const frame = decoded.value;
    switch (frame.type) {
      case 'welcome':
        this.#welcome = frame;
        this.#armWatchdog(frame.heartbeatMs);
        return this.#handlers.onWelcome(frame);
      case 'job':
        return this.#handlers.onJob(frame);
      case 'cancel':
        return this.#handlers.onCancel(frame);
    }
  }

  /** Reads a little of the refusal's body for a useful reason, then aborts the handshake. */
  #onRejected(res: import('node:http').IncomingMessage): void {
    const status = res.statusCode ?? 0;
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (): void => {
      if (this.#rejection) return;
      clearTimeout(this.#rejectionTimer);
      this.#rejection = { status, reason: rejectionReason(status, Buffer.concat(chunks).toString('utf8')) };
      // In CONNECTING state this aborts the request and destroys its socket; 'close' follows.
      this.#ws.terminate();
    };
    res.on('data', (chunk: Buffer) => {
      if (size < REJECTION_READ_BYTES) chunks.push(chunk);
      size += chunk.length;
      if (size >= REJECTION_READ_BYTES) done();
    });
    res.on('end', done);
    res.on('error', done);
    this.#rejectionTimer = setTimeout(done, REJECTION_READ_MS);
  }

  #onClose(code: number, reason: string): void {
    clearTimeout(this.#watchdog);
    clearTimeout(this.#closeTimer);
    clearTimeout(this.#rejectionTimer);
    if (this.#rejection) return this.#resolveEnded({ kind: 'rejected', ...this.#rejection });
    if (this.#openedAt === null) return this.#resolveEnded({ kind: 'failed', reason: this.#lastError ?? `closed with ${code}` });
    this.#resolveEnded({ kind: 'closed', code, reason, livedMs: Date.now() - this.#openedAt });
  }
}
