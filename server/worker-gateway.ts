/**
 * The worker socket endpoint: checks a handshake (subprotocol, parameters, token)
 * on 'upgrade' and either refuses it with an HTTP status or opens a WorkerSession,
 * which it hands to the worker registry.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { describeIssue } from '../shared/codec.ts';
import { PROTOCOL_VERSION, WORKER_CONNECT_PATH } from '../shared/limits.ts';
import { connectQuerySchema } from '../shared/protocol.ts';
import type { AuthGuard } from './auth-guard.ts';
import type { TokenStore } from './auth.ts';
import { bearerToken } from './auth.ts';
import type { Logger } from './logger.ts';
import { refuseUpgrade } from './http-reply.ts';
import type { ClientAddresses } from './client-address.ts';
import type { RefusalLog } from './refusal-log.ts';
import type { WorkerRegistry } from './worker-registry.ts';
import { WorkerSession, type SessionOptions } from './worker-session.ts';

/** How long a closing socket may wait for the peer's close frame before it is cut. */
const CLOSE_TIMEOUT_MS = 2_000;

/** What the handshake checks beyond the protocol: the door (back-off, token), the client address, the concurrency cap. */
export interface WorkerDoor {
  guard: AuthGuard;
  addresses: ClientAddresses;
  maxWorkerConcurrency: number;
  /** Told of every session opened (the tokens reload re-checks their tokens). */
  onSession?(session: WorkerSession): void;
}

export class WorkerGateway {
  // Owner: this gateway; clientTracking is off, sessions are tracked by the registry.
  readonly #wss: WebSocketServer;
  #accepting = true;

  constructor(
    readonly registry: WorkerRegistry,
    readonly tokens: TokenStore,
    readonly sessionOptions: SessionOptions,
    readonly log: Logger,
    readonly refusals: RefusalLog | null = null,
    readonly door: WorkerDoor | null = null,
  ) {
    this.#wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      perMessageDeflate: false,
      maxPayload: sessionOptions.maxPayloadBytes,
      // ws would close invalid UTF-8 with 1007; the session checks it and closes with 1008 like every bad frame.
      skipUTF8Validation: true,
      // @types/ws lags ws: closeTimeout exists since ws 8.19.
      ...({ closeTimeout: CLOSE_TIMEOUT_MS } as object),
      handleProtocols: (protocols) => (protocols.has(PROTOCOL_VERSION) ? PROTOCOL_VERSION : false),
    });
    this.#wss.on('error', (err) => this.log.error({ err }, 'worker socket server error'));
  }

  /** Refuse new workers from now on (shutdown). */
  stopAccepting(): void {
    this.#accepting = false;
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, url: URL): void {
    if (!this.#accepting) return refuseUpgrade(socket, 503, 'shutting_down', 'the server is shutting down');
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
    if (!offered.includes(PROTOCOL_VERSION)) {
      return refuseUpgrade(socket, 400, 'invalid_request', `subprotocol ${PROTOCOL_VERSION} is required`);
    }
    const query = connectQuerySchema.safeParse(Object.fromEntries(url.searchParams));
    if (!query.success) return refuseUpgrade(socket, 400, 'invalid_request', describeIssue(query.error));
    const { suite, name, concurrency } = query.data;
    let remoteAddress = req.socket.remoteAddress ?? null;
    let tokenId: string | undefined;
    if (this.door) {
      if (concurrency > this.door.maxWorkerConcurrency) {
        return refuseUpgrade(socket, 400, 'invalid_request', `concurrency: at most ${this.door.maxWorkerConcurrency} (--max-worker-concurrency)`);
      }
      remoteAddress = this.door.addresses.of(req);
      const auth = this.door.guard.authenticate(bearerToken(req.headers.authorization), { role: 'worker', suite, pool: name }, remoteAddress, 'socket', { path: WORKER_CONNECT_PATH, suite });
      if (!auth.ok) return refuseUpgrade(socket, auth.status, auth.kind, auth.message, auth.retryAfterS === undefined ? {} : { 'Retry-After': String(auth.retryAfterS) });
      tokenId = auth.tokenId;
    } else {
      const decision = this.tokens.check(bearerToken(req.headers.authorization), { role: 'worker', suite, pool: name });
      if (decision !== 'ok') this.refusals?.refused(decision, 'socket', remoteAddress, { path: WORKER_CONNECT_PATH, suite });
      if (decision === 'unauthorized') return refuseUpgrade(socket, 401, 'unauthorized', 'missing or unknown token');
      if (decision === 'forbidden') return refuseUpgrade(socket, 403, 'forbidden', `token not valid for suite ${suite}`);
    }

    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      const session = new WorkerSession(
        ws,
        { suite, name, concurrency, agentVersion: agentVersion(req.headers['user-agent']), remoteAddress, tokenId },
        this.sessionOptions,
        this.registry,
      );
      session.start();
      this.door?.onSession?.(session);
      this.registry.add(session);
      this.log.info({ workerId: session.id, suite, pool: name, concurrency, remoteAddress: session.meta.remoteAddress }, 'worker connected');
    });
  }

  close(): void {
    this.#wss.close();
  }
}

function agentVersion(userAgent: string | undefined): string | null {
  if (!userAgent) return null;
  const m = /flowtest-agent\/(\S+)/.exec(userAgent);
  return m ? m[1] : userAgent.slice(0, 100);
}
