/**
 * The console socket endpoint (`GET /v1/console`): checks the handshake — Origin,
 * subprotocol, admin token carried in a `token.<base64url>` subprotocol entry — and
 * either refuses it with an HTTP status and no socket, or opens a ConsoleSession.
 * The token is never logged and never echoed: the server selects only
 * `flowtest.console.v1`.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer } from 'ws';
import type { AuthGuard } from '../auth-guard.ts';
import type { TokenStore } from '../auth.ts';
import type { ClientAddresses } from '../client-address.ts';
import { refuseUpgrade } from '../http-reply.ts';
import type { RefusalLog } from '../refusal-log.ts';
import { CONSOLE_PATH, CONSOLE_SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX } from './console-protocol.ts';
import { ConsoleFeed, type ConsoleRouter } from './console-feed.ts';
import { parseConsoleOptions, type ConsoleOptions, type ConsoleOptionsInput } from './console-options.ts';
import { ConsoleSession } from './console-session.ts';
import { isOriginAllowed } from './origin.ts';

/** How long a closing console may wait for the browser's close frame before it is cut. */
const CLOSE_TIMEOUT_MS = 1_000;

export interface ConsoleGatewayDeps {
  router: ConsoleRouter;
  tokens: TokenStore;
  log: Logger;
  /** `--console-origin`: browser origins allowed besides the server's own. */
  allowedOrigins: readonly string[];
  /** Counts and logs token refusals. */
  refusals?: RefusalLog;
  /** The server's door (auth back-off, refusals); without it, the token store alone decides. */
  guard?: AuthGuard;
  addresses?: ClientAddresses;
}

/** The token in the offered subprotocols (`token.<base64url>`), or undefined. */
export function tokenFromProtocols(offered: readonly string[]): string | undefined {
  const entry = offered.find((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
  if (!entry) return undefined;
  const b64 = entry.slice(TOKEN_PROTOCOL_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(b64)) return undefined;
  const token = Buffer.from(b64, 'base64url').toString('utf8');
  return token.length > 0 ? token : undefined;
}

export class ConsoleGateway {
  readonly options: ConsoleOptions;
  readonly feed: ConsoleFeed;
  // Owner: this gateway; clientTracking is off, sessions are tracked in #sessions.
  readonly #wss: WebSocketServer;
  /** Open consoles; owner: this gateway, each removed by its session's end. */
  readonly #sessions = new Set<ConsoleSession>();
  #accepting = true;
  #closing: Promise<void> | null = null;

  constructor(
    readonly deps: ConsoleGatewayDeps,
    options: ConsoleOptionsInput = {},
  ) {
    this.options = parseConsoleOptions(options);
    this.feed = new ConsoleFeed(deps.router, this.options, deps.log);
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: this.options.maxRequestBytes + 64 * 1024,
      // @types/ws lags ws: closeTimeout exists since ws 8.19.
      ...({ closeTimeout: CLOSE_TIMEOUT_MS } as object),
      handleProtocols: (protocols) => (protocols.has(CONSOLE_SUBPROTOCOL) ? CONSOLE_SUBPROTOCOL : false),
    });
    this.#wss.on('error', (err) => deps.log.error({ err }, 'console socket server error'));
  }

  get openConsoles(): number {
    return this.#sessions.size;
  }

  /** Refuse new consoles from now on. */
  stopAccepting(): void {
    this.#accepting = false;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (!this.#accepting) return refuseUpgrade(socket, 503, 'shutting_down', 'the server is shutting down');
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const https = (req.socket as TLSSocket).encrypted === true || /^https\b/i.test(String(req.headers['x-forwarded-proto'] ?? ''));
      if (!isOriginAllowed(origin, { host: req.headers.host, https, allowed: this.deps.allowedOrigins })) {
        this.deps.log.warn({ origin, remoteAddress: req.socket.remoteAddress }, 'console refused: foreign origin');
        return refuseUpgrade(socket, 403, 'forbidden', 'this origin may not open the console');
      }
    }
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    if (!offered.includes(CONSOLE_SUBPROTOCOL)) return refuseUpgrade(socket, 400, 'invalid_request', `subprotocol ${CONSOLE_SUBPROTOCOL} is required`);
    const remoteAddress = this.deps.addresses ? this.deps.addresses.of(req) : (req.socket.remoteAddress ?? null);
    if (this.deps.guard) {
      const auth = this.deps.guard.authenticate(tokenFromProtocols(offered), { role: 'admin' }, remoteAddress, 'socket', { path: CONSOLE_PATH });
      if (!auth.ok) return refuseUpgrade(socket, auth.status, auth.kind, auth.message, auth.retryAfterS === undefined ? {} : { 'Retry-After': String(auth.retryAfterS) });
    } else {
      const decision = this.deps.tokens.check(tokenFromProtocols(offered), { role: 'admin' });
      if (decision !== 'ok') this.deps.refusals?.refused(decision, 'socket', remoteAddress, { path: CONSOLE_PATH });
      if (decision === 'unauthorized') return refuseUpgrade(socket, 401, 'unauthorized', 'missing or unknown token');
      if (decision === 'forbidden') return refuseUpgrade(socket, 403, 'forbidden', 'an admin token is required');
    }
    if (this.#sessions.size >= this.options.maxConsoles) return refuseUpgrade(socket, 429, 'overloaded', `at most ${this.options.maxConsoles} consoles at once`);

    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const meta = { remoteAddress, origin: origin ?? null };
      if (!this.#accepting) {
        ws.close(1001, 'server shutting down');
        return;
      }
      const session = new ConsoleSession(ws, meta, this.feed, this.deps.router, this.options, this.deps.log, (s) => this.#sessions.delete(s));
      this.#sessions.add(session);
      this.deps.log.info(meta, 'console opened');
      session.start();
    });
  }

  /**
   * Closes every console with 1001 and stops the feed (its tick and its router
   * observer). Resolves when the sockets are closed (at most CLOSE_TIMEOUT_MS later).
   * Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#accepting = false;
      const closed: Promise<unknown>[] = [];
      for (const session of [...this.#sessions]) {
        if (session.ws.readyState !== session.ws.CLOSED) closed.push(new Promise((resolve) => session.ws.once('close', resolve)));
        session.close(1001, 'server shutting down');
      }
      this.feed.close();
      this.#wss.close();
      await Promise.all(closed);
    })();
    return this.#closing;
  }
}
