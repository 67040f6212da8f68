/**
 * Test harness of the worker agent: a fake dispatcher (ws WebSocketServer behind an
 * http server on 127.0.0.1:0), local HTTP targets, bounded waits and a log capture.
 * Everything here is closed by the test that created it (t.after).
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { decodeAgentFrame, encodeFrame } from '../../shared/codec.ts';
import { PROTOCOL_VERSION } from '../../shared/limits.ts';
import type { AgentFrame, ServerFrame } from '../../shared/protocol.ts';

/** Rejects with `what` when `promise` has not settled within `ms`; the timer is always cleared. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** A FIFO whose consumers wait for the next item. */
export class Queue<T> {
  readonly #items: T[] = [];
  readonly #waiters: ((item: T) => void)[] = [];
  push(item: T): void {
    const waiter = this.#waiters.shift();
    if (waiter) waiter(item);
    else this.#items.push(item);
  }
  get size(): number {
    return this.#items.length;
  }
  next(ms: number, what: string): Promise<T> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    let waiter!: (item: T) => void;
    const p = new Promise<T>((resolve) => {
      waiter = resolve;
      this.#waiters.push(waiter);
    });
    return within(p, ms, what).catch((error: unknown) => {
      const i = this.#waiters.indexOf(waiter);
      if (i >= 0) this.#waiters.splice(i, 1);
      throw error;
    });
  }
}

/** One agent socket as the fake server sees it. */
export class FakeSocket {
  readonly ws: WebSocket;
  readonly request: http.IncomingMessage;
  readonly frames = new Queue<AgentFrame>();
  /** Pings the server has sent and the agent answered (pong). */
  pongs = 0;
  readonly closed: Promise<{ code: number; reason: string }>;

  constructor(ws: WebSocket, request: http.IncomingMessage) {
    this.ws = ws;
    this.request = request;
    ws.on('error', () => {});
    ws.on('pong', () => {
      this.pongs += 1;
    });
    ws.on('message', (data, isBinary) => {
      const decoded = decodeAgentFrame(data, isBinary);
      if (!decoded.ok) throw new Error(`agent sent an invalid frame: ${decoded.reason}`);
      this.frames.push(decoded.value);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
  }

  send(frame: ServerFrame | string): void {
    this.ws.send(typeof frame === 'string' ? frame : encodeFrame(frame));
  }

  welcome(overrides: Partial<Extract<ServerFrame, { type: 'welcome' }>> = {}): void {
    this.send({ type: 'welcome', workerId: 'w1', heartbeatMs: 15_000, maxPayloadBytes: 10 * 1024 * 1024, ...overrides });
  }

  nextFrame(ms = 3000): Promise<AgentFrame> {
    return this.frames.next(ms, 'a frame from the agent');
  }
}

/** A fake dispatcher: accepts worker sockets (or refuses them with `rejectWith`). */
export class FakeServer {
  readonly http: http.Server;
  readonly wss: WebSocketServer;
  readonly connections = new Queue<FakeSocket>();
  /** Every handshake request, accepted or not. */
  readonly handshakes: http.IncomingMessage[] = [];
  readonly sockets: FakeSocket[] = [];
  rejectWith: { status: number; body: string } | null = null;
  url = '';

  private constructor() {
    this.http = http.createServer((_req, res) => res.writeHead(404).end());
    this.wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      handleProtocols: (protocols) => (protocols.has(PROTOCOL_VERSION) ? PROTOCOL_VERSION : false),
    });
    this.wss.on('error', () => {});
    this.http.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
      this.handshakes.push(req);
      socket.on('error', () => {});
      if (this.rejectWith) {
        const { status, body } = this.rejectWith;
        socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
        return;
      }
      this.wss.handleUpgrade(req, socket, head, (ws) => {
        const fake = new FakeSocket(ws, req);
        this.sockets.push(fake);
        this.connections.push(fake);
      });
    });
  }

  static async start(): Promise<FakeServer> {
    const server = new FakeServer();
    await new Promise<void>((resolve) => server.http.listen(0, '127.0.0.1', resolve));
    server.url = `ws://127.0.0.1:${(server.http.address() as AddressInfo).port}`;
    return server;
  }

  nextConnection(ms = 3000): Promise<FakeSocket> {
    return this.connections.next(ms, 'the agent to connect');
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
  }
}

/** An HTTP target on 127.0.0.1:0. */
export interface Target {
  server: http.Server;
  /** `http://127.0.0.1:PORT` */
  origin: string;
  port: number;
  /** Requests as they arrive. */
  requests: Queue<{ req: http.IncomingMessage; res: http.ServerResponse }>;
  close(): Promise<void>;
}

/** Starts a target; `handler` answers each request (or leaves it hanging). */
export async function startTarget(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = () => {}): Promise<Target> {
  const requests = new Queue<{ req: http.IncomingMessage; res: http.ServerResponse }>();
  const server = http.createServer((req, res) => {
    requests.push({ req, res });
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    server,
    origin: `http://127.0.0.1:${port}`,
    port,
    requests,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A port nothing listens on: bound once, then closed. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A pino logger whose JSON lines are kept in `lines`. */
export function captureLogger(level = 'debug'): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      callback();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** Resolves when `emitter` emits `event` (bounded). */
export function once(emitter: NodeJS.EventEmitter, event: string, ms = 3000): Promise<unknown[]> {
  let listener!: (...args: unknown[]) => void;
  const p = new Promise<unknown[]>((resolve) => {
    listener = (...args) => resolve(args);
    emitter.once(event, listener);
  });
  return within(p, ms, `'${event}'`).finally(() => emitter.off(event, listener));
}

/** Runs deferred cleanups last-in first-out (close the agent before its server). */
export class Cleanup {
  readonly #steps: (() => unknown)[] = [];
  defer(step: () => unknown): void {
    this.#steps.push(step);
  }
  async run(): Promise<void> {
    while (this.#steps.length > 0) await this.#steps.pop()?.();
  }
}

/** One request as the raw target parsed it. */
export interface RawRequest {
  /** Request line and header lines, as received. */
  head: string;
  method: string;
  path: string;
  /** Header lines, names lower-cased, in order. */
  headers: [string, string][];
  body: Buffer;
  /** Index of the connection it came on (0 = first). */
  connection: number;
}

/** A target on a plain TCP socket that keeps every byte it receives. */
export interface RawTarget {
  port: number;
  origin: string;
  /** Every byte received, per connection, in arrival order. */
  received: Buffer[];
  requests: Queue<RawRequest>;
  /** Connections accepted so far. */
  connections: number;
  /** Sockets currently open. */
  open: Set<Socket>;
  close(): Promise<void>;
}

/**
 * Starts a deliberately lenient HTTP/1.1 target on a raw socket: a request's body is
 * `content-length` bytes, or none when it has no content-length or any
 * transfer-encoding (as a careless server would). Each parsed request is answered by
 * `respond` (default: 200 with the path as body); return null to leave it unanswered.
 */
export async function startRawTarget(respond: (request: RawRequest, socket: Socket) => string | null = (r) => rawResponse(200, r.path)): Promise<RawTarget> {
  const { createServer } = await import('node:net');
  const requests = new Queue<RawRequest>();
  const received: Buffer[] = [];
  const open = new Set<Socket>();
  const target: RawTarget = {
    port: 0,
    origin: '',
    received,
    requests,
    connections: 0,
    open,
    async close() {
      for (const s of open) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const server = createServer((socket) => {
    const index = target.connections++;
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => {});
    received[index] = Buffer.alloc(0);
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      received[index] = Buffer.concat([received[index], chunk]);
      pending = Buffer.concat([pending, chunk]);
      for (;;) {
        const end = pending.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = pending.subarray(0, end).toString('latin1');
        const [line, ...lines] = head.split('\r\n');
        const headers = lines.map((l): [string, string] => {
          const colon = l.indexOf(':');
          return [l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim()];
        });
        const te = headers.some(([n]) => n === 'transfer-encoding');
        const cl = headers.find(([n]) => n === 'content-length');
        const length = te || !cl ? 0 : Number(cl[1]);
        if (pending.length < end + 4 + length) return;
        const body = pending.subarray(end + 4, end + 4 + length);
        pending = pending.subarray(end + 4 + length);
        const [method = '', path = ''] = line.split(' ');
        const request: RawRequest = { head, method, path, headers, body, connection: index };
        requests.push(request);
        const answer = respond(request, socket);
        if (answer !== null) socket.write(answer);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  target.port = (server.address() as AddressInfo).port;
  target.origin = `http://127.0.0.1:${target.port}`;
  return target;
}

/** An HTTP/1.1 response with a content-length and keep-alive. */
export function rawResponse(status: number, body: string, headers: string[] = []): string {
  return [`HTTP/1.1 ${status} X`, 'content-type: text/plain', `content-length: ${Buffer.byteLength(body)}`, ...headers, '', body].join('\r\n');
}
